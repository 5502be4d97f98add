//! Positive-going zero crossings of the reference voltage, at fractional
//! sample positions.
//!
//! The voltage first goes through three cascaded moving averages of half a
//! nominal cycle: each nulls the even harmonics and divides odd order h by h
//! relative to the fundamental, so even a 40 % third harmonic cannot add
//! crossings, and the filter is linear-phase, so its delay is an exact
//! constant that is subtracted from every crossing. A periodic input gives a
//! periodic output, so crossing intervals are the true periods.

/// Moving-average stages in the cascade.
const STAGES: usize = 3;

/// The peak decays in steps every this many samples (counted from the
/// stream's first sample, so chunking does not matter), which keeps a
/// multiply off the per-sample path.
const DECAY_EVERY: u64 = 32;

/// Streaming zero-crossing detector for one reference channel.
#[derive(Debug, Clone)]
pub struct ZeroCrossingDetector {
    /// Samples per moving average (half a nominal cycle).
    length: usize,
    /// The stages' last `length` inputs, one entry per sample.
    ring: Vec<[f64; STAGES]>,
    sums: [f64; STAGES],
    ring_pos: usize,
    /// Samples still to filter before the cascade's output is valid.
    warm_up_left: usize,
    /// Scales the filter output back to the input's fundamental amplitude.
    output_scale: f64,
    /// Group delay of the cascade, samples.
    delay: f64,
    /// Filter output at the previous sample (NaN before the first valid one).
    previous: f64,
    /// Armed once the filtered voltage went clearly negative (hysteresis).
    armed: bool,
    /// Decaying peak of the filtered voltage, V.
    peak: f64,
    /// Decay factor per `DECAY_EVERY` samples (time constant 0.2 s).
    peak_decay: f64,
    min_peak: f64,
}

impl ZeroCrossingDetector {
    /// `min_peak_v`: a filtered fundamental peak below this gives no crossings.
    pub fn new(rate: u32, nominal_hz: f64, min_peak_v: f64) -> Self {
        let rate_f = f64::from(rate.max(1));
        let length = ((rate_f / (2.0 * nominal_hz)).round() as usize).max(1);
        let omega = std::f64::consts::TAU * nominal_hz / rate_f;
        let stage_gain = {
            let denominator = length as f64 * (omega / 2.0).sin();
            if denominator.abs() > 1e-12 {
                ((length as f64 * omega / 2.0).sin() / denominator).abs()
            } else {
                1.0
            }
        };
        let cascade_gain = stage_gain.powi(STAGES as i32);
        ZeroCrossingDetector {
            length,
            ring: vec![[0.0; STAGES]; length],
            sums: [0.0; STAGES],
            ring_pos: 0,
            warm_up_left: warm_up_samples(length),
            output_scale: if cascade_gain > 1e-9 {
                1.0 / cascade_gain
            } else {
                1.0
            },
            delay: STAGES as f64 * (length as f64 - 1.0) / 2.0,
            previous: f64::NAN,
            armed: false,
            peak: 0.0,
            peak_decay: (-(DECAY_EVERY as f64) / (0.2 * rate_f)).exp(),
            min_peak: min_peak_v,
        }
    }

    /// Samples between an input and the filter output that reflects it.
    pub fn delay_samples(&self) -> f64 {
        self.delay
    }

    /// Forgets all history (after a gap the old samples no longer connect).
    pub fn reset(&mut self) {
        self.ring.fill([0.0; STAGES]);
        self.sums = [0.0; STAGES];
        self.ring_pos = 0;
        self.warm_up_left = warm_up_samples(self.length);
        self.previous = f64::NAN;
        self.armed = false;
        self.peak = 0.0;
    }

    /// Feeds `samples` (sample `first_index` onwards) and appends the
    /// delay-compensated positions of the crossings found, in sample units.
    /// Non-finite samples count as 0 (the window holding them is flagged).
    ///
    /// The state lives in locals for the loop (one pass, every recurrence in
    /// registers): this runs once per sample of every reference channel.
    pub fn process(&mut self, first_index: u64, samples: &[f32], crossings: &mut Vec<f64>) {
        let length = self.length;
        let inv_length = 1.0 / length as f64;
        let ring = &mut self.ring[..length];
        let mut sums = self.sums;
        let mut pos = self.ring_pos;
        // Until every stage's ring holds real output, only the filter runs.
        let warm_up = self.warm_up_left.min(samples.len());
        let (filling, settled) = samples.split_at(warm_up);
        for &sample in filling {
            cascade_step(ring, &mut pos, &mut sums, sample, inv_length);
        }
        self.warm_up_left -= warm_up;
        let (scale, decay, min_peak, delay) = (
            self.output_scale,
            self.peak_decay,
            self.min_peak,
            self.delay,
        );
        let mut previous = self.previous;
        let mut armed = self.armed;
        let mut peak = self.peak;
        for (n, &sample) in (first_index + warm_up as u64..).zip(settled) {
            let y = cascade_step(ring, &mut pos, &mut sums, sample, inv_length) * scale;
            let magnitude = y.abs();
            if magnitude > peak {
                peak = magnitude;
            }
            let floor = if peak > min_peak { peak } else { min_peak };
            if y < -0.25 * floor {
                armed = true;
            }
            // NaN before the first settled output: no crossing with it.
            if previous < 0.0 && y >= 0.0 && armed && peak >= min_peak && peak > 0.0 {
                let fraction = -previous / (y - previous);
                crossings.push((n - 1) as f64 + fraction - delay);
                armed = false;
            }
            previous = y;
            if n % DECAY_EVERY == DECAY_EVERY - 1 {
                peak *= decay;
            }
        }
        self.sums = sums;
        self.ring_pos = pos;
        self.previous = previous;
        self.armed = armed;
        self.peak = peak;
    }
}

/// Inputs before the last stage's ring holds only filtered values (the
/// first output after them is the first valid one).
fn warm_up_samples(length: usize) -> usize {
    STAGES * length - STAGES
}

/// One sample through the three moving averages; returns the last stage's
/// output. Non-finite samples count as 0.
#[inline(always)]
fn cascade_step(
    ring: &mut [[f64; STAGES]],
    pos: &mut usize,
    sums: &mut [f64; STAGES],
    sample: f32,
    inv_length: f64,
) -> f64 {
    let x = if sample.is_finite() {
        f64::from(sample)
    } else {
        0.0
    };
    let Some(slot) = ring.get_mut(*pos) else {
        return 0.0;
    };
    let old = *slot;
    sums[0] += x - old[0];
    let x1 = sums[0] * inv_length;
    sums[1] += x1 - old[1];
    let x2 = sums[1] * inv_length;
    sums[2] += x2 - old[2];
    *slot = [x, x1, x2];
    *pos += 1;
    if *pos == ring.len() {
        *pos = 0;
    }
    sums[2] * inv_length
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: f64, f: f64, n: usize, phase_cycles: f64) -> Vec<f32> {
        (0..n)
            .map(|k| {
                let x = std::f64::consts::TAU * (f * k as f64 / rate + phase_cycles);
                (325.0 * x.sin() + 60.0 * (3.0 * x).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn finds_true_crossings_despite_harmonics() {
        let rate = 8000.0;
        let samples = sine(rate, 50.0, 8000, 0.0);
        let mut det = ZeroCrossingDetector::new(8000, 50.0, 10.0);
        let mut out = Vec::new();
        det.process(0, &samples, &mut out);
        assert!(out.len() >= 45, "{}", out.len());
        for c in &out {
            // True crossings every 160 samples from 0.
            let err = (c / 160.0 - (c / 160.0).round()) * 160.0;
            assert!(err.abs() < 1e-3, "crossing {c} off by {err}");
        }
    }

    #[test]
    fn chunking_does_not_change_crossings() {
        let samples = sine(4000.0, 50.3, 4000, 0.1);
        let mut whole = Vec::new();
        ZeroCrossingDetector::new(4000, 50.0, 10.0).process(0, &samples, &mut whole);
        let mut det = ZeroCrossingDetector::new(4000, 50.0, 10.0);
        let mut parts = Vec::new();
        for (k, chunk) in samples.chunks(37).enumerate() {
            det.process(k as u64 * 37, chunk, &mut parts);
        }
        assert_eq!(whole, parts);
    }

    #[test]
    fn dead_or_nan_voltage_gives_no_crossings() {
        let mut det = ZeroCrossingDetector::new(8000, 50.0, 10.0);
        let mut out = Vec::new();
        let tiny: Vec<f32> = sine(8000.0, 50.0, 4000, 0.0)
            .iter()
            .map(|v| v * 0.01)
            .collect();
        det.process(0, &tiny, &mut out);
        det.process(4000, &[f32::NAN; 500], &mut out);
        assert!(out.is_empty());
    }
}
