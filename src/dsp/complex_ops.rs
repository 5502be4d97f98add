//! The element-wise complex loops around the window's FFTs: packing two
//! real channels into one complex signal (optionally times the chirp) and
//! the convolution's spectrum product.
//!
//! They run on every sample of every window, so on CPUs with AVX2 they use
//! 256-bit vectors (four complex values at a time). The vector code does
//! exactly the scalar arithmetic, multiplies then adds with no fused
//! multiply-add, so both paths give identical bits.

use rustfft::num_complex::Complex;

/// A sample as the transforms take it: non-finite counts as 0.
#[inline(always)]
fn clean(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// `out` = first + j·second (the common length).
pub fn pack_pair(out: &mut Vec<Complex<f32>>, first: &[f32], second: &[f32]) {
    let len = first.len().min(second.len());
    resize_for_overwrite(out, len);
    let done = wide::pack(&mut out[..], &first[..len], &second[..len], None);
    for ((slot, &a), &b) in out[done..]
        .iter_mut()
        .zip(&first[done..])
        .zip(&second[done..])
    {
        *slot = Complex::new(clean(a), clean(b));
    }
}

/// Sets `out`'s length to `len`; in steady state (same length as last
/// time) nothing is written, the caller overwrites every element anyway.
fn resize_for_overwrite(out: &mut Vec<Complex<f32>>, len: usize) {
    out.truncate(len);
    out.resize(len, Complex::default());
}

/// `out` = (first + j·second)·pre over the common length, then zeros up to
/// `padded_len` samples.
pub fn chirp_input(
    out: &mut Vec<Complex<f32>>,
    first: &[f32],
    second: &[f32],
    pre: &[Complex<f32>],
    padded_len: usize,
) {
    let len = first.len().min(second.len()).min(pre.len());
    resize_for_overwrite(out, padded_len.max(len));
    out[len..].fill(Complex::default());
    let done = wide::pack(
        &mut out[..len],
        &first[..len],
        &second[..len],
        Some(&pre[..len]),
    );
    for (((slot, &a), &b), w) in out[done..len]
        .iter_mut()
        .zip(&first[done..len])
        .zip(&second[done..len])
        .zip(&pre[done..len])
    {
        *slot = Complex::new(clean(a), clean(b)) * w;
    }
}

/// `values[k] *= factors[k]` over the common length.
pub fn multiply_in_place(values: &mut [Complex<f32>], factors: &[Complex<f32>]) {
    let len = values.len().min(factors.len());
    let done = wide::multiply(&mut values[..len], &factors[..len]);
    for (x, k) in values[done..len].iter_mut().zip(&factors[done..len]) {
        *x *= k;
    }
}

/// 256-bit versions; each returns how many leading elements it did (0
/// without AVX2), the caller finishes the rest with the scalar loop.
#[cfg(target_arch = "x86_64")]
mod wide {
    use rustfft::num_complex::Complex;
    use std::arch::x86_64::{
        __m256, _mm256_addsub_ps, _mm256_and_ps, _mm256_cmp_ps, _mm256_insertf128_ps,
        _mm256_loadu_ps, _mm256_movehdup_ps, _mm256_moveldup_ps, _mm256_mul_ps, _mm256_permute_ps,
        _mm256_setzero_ps, _mm256_storeu_ps, _mm256_sub_ps, _mm_loadu_ps, _mm_unpackhi_ps,
        _mm_unpacklo_ps, _CMP_EQ_OQ,
    };

    /// Complex values per vector.
    const STEP: usize = 4;

    fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// (x_re + j·x_im)·(w_re + j·w_im) on four interleaved pairs, as
    /// num-complex computes it: re = xr·wr − xi·wi, im = xr·wi + xi·wr.
    #[target_feature(enable = "avx2")]
    fn complex_product(x: __m256, w: __m256) -> __m256 {
        let w_re = _mm256_moveldup_ps(w);
        let w_im = _mm256_movehdup_ps(w);
        let swapped = _mm256_permute_ps::<0b1011_0001>(x);
        // [xr·wr, xi·wr] ∓ [xi·wi, xr·wi]
        _mm256_addsub_ps(_mm256_mul_ps(x, w_re), _mm256_mul_ps(swapped, w_im))
    }

    pub fn pack(
        out: &mut [Complex<f32>],
        first: &[f32],
        second: &[f32],
        factors: Option<&[Complex<f32>]>,
    ) -> usize {
        if !available() {
            return 0;
        }
        // SAFETY: the CPU supports AVX2.
        unsafe { pack_avx2(out, first, second, factors) }
    }

    #[target_feature(enable = "avx2")]
    fn pack_avx2(
        out: &mut [Complex<f32>],
        first: &[f32],
        second: &[f32],
        factors: Option<&[Complex<f32>]>,
    ) -> usize {
        let len = out
            .len()
            .min(first.len())
            .min(second.len())
            .min(factors.map_or(usize::MAX, <[_]>::len));
        let whole = len - len % STEP;
        let zero = _mm256_setzero_ps();
        for at in (0..whole).step_by(STEP) {
            // SAFETY: at + STEP <= whole <= every slice's length; a
            // Complex<f32> is two f32 (repr(C)), so STEP of them are 8 f32.
            unsafe {
                let a = _mm_loadu_ps(first.as_ptr().add(at));
                let b = _mm_loadu_ps(second.as_ptr().add(at));
                let low = _mm256_insertf128_ps::<0>(zero, _mm_unpacklo_ps(a, b));
                let x = _mm256_insertf128_ps::<1>(low, _mm_unpackhi_ps(a, b));
                // Non-finite → 0: x − x is 0 exactly when x is finite.
                let finite = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_sub_ps(x, x), zero);
                let mut value = _mm256_and_ps(x, finite);
                if let Some(factors) = factors {
                    let w = _mm256_loadu_ps(factors.as_ptr().add(at).cast::<f32>());
                    value = complex_product(value, w);
                }
                _mm256_storeu_ps(out.as_mut_ptr().add(at).cast::<f32>(), value);
            }
        }
        whole
    }

    pub fn multiply(values: &mut [Complex<f32>], factors: &[Complex<f32>]) -> usize {
        if !available() {
            return 0;
        }
        // SAFETY: the CPU supports AVX2.
        unsafe { multiply_avx2(values, factors) }
    }

    #[target_feature(enable = "avx2")]
    fn multiply_avx2(values: &mut [Complex<f32>], factors: &[Complex<f32>]) -> usize {
        let len = values.len().min(factors.len());
        let whole = len - len % STEP;
        for at in (0..whole).step_by(STEP) {
            // SAFETY: at + STEP <= whole <= both lengths; STEP complex = 8 f32.
            unsafe {
                let slot = values.as_mut_ptr().add(at).cast::<f32>();
                let w = _mm256_loadu_ps(factors.as_ptr().add(at).cast::<f32>());
                _mm256_storeu_ps(slot, complex_product(_mm256_loadu_ps(slot), w));
            }
        }
        whole
    }
}

/// Without x86-64 there is no wide path: the scalar loops do everything.
#[cfg(not(target_arch = "x86_64"))]
mod wide {
    use rustfft::num_complex::Complex;

    pub fn pack(_: &mut [Complex<f32>], _: &[f32], _: &[f32], _: Option<&[Complex<f32>]>) -> usize {
        0
    }

    pub fn multiply(_: &mut [Complex<f32>], _: &[Complex<f32>]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed;
        (0..len)
            .map(|k| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                match k % 97 {
                    13 => f32::NAN,
                    29 => f32::INFINITY,
                    41 => f32::NEG_INFINITY,
                    53 => -0.0,
                    _ => (state >> 8) as f32 / 65_536.0 - 128.0,
                }
            })
            .collect()
    }

    fn complexes(len: usize, seed: u32) -> Vec<Complex<f32>> {
        let (re, im) = (values(len, seed), values(len, seed + 1));
        re.iter()
            .zip(&im)
            .map(|(&a, &b)| Complex::new(clean(a), clean(b)))
            .collect()
    }

    fn bits(values: &[Complex<f32>]) -> Vec<(u32, u32)> {
        values
            .iter()
            .map(|z| (z.re.to_bits(), z.im.to_bits()))
            .collect()
    }

    #[test]
    fn vector_paths_give_the_scalar_bits() {
        for len in [0, 1, 3, 4, 5, 8, 1599, 2560] {
            let (first, second) = (values(len, 1), values(len, 2));
            let pre = complexes(len, 3);

            let scalar: Vec<Complex<f32>> = first
                .iter()
                .zip(&second)
                .map(|(&a, &b)| Complex::new(clean(a), clean(b)))
                .collect();
            let mut packed = Vec::new();
            pack_pair(&mut packed, &first, &second);
            assert_eq!(bits(&packed), bits(&scalar), "pack, len {len}");

            let mut expected: Vec<Complex<f32>> =
                scalar.iter().zip(&pre).map(|(z, w)| z * w).collect();
            expected.resize(len + 7, Complex::default());
            let mut chirped = Vec::new();
            chirp_input(&mut chirped, &first, &second, &pre, len + 7);
            assert_eq!(bits(&chirped), bits(&expected), "chirp, len {len}");

            let factors = complexes(len, 4);
            let mut product = scalar.clone();
            multiply_in_place(&mut product, &factors);
            let expected: Vec<Complex<f32>> =
                scalar.iter().zip(&factors).map(|(z, w)| z * w).collect();
            assert_eq!(bits(&product), bits(&expected), "multiply, len {len}");
        }
    }

    #[test]
    fn products_are_complex_products() {
        let mut x = vec![Complex::new(1.0f32, 2.0); 5];
        multiply_in_place(&mut x, &[Complex::new(3.0, -1.0); 5]);
        // (1 + 2j)(3 − j) = 3 − j + 6j + 2 = 5 + 5j
        assert!(x.iter().all(|z| *z == Complex::new(5.0, 5.0)));
        let mut out = Vec::new();
        pack_pair(&mut out, &[1.0, f32::NAN], &[f32::INFINITY, 4.0]);
        assert_eq!(out, [Complex::new(1.0, 0.0), Complex::new(0.0, 4.0)]);
    }
}
