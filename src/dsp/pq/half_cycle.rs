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
    /// Σ weights of the finite samples, samples.
    weights: [f64; 3],
    extrapolated: bool,
}

/// Streaming `Urms(1/2)` of up to three voltage channels.
///
/// Sample n stands for positions [n − 0.5, n + 0.5) (the window convention):
/// a boundary splits its sample's square between the two halves it
/// separates, so a half's sum is an exact integral of the held samples and
/// a value's mean square is its sum over its duration.
#[derive(Debug, Clone)]
pub struct HalfCycleCalculator {
    present: [bool; 3],
    /// Samples per phase from `buffer_start`.
    buffers: [Vec<f32>; 3],
    buffer_start: u64,
    /// Buffer offset of the sample holding `at`; earlier ones are used up.
    cursor: usize,
    /// Position of the last boundary summed to.
    at: f64,
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
            cursor: 0,
            at: first_index as f64,
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
        self.cursor = 0;
        self.at = first_index as f64;
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

    /// Appends the next samples (per phase; absent phases are ignored),
    /// which follow the previous ones without a gap.
    pub fn append(&mut self, channels: &[&[f32]; 3]) {
        let len = self.len();
        if self.cursor >= COMPACT_AT || (self.cursor > 0 && 2 * self.cursor >= len) {
            for buffer in &mut self.buffers {
                let drop = self.cursor.min(buffer.len());
                buffer.drain(..drop);
            }
            self.buffer_start += self.cursor as u64;
            self.cursor = 0;
        }
        for ((buffer, samples), &present) in
            self.buffers.iter_mut().zip(channels).zip(&self.present)
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
            self.at = tick.position;
            self.cursor = self.offset_of(tick.position);
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
                rms: rms(&half.sums, &half.weights, &first.0, &first.1, &self.present),
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
            weights: second.1,
            extrapolated,
        });
        self.previous = Some(tick);
    }

    /// The one positive-going zero crossing of phase `k`'s samples within
    /// `reach` of `position` (linear interpolation), if there is exactly one.
    ///
    /// The crossing detector's filter spans 1.5 cycles, so an amplitude step
    /// moves its crossings by up to ~10°; the raw crossing does not move, and
    /// cycles between raw crossings stay one period long on every phase.
    pub fn raw_crossing(&self, k: usize, position: f64, reach: f64) -> Option<f64> {
        let samples = self.buffers.get(k)?;
        let (low, high) = ((position - reach).ceil(), (position + reach).floor());
        if !(low >= self.buffer_start as f64 && high >= low) {
            return None;
        }
        // Sample indices, exact in f64: the result does not depend on the buffer.
        let (low, high) = (low as u64, high as u64);
        let first = (low - self.buffer_start) as usize;
        let last = (high - self.buffer_start) as usize;
        let pairs = samples.get(first..=last)?;
        let mut found = None;
        for (n, pair) in (low..).zip(pairs.windows(2)) {
            if pair[0] < 0.0 && pair[1] >= 0.0 {
                if found.is_some() {
                    return None;
                }
                let fraction = f64::from(-pair[0]) / f64::from(pair[1] - pair[0]);
                found = Some(n as f64 + fraction);
            }
        }
        found
    }

    fn len(&self) -> usize {
        self.buffers.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Buffer offset of the sample holding `position`, within the buffer.
    fn offset_of(&self, position: f64) -> usize {
        let index = (position + 0.5).floor().max(0.0) as u64;
        let last = self.len().saturating_sub(1);
        (index.saturating_sub(self.buffer_start) as usize).clamp(self.cursor.min(last), last)
    }

    /// Weighted sums of squares and weights from the last boundary to `position`.
    fn sum_to(&mut self, position: f64) -> ([f64; 3], [f64; 3]) {
        let end = self.offset_of(position);
        let first = self.cursor;
        let head = (self.buffer_start + first as u64) as f64 + 0.5 - self.at;
        let tail = position - ((self.buffer_start + end as u64) as f64 - 0.5);
        let mut sums = [0.0; 3];
        let mut weights = [0.0; 3];
        for k in 0..3 {
            let samples = &self.buffers[k];
            let (Some(&x0), Some(&x1)) = (samples.get(first), samples.get(end)) else {
                continue;
            };
            let (mut sum, mut weight) = (0.0, 0.0);
            let mut add = |x: f32, w: f64| {
                if x.is_finite() && w > 0.0 {
                    sum += w * f64::from(x) * f64::from(x);
                    weight += w;
                }
            };
            if end == first {
                add(x0, position - self.at);
            } else {
                add(x0, head);
                add(x1, tail);
                if let Some(middle) = samples.get(first + 1..end) {
                    let (s, n) = sum_squares(middle);
                    sum += s;
                    weight += f64::from(n);
                }
            }
            sums[k] = sum;
            weights[k] = weight;
        }
        self.cursor = end;
        self.at = position;
        (sums, weights)
    }
}

/// Per-phase RMS of two halves together; NaN where there is nothing.
fn rms(
    sums_a: &[f64; 3],
    weights_a: &[f64; 3],
    sums_b: &[f64; 3],
    weights_b: &[f64; 3],
    present: &[bool; 3],
) -> [f64; 3] {
    std::array::from_fn(|k| {
        let weight = weights_a[k] + weights_b[k];
        if present[k] && weight > 0.0 {
            ((sums_a[k] + sums_b[k]) / weight).sqrt()
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
        // Boundaries between samples: each half holds whole samples.
        for c in [-0.5, 159.5, 319.5, 479.5] {
            let tick = Tick {
                position: c,
                extrapolated: false,
            };
            calc.on_tick(tick, &mut |v| values.push(*v));
        }
        let starts: Vec<f64> = values.iter().map(|v| v.start).collect();
        assert_eq!(starts, vec![-0.5, 79.5, 159.5, 239.5, 319.5]);
        let expect = |a: f64, b: f64| ((a * a + b * b) / 2.0).sqrt();
        assert_eq!(values[0].rms[0], expect(1.0, 2.0));
        assert_eq!(values[1].rms[0], expect(2.0, 3.0));
        assert_eq!(values[4].rms[0], expect(5.0, 6.0));
        assert!(values[0].rms[1].is_nan());
        assert_eq!(calc.known_until(), 399.5);
    }

    #[test]
    fn non_finite_samples_are_left_out() {
        assert_eq!(sum_squares(&[1.0, f32::NAN, 2.0, 2.0, 0.0]), (9.0, 4));
    }
}
