//! Block 2 at the input rate: squares every sample and hands out the mean
//! square of each run of `factor` samples (a boxcar, decimating to a few
//! hundred Hz). Its nulls sit on multiples of the output rate, exactly where
//! aliases would land in the flicker band; its droop below 35 Hz is a few
//! 0.1 % and is calibrated out (`droop`).
//!
//! Four partial sums, indexed by the sample's place in its block, keep the
//! loop vectorisable while every block adds the same values in the same
//! order however the stream is cut: results are bit-identical for any
//! chunking.

use std::f64::consts::PI;

/// Streaming squarer and boxcar decimator for one channel.
#[derive(Debug, Clone)]
pub struct SquareDecimator {
    factor: usize,
    inverse: f64,
    /// Samples already in the current block.
    fill: usize,
    lanes: [f64; 4],
}

impl SquareDecimator {
    pub fn new(factor: usize) -> SquareDecimator {
        let factor = factor.max(1);
        SquareDecimator {
            factor,
            inverse: 1.0 / factor as f64,
            fill: 0,
            lanes: [0.0; 4],
        }
    }

    /// Drops the partial block (after a gap).
    pub fn reset(&mut self) {
        self.fill = 0;
        self.lanes = [0.0; 4];
    }

    /// Gain of the boxcar at `f_hz` for an input rate of `rate_hz`.
    pub fn droop(&self, f_hz: f64, rate_hz: f64) -> f64 {
        let x = PI * f_hz / rate_hz;
        if x.abs() < 1e-300 {
            return 1.0;
        }
        ((self.factor as f64 * x).sin() / (self.factor as f64 * x.sin())).abs()
    }

    /// Feeds `samples`; `block(i, mean_square)` gets every completed block,
    /// `i` being the index in `samples` of the block's last sample.
    ///
    /// The partial sums stay in locals for the whole call (stored back once):
    /// reading them back right after a store of another width stalls.
    #[inline]
    pub fn push(&mut self, samples: &[f32], mut block: impl FnMut(usize, f64)) {
        let mut lanes = self.lanes;
        let mut fill = self.fill;
        let mut at = 0;
        while at < samples.len() {
            let take = (self.factor - fill).min(samples.len() - at);
            accumulate(&mut lanes, fill, &samples[at..at + take]);
            fill += take;
            at += take;
            if fill == self.factor {
                let mean = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) * self.inverse;
                lanes = [0.0; 4];
                fill = 0;
                block(at - 1, mean);
            }
        }
        self.lanes = lanes;
        self.fill = fill;
    }
}

/// Adds the squares of `part` to `lanes`, the first sample being the
/// `fill`-th of its block (lane `fill % 4`).
#[inline(always)]
fn accumulate(lanes: &mut [f64; 4], fill: usize, part: &[f32]) {
    let mut lane = fill % 4;
    let mut head = 0;
    while lane != 0 && head < part.len() {
        let v = f64::from(part[head]);
        lanes[lane] += v * v;
        lane = (lane + 1) % 4;
        head += 1;
    }
    let body = part[head..].chunks_exact(4);
    let tail = body.remainder();
    let mut l = *lanes;
    for c in body {
        let v = [c[0], c[1], c[2], c[3]].map(f64::from);
        l[0] += v[0] * v[0];
        l[1] += v[1] * v[1];
        l[2] += v[2] * v[2];
        l[3] += v[3] * v[3];
    }
    for (slot, &x) in l.iter_mut().zip(tail) {
        let v = f64::from(x);
        *slot += v * v;
    }
    *lanes = l;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_means_are_exact_and_chunking_free() {
        let samples: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 300.0).collect();
        let mut whole = Vec::new();
        SquareDecimator::new(10).push(&samples, |_, m| whole.push(m));
        assert_eq!(whole.len(), 100);
        let direct: f64 = samples[..10]
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            / 10.0;
        assert!((whole[0] - direct).abs() <= 1e-12 * direct);
        for chunk in [1, 3, 7, 13, 999] {
            let mut d = SquareDecimator::new(10);
            let mut parts = Vec::new();
            for piece in samples.chunks(chunk) {
                d.push(piece, |_, m| parts.push(m));
            }
            assert_eq!(parts, whole, "chunk {chunk}");
        }
    }

    #[test]
    fn droop_is_one_at_dc_and_zero_at_the_output_rate() {
        let d = SquareDecimator::new(10);
        assert!((d.droop(0.0, 8000.0) - 1.0).abs() < 1e-15);
        assert!(d.droop(800.0, 8000.0) < 1e-12);
    }
}
