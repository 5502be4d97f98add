//! The `events` table: what happened to a stream besides its samples —
//! gaps with their lost chunk counts, resyncs, connects and disconnects,
//! meter warnings such as `MISSED n SAMPLES` — so data quality can be
//! judged next to the numbers.

use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use super::schema::{
    device_columns, time_col, u64_col, ColumnSpec, ColumnValues, DeviceRow, TableSpec,
};
use super::DeviceInfo;
use crate::wire::message::{LogLevel, LogLine};
use crate::wire::Anomaly;

pub const TABLE: &str = "events";

/// What kind of event a row records (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Chunks never arrived (packet numbers jumped).
    Gap,
    /// Bytes that were neither frame nor line were skipped.
    Resync,
    /// A packet number went backwards (not a restart at 0).
    SequenceBackwards,
    /// A chunk of a partial sample was dropped.
    BadDataLength,
    /// An over-long or non-UTF-8 Info line was dropped.
    BadInfoLine,
    /// The stream ended inside a frame or line.
    Truncated,
    Connect,
    Disconnect,
    /// A meter log line at warning or error level, or one reporting lost samples.
    MeterWarning,
    /// Any other meter log line worth keeping.
    MeterLog,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Gap => "gap",
            EventKind::Resync => "resync",
            EventKind::SequenceBackwards => "sequence_backwards",
            EventKind::BadDataLength => "bad_data_length",
            EventKind::BadInfoLine => "bad_info_line",
            EventKind::Truncated => "truncated",
            EventKind::Connect => "connect",
            EventKind::Disconnect => "disconnect",
            EventKind::MeterWarning => "meter_warning",
            EventKind::MeterLog => "meter_log",
        }
    }
}

/// One event of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub device: DeviceInfo,
    /// When it was noticed (or happened, if known), ns since the epoch.
    pub time_unix_ns: i64,
    pub kind: EventKind,
    pub lost_chunks: Option<u64>,
    pub lost_samples: Option<u64>,
    /// Bytes skipped or dropped (resyncs, bad lengths, truncation).
    pub bytes: Option<u64>,
    pub message: String,
}

impl DeviceRow for EventRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

impl EventRow {
    /// An event with no counts.
    pub fn new(
        device: DeviceInfo,
        time_unix_ns: i64,
        kind: EventKind,
        message: impl Into<String>,
    ) -> Self {
        EventRow {
            device,
            time_unix_ns,
            kind,
            lost_chunks: None,
            lost_samples: None,
            bytes: None,
            message: message.into(),
        }
    }

    /// The event of a wire anomaly; `samples_per_chunk` turns lost chunks
    /// into lost samples when the chunk size is known.
    pub fn from_anomaly(
        device: DeviceInfo,
        time_unix_ns: i64,
        anomaly: &Anomaly,
        samples_per_chunk: Option<u64>,
    ) -> Self {
        let mut row = EventRow::new(device, time_unix_ns, EventKind::Resync, String::new());
        match *anomaly {
            Anomaly::Resync { skipped } => {
                row.bytes = Some(skipped as u64);
                row.message = format!("skipped {skipped} bytes to the next frame");
            }
            Anomaly::Gap {
                expected,
                received,
                lost_chunks,
            } => {
                row.kind = EventKind::Gap;
                row.lost_chunks = Some(u64::from(lost_chunks));
                row.lost_samples =
                    samples_per_chunk.map(|n| n.saturating_mul(u64::from(lost_chunks)));
                row.message = format!("expected packet {expected}, received {received}");
            }
            Anomaly::SequenceBackwards { expected, received } => {
                row.kind = EventKind::SequenceBackwards;
                row.message = format!("expected packet {expected}, received {received}");
            }
            Anomaly::BadDataLength {
                seq,
                len,
                bytes_per_sample,
            } => {
                row.kind = EventKind::BadDataLength;
                row.bytes = Some(len as u64);
                row.message = format!(
                    "packet {seq}: {len} bytes is not a whole number of {bytes_per_sample}-byte samples"
                );
            }
            Anomaly::InfoTooLong { len } => {
                row.kind = EventKind::BadInfoLine;
                row.bytes = Some(len as u64);
                row.message = format!("Info line of {len} bytes is too long");
            }
            Anomaly::InvalidUtf8 { len } => {
                row.kind = EventKind::BadInfoLine;
                row.bytes = Some(len as u64);
                row.message = format!("Info line of {len} bytes is not UTF-8");
            }
            Anomaly::Truncated { bytes } => {
                row.kind = EventKind::Truncated;
                row.bytes = Some(bytes as u64);
                row.message = format!("stream ended inside a frame ({bytes} bytes)");
            }
        }
        row
    }

    /// The event of a meter log line, or `None` for lines not worth a row:
    /// the once-a-second lifeness line and rate report (telemetry, not
    /// events) and debug chatter.
    pub fn from_log_line(device: DeviceInfo, time_unix_ns: i64, line: &LogLine) -> Option<Self> {
        if line.is_lifeness() || line.rate_report().is_some() {
            return None;
        }
        let missed = line.missed_samples();
        let kind = match (missed, line.level) {
            (Some(_), _) | (None, LogLevel::Warning | LogLevel::Error) => EventKind::MeterWarning,
            (None, LogLevel::Info) => EventKind::MeterLog,
            (None, LogLevel::All | LogLevel::Debug) => return None,
        };
        let mut row = EventRow::new(device, time_unix_ns, kind, line.to_string());
        row.lost_samples = missed;
        Some(row)
    }
}

pub(crate) fn spec() -> TableSpec<EventRow> {
    let mut columns = vec![ColumnSpec::required(
        "time",
        time_col(|r: &EventRow| Some(r.time_unix_ns)),
    )];
    columns.extend(device_columns::<EventRow>());
    columns.extend([
        ColumnSpec::required(
            "kind",
            ColumnValues::Utf8(|r: &EventRow| Some(r.kind.as_str())),
        ),
        ColumnSpec::optional("lost_chunks", u64_col(|r: &EventRow| r.lost_chunks)),
        ColumnSpec::optional("lost_samples", u64_col(|r: &EventRow| r.lost_samples)),
        ColumnSpec::optional("bytes", u64_col(|r: &EventRow| r.bytes)),
        ColumnSpec::required(
            "message",
            ColumnValues::Utf8(|r: &EventRow| Some(&r.message)),
        ),
    ]);
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `events` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
