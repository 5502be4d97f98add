//! Keeps samples a meter cannot have measured out of the engine's running
//! state. A non-finite sample, or one beyond the physical range of its
//! channel kind, is an invalid sample: every stage (zero crossings, PQ,
//! flicker, windows) sees a stand-in (the channel's last valid value
//! continued by its last step) in its place, so no running sum or decaying
//! peak carries it on; the windows that hold it are flagged and left out of
//! the energy registers, and each run of them is reported once. A single
//! 1e20 V sample used to blank every later window and add 1e12 Wh to the
//! registers.
//!
//! Why the step: the crossing filter still sees the stand-in, and a held
//! value is off by up to a whole step (12.8 V at 230 V, 50 Hz, 8 kHz next to
//! a crossing), which moved that crossing by 0.04 sample: 2e-4 of the energy
//! of a short partial window beside the one holding the bad sample. The
//! continued step is off by the curvature only (under 0.5 V there).

use std::collections::VecDeque;

use super::metrics::ChannelMap;
use crate::wire::layout::Measures;
use crate::wire::SampleBlock;

/// Largest magnitude an instantaneous sample may have, per channel kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleLimits {
    pub voltage_v: f64,
    pub current_a: f64,
}

/// A run of invalid samples of one device (several may be close together:
/// runs less than a basic window apart are one report).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidSamples {
    /// First and last sample index (stream counting) holding an invalid value.
    pub first_sample: u64,
    pub last_sample: u64,
    /// Times of those two samples, ns since the epoch (set by the engine).
    pub start_unix_ns: i64,
    pub end_unix_ns: i64,
    /// Invalid values (one per sample and channel).
    pub values: u64,
    /// Of those, NaN or infinite.
    pub non_finite: u64,
    /// Channels that had one, a bit per layout channel.
    pub channels: u8,
    /// Largest finite magnitude among them (0 when all were non-finite).
    pub largest: f64,
}

impl InvalidSamples {
    fn start(n: u64) -> Self {
        InvalidSamples {
            first_sample: n,
            last_sample: n,
            start_unix_ns: 0,
            end_unix_ns: 0,
            values: 0,
            non_finite: 0,
            channels: 0,
            largest: 0.0,
        }
    }

    fn add(&mut self, channel: usize, x: f32) {
        self.values += 1;
        if x.is_finite() {
            self.largest = self.largest.max(f64::from(x.abs()));
        } else {
            self.non_finite += 1;
        }
        self.channels |= 1u8.checked_shl(channel as u32).unwrap_or(0);
    }
}

/// Screens one device's blocks against its channels' limits.
#[derive(Debug)]
pub struct SampleScreen {
    /// Per layout channel, the largest magnitude allowed.
    limits: Vec<f32>,
    /// Per channel, the last valid values (what the stand-in comes from).
    last_valid: Vec<LastValid>,
    /// The screened copy of the last block that needed one.
    clean: Vec<Vec<f32>>,
    /// Sample runs `[first, last]` holding an invalid value that a window
    /// not yet emitted may touch, ascending.
    marks: VecDeque<(u64, u64)>,
    /// The report run still open, and those closed but not yet handed out.
    open: Option<InvalidSamples>,
    closed: Vec<InvalidSamples>,
    /// Runs closer than this (samples) are one report.
    merge_samples: u64,
    /// Invalid values seen over the stream.
    total_values: u64,
}

/// A channel's last two valid values, for the stand-in of an invalid one.
#[derive(Debug, Clone, Copy, Default)]
struct LastValid {
    before: f32,
    last: f32,
    /// Valid values seen, up to 2.
    seen: u8,
}

impl LastValid {
    fn push(&mut self, x: f32) {
        self.before = self.last;
        self.last = x;
        self.seen = (self.seen + 1).min(2);
    }

    /// The last valid value continued by its last step, within `limit`
    /// (0 before any valid value; the last one after just one).
    fn stand_in(&self, limit: f32) -> f32 {
        match self.seen {
            0 => 0.0,
            1 => self.last,
            _ => (self.last + (self.last - self.before)).clamp(-limit, limit),
        }
    }
}

/// Whether every value's magnitude is at most `limit` (NaN's is not).
/// Counting instead of stopping at the first bad value lets the compiler
/// vectorise the loop: the screen runs over every sample of every stream.
fn within(values: &[f32], limit: f32) -> bool {
    let inside = values
        .iter()
        .fold(0usize, |inside, x| inside + usize::from(x.abs() <= limit));
    inside == values.len()
}

impl SampleScreen {
    /// A screen for `measures` at `rate`; limits must be positive (checked
    /// by the engine configuration).
    pub fn new(measures: Measures, rate: u32, limits: SampleLimits) -> Self {
        let map = ChannelMap::of(measures);
        let count = measures.channel_count();
        let mut per_channel = vec![f32::MAX; count];
        let narrow = |x: f64| x.min(f64::from(f32::MAX)) as f32;
        for channel in map.voltage.iter().flatten() {
            if let Some(limit) = per_channel.get_mut(*channel) {
                *limit = narrow(limits.voltage_v);
            }
        }
        for channel in map.current.iter().flatten() {
            if let Some(limit) = per_channel.get_mut(*channel) {
                *limit = narrow(limits.current_a);
            }
        }
        SampleScreen {
            limits: per_channel,
            last_valid: vec![LastValid::default(); count],
            clean: vec![Vec::new(); count],
            marks: VecDeque::new(),
            open: None,
            closed: Vec::new(),
            merge_samples: u64::from(rate / 5).max(1),
            total_values: 0,
        }
    }

    /// Checks `block`; true when it held invalid values, and then
    /// [`clean`](Self::clean) is the block with them replaced.
    pub fn screen(&mut self, block: &SampleBlock) -> bool {
        if let Some(open) = &self.open {
            if block.first_index > open.last_sample.saturating_add(self.merge_samples) {
                self.close();
            }
        }
        let valid = block
            .channels
            .iter()
            .zip(&self.limits)
            .all(|(channel, &limit)| within(channel, limit));
        if valid {
            for (last, channel) in self.last_valid.iter_mut().zip(&block.channels) {
                let tail = channel.len().saturating_sub(2);
                for &x in &channel[tail..] {
                    last.push(x);
                }
            }
            return false;
        }
        for (channel, clean) in block.channels.iter().zip(&mut self.clean) {
            clean.clear();
            clean.extend_from_slice(channel);
        }
        let len = block.len();
        for k in 0..len {
            for c in 0..self.clean.len() {
                let limit = self.limits.get(c).copied().unwrap_or(f32::MAX);
                let Some(x) = self.clean[c].get(k).copied() else {
                    continue;
                };
                let Some(last) = self.last_valid.get_mut(c) else {
                    continue;
                };
                if x.abs() <= limit {
                    last.push(x);
                    continue;
                }
                self.clean[c][k] = last.stand_in(limit);
                self.mark(block.first_index + k as u64, c, x);
            }
        }
        true
    }

    /// The last screened block, channel by channel.
    pub fn clean(&self) -> &[Vec<f32>] {
        &self.clean
    }

    /// Notes invalid value `x` of `channel` at sample `n` (ascending `n`).
    fn mark(&mut self, n: u64, channel: usize, x: f32) {
        self.total_values += 1;
        match self.marks.back_mut() {
            Some((_, last)) if *last + 1 >= n => *last = (*last).max(n),
            _ => self.marks.push_back((n, n)),
        }
        if let Some(open) = &self.open {
            if n > open.last_sample.saturating_add(self.merge_samples) {
                self.close();
            }
        }
        let open = self.open.get_or_insert_with(|| InvalidSamples::start(n));
        open.last_sample = n;
        open.add(channel, x);
    }

    fn close(&mut self) {
        if let Some(run) = self.open.take() {
            self.closed.push(run);
        }
    }

    /// Whether any sample in `first..=last` held an invalid value.
    pub fn holds_invalid(&self, first: u64, last: u64) -> bool {
        self.marks.iter().any(|&(a, b)| a <= last && b >= first)
    }

    /// Forgets marks of samples before `n` (no later window touches them).
    pub fn forget_before(&mut self, n: u64) {
        while self.marks.front().is_some_and(|&(_, last)| last < n) {
            self.marks.pop_front();
        }
    }

    /// A gap or the end of the stream closes the open run.
    pub fn end_run(&mut self) {
        self.close();
    }

    /// Runs closed since the last call, oldest first.
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, InvalidSamples> {
        self.closed.drain(..)
    }

    /// Invalid values over the stream so far.
    pub fn total_values(&self) -> u64 {
        self.total_values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(first_index: u64, channels: Vec<Vec<f32>>) -> SampleBlock {
        SampleBlock {
            channels,
            first_index,
            ..SampleBlock::new(Measures::SinglePhase, 8000, 0)
        }
    }

    #[test]
    fn invalid_values_are_held_marked_and_reported_once_per_run() {
        let limits = SampleLimits {
            voltage_v: 1000.0,
            current_a: 100.0,
        };
        let mut screen = SampleScreen::new(Measures::SinglePhase, 8000, limits);
        assert!(!screen.screen(&block(0, vec![vec![1.0, 2.0], vec![0.5, 0.5]])));
        let bad = block(
            2,
            vec![vec![3.0, 1e20, f32::NAN, 4.0], vec![0.5, 0.5, 0.5, 200.0]],
        );
        assert!(screen.screen(&bad));
        // 3 continued by its step (2 → 3) for the whole run of bad values.
        assert_eq!(screen.clean()[0], vec![3.0, 4.0, 4.0, 4.0]);
        assert_eq!(screen.clean()[1], vec![0.5, 0.5, 0.5, 0.5]);
        assert!(screen.holds_invalid(3, 3));
        assert!(screen.holds_invalid(0, 4));
        assert!(!screen.holds_invalid(0, 2));
        assert!(screen.holds_invalid(5, 9));
        assert_eq!(screen.total_values(), 3);
        // Far beyond the merge distance (1600 samples), a clean block closes the run.
        assert!(!screen.screen(&block(10_000, vec![vec![1.0], vec![1.0]])));
        let runs: Vec<_> = screen.take_closed().collect();
        assert_eq!(runs.len(), 1);
        let run = runs[0];
        assert_eq!((run.first_sample, run.last_sample), (3, 5));
        assert_eq!((run.values, run.non_finite, run.channels), (3, 1, 0b11));
        assert_eq!(run.largest, 1e20f32 as f64);
        screen.forget_before(5);
        assert!(screen.holds_invalid(5, 5));
        screen.forget_before(6);
        assert!(!screen.holds_invalid(0, u64::MAX));
    }

    #[test]
    fn the_stand_in_continues_the_last_step_within_the_limit() {
        let limits = SampleLimits {
            voltage_v: 10.0,
            current_a: 100.0,
        };
        let mut screen = SampleScreen::new(Measures::SinglePhase, 8000, limits);
        // Before any valid value 0 stands in; after one, that value.
        let first = block(0, vec![vec![f32::NAN, 6.0, f32::NAN], vec![0.0; 3]]);
        assert!(screen.screen(&first));
        assert_eq!(screen.clean()[0], vec![0.0, 6.0, 6.0]);
        // A clean one-sample block still gives the step (6 → 9); the
        // continued step (12) is held within the 10 V limit.
        assert!(!screen.screen(&block(3, vec![vec![9.0], vec![0.0]])));
        assert!(screen.screen(&block(4, vec![vec![f32::INFINITY], vec![0.0]])));
        assert_eq!(screen.clean()[0], vec![10.0]);
        assert!(!screen.screen(&block(5, vec![vec![-2.0], vec![0.0]])));
        assert!(screen.screen(&block(6, vec![vec![-1e9], vec![0.0]])));
        assert_eq!(screen.clean()[0], vec![-10.0]);
    }
}
