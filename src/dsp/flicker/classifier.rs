//! Block 5: the cumulative probability function of `Pinst` over one
//! observation period and the short-term severity `Pst` from its smoothed
//! percentiles (IEC 61000-4-15).
//!
//! Classes are logarithmic in effect: 64 per octave from 2⁻³⁰ to 2²⁴
//! (3456 classes, each at most 1.6 % wide), indexed straight from the
//! float's exponent and top mantissa bits, so classifying costs no log.
//! Percentiles interpolate linearly inside their class.

/// Classes per octave (top mantissa bits used).
const MANTISSA_BITS: u32 = 6;
const PER_OCTAVE: usize = 1 << MANTISSA_BITS;
/// Lowest and highest octave covered (values outside go to the end classes).
const MIN_EXPONENT: i64 = -30;
const MAX_EXPONENT: i64 = 24;
/// Number of classes.
pub const CLASSES: usize = (MAX_EXPONENT - MIN_EXPONENT) as usize * PER_OCTAVE;

/// Histogram of `Pinst` over one period.
#[derive(Debug, Clone)]
pub struct Classifier {
    counts: Box<[u32]>,
    total: u64,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            counts: vec![0; CLASSES].into_boxed_slice(),
            total: 0,
        }
    }
}

/// Class of a value: exponent and mantissa bits, clamped to the range.
#[inline(always)]
fn class_of(value: f64) -> usize {
    if value.is_nan() || value <= 0.0 {
        return 0;
    }
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = ((bits >> (52 - MANTISSA_BITS)) & (PER_OCTAVE as u64 - 1)) as i64;
    let index = (exponent - MIN_EXPONENT) * PER_OCTAVE as i64 + mantissa;
    index.clamp(0, CLASSES as i64 - 1) as usize
}

/// Lower and upper bound of class `index`.
fn bounds(index: usize) -> (f64, f64) {
    let octave = index / PER_OCTAVE;
    let step = (index % PER_OCTAVE) as f64;
    let base = 2f64.powi((octave as i64 + MIN_EXPONENT) as i32);
    let lo = if index == 0 {
        0.0
    } else {
        base * (1.0 + step / PER_OCTAVE as f64)
    };
    (lo, base * (1.0 + (step + 1.0) / PER_OCTAVE as f64))
}

impl Classifier {
    #[inline]
    pub fn add(&mut self, pinst: f64) {
        self.counts[class_of(pinst)] += 1;
        self.total += 1;
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
    }

    /// The level exceeded `percent` % of the time (linear inside a class).
    pub fn exceeded(&self, percent: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let target = percent / 100.0 * self.total as f64;
        let mut above = 0.0;
        for index in (0..CLASSES).rev() {
            let count = f64::from(self.counts[index]);
            if count > 0.0 && above + count >= target {
                let (lo, hi) = bounds(index);
                let share = ((target - above) / count).clamp(0.0, 1.0);
                return hi - share * (hi - lo);
            }
            above += count;
        }
        0.0
    }

    /// `Pst` with the standard's smoothed percentiles; NaN when empty.
    pub fn pst(&self) -> f64 {
        let p = |x: f64| self.exceeded(x);
        let p1s = (p(0.7) + p(1.0) + p(1.5)) / 3.0;
        let p3s = (p(2.2) + p(3.0) + p(4.0)) / 3.0;
        let p10s = (p(6.0) + p(8.0) + p(10.0) + p(13.0) + p(17.0)) / 5.0;
        let p50s = (p(30.0) + p(50.0) + p(80.0)) / 3.0;
        (0.0314 * p(0.1) + 0.0525 * p1s + 0.0657 * p3s + 0.28 * p10s + 0.08 * p50s).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_bracket_their_values() {
        for &v in &[1e-8, 0.0123, 0.5, 1.0, 1.0001, 3.7, 1234.5] {
            let (lo, hi) = bounds(class_of(v));
            assert!(lo <= v && v < hi, "{v} not in [{lo}, {hi})");
            assert!(hi / lo < 1.016 + 1e-12);
        }
        assert_eq!(class_of(0.0), 0);
        assert_eq!(class_of(f64::NAN), 0);
        assert_eq!(class_of(1e300), CLASSES - 1);
    }

    #[test]
    fn constant_pinst_gives_the_closed_form_pst() {
        // Every percentile equals the constant p: Pst = sqrt(0.5096·p).
        let mut c = Classifier::default();
        for _ in 0..1000 {
            c.add(1.0);
        }
        let expected = (0.5096f64).sqrt();
        // Inside the class the interpolation spreads the values over 1.6 %.
        assert!((c.pst() - expected).abs() / expected < 0.008, "{}", c.pst());
    }

    #[test]
    fn percentiles_of_a_uniform_ramp() {
        // 100 000 values evenly on (0, 8192), which ends on a class bound:
        // the level exceeded x % is 8192·(1 − x/100).
        let mut c = Classifier::default();
        let n = 100_000;
        for k in 1..=n {
            c.add((f64::from(k) - 0.5) * 8192.0 / f64::from(n));
        }
        for x in [0.1, 1.0, 10.0, 50.0, 80.0] {
            let want = 8192.0 * (1.0 - x / 100.0);
            let got = c.exceeded(x);
            assert!((got - want).abs() / want < 1e-4, "P{x}: {got} vs {want}");
        }
    }
}
