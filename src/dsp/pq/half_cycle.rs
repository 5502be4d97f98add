//! `Urms(1/2)` per voltage channel: the RMS over one cycle, refreshed every
//! half cycle, on cycle boundaries from the reference's timing.
//!
//! Each sample is squared and summed once, into the half cycle it belongs
//! to; a cycle value is the sum of two neighbouring halves. The half-cycle
//! point is midway between two positive-going crossings. Samples wait in a
//! per-channel buffer until their boundary is known (the crossing detector
//! lags by its filter delay); the buffers keep their capacity.

use super::cycle_clock::Tick;

/// Consumed samples are dropped from the buffers once this many pile up.
const COMPACT_AT: usize = 4096;

/// One cycle's RMS on every voltage channel, positions in sample units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CycleValue {
    pub start: f64,
    pub end: f64,
    /// Per phase L1..L3, V; NaN for a phase without voltage or valid samples.
    pub rms: [f64; 3],
    pub extrapolated: bool,
}

/// Squares of one half cycle, per phase.
#[derive(Debug, Clone, Copy)]
struct Half {
    start: f64,
    sums: [f64; 3],
    counts: [u32; 3],
    extrapolated: bool,
}

/// Streaming `Urms(1/2)` of up to three voltage channels.
#[derive(Debug, Clone)]
pub struct HalfCycleCalculator {
    present: [bool; 3],
    /// Unconsumed (and some consumed) samples per phase, from `buffer_start`.
    buffers: [Vec<f32>; 3],
    buffer_start: u64,
    /// Samples at the front of the buffers already summed.
    consumed: usize,
    origin: f64,
    previous: Option<Tick>,
    /// Second half of the previous cycle: the first half of the next value.
    half: Option<Half>,
}

impl HalfCycleCalculator {
    /// `present[k]`: phase k has a voltage channel. Samples start at `first_index`.
    pub fn new(present: [bool; 3], first_index: u64) -> Self {
        HalfCycleCalculator {
            present,
            buffers: Default::default(),
            buffer_start: first_index,
            consumed: 0,
            origin: first_index as f64,
            previous: None,
            half: None,
        }
    }

    /// Forgets everything before sample `first_index` (after a gap).
    pub fn restart(&mut self, first_index: u64) {
        for buffer in &mut self.buffers {
            buffer.clear();
        }
        self.buffer_start = first_index;
        self.consumed = 0;
        self.origin = first_index as f64;
        self.previous = None;
        self.half = None;
    }

    /// Every value starting before this position has been emitted.
    pub fn known_until(&self) -> f64 {
        match (self.half, self.previous) {
            (Some(half), _) => half.start,
            (None, Some(tick)) => tick.position,
            (None, None) => self.origin,
        }
    }

    /// Appends the next samples (per phase; absent phases are ignored).
    /// `first_index` must follow the previous samples.
    pub fn append(&mut self, channels: &[&[f32]; 3]) {
        let len = self.buffers.iter().map(Vec::len).max().unwrap_or(0);
        if self.consumed >= COMPACT_AT || (self.consumed > 0 && 2 * self.consumed >= len) {
            for buffer in &mut self.buffers {
                let drop = self.consumed.min(buffer.len());
                buffer.drain(..drop);
            }
            self.buffer_start += self.consumed as u64;
            self.consumed = 0;
        }
        for ((buffer, samples), &present) in self.buffers.iter_mut().zip(channels).zip(&self.present)
        {
            if present {
                buffer.extend_from_slice(samples);
            }
        }
    }

    /// A cycle boundary; emits the (up to two) values it completes, in order
    /// of their start.
    pub fn on_tick(&mut self, tick: Tick, out: &mut impl FnMut(&CycleValue)) {
        let Some(previous) = self.previous else {
            self.skip_to(tick.position);
            self.previous = Some(tick);
            return;
        };
        let middle = 0.5 * (previous.position + tick.position);
        let extrapolated = previous.extrapolated || tick.extrapolated;
        let first = self.sum_to(middle);
        let second = self.sum_to(tick.position);
        if let Some(half) = self.half {
            out(&CycleValue {
                start: half.start,
                end: middle,
                rms: rms(&half.sums, &half.counts, &first.0, &first.1, &self.present),
                extrapolated: half.extrapolated || extrapolated,
            });
        }
        out(&CycleValue {
            start: previous.position,
            end: tick.position,
            rms: rms(&first.0, &first.1, &second.0, &second.1, &self.present),
            extrapolated,
        });
        self.half = Some(Half {
            start: middle,
            sums: second.0,
            counts: second.1,
            extrapolated,
        });
        self.previous = Some(tick);
    }

    /// Buffer offset of the first sample at or after `position`.
    fn offset_of(&self, position: f64) -> usize {
        let len = self.buffers.iter().map(Vec::len).max().unwrap_or(0);
        let index = position.ceil().max(0.0) as u64;
        (index.saturating_sub(self.buffer_start) as usize).clamp(self.consumed, len)
    }

    fn skip_to(&mut self, position: f64) {
        self.consumed = self.offset_of(position);
    }

    /// Sums of squares and counts of the samples up to `position`.
    fn sum_to(&mut self, position: f64) -> ([f64; 3], [u32; 3]) {
        let end = self.offset_of(position);
        let mut sums = [0.0; 3];
        let mut counts = [0u32; 3];
        for k in 0..3 {
            if let Some(samples) = self.buffers[k].get(self.consumed..end) {
                (sums[k], counts[k]) = sum_squares(samples);
            }
        }
        self.consumed = end;
        (sums, counts)
    }
}

/// Per-phase RMS of two halves together; NaN where there is nothing.
fn rms(
    sums_a: &[f64; 3],
    counts_a: &[u32; 3],
    sums_b: &[f64; 3],
    counts_b: &[u32; 3],
    present: &[bool; 3],
) -> [f64; 3] {
    std::array::from_fn(|k| {
        let count = counts_a[k] + counts_b[k];
        if present[k] && count > 0 {
            ((sums_a[k] + sums_b[k]) / f64::from(count)).sqrt()
        } else {
            f64::NAN
        }
    })
}

/// Σx² in f64 with four accumulators (independent chains); non-finite
/// samples are left out of sum and count.
fn sum_squares(samples: &[f32]) -> (f64, u32) {
    let mut acc = [0.0f64; 4];
    let chunks = samples.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            let x = f64::from(x);
            *a += x * x;
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for &x in tail {
        let x = f64::from(x);
        sum += x * x;
    }
    if sum.is_finite() {
        return (sum, samples.len() as u32);
    }
    let finite = samples.iter().filter(|x| x.is_finite());
    let count = finite.clone().count() as u32;
    (finite.map(|&x| f64::from(x) * f64::from(x)).sum(), count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_overlap_by_half_a_cycle() {
        // 1 V for samples 0..80, 2 V for 80..160, 3 V for 160..240, ...
        let samples: Vec<f32> = (0..480).map(|n| (n / 80 + 1) as f32).collect();
        let mut calc = HalfCycleCalculator::new([true, false, false], 0);
        calc.append(&[&samples, &[], &[]]);
        let mut values = Vec::new();
        for c in [0.0, 160.0, 320.0, 480.0] {
            let tick = Tick {
                position: c,
                extrapolated: false,
            };
            calc.on_tick(tick, &mut |v| values.push(*v));
        }
        let starts: Vec<f64> = values.iter().map(|v| v.start).collect();
        assert_eq!(starts, vec![0.0, 80.0, 160.0, 240.0, 320.0]);
        let expect = |a: f64, b: f64| ((a * a + b * b) / 2.0).sqrt();
        assert_eq!(values[0].rms[0], expect(1.0, 2.0));
        assert_eq!(values[1].rms[0], expect(2.0, 3.0));
        assert_eq!(values[4].rms[0], expect(5.0, 6.0));
        assert!(values[0].rms[1].is_nan());
        assert_eq!(calc.known_until(), 400.0);
    }

    #[test]
    fn non_finite_samples_are_left_out() {
        assert_eq!(sum_squares(&[1.0, f32::NAN, 2.0, 2.0, 0.0]), (9.0, 4));
    }
}
