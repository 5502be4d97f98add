//! Second-order IIR sections from analog prototypes by the bilinear
//! transform, with their exact digital frequency response (for calibration
//! and for checking the discretisation against the analog filter).

/// One section `b0 + b1·z⁻¹ + b2·z⁻² / (1 + a1·z⁻¹ + a2·z⁻²)`, transposed
/// direct form II; first-order sections have `b2 = a2 = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    pub b0: f64,
    pub b1: f64,
    pub b2: f64,
    pub a1: f64,
    pub a2: f64,
}

/// The two delay registers of one [`Biquad`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BiquadState {
    pub s1: f64,
    pub s2: f64,
}

impl Biquad {
    /// Digital twin of `H(s) = (n0 + n1·s + n2·s²) / (d0 + d1·s + d2·s²)`
    /// with `s = k·(1 − z⁻¹)/(1 + z⁻¹)`; `k = 2·fs` is the plain
    /// transform, `k = ω/tan(ω/(2·fs))` matches the response exactly at ω.
    /// A first-order prototype (`n2 = d2 = 0`) gives a first-order section,
    /// not one with a pole–zero pair on z = −1.
    pub fn bilinear(num: [f64; 3], den: [f64; 3], k: f64) -> Biquad {
        let k2 = k * k;
        let first_order = num[2] == 0.0 && den[2] == 0.0;
        let map = |c: [f64; 3]| {
            if first_order {
                [c[0] + c[1] * k, c[0] - c[1] * k, 0.0]
            } else {
                [
                    c[0] + c[1] * k + c[2] * k2,
                    2.0 * (c[0] - c[2] * k2),
                    c[0] - c[1] * k + c[2] * k2,
                ]
            }
        };
        let n = map(num);
        let d = map(den);
        Biquad {
            b0: n[0] / d[0],
            b1: n[1] / d[0],
            b2: n[2] / d[0],
            a1: d[1] / d[0],
            a2: d[2] / d[0],
        }
    }

    /// One sample through the section.
    #[inline(always)]
    pub fn step(&self, state: &mut BiquadState, x: f64) -> f64 {
        let y = self.b0 * x + state.s1;
        state.s1 = self.b1 * x - self.a1 * y + state.s2;
        state.s2 = self.b2 * x - self.a2 * y;
        y
    }

    /// |H(e^{jω})| at `omega` radians per sample.
    pub fn magnitude(&self, omega: f64) -> f64 {
        let (s1, c1) = omega.sin_cos();
        let (s2, c2) = (2.0 * omega).sin_cos();
        let num = complex_abs(
            self.b0 + self.b1 * c1 + self.b2 * c2,
            self.b1 * s1 + self.b2 * s2,
        );
        let den = complex_abs(
            1.0 + self.a1 * c1 + self.a2 * c2,
            self.a1 * s1 + self.a2 * s2,
        );
        num / den
    }
}

/// |n(jω)/d(jω)| of an analog second-order rational function.
pub fn analog_magnitude(num: [f64; 3], den: [f64; 3], omega: f64) -> f64 {
    let eval = |c: [f64; 3]| complex_abs(c[0] - c[2] * omega * omega, c[1] * omega);
    eval(num) / eval(den)
}

fn complex_abs(re: f64, im: f64) -> f64 {
    re.hypot(im)
}

/// `k` of the bilinear transform that maps analog ω exactly onto itself.
pub fn prewarped_k(omega: f64, rate_hz: f64) -> f64 {
    omega / (omega / (2.0 * rate_hz)).tan()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    #[test]
    fn prewarped_section_matches_analog_at_its_frequency() {
        // Second-order low-pass, Q = 0.707 at 35 Hz, fs = 800 Hz.
        let w = TAU * 35.0;
        let (num, den) = ([w * w, 0.0, 0.0], [w * w, w / 0.707, 1.0]);
        let q = Biquad::bilinear(num, den, prewarped_k(w, 800.0));
        let digital = q.magnitude(w / 800.0);
        let analog = analog_magnitude(num, den, w);
        assert!((digital - analog).abs() < 1e-12, "{digital} vs {analog}");
        // DC gain is exact for the bilinear transform.
        assert!((q.magnitude(0.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn step_response_settles_at_dc_gain() {
        let q = Biquad::bilinear([1.0, 0.0, 0.0], [1.0, 0.3, 0.0], 1600.0);
        let mut state = BiquadState::default();
        let mut y = 0.0;
        for _ in 0..20_000 {
            y = q.step(&mut state, 1.0);
        }
        assert!((y - 1.0).abs() < 1e-12, "{y}");
    }
}
