//! A virtual meter's whole stream written straight to a capture file, with
//! no socket and no pacing: the inputs of `bench batch` and of the batch
//! tests, byte for byte what `simulate --capture` would have recorded.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use bytes::BytesMut;

use super::signal::{SignalConfig, SignalGenerator};
use crate::wire::command::StreamType;
use crate::wire::frame::{put_data_frame, put_info_line};
use crate::wire::message::{InfoAnswer, SampleAnswer, StartTs, StopAnswer};
use crate::wire::Measures;

/// What to record.
#[derive(Debug, Clone)]
pub struct OfflineCapture {
    pub name: String,
    pub signal: SignalConfig,
    pub measures: Measures,
    pub rate: u32,
    /// The meter's `startTs`, ms since the epoch.
    pub start_unix_ms: u64,
    /// Samples the meter takes (dropped chunks included).
    pub samples: u64,
    /// Sequence numbers of chunks left out, as a meter drops them when its
    /// buffer overflows: the reader sees a gap of whole chunks there.
    pub dropped_chunks: BTreeSet<u32>,
}

impl OfflineCapture {
    pub fn new(name: &str, signal: SignalConfig, measures: Measures, rate: u32) -> Self {
        OfflineCapture {
            name: name.to_string(),
            signal,
            measures,
            rate,
            // 2026-01-01 00:00:00 UTC.
            start_unix_ms: 1_767_225_600_000,
            samples: 0,
            dropped_chunks: BTreeSet::new(),
        }
    }

    /// Samples per data chunk, as the firmware cuts them for this layout.
    pub fn samples_per_chunk(&self) -> usize {
        self.answer().chunksize / self.measures.bytes_per_sample()
    }

    fn answer(&self) -> SampleAnswer {
        SampleAnswer::new(
            self.measures,
            self.rate,
            StreamType::Tcp,
            true,
            false,
            StartTs::from_unix_millis(self.start_unix_ms),
        )
    }

    /// Writes the capture (info line, sample answer, data, stop answer);
    /// returns its size in bytes.
    pub fn write(&self, path: &Path) -> anyhow::Result<u64> {
        let measures = self.measures;
        let mut generator = SignalGenerator::new(self.signal.clone(), measures, self.rate)?;
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let write_error = || format!("writing {}", path.display());
        let mut buf = BytesMut::with_capacity(1 << 20);
        let info = serde_json::to_string(&InfoAnswer::new(self.name.clone(), "127.0.0.1"))?;
        put_info_line(&mut buf, &info);
        let answer = self.answer();
        put_info_line(&mut buf, &serde_json::to_string(&answer)?);
        let samples_per_chunk = self.samples_per_chunk();
        let mut values = vec![0f32; samples_per_chunk * measures.channel_count()];
        let mut taken = 0u64;
        let mut sent = 0u64;
        let mut seq = 0u32;
        let mut bytes = 0u64;
        while taken < self.samples {
            let take = (self.samples - taken).min(samples_per_chunk as u64) as usize;
            let chunk = &mut values[..take * measures.channel_count()];
            generator.fill(chunk);
            if !self.dropped_chunks.contains(&seq) {
                put_data_frame(&mut buf, seq, chunk);
                sent += take as u64;
            }
            seq = seq.wrapping_add(1);
            taken += take as u64;
            if buf.len() > (1 << 20) - 2048 {
                out.write_all(&buf).with_context(write_error)?;
                bytes += buf.len() as u64;
                buf.clear();
            }
        }
        let duration_ms = taken * 1000 / u64::from(self.rate.max(1));
        let start = StartTs::from_unix_millis(self.start_unix_ms);
        let stop = StopAnswer::new(
            start,
            StartTs::from_unix_millis(self.start_unix_ms + duration_ms),
            duration_ms,
            taken,
            sent,
            "127.0.0.1",
        );
        put_info_line(&mut buf, &serde_json::to_string(&stop)?);
        out.write_all(&buf).with_context(write_error)?;
        bytes += buf.len() as u64;
        out.flush().with_context(write_error)?;
        Ok(bytes)
    }
}
