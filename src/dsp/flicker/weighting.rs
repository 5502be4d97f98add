//! Block 3 of the IEC 61000-4-15 flickermeter, designed for the decimated
//! rate: the 0.05 Hz high-pass, the 6th-order Butterworth low-pass (35 Hz on
//! 50 Hz grids, 42 Hz on 60 Hz) and the lamp–eye weighting filter of the
//! 230 V or 120 V lamp, as second-order sections; and block 4's 300 ms
//! low-pass. Bilinear transform, each corner prewarped so it lands exactly.

use std::f64::consts::{PI, TAU};

use super::iir::{analog_magnitude, prewarped_k, Biquad};
use super::Lamp;

/// High-pass corner that removes the mean, Hz.
const HIGH_PASS_HZ: f64 = 0.05;
/// Time constant of block 4's sliding mean, s.
pub const SMOOTHING_TIME_CONSTANT_S: f64 = 0.3;

/// Coefficients of `F(s) = K·ω1·s/(s² + 2λs + ω1²) · (1 + s/ω2)/((1 + s/ω3)(1 + s/ω4))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LampModel {
    pub k: f64,
    pub lambda: f64,
    pub omega1: f64,
    pub omega2: f64,
    pub omega3: f64,
    pub omega4: f64,
}

impl LampModel {
    /// The standard's values (IEC 61000-4-15 Ed. 2, Table A... as in the spec).
    pub fn of(lamp: Lamp) -> LampModel {
        match lamp {
            Lamp::V230 => LampModel {
                k: 1.74802,
                lambda: TAU * 4.05981,
                omega1: TAU * 9.15494,
                omega2: TAU * 2.27979,
                omega3: TAU * 1.22535,
                omega4: TAU * 21.9,
            },
            Lamp::V120 => LampModel {
                k: 1.6357,
                lambda: TAU * 4.167375,
                omega1: TAU * 9.077169,
                omega2: TAU * 2.939902,
                omega3: TAU * 1.394468,
                omega4: TAU * 17.31512,
            },
        }
    }

    /// The band-pass part as an analog (numerator, denominator) pair.
    fn band_pass(&self) -> ([f64; 3], [f64; 3]) {
        (
            [0.0, self.k * self.omega1, 0.0],
            [self.omega1 * self.omega1, 2.0 * self.lambda, 1.0],
        )
    }

    /// The lead–lag part, normalised to unit DC gain.
    fn lead_lag(&self) -> ([f64; 3], [f64; 3]) {
        let (w2, w3, w4) = (self.omega2, self.omega3, self.omega4);
        (
            [1.0, 1.0 / w2, 0.0],
            [1.0, 1.0 / w3 + 1.0 / w4, 1.0 / (w3 * w4)],
        )
    }
}

/// Corner of the Butterworth low-pass for a grid, Hz.
pub fn low_pass_corner_hz(nominal_frequency_hz: f64) -> f64 {
    if nominal_frequency_hz > 55.0 {
        42.0
    } else {
        35.0
    }
}

/// Analog prototypes of the block-3 sections, in processing order.
fn prototypes(nominal_frequency_hz: f64, lamp: Lamp) -> Vec<([f64; 3], [f64; 3], f64)> {
    let mut out = Vec::with_capacity(SECTIONS);
    let hp = TAU * HIGH_PASS_HZ;
    out.push(([0.0, 1.0, 0.0], [hp, 1.0, 0.0], hp));
    let wc = TAU * low_pass_corner_hz(nominal_frequency_hz);
    // 6th order: pole pairs at 15°, 45°, 75° from the negative real axis.
    for angle_deg in [15.0f64, 45.0, 75.0] {
        let damping = 2.0 * (angle_deg * PI / 180.0).cos();
        out.push(([wc * wc, 0.0, 0.0], [wc * wc, damping * wc, 1.0], wc));
    }
    let model = LampModel::of(lamp);
    let (n, d) = model.band_pass();
    out.push((n, d, model.omega1));
    let (n, d) = model.lead_lag();
    out.push((n, d, model.omega4));
    out
}

/// Sections of block 3.
pub const SECTIONS: usize = 6;

/// Block 3 for the decimated rate `rate_hz`.
pub fn design(rate_hz: f64, nominal_frequency_hz: f64, lamp: Lamp) -> [Biquad; SECTIONS] {
    let mut sections = [Biquad::bilinear([1.0, 0.0, 0.0], [1.0, 0.0, 0.0], 1.0); SECTIONS];
    for (slot, (num, den, corner)) in sections
        .iter_mut()
        .zip(prototypes(nominal_frequency_hz, lamp))
    {
        *slot = Biquad::bilinear(num, den, prewarped_k(corner, rate_hz));
    }
    sections
}

/// Block 4's first-order low-pass (300 ms), unit DC gain.
pub fn smoothing(rate_hz: f64) -> Biquad {
    let wc = 1.0 / SMOOTHING_TIME_CONSTANT_S;
    Biquad::bilinear(
        [1.0, 0.0, 0.0],
        [1.0, SMOOTHING_TIME_CONSTANT_S, 0.0],
        prewarped_k(wc, rate_hz),
    )
}

/// |block 3| of the analog reference filters at `f_hz` (for checks).
pub fn analog_magnitude_at(f_hz: f64, nominal_frequency_hz: f64, lamp: Lamp) -> f64 {
    prototypes(nominal_frequency_hz, lamp)
        .iter()
        .map(|(n, d, _)| analog_magnitude(*n, *d, TAU * f_hz))
        .product()
}

/// |block 3| of the digital sections at `f_hz`.
pub fn digital_magnitude_at(sections: &[Biquad], f_hz: f64, rate_hz: f64) -> f64 {
    sections
        .iter()
        .map(|s| s.magnitude(TAU * f_hz / rate_hz))
        .product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lamp_filters_peak_near_8_8_hz() {
        // The 230 V lamp peaks at unit gain; the 120 V one lower, by the
        // ratio of the two 8.8 Hz references of Table 1 (0.250 % / 0.321 %).
        for (lamp, want) in [(Lamp::V230, 1.0), (Lamp::V120, 0.250 / 0.321)] {
            let (n, d) = LampModel::of(lamp).band_pass();
            let (n2, d2) = LampModel::of(lamp).lead_lag();
            let gain = |f: f64| analog_magnitude(n, d, TAU * f) * analog_magnitude(n2, d2, TAU * f);
            let peak = (1..400)
                .map(|i| f64::from(i) * 0.05)
                .fold((0.0, 0.0), |best, f| {
                    if gain(f) > best.1 {
                        (f, gain(f))
                    } else {
                        best
                    }
                });
            assert!(
                (peak.0 - 8.8).abs() < 0.6,
                "{lamp:?} peaks at {} Hz",
                peak.0
            );
            assert!(
                (peak.1 / want - 1.0).abs() < 0.02,
                "{lamp:?} peak gain {}",
                peak.1
            );
        }
    }

    #[test]
    fn digital_block_3_follows_the_analog_filters() {
        // Relative error of |H|² (what Pinst sees), 0.5..33 Hz, at 800 Hz.
        for (grid, lamp) in [(50.0, Lamp::V230), (60.0, Lamp::V120), (50.0, Lamp::V120)] {
            let sections = design(800.0, grid, lamp);
            for i in 1..=66 {
                let f = f64::from(i) * 0.5;
                let a = analog_magnitude_at(f, grid, lamp);
                let d = digital_magnitude_at(&sections, f, 800.0);
                let err = (d * d / (a * a) - 1.0).abs();
                assert!(
                    err < 0.02,
                    "{grid} Hz {lamp:?} at {f} Hz: |H|² off by {err}"
                );
            }
        }
    }
}
