//! Things that happened to a source besides samples: the `events` table and
//! the logs are made of these, so a reader can tell a quiet meter from a
//! broken link.

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
    /// A sampling session ended; `sent` is what the meter says it sent.
    SessionStop {
        sent_samples: Option<u64>,
    },
    Connect {
        peer: String,
    },
    Disconnect {
        reason: String,
    },
    /// Chunks never arrived.
    Gap {
        lost_chunks: u64,
        lost_samples: u64,
    },
    /// Garbage skipped on the wire.
    Resync {
        skipped_bytes: u64,
    },
    /// A chunk that was not whole samples; dropped.
    BadChunk {
        len: u64,
        lost_samples: u64,
    },
    /// An Info line that was too long or not text; dropped.
    BadLine {
        reason: String,
    },
    /// The stream ended inside a frame.
    Truncated {
        bytes: u64,
    },
    /// A warning or error the meter logged, e.g. `MISSED 42 SAMPLES`.
    MeterWarning {
        message: String,
        missed_samples: Option<u64>,
    },
    /// An Info line that was not a valid message.
    BadMessage {
        reason: String,
    },
}

impl EventKind {
    /// Short, stable name for tables and logs.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SessionStart => "session_start",
            EventKind::SessionStop { .. } => "session_stop",
            EventKind::Connect { .. } => "connect",
            EventKind::Disconnect { .. } => "disconnect",
            EventKind::Gap { .. } => "gap",
            EventKind::Resync { .. } => "resync",
            EventKind::BadChunk { .. } => "bad_chunk",
            EventKind::BadLine { .. } => "bad_line",
            EventKind::Truncated { .. } => "truncated",
            EventKind::MeterWarning { .. } => "meter_warning",
            EventKind::BadMessage { .. } => "bad_message",
        }
    }

    /// Samples this event cost, if any.
    pub fn lost_samples(&self) -> u64 {
        match self {
            EventKind::Gap { lost_samples, .. } | EventKind::BadChunk { lost_samples, .. } => {
                *lost_samples
            }
            EventKind::MeterWarning { missed_samples, .. } => missed_samples.unwrap_or(0),
            _ => 0,
        }
    }

    /// The event a wire anomaly means, given the samples it cost.
    pub fn from_anomaly(anomaly: &Anomaly, lost_samples: u64) -> EventKind {
        match *anomaly {
            Anomaly::Resync { skipped } => EventKind::Resync {
                skipped_bytes: skipped as u64,
            },
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
            EventKind::SessionStop { sent_samples } => match sent_samples {
                Some(sent) => format!("meter sent {sent} samples"),
                None => "no stop answer".to_string(),
            },
            EventKind::Connect { peer } => peer.clone(),
            EventKind::Disconnect { reason } => reason.clone(),
            EventKind::Gap {
                lost_chunks,
                lost_samples,
            } => format!("{lost_chunks} chunks ({lost_samples} samples) lost"),
            EventKind::Resync { skipped_bytes } => format!("{skipped_bytes} bytes skipped"),
            EventKind::BadChunk { len, lost_samples } => {
                format!("chunk of {len} bytes dropped ({lost_samples} samples)")
            }
            EventKind::BadLine { reason } | EventKind::BadMessage { reason } => reason.clone(),
            EventKind::Truncated { bytes } => format!("stream ended {bytes} bytes into a frame"),
            EventKind::MeterWarning { message, .. } => message.clone(),
        }
    }
}
