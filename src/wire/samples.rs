//! From wire payloads to samples in SI units.
//!
//! The one place where interleaved little-endian floats become per-channel
//! values and where currents turn from mA into A, so no later stage has to
//! remember the wire's units.

use super::layout::{Measures, BYTES_PER_VALUE};

/// Sampling rates a stream may have, Hz, both ends included, however the
/// rate arrives (a meter's answer, a file header, a flag, a pipeline key):
/// the engine's buffers grow with the rate, and no meter samples faster.
pub const RATE_HZ: (u32, u32) = (1, 1_000_000);

/// Whether `rate` is within [`RATE_HZ`].
pub fn rate_in_range(rate: u32) -> bool {
    (RATE_HZ.0..=RATE_HZ.1).contains(&rate)
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("payload of {len} bytes is not a whole number of {bytes_per_sample}-byte samples")]
    PartialSample { len: usize, bytes_per_sample: usize },
}

/// One device's consecutive samples, per channel, in SI units.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleBlock {
    pub measures: Measures,
    /// Samples per second.
    pub rate: u32,
    /// The meter's `startTs`, ns since the Unix epoch: sample n is at `start + n / rate`.
    pub start_unix_ns: i64,
    /// Index of the first sample since `startTs`.
    pub first_index: u64,
    /// Samples known lost right before this block (dropped chunks).
    pub gap_before: u64,
    /// One vector per channel of `measures`, all of equal length.
    pub channels: Vec<Vec<f32>>,
}

impl SampleBlock {
    /// An empty block whose channel buffers can be refilled without reallocating.
    pub fn new(measures: Measures, rate: u32, start_unix_ns: i64) -> Self {
        SampleBlock {
            measures,
            rate,
            start_unix_ns,
            first_index: 0,
            gap_before: 0,
            channels: vec![Vec::new(); measures.channel_count()],
        }
    }

    /// Number of samples (instants) in the block.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Time of sample `index` (counted from `startTs`), ns since the epoch.
    pub fn time_of(&self, index: u64) -> i64 {
        sample_time(self.start_unix_ns, self.rate, index)
    }

    /// Replaces the samples with a decoded payload (buffers are reused).
    pub fn fill_from_payload(&mut self, payload: &[u8]) -> Result<(), SampleError> {
        for channel in &mut self.channels {
            channel.clear();
        }
        append_payload(self.measures, payload, &mut self.channels)
    }
}

/// Time of sample `index` of a session that started at `start_unix_ns`:
/// `startTs + index / rate`, in integer ns so long sessions do not drift.
pub fn sample_time(start_unix_ns: i64, rate: u32, index: u64) -> i64 {
    let rate = u64::from(rate.max(1));
    let whole = (index / rate) as i64 * 1_000_000_000;
    let part = ((index % rate) * 1_000_000_000 / rate) as i64;
    start_unix_ns + whole + part
}

/// Appends the times of samples `first..first + len` to `out`, each as
/// [`sample_time`] gives it, stepping from one to the next with a carried
/// remainder: the raw archive times every sample, and two 64-bit divisions
/// per sample were most of what buffering them cost.
pub fn extend_sample_times(
    out: &mut Vec<i64>,
    start_unix_ns: i64,
    rate: u32,
    first: u64,
    len: usize,
) {
    const NS: u64 = 1_000_000_000;
    let rate = u64::from(rate.max(1));
    let (step, step_rem) = (NS / rate, NS % rate);
    let mut rem = first % rate;
    let mut second_ns = start_unix_ns + (first / rate) as i64 * NS as i64;
    // part = rem * NS / rate, frac = rem * NS % rate (rem < 2^32: no overflow).
    let mut part = rem * NS / rate;
    let mut frac = rem * NS % rate;
    out.reserve(len);
    for _ in 0..len {
        out.push(second_ns + part as i64);
        rem += 1;
        if rem == rate {
            rem = 0;
            part = 0;
            frac = 0;
            second_ns += NS as i64;
        } else {
            part += step;
            frac += step_rem;
            if frac >= rate {
                frac -= rate;
                part += 1;
            }
        }
    }
}

/// Appends an interleaved LE f32 payload to per-channel vectors, in SI units.
pub fn append_payload(
    measures: Measures,
    payload: &[u8],
    channels: &mut [Vec<f32>],
) -> Result<(), SampleError> {
    let layout = measures.channels();
    let bytes_per_sample = layout.len() * BYTES_PER_VALUE;
    if !payload.len().is_multiple_of(bytes_per_sample) || channels.len() != layout.len() {
        return Err(SampleError::PartialSample {
            len: payload.len(),
            bytes_per_sample,
        });
    }
    let samples = payload.len() / bytes_per_sample;
    for (c, (out, channel)) in channels.iter_mut().zip(layout).enumerate() {
        out.reserve(samples);
        let offset = c * BYTES_PER_VALUE;
        let values = payload.chunks_exact(bytes_per_sample).map(|sample| {
            let v = &sample[offset..offset + BYTES_PER_VALUE];
            f32::from_le_bytes([v[0], v[1], v[2], v[3]])
        });
        let divisor = channel.si_divisor();
        // A division by one changes nothing: skip it for channels in SI units.
        if divisor == 1.0 {
            out.extend(values);
        } else {
            out.extend(values.map(|v| v / divisor));
        }
    }
    Ok(())
}

/// Decodes an interleaved LE f32 payload into interleaved wire-unit values.
pub fn payload_values(payload: &[u8]) -> impl Iterator<Item = f32> + '_ {
    payload
        .chunks_exact(BYTES_PER_VALUE)
        .map(|v| f32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn deinterleaves_and_converts_milliamps() {
        let wire = [
            230.0, 1500.0, -10.0, 0.0, 1.0, -2500.0, 231.0, 1.0, 2.0, 3.0, 4.0, 5.0,
        ];
        let mut block = SampleBlock::new(Measures::ThreePhase, 8000, 0);
        block.fill_from_payload(&le(&wire)).unwrap();
        assert_eq!(block.len(), 2);
        assert_eq!(block.channels[0], vec![230.0, 231.0]);
        assert_eq!(block.channels[1], vec![1.5, 0.001]);
        assert_eq!(block.channels[5], vec![-2.5, 0.005]);
        assert_eq!(block.channels[4], vec![1.0, 4.0]);
    }

    #[test]
    fn latch_powers_keep_their_units() {
        let wire = [100.0, 200.0, 300.0, -1.0, -2.0, -3.0];
        let mut block = SampleBlock::new(Measures::PowerLatch, 50, 0);
        block.fill_from_payload(&le(&wire)).unwrap();
        let firsts: Vec<f32> = block.channels.iter().map(|c| c[0]).collect();
        assert_eq!(firsts, wire);
    }

    #[test]
    fn partial_sample_is_an_error() {
        let mut block = SampleBlock::new(Measures::SinglePhase, 8000, 0);
        let err = block.fill_from_payload(&[0u8; 12]).unwrap_err();
        assert_eq!(
            err,
            SampleError::PartialSample {
                len: 12,
                bytes_per_sample: 8
            }
        );
    }

    #[test]
    fn sample_times_follow_start_and_rate() {
        let block = SampleBlock::new(Measures::ThreePhase, 8000, 1_614_697_441_119_000_000);
        assert_eq!(block.time_of(0), 1_614_697_441_119_000_000);
        assert_eq!(block.time_of(8000), 1_614_697_442_119_000_000);
        assert_eq!(block.time_of(1), 1_614_697_441_119_125_000);
    }
}
