//! The window's sums of squares and products, the time-domain hot loop.
//!
//! f32 samples are summed in f64 over eight independent lanes (enough to
//! hide the add latency), folded pairwise at the end. The order of
//! additions depends only on the slices, so a window's sums are the same
//! bits whatever blocks its samples came in. On CPUs with AVX2 the same
//! lanes run as two 256-bit vectors (multiply, then add: no fused
//! multiply-add), which gives identical bits to the portable loop.

const LANES: usize = 8;

/// Σ x², Σ y², Σ x·y over the common length.
pub fn pair_sums(x: &[f32], y: &[f32]) -> [f64; 3] {
    let len = x.len().min(y.len());
    let (x, y) = (&x[..len], &y[..len]);
    let whole = len - len % LANES;
    let (mut xx, mut yy, mut xy) = ([0.0f64; LANES], [0.0f64; LANES], [0.0f64; LANES]);
    if !wide::pair_lanes(&x[..whole], &y[..whole], &mut xx, &mut yy, &mut xy) {
        for (a, b) in x[..whole]
            .chunks_exact(LANES)
            .zip(y[..whole].chunks_exact(LANES))
        {
            for j in 0..LANES {
                let (p, q) = (f64::from(a[j]), f64::from(b[j]));
                xx[j] += p * p;
                yy[j] += q * q;
                xy[j] += p * q;
            }
        }
    }
    for (&a, &b) in x[whole..].iter().zip(&y[whole..]) {
        let (p, q) = (f64::from(a), f64::from(b));
        xx[0] += p * p;
        yy[0] += q * q;
        xy[0] += p * q;
    }
    [fold(xx), fold(yy), fold(xy)]
}

/// Σ (x − y)² over the common length.
pub fn difference_sum(x: &[f32], y: &[f32]) -> f64 {
    let len = x.len().min(y.len());
    let (x, y) = (&x[..len], &y[..len]);
    let whole = len - len % LANES;
    let mut acc = [0.0f64; LANES];
    if !wide::difference_lanes(&x[..whole], &y[..whole], &mut acc) {
        for (a, b) in x[..whole]
            .chunks_exact(LANES)
            .zip(y[..whole].chunks_exact(LANES))
        {
            for j in 0..LANES {
                let d = f64::from(a[j]) - f64::from(b[j]);
                acc[j] += d * d;
            }
        }
    }
    for (&a, &b) in x[whole..].iter().zip(&y[whole..]) {
        let d = f64::from(a) - f64::from(b);
        acc[0] += d * d;
    }
    fold(acc)
}

/// Pairwise total of the lanes.
fn fold(lanes: [f64; LANES]) -> f64 {
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

/// The AVX2 lanes; each function returns false (doing nothing) when the
/// CPU lacks AVX2. Slices are whole multiples of `LANES` long.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::LANES;
    use std::arch::x86_64::{
        __m256d, _mm256_add_pd, _mm256_cvtps_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_storeu_pd,
        _mm256_sub_pd, _mm_loadu_ps,
    };

    /// Eight f32 as two vectors of four f64.
    #[target_feature(enable = "avx2")]
    fn load(chunk: &[f32]) -> [__m256d; 2] {
        assert!(chunk.len() >= LANES);
        // SAFETY: the assert above keeps both 4-float loads in bounds.
        let (low, high) = unsafe {
            (
                _mm_loadu_ps(chunk.as_ptr()),
                _mm_loadu_ps(chunk.as_ptr().add(4)),
            )
        };
        [_mm256_cvtps_pd(low), _mm256_cvtps_pd(high)]
    }

    #[target_feature(enable = "avx2")]
    fn to_vectors(lanes: &[f64; LANES]) -> [__m256d; 2] {
        // SAFETY: `lanes` holds 8 f64, two loads of 4.
        unsafe {
            [
                _mm256_loadu_pd(lanes.as_ptr()),
                _mm256_loadu_pd(lanes.as_ptr().add(4)),
            ]
        }
    }

    #[target_feature(enable = "avx2")]
    fn store(vectors: [__m256d; 2], lanes: &mut [f64; LANES]) {
        // SAFETY: `lanes` holds 8 f64, two stores of 4.
        unsafe {
            _mm256_storeu_pd(lanes.as_mut_ptr(), vectors[0]);
            _mm256_storeu_pd(lanes.as_mut_ptr().add(4), vectors[1]);
        }
    }

    pub fn pair_lanes(
        x: &[f32],
        y: &[f32],
        xx: &mut [f64; LANES],
        yy: &mut [f64; LANES],
        xy: &mut [f64; LANES],
    ) -> bool {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return false;
        }
        // SAFETY: the CPU supports AVX2.
        unsafe { pair_avx2(x, y, xx, yy, xy) };
        true
    }

    #[target_feature(enable = "avx2")]
    fn pair_avx2(
        x: &[f32],
        y: &[f32],
        xx: &mut [f64; LANES],
        yy: &mut [f64; LANES],
        xy: &mut [f64; LANES],
    ) {
        let (mut sxx, mut syy, mut sxy) = (to_vectors(xx), to_vectors(yy), to_vectors(xy));
        for (a, b) in x.chunks_exact(LANES).zip(y.chunks_exact(LANES)) {
            let (p, q) = (load(a), load(b));
            for h in 0..2 {
                sxx[h] = _mm256_add_pd(sxx[h], _mm256_mul_pd(p[h], p[h]));
                syy[h] = _mm256_add_pd(syy[h], _mm256_mul_pd(q[h], q[h]));
                sxy[h] = _mm256_add_pd(sxy[h], _mm256_mul_pd(p[h], q[h]));
            }
        }
        store(sxx, xx);
        store(syy, yy);
        store(sxy, xy);
    }

    pub fn difference_lanes(x: &[f32], y: &[f32], acc: &mut [f64; LANES]) -> bool {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return false;
        }
        // SAFETY: the CPU supports AVX2.
        unsafe { difference_avx2(x, y, acc) };
        true
    }

    #[target_feature(enable = "avx2")]
    fn difference_avx2(x: &[f32], y: &[f32], acc: &mut [f64; LANES]) {
        let mut sum = to_vectors(acc);
        for (a, b) in x.chunks_exact(LANES).zip(y.chunks_exact(LANES)) {
            let (p, q) = (load(a), load(b));
            for h in 0..2 {
                let d = _mm256_sub_pd(p[h], q[h]);
                sum[h] = _mm256_add_pd(sum[h], _mm256_mul_pd(d, d));
            }
        }
        store(sum, acc);
    }
}

/// Without x86-64 there is no wide path: the portable loop runs.
#[cfg(not(target_arch = "x86_64"))]
mod wide {
    use super::LANES;

    pub fn pair_lanes(
        _: &[f32],
        _: &[f32],
        _: &mut [f64; LANES],
        _: &mut [f64; LANES],
        _: &mut [f64; LANES],
    ) -> bool {
        false
    }

    pub fn difference_lanes(_: &[f32], _: &[f32], _: &mut [f64; LANES]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(len: usize, seed: f32) -> Vec<f32> {
        (0..len)
            .map(|k| (k as f32 * 0.0393 + seed).sin() * 325.0 + (k as f32 * 0.7).cos())
            .collect()
    }

    /// The portable lanes, for comparison with whatever path runs here.
    fn portable_pair(x: &[f32], y: &[f32]) -> [f64; 3] {
        let (mut xx, mut yy, mut xy) = ([0.0f64; LANES], [0.0f64; LANES], [0.0f64; LANES]);
        for (k, (&a, &b)) in x.iter().zip(y).enumerate() {
            let whole = x.len() - x.len() % LANES;
            let j = if k < whole { k % LANES } else { 0 };
            let (p, q) = (f64::from(a), f64::from(b));
            xx[j] += p * p;
            yy[j] += q * q;
            xy[j] += p * q;
        }
        [fold(xx), fold(yy), fold(xy)]
    }

    #[test]
    fn sums_match_the_definition_and_the_portable_lanes_bit_for_bit() {
        for len in [0, 1, 7, 8, 9, 1599, 6400] {
            let (x, y) = (signal(len, 0.0), signal(len, 2.1));
            let got = pair_sums(&x, &y);
            let expected = portable_pair(&x, &y);
            assert_eq!(
                got.map(f64::to_bits),
                expected.map(f64::to_bits),
                "len {len}"
            );
            // Against a plain f64 sum, to 1e-12 relative.
            let plain = |f: &dyn Fn(f64, f64) -> f64| -> f64 {
                x.iter()
                    .zip(&y)
                    .map(|(&a, &b)| f(f64::from(a), f64::from(b)))
                    .sum()
            };
            let truth = [
                plain(&|a, _| a * a),
                plain(&|_, b| b * b),
                plain(&|a, b| a * b),
            ];
            for (g, t) in got.iter().zip(truth) {
                assert!(
                    (g - t).abs() <= 1e-12 * t.abs().max(1.0),
                    "len {len}: {g} vs {t}"
                );
            }
            let difference = difference_sum(&x, &y);
            let truth = plain(&|a, b| (a - b) * (a - b));
            assert!(
                (difference - truth).abs() <= 1e-12 * truth.max(1.0),
                "len {len}"
            );
        }
    }
}
