//! The virtual meter's ADC: samples are taken by time (or on demand in fast
//! mode) into a bounded buffer, like the firmware's PSRAM ring buffer, and
//! dropped — never queued without bound — when the sink does not keep up.

use std::time::Duration;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use crate::meter::out_queue::OutQueue;
use crate::meter::signal::SignalGenerator;
use crate::wire::frame::put_f32le;

/// The firmware's ring buffer size (`buffer_size` in the device info).
pub const FIRMWARE_BUFFER_SIZE: usize = 3_670_016;

/// Samples generated per `fill` call, so the scratch buffer stays small.
const FILL_BATCH: usize = 1024;

/// How samples are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Like the ADC: `floor(elapsed × rate)` samples since the sampling start.
    #[default]
    RealTime,
    /// As fast as the socket takes them (load tests); nothing is ever dropped.
    Fast,
}

/// Absolute-time sample schedule: due counts come from the start instant, not
/// from summed intervals, so an hour-long run does not drift.
#[derive(Debug, Clone, Copy)]
pub struct SampleClock {
    start: Instant,
    rate: u32,
}

impl SampleClock {
    pub fn new(start: Instant, rate: u32) -> Self {
        SampleClock {
            start,
            rate: rate.max(1),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Samples taken by `now`: floor(elapsed × rate).
    pub fn due(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.start).as_nanos();
        let due = ns * u128::from(self.rate) / 1_000_000_000;
        u64::try_from(due).unwrap_or(u64::MAX)
    }

    /// The instant at which sample `count` is taken (so `due` reaches `count`).
    pub fn instant_of(&self, count: u64) -> Instant {
        let rate = u128::from(self.rate);
        let ns = (u128::from(count) * 1_000_000_000).div_ceil(rate);
        let ns = u64::try_from(ns).unwrap_or(u64::MAX);
        self.start
            .checked_add(Duration::from_nanos(ns))
            .unwrap_or_else(|| self.start + Duration::from_secs(86_400 * 365 * 30))
    }
}

/// Bounded buffer of sampled bytes (interleaved LE f32), fed by a generator.
/// It holds them as shared parts (views of a replay table, or the bytes
/// one call synthesised), which go on to the socket without a copy.
#[derive(Debug)]
pub struct SampleBuffer {
    generator: SignalGenerator,
    bytes_per_sample: usize,
    capacity_samples: u64,
    parts: VecDeque<Bytes>,
    /// Bytes in `parts`.
    buffered: usize,
    scratch: Vec<f32>,
    taken: u64,
    dropped: u64,
    dropped_unreported: u64,
}

impl SampleBuffer {
    /// `buffer_bytes` is rounded down to whole samples (at least one).
    pub fn new(generator: SignalGenerator, buffer_bytes: usize) -> Self {
        let bytes_per_sample = generator.measures().bytes_per_sample();
        let capacity_samples = (buffer_bytes / bytes_per_sample).max(1) as u64;
        let scratch = vec![0.0; FILL_BATCH * generator.channel_count()];
        SampleBuffer {
            generator,
            bytes_per_sample,
            capacity_samples,
            parts: VecDeque::new(),
            buffered: 0,
            scratch,
            taken: 0,
            dropped: 0,
            dropped_unreported: 0,
        }
    }

    pub fn bytes_per_sample(&self) -> usize {
        self.bytes_per_sample
    }

    /// Samples taken since the start, dropped ones included (the stop
    /// answer's `samples`).
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Samples dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Dropped samples not yet reported in a `MISSED n SAMPLES` line.
    pub fn take_unreported_drops(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_unreported)
    }

    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    pub fn buffered_samples(&self) -> u64 {
        (self.buffered / self.bytes_per_sample) as u64
    }

    /// Room left, in samples.
    pub fn room(&self) -> u64 {
        self.capacity_samples
            .saturating_sub(self.buffered_samples())
    }

    /// Takes `count` more samples: what fits is buffered, the rest is dropped
    /// (the generator skips them, so later samples keep their indices).
    pub fn take_samples(&mut self, count: u64) {
        let fits = count.min(self.room());
        let mut left = fits;
        let (parts, buffered) = (&mut self.parts, &mut self.buffered);
        if self.generator.replayed_bytes(fits, &mut |part| {
            *buffered += part.len();
            parts.push_back(part);
        }) {
            left = 0;
        }
        let channels = self.generator.channel_count();
        if left > 0 {
            // Fits in the buffer's capacity, which is a byte count.
            let mut bytes = BytesMut::with_capacity(left as usize * self.bytes_per_sample);
            while left > 0 {
                let batch = left.min(FILL_BATCH as u64) as usize;
                let out = &mut self.scratch[..batch * channels];
                self.generator.fill(out);
                put_f32le(&mut bytes, out);
                left -= batch as u64;
            }
            self.buffered += bytes.len();
            self.parts.push_back(bytes.freeze());
        }
        let dropped = count - fits;
        if dropped > 0 {
            let next = self.generator.sample_index().saturating_add(dropped);
            self.generator.seek(next);
            self.dropped += dropped;
            self.dropped_unreported += dropped;
        }
        self.taken += count;
    }

    /// Moves the oldest `bytes` buffered bytes (clamped to what is
    /// buffered) to the end of `out`, without copying them.
    pub fn take_into(&mut self, bytes: usize, out: &mut OutQueue) {
        let mut left = bytes.min(self.buffered);
        self.buffered -= left;
        while left > 0 {
            let Some(mut part) = self.parts.pop_front() else {
                break;
            };
            if part.len() > left {
                out.push(part.split_to(left));
                self.parts.push_front(part);
                break;
            }
            left -= part.len();
            out.push(part);
        }
    }

    /// Drops everything buffered (a `?` reset).
    pub fn clear(&mut self) {
        self.parts.clear();
        self.buffered = 0;
    }

    /// The generator, for truth queries at sample indices.
    pub fn generator(&self) -> &SignalGenerator {
        &self.generator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::signal::SignalConfig;
    use crate::wire::Measures;

    #[test]
    fn clock_has_no_cumulative_drift() {
        let start = Instant::now();
        let clock = SampleClock::new(start, 8000);
        assert_eq!(clock.due(start + Duration::from_secs(3600)), 3600 * 8000);
        assert_eq!(clock.due(start + Duration::from_nanos(124_999)), 0);
        assert_eq!(clock.due(start + Duration::from_nanos(125_000)), 1);
        assert_eq!(clock.instant_of(8000), start + Duration::from_secs(1));
        let odd = SampleClock::new(start, 3);
        assert_eq!(odd.due(odd.instant_of(7)), 7);
        assert_eq!(odd.due(odd.instant_of(7) - Duration::from_nanos(1)), 6);
    }

    #[test]
    fn full_buffer_drops_and_keeps_indices() {
        let generator =
            SignalGenerator::new(SignalConfig::default(), Measures::SinglePhase, 8000).unwrap();
        let mut buffer = SampleBuffer::new(generator, 8 * 10);
        buffer.take_samples(4);
        buffer.take_samples(10);
        assert_eq!(buffer.buffered_samples(), 10);
        assert_eq!(buffer.take_unreported_drops(), 4);
        assert_eq!(buffer.take_unreported_drops(), 0);
        assert_eq!(buffer.taken(), 14);
        let mut sent = OutQueue::default();
        buffer.take_into(8 * 10, &mut sent);
        assert_eq!(sent.len(), 8 * 10);
        buffer.take_samples(1);
        let mut reference =
            SignalGenerator::new(SignalConfig::default(), Measures::SinglePhase, 8000).unwrap();
        reference.seek(14);
        let mut expected = [0.0f32; 2];
        reference.fill(&mut expected);
        let mut next = OutQueue::default();
        buffer.take_into(8, &mut next);
        let mut bytes = Vec::new();
        next.advance(8, &mut |piece| bytes.extend_from_slice(piece));
        let got: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(got, expected);
    }
}
