//! Things that happened to a source besides samples: the `events` table and
//! the logs are made of these, so a reader can tell a quiet meter from a
//! broken link.

use super::decoder::SessionEnd;
use crate::model::{DeviceInfo, EventRow, EventRowKind as RowKind};
use crate::wire::Anomaly;

/// One event of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEvent {
    /// When, ns since the epoch (the meter's time base where known).
    pub unix_ns: i64,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A sampling session began (sample answer, or the start of a file).
    SessionStart,
    /// A sampling session ended, and why; `sent_samples` is what the meter
    /// says it sent (from its stop answer).
    SessionStop {
        end: SessionEnd,
        sent_samples: Option<u64>,
    },
    /// Chunks never arrived.
    Gap { lost_chunks: u64, lost_samples: u64 },
    /// Garbage skipped on the wire; inside a session its bytes are taken
    /// as the samples they displaced (`lost_samples`), so time stays with
    /// the bytes received.
    Resync {
        skipped_bytes: u64,
        lost_samples: u64,
    },
    /// A packet number off the sequence that the stream did not go on from:
    /// a corrupt counter, nothing lost.
    CounterGlitch { expected: u32, received: u32 },
    /// A chunk that was not whole samples; dropped.
    BadChunk { len: u64, lost_samples: u64 },
    /// An Info line that was too long or not text; dropped.
    BadLine { reason: String },
    /// The stream ended inside a frame.
    Truncated { bytes: u64 },
    /// A warning or error the meter logged, e.g. `MISSED 42 SAMPLES`.
    MeterWarning {
        message: String,
        missed_samples: Option<u64>,
    },
    /// An Info line that was not a valid message.
    BadMessage { reason: String },
}

impl EventKind {
    /// Short, stable name for tables and logs.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SessionStart => "session_start",
            EventKind::SessionStop { .. } => "session_stop",
            EventKind::Gap { .. } => "gap",
            EventKind::Resync { .. } => "resync",
            EventKind::CounterGlitch { .. } => "counter_glitch",
            EventKind::BadChunk { .. } => "bad_chunk",
            EventKind::BadLine { .. } => "bad_line",
            EventKind::Truncated { .. } => "truncated",
            EventKind::MeterWarning { .. } => "meter_warning",
            EventKind::BadMessage { .. } => "bad_message",
        }
    }

    /// Whether it is worth a warning in the logs (all but session bounds).
    pub fn is_trouble(&self) -> bool {
        !matches!(
            self,
            EventKind::SessionStart | EventKind::SessionStop { .. }
        )
    }

    /// Samples this event cost, if any.
    pub fn lost_samples(&self) -> u64 {
        match self {
            EventKind::Gap { lost_samples, .. }
            | EventKind::BadChunk { lost_samples, .. }
            | EventKind::Resync { lost_samples, .. } => *lost_samples,
            EventKind::MeterWarning { missed_samples, .. } => missed_samples.unwrap_or(0),
            _ => 0,
        }
    }

    /// The event a wire anomaly means, given the samples it cost.
    pub fn from_anomaly(anomaly: &Anomaly, lost_samples: u64) -> EventKind {
        match *anomaly {
            Anomaly::Resync { skipped } => EventKind::Resync {
                skipped_bytes: skipped as u64,
                lost_samples,
            },
            Anomaly::SequenceGlitch { expected, received } => {
                EventKind::CounterGlitch { expected, received }
            }
            Anomaly::Gap { lost_chunks, .. } => EventKind::Gap {
                lost_chunks: u64::from(lost_chunks),
                lost_samples,
            },
            Anomaly::SequenceBackwards { expected, received } => EventKind::BadMessage {
                reason: format!("packet number went back from {expected} to {received}"),
            },
            Anomaly::BadDataLength { len, .. } => EventKind::BadChunk {
                len: len as u64,
                lost_samples,
            },
            Anomaly::InfoTooLong { len } => EventKind::BadLine {
                reason: format!("Info line of {len} bytes exceeds the limit"),
            },
            Anomaly::InvalidUtf8 { len } => EventKind::BadLine {
                reason: format!("Info line of {len} bytes is not UTF-8"),
            },
            Anomaly::Truncated { bytes } => EventKind::Truncated {
                bytes: bytes as u64,
            },
        }
    }

    /// Human-readable detail (empty when the name says it all).
    pub fn detail(&self) -> String {
        match self {
            EventKind::SessionStart => String::new(),
            EventKind::SessionStop { end, sent_samples } => match sent_samples {
                Some(sent) => format!("meter sent {sent} samples"),
                None => end.describe().to_string(),
            },
            EventKind::Gap {
                lost_chunks,
                lost_samples,
            } => format!("{lost_chunks} chunks ({lost_samples} samples) lost"),
            EventKind::Resync {
                skipped_bytes,
                lost_samples: 0,
            } => format!("{skipped_bytes} bytes skipped"),
            EventKind::Resync {
                skipped_bytes,
                lost_samples,
            } => format!("{skipped_bytes} bytes skipped ({lost_samples} samples lost)"),
            EventKind::CounterGlitch { expected, received } => format!(
                "packet number {received} where {expected} was due, and the stream went on \
                 from {expected}: a corrupt counter, no samples lost"
            ),
            EventKind::BadChunk { len, lost_samples } => {
                format!("chunk of {len} bytes dropped ({lost_samples} samples)")
            }
            EventKind::BadLine { reason } | EventKind::BadMessage { reason } => reason.clone(),
            EventKind::Truncated { bytes } => format!("stream ended {bytes} bytes into a frame"),
            EventKind::MeterWarning { message, .. } => message.clone(),
        }
    }
}

impl SourceEvent {
    /// Its row of the `events` table: the one place stream events become rows.
    pub fn to_row(&self, device: &DeviceInfo) -> EventRow {
        let (kind, lost_chunks, lost_samples, bytes) = match &self.kind {
            EventKind::Gap {
                lost_chunks,
                lost_samples,
            } => (RowKind::Gap, Some(*lost_chunks), Some(*lost_samples), None),
            EventKind::Resync {
                skipped_bytes,
                lost_samples,
            } => (
                RowKind::Resync,
                None,
                (*lost_samples > 0).then_some(*lost_samples),
                Some(*skipped_bytes),
            ),
            EventKind::CounterGlitch { .. } => (RowKind::Resync, None, None, None),
            EventKind::BadChunk { len, lost_samples } => (
                RowKind::BadDataLength,
                None,
                Some(*lost_samples),
                Some(*len),
            ),
            EventKind::BadLine { .. } | EventKind::BadMessage { .. } => {
                (RowKind::BadInfoLine, None, None, None)
            }
            EventKind::Truncated { bytes } => (RowKind::Truncated, None, None, Some(*bytes)),
            EventKind::MeterWarning { missed_samples, .. } => {
                (RowKind::MeterWarning, None, *missed_samples, None)
            }
            EventKind::SessionStart => (RowKind::Connect, None, None, None),
            EventKind::SessionStop { .. } => (RowKind::Disconnect, None, None, None),
        };
        let detail = self.kind.detail();
        EventRow {
            device: device.clone(),
            time_unix_ns: self.unix_ns,
            kind,
            lost_chunks,
            lost_samples,
            bytes,
            message: if detail.is_empty() {
                self.kind.name().to_string()
            } else {
                format!("{}: {detail}", self.kind.name())
            },
        }
    }
}
