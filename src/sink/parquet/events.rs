//! The `events` table: what happened to a stream besides its samples —
//! gaps with their lost chunk counts, resyncs, connects and disconnects,
//! meter warnings such as `MISSED n SAMPLES` — so data quality can be
//! judged next to the numbers.

use arrow::datatypes::SchemaRef;

use super::schema::{
    device_columns, time_col, u64_col, ColumnSpec, ColumnValues, DeviceRow, TableSpec,
};
use crate::model::{DeviceInfo, EventRow, EventRowKind};
use crate::wire::message::{LogLevel, LogLine};

pub const TABLE: &str = "events";

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
        kind: EventRowKind,
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

    /// The event of a meter log line, or `None` for lines not worth a row:
    /// the once-a-second lifeness line and rate report (telemetry, not
    /// events) and debug chatter.
    pub fn from_log_line(device: DeviceInfo, time_unix_ns: i64, line: &LogLine) -> Option<Self> {
        if line.is_lifeness() || line.rate_report().is_some() {
            return None;
        }
        let missed = line.missed_samples();
        let kind = match (missed, line.level) {
            (Some(_), _) | (None, LogLevel::Warning | LogLevel::Error) => {
                EventRowKind::MeterWarning
            }
            (None, LogLevel::Info) => EventRowKind::MeterLog,
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
