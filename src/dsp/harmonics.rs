//! Fundamental phasors and IEC 61000-4-7 harmonic subgroups from a
//! rectangular DFT over the whole synchronised window.
//!
//! With N cycles in the window, bin N·h is harmonic h; the subgroup is
//! G_h = sqrt(C²_{Nh-1} + C²_{Nh} + C²_{Nh+1}). A voltage and its current are
//! real, so both go through one complex FFT (v + j·i) and are separated by
//! conjugate symmetry: half the FFT work.
//!
//! The DFT length is a whole number of samples, the window (whole cycles)
//! rarely is: up to half a sample of mismatch leaks the fundamental into
//! every harmonic bin, enough to move a THD by several hundredths of a
//! percentage point at 4 kHz. When the window's true length is known, the
//! fundamental's complex amplitude is solved from its bin and its leakage
//! (closed-form geometric sums) is removed from the subgroup bins; the
//! fundamental bin then holds what a perfectly synchronised DFT would show.
//!
//! Interharmonic centred subgroups come from the same spectrum: the bins
//! between harmonics h and h + 1 without the two next to each harmonic,
//! C_isg,h = sqrt(Σ_{k=2..N−2} C²_{Nh+k}) (k = 2..8 at 50 Hz, 2..10 at 60 Hz),
//! for h = 0..H−1, with the fundamental's leakage removed from them too (at
//! 4 kHz half a sample of mismatch leaks ~0.3 % of the fundamental into
//! C_isg,1, far above typical interharmonic levels).
//!
//! The transforms run in f32 (the samples are f32 already: its rounding
//! noise is of the same order as the input's quantisation, far below the
//! metrics' tolerances); leakage correction and subgroups are in f64.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::complex_ops::{chirp_input, multiply_in_place, pack_pair};

/// FFT plans kept; window lengths vary by a sample or two with frequency,
/// and a thread's one analyzer serves all its meters (whose frequencies and
/// rates may differ).
const MAX_CACHED_PLANS: usize = 64;

/// Spectrum summary of one channel in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelSpectrum {
    /// RMS phasor of the fundamental bin (magnitude = RMS, angle vs the window start).
    pub fundamental: Complex<f64>,
    /// G_1..G_H (index h - 1), RMS.
    pub subgroups: Vec<f64>,
    /// sqrt(Σ_{h=2..H} G_h²) / G_1 in percent; `None` when G_1 is 0.
    pub thd_pct: Option<f64>,
    /// C_isg,0..C_isg,H−1 (index h: between harmonics h and h + 1), RMS;
    /// empty unless asked for, or with fewer than 4 cycles per window.
    pub interharmonics: Vec<f64>,
}

/// FFT runner with cached plans and reused buffers.
pub struct HarmonicAnalyzer {
    planner: FftPlanner<f32>,
    plans: Vec<(usize, Arc<dyn Fft<f32>>)>,
    /// Packed samples (v + j·i), then their full spectrum (direct path).
    buffer: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Leakage table of the last window (shared by its channel pairs).
    leakage: Leakage,
    chirps: Vec<ChirpPlan>,
    /// Convolution buffer of the chirp-z path; its band of bins
    /// −(band−1)..=(band−1) starts at index 0 (times `post`).
    work: Vec<Complex<f32>>,
}

impl std::fmt::Debug for HarmonicAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarmonicAnalyzer")
            .field("cached_plans", &self.plans.len())
            .finish()
    }
}

impl Default for HarmonicAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl HarmonicAnalyzer {
    pub fn new() -> Self {
        HarmonicAnalyzer {
            planner: FftPlanner::new(),
            plans: Vec::new(),
            buffer: Vec::new(),
            scratch: Vec::new(),
            leakage: Leakage::default(),
            chirps: Vec::new(),
            work: Vec::new(),
        }
    }

    fn plan(&mut self, len: usize) -> Arc<dyn Fft<f32>> {
        if let Some((_, plan)) = self.plans.iter().find(|(l, _)| *l == len) {
            return Arc::clone(plan);
        }
        let plan = self.planner.plan_fft_forward(len);
        if self.plans.len() >= MAX_CACHED_PLANS {
            self.plans.remove(0);
        }
        self.plans.push((len, Arc::clone(&plan)));
        plan
    }

    /// Index of the chirp plan for (M, band), built and cached on first use.
    fn chirp_plan(&mut self, len: usize, band: usize) -> usize {
        let key = (len, band);
        match self.chirps.iter().position(|c| (c.len, c.band) == key) {
            Some(index) => index,
            None => {
                let plan = ChirpPlan::new(&mut self.planner, len, band);
                if self.chirps.len() >= MAX_CACHED_PLANS {
                    self.chirps.remove(0);
                }
                self.chirps.push(plan);
                self.chirps.len() - 1
            }
        }
    }

    /// Bins −(band−1)..=(band−1) of the M-point DFT of the packed pair
    /// (`first` + j·`second`, M = their length) into `self.work[..2·band−1]`,
    /// still to be multiplied by the plan's `post` chirp; by Bluestein's
    /// chirp-z over a fast convolution length: for awkward M (large prime
    /// factors) this is several times faster than the full FFT, and only
    /// these bins are needed.
    fn chirp_band(&mut self, index: usize, first: &[f32], second: &[f32]) {
        let plan = &self.chirps[index];
        let conv = plan.kernel.len();
        let need = plan
            .forward
            .get_inplace_scratch_len()
            .max(plan.inverse.get_inplace_scratch_len());
        if self.scratch.len() < need {
            self.scratch.resize(need, Complex::default());
        }
        chirp_input(&mut self.work, first, second, &plan.pre, conv);
        plan.forward
            .process_with_scratch(&mut self.work, &mut self.scratch[..need]);
        multiply_in_place(&mut self.work, &plan.kernel);
        plan.inverse
            .process_with_scratch(&mut self.work, &mut self.scratch[..need]);
    }

    /// Highest order whose whole subgroup lies below the Nyquist frequency.
    pub fn usable_order(len: usize, cycles: u32, max_order: u32) -> u32 {
        let cycles = u64::from(cycles.max(1));
        // Bin N·h + 1 must stay below len / 2: 2·(N·h + 1) < len.
        let mut h = u64::from(max_order);
        while h > 0 && 2 * (cycles * h + 1) >= len as u64 {
            h -= 1;
        }
        h as u32
    }

    /// Spectra of two equally long real channels over `cycles` whole cycles.
    /// `window_samples`: the true length of those cycles in samples, when
    /// known (enables the leakage correction). Non-finite samples count as 0.
    /// `interharmonics`: also fill the interharmonic centred subgroups.
    /// Returns H actually used (0 when the window is too short for even the
    /// fundamental subgroup).
    #[allow(clippy::too_many_arguments)]
    pub fn analyze_pair(
        &mut self,
        first: &[f32],
        second: &[f32],
        cycles: u32,
        window_samples: Option<f64>,
        max_order: u32,
        interharmonics: bool,
        out_first: &mut ChannelSpectrum,
        out_second: &mut ChannelSpectrum,
    ) -> u32 {
        let len = first.len().min(second.len());
        let orders = Self::usable_order(len, cycles, max_order);
        out_first.subgroups.clear();
        out_second.subgroups.clear();
        out_first.interharmonics.clear();
        out_second.interharmonics.clear();
        if orders == 0 {
            out_first.fundamental = Complex::default();
            out_second.fundamental = Complex::default();
            out_first.thd_pct = None;
            out_second.thd_pct = None;
            return 0;
        }
        // Bins up to N·H + 1 and their mirrors are all the subgroups need.
        let band = cycles.max(1) as usize * orders as usize + 2;
        let use_chirp = largest_prime_factor(len) > 7 && 2 * band < len;
        let mut chirp = None;
        if use_chirp {
            let index = self.chirp_plan(len, band);
            self.chirp_band(index, &first[..len], &second[..len]);
            chirp = Some(index);
        } else {
            pack_pair(&mut self.buffer, &first[..len], &second[..len]);
            let fft = self.plan(len);
            let need = fft.get_inplace_scratch_len();
            if self.scratch.len() < need {
                self.scratch.resize(need, Complex::default());
            }
            fft.process_with_scratch(&mut self.buffer, &mut self.scratch[..need]);
        }

        // RMS of a real sinusoid in bin k: sqrt(2)·|X_k| / len; each channel's
        // bin from the packed spectrum Z is (Z_k ± conj Z_{-k}) / 2.
        let scale = std::f64::consts::SQRT_2 / len as f64;
        let widen = |z: Complex<f32>| Complex::new(f64::from(z.re), f64::from(z.im));
        let packed = |k: usize, negative: bool| match chirp {
            Some(index) => {
                // The band holds bins −(band−1)..=(band−1).
                let at = if negative { band - 1 - k } else { band - 1 + k };
                widen(self.work[at]) * self.chirps[index].post[at]
            }
            None => widen(self.buffer[if negative { (len - k) % len } else { k }]),
        };
        let bins = |k: usize| {
            let z = packed(k, false);
            let mirror = packed(k, true).conj();
            let a = (z + mirror) * 0.5 * scale;
            let b = (z - mirror) * Complex::new(0.0, -0.5) * scale;
            (a, b)
        };
        let n = cycles.max(1) as usize;
        // Interharmonic bins N·h + 2..=N·h + N − 2 exist from 4 cycles on.
        let interharmonics = interharmonics && n >= 4;
        let key = LeakageKey {
            len,
            cycles: n,
            window_bits: window_samples.map(f64::to_bits),
            orders: orders as usize,
            interharmonics,
        };
        if self.leakage.key != Some(key) {
            self.leakage.rebuild(key, window_samples);
        }
        let leakage = self.leakage.active.then_some(&self.leakage);
        let (a1, b1) = bins(n);
        let (fa, fb) = match leakage {
            Some(l) => (l.solve(a1), l.solve(b1)),
            None => (a1, b1),
        };
        for h in 1..=orders as usize {
            let (mut ga, mut gb) = (0.0, 0.0);
            for (d, k) in (n * h - 1..=n * h + 1).enumerate() {
                let (mut a, mut b) = if k == n { (fa, fb) } else { bins(k) };
                if let (Some(l), false) = (leakage, k == n) {
                    // Remove the fundamental's leakage into bin k.
                    let [p, q] = l.table[3 * (h - 1) + d];
                    a -= fa * p + fa.conj() * q;
                    b -= fb * p + fb.conj() * q;
                }
                ga += a.norm_sqr();
                gb += b.norm_sqr();
            }
            out_first.subgroups.push(ga.sqrt());
            out_second.subgroups.push(gb.sqrt());
        }
        if interharmonics {
            // All below bin N·H − 1, so inside the band computed above.
            let per_group = n - 3;
            for h in 0..orders as usize {
                let (mut ga, mut gb) = (0.0, 0.0);
                for (d, k) in (n * h + 2..=n * h + n - 2).enumerate() {
                    let (mut a, mut b) = bins(k);
                    if let Some(l) = leakage {
                        let [p, q] = l.interharmonic[per_group * h + d];
                        a -= fa * p + fa.conj() * q;
                        b -= fb * p + fb.conj() * q;
                    }
                    ga += a.norm_sqr();
                    gb += b.norm_sqr();
                }
                out_first.interharmonics.push(ga.sqrt());
                out_second.interharmonics.push(gb.sqrt());
            }
        }
        out_first.fundamental = fa;
        out_second.fundamental = fb;
        out_first.thd_pct = thd(&out_first.subgroups);
        out_second.thd_pct = thd(&out_second.subgroups);
        orders
    }
}

/// Largest prime factor (1 for 0 and 1).
fn largest_prime_factor(mut n: usize) -> usize {
    let mut largest = 1;
    let mut p = 2;
    while p * p <= n {
        while n.is_multiple_of(p) {
            largest = p;
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        largest = n;
    }
    largest
}

/// Smallest c·2^a at or above `n` with c one of 1, 3, 5, 9, 25: the lengths
/// rustfft's AVX code is fastest at. Measured here (f32, one transform):
/// 2560 = 5·2^9 takes 3.5 µs against 4.4 µs for 3072 and 4.2 µs for 2430;
/// 1600 = 25·2^6 takes 2.1 µs against 2.7 µs for 2048.
fn fast_at_least(n: usize) -> usize {
    let n = n.max(1);
    [1, 3, 5, 9, 25]
        .into_iter()
        .map(|odd: usize| {
            let mut length = odd;
            while length < n {
                length *= 2;
            }
            length
        })
        .min()
        .unwrap_or(n)
}

/// Precomputed chirps of one (M, band) pair.
///
/// X_k = W^{k²/2} Σ_n (z_n W^{n²/2}) W^{−(k−n)²/2}, W = e^{−j2π/M}: a linear
/// convolution, done circularly over a fast length ≥ M + 2·band − 2.
/// Tables are computed in f64 and stored in the precision they are used in.
struct ChirpPlan {
    len: usize,
    band: usize,
    /// W^{n²/2}, n = 0..M.
    pre: Vec<Complex<f32>>,
    /// W^{k²/2} for k = −(band−1)..=(band−1).
    post: Vec<Complex<f64>>,
    /// FFT of the chirp W^{−j²/2}, divided by the convolution length.
    kernel: Vec<Complex<f32>>,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
}

impl ChirpPlan {
    fn new(planner: &mut FftPlanner<f32>, len: usize, band: usize) -> Self {
        use std::f64::consts::PI;
        // e^{−jπ·x²/M}, with x² reduced mod 2M in integers for precision.
        let chirp = |x: i64, sign: f64| {
            let m2 = 2 * len as i64;
            let r = (x * x).rem_euclid(m2);
            Complex::from_polar(1.0, sign * PI * r as f64 / len as f64)
        };
        let span = 2 * band - 1;
        let conv = fast_at_least(len + span - 1);
        let first = -(band as i64 - 1);
        let narrow = |z: Complex<f64>| Complex::new(z.re as f32, z.im as f32);
        let pre = (0..len as i64).map(|n| narrow(chirp(n, -1.0))).collect();
        let post = (0..span as i64).map(|m| chirp(first + m, -1.0)).collect();
        // b_j = W^{−(first + j)²/2} for j = −(M−1)..=(span−1), stored at j mod conv.
        let mut kernel = vec![Complex::default(); conv];
        for j in -(len as i64 - 1)..span as i64 {
            kernel[j.rem_euclid(conv as i64) as usize] = chirp(first + j, 1.0);
        }
        // The kernel's own transform in f64, for precision.
        FftPlanner::<f64>::new()
            .plan_fft_forward(conv)
            .process(&mut kernel);
        let norm = 1.0 / conv as f64;
        let kernel = kernel.into_iter().map(|k| narrow(k * norm)).collect();
        let forward = planner.plan_fft_forward(conv);
        let inverse = planner.plan_fft_inverse(conv);
        ChirpPlan {
            len,
            band,
            pre,
            post,
            kernel,
            forward,
            inverse,
        }
    }
}

/// What the leakage table depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeakageKey {
    len: usize,
    cycles: usize,
    window_bits: Option<u64>,
    orders: usize,
    interharmonics: bool,
}

/// The DFT of a real sinusoid whose period does not divide the DFT length.
///
/// With x_n = A·e^{jωn} + conj(A)·e^{−jωn}, bin k of an M-point DFT is
/// A·D⁺_k + conj(A)·D⁻_k with D±_k = (1 − e^{±jωM}) / (1 − e^{±jω}·e^{−j2πk/M}).
/// The table holds D± (divided by M, so it maps RMS phasors to RMS bins)
/// for every subgroup bin; all channels of a window share it.
#[derive(Debug, Clone, Default)]
struct Leakage {
    /// What the table was built for (`None`: never built).
    key: Option<LeakageKey>,
    /// False when nothing leaks (synchronised to the sample, or unknown length).
    active: bool,
    len: usize,
    /// D±_k / M for k = N·h − 1, N·h, N·h + 1, h = 1..=H.
    table: Vec<[Complex<f64>; 2]>,
    /// D±_k / M for k = N·h + 2..=N·h + N − 2, h = 0..H (when asked for).
    interharmonic: Vec<[Complex<f64>; 2]>,
    /// D± at the fundamental bin N, unscaled.
    at_fundamental: [Complex<f64>; 2],
}

impl Leakage {
    /// Refills the table for `key` (its buffer is reused: no allocation
    /// once it has grown to 3·H entries).
    fn rebuild(&mut self, key: LeakageKey, window_samples: Option<f64>) {
        use std::f64::consts::TAU;
        self.key = Some(key);
        self.len = key.len;
        self.active = false;
        let Some(window_samples) = window_samples else {
            return;
        };
        if !(window_samples.is_finite() && window_samples > 0.0) {
            return;
        }
        let (len, cycles) = (key.len as f64, key.cycles as f64);
        let omega = TAU * cycles / window_samples;
        if (omega * len - TAU * cycles).abs() < 1e-12 {
            return;
        }
        let one = Complex::new(1.0, 0.0);
        let rotation = [
            Complex::from_polar(1.0, omega),
            Complex::from_polar(1.0, -omega),
        ];
        let numerator = [
            one - Complex::from_polar(1.0, omega * len),
            one - Complex::from_polar(1.0, -omega * len),
        ];
        // This table is rebuilt every window: one real division per bin
        // (numerator · conj(d) / |d|²), no hypot, twiddles by recurrence.
        let kernel = |twiddle: Complex<f64>| {
            let at = |s: usize| {
                let denominator = one - rotation[s] * twiddle;
                let magnitude = denominator.norm_sqr();
                if magnitude < 1e-24 {
                    Complex::new(len, 0.0)
                } else {
                    numerator[s] * denominator.conj() * (1.0 / magnitude)
                }
            };
            [at(0), at(1)]
        };
        let step = Complex::from_polar(1.0, -TAU / len);
        let harmonic_step = Complex::from_polar(1.0, -TAU * cycles / len);
        let mut base_twiddle = Complex::from_polar(1.0, -TAU * (cycles - 1.0) / len);
        let table = &mut self.table;
        table.clear();
        for _ in 1..=key.orders {
            // Bins N·h − 1, N·h, N·h + 1.
            let mut twiddle = base_twiddle;
            for _ in 0..3 {
                table.push(kernel(twiddle).map(|d| d / len));
                twiddle *= step;
            }
            base_twiddle *= harmonic_step;
        }
        let interharmonic = &mut self.interharmonic;
        interharmonic.clear();
        if key.interharmonics {
            // Bins N·h + 2..=N·h + N − 2, then three skipped to N·(h + 1) + 2.
            let skip = Complex::from_polar(1.0, -TAU * 3.0 / len);
            let mut twiddle = Complex::from_polar(1.0, -TAU * 2.0 / len);
            for _ in 0..key.orders {
                for _ in 2..=key.cycles - 2 {
                    interharmonic.push(kernel(twiddle).map(|d| d / len));
                    twiddle *= step;
                }
                twiddle *= skip;
            }
        }
        self.at_fundamental = kernel(Complex::from_polar(1.0, -TAU * cycles / len));
        self.active = true;
    }

    /// The synchronised fundamental (RMS phasor) behind the measured bin N:
    /// solves X = A·p + conj(A)·q, rescaled so that a synchronised bin is A·M.
    fn solve(&self, measured: Complex<f64>) -> Complex<f64> {
        let [p, q] = self.at_fundamental;
        let det = p.norm_sqr() - q.norm_sqr();
        if det.abs() < 1e-12 {
            return measured;
        }
        (measured * p.conj() - measured.conj() * q) / det * self.len as f64
    }
}

/// THD from subgroups G_1..G_H, percent.
pub fn thd(subgroups: &[f64]) -> Option<f64> {
    let (first, rest) = subgroups.split_first()?;
    if *first <= 0.0 || !first.is_finite() {
        return None;
    }
    let sum: f64 = rest.iter().map(|g| g * g).sum();
    Some(sum.sqrt() / first * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subgroups_of_exact_harmonics() {
        // 10 cycles in 1600 samples; v: 100 V + 5 % h3; i: 10 A lagging 30° + 20 % h5.
        let len = 1600;
        let x = |n: usize| std::f64::consts::TAU * 10.0 * n as f64 / len as f64;
        let v: Vec<f32> = (0..len)
            .map(|n| (100.0 * 2f64.sqrt() * (x(n).sin() + 0.05 * (3.0 * x(n)).sin())) as f32)
            .collect();
        let i: Vec<f32> = (0..len)
            .map(|n| {
                let y = x(n) - 30f64.to_radians();
                (10.0 * 2f64.sqrt() * (y.sin() + 0.2 * (5.0 * y).sin())) as f32
            })
            .collect();
        let mut analyzer = HarmonicAnalyzer::new();
        let (mut sv, mut si) = (ChannelSpectrum::default(), ChannelSpectrum::default());
        let h = analyzer.analyze_pair(&v, &i, 10, Some(1600.0), 40, false, &mut sv, &mut si);
        assert_eq!(h, 40);
        assert!((sv.fundamental.norm() - 100.0).abs() < 1e-4);
        assert!((si.fundamental.norm() - 10.0).abs() < 1e-5);
        assert!((sv.thd_pct.unwrap_or(0.0) - 5.0).abs() < 1e-4);
        assert!((si.thd_pct.unwrap_or(0.0) - 20.0).abs() < 1e-4);
        let angle = (sv.fundamental.arg() - si.fundamental.arg()).to_degrees();
        assert!((angle - 30.0).abs() < 1e-4, "{angle}");
    }

    #[test]
    fn fundamental_leakage_is_removed_from_interharmonic_subgroups() {
        // 10 cycles in 801.6 samples, an 802-point DFT: the fundamental sits
        // 0.005 bins off bin 10 and leaks A·sin(0.005π)/π·sqrt(Σ_{m=2..8} 1/m²)
        // ≈ 0.36 % of itself into C_isg,1 unless that is removed.
        let (len, window) = (802, 801.6);
        let v: Vec<f32> = (0..len)
            .map(|n| {
                let x = std::f64::consts::TAU * 10.0 * n as f64 / window;
                (230.0 * 2f64.sqrt() * x.sin()) as f32
            })
            .collect();
        let i = vec![0.0f32; len];
        let mut analyzer = HarmonicAnalyzer::new();
        let (mut sv, mut si) = (ChannelSpectrum::default(), ChannelSpectrum::default());
        let h = analyzer.analyze_pair(&v, &i, 10, Some(window), 39, true, &mut sv, &mut si);
        assert_eq!((h as usize, sv.interharmonics.len()), (39, 39));
        // Corrected: only f32 rounding is left (< 1e-5 of the fundamental).
        let worst = sv.interharmonics.iter().fold(0.0, |a: f64, &b| a.max(b));
        assert!(worst < 230.0 * 1e-5, "{worst}");
        assert!((sv.fundamental.norm() - 230.0).abs() < 1e-3);
        analyzer.analyze_pair(&v, &i, 10, None, 39, true, &mut sv, &mut si);
        let leaked = sv.interharmonics[1] / 230.0;
        assert!((0.0030..0.0042).contains(&leaked), "{leaked}");
        // Fewer than 4 cycles per window have no interharmonic bins.
        analyzer.analyze_pair(&v, &i, 3, None, 39, true, &mut sv, &mut si);
        assert!(sv.interharmonics.is_empty());
    }

    #[test]
    fn orders_at_nyquist_are_left_out() {
        // 4 kHz, 50 Hz: 800 samples, 40th harmonic = 2 kHz = Nyquist.
        assert_eq!(HarmonicAnalyzer::usable_order(800, 10, 40), 39);
        assert_eq!(HarmonicAnalyzer::usable_order(1600, 10, 50), 50);
        assert_eq!(HarmonicAnalyzer::usable_order(10, 10, 40), 0);
    }

    #[test]
    fn chirp_band_matches_the_full_fft() {
        assert_eq!(largest_prime_factor(1599), 41);
        assert_eq!(largest_prime_factor(1600), 5);
        assert_eq!(fast_at_least(2401), 2560);
        assert_eq!(fast_at_least(1580), 1600);
        assert_eq!(fast_at_least(2561), 3072);
        assert_eq!(fast_at_least(3073), 3200);
        assert_eq!(fast_at_least(7202), 8192);
        assert_eq!(fast_at_least(1024), 1024);
        assert_eq!(fast_at_least(1), 1);
        let len = 1599;
        let x: Vec<f32> = (0..len)
            .map(|n| ((n * 7919) % 1000) as f32 - 500.0)
            .collect();
        let y: Vec<f32> = (0..len)
            .map(|n| ((n * 104_729) % 777) as f32 - 300.0)
            .collect();
        let mut full: Vec<Complex<f64>> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| Complex::new(f64::from(a), f64::from(b)))
            .collect();
        FftPlanner::<f64>::new()
            .plan_fft_forward(len)
            .process(&mut full);
        let mut analyzer = HarmonicAnalyzer::new();
        let band = 50;
        let index = analyzer.chirp_plan(len, band);
        analyzer.chirp_band(index, &x, &y);
        // f32 transforms: errors relative to the signal's scale (the
        // largest of these bins), not to each bin.
        let size = full.iter().map(|z| z.norm()).fold(0.0, f64::max);
        for k in -(band as i64 - 1)..band as i64 {
            let expected = full[k.rem_euclid(len as i64) as usize];
            let at = (k + band as i64 - 1) as usize;
            let z = analyzer.work[at];
            let got =
                Complex::new(f64::from(z.re), f64::from(z.im)) * analyzer.chirps[index].post[at];
            assert!(
                (got - expected).norm() < 2e-6 * size,
                "bin {k}: {got} vs {expected}"
            );
        }
    }
}
