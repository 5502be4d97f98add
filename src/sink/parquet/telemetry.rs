//! The telemetry tables (`readings`, `tel_mppt`) of a dataset. Telemetry is
//! low-rate, so rows wait in memory and are written, sorted, as finished
//! files on every flush (on an interval and at shutdown): data becomes
//! visible within the interval, and `tel_mppt` files are ordered by
//! `mppt_id` as the spec's clustering asks.

use super::config::{DatasetInfo, ParquetConfig};
use super::dataset::{base_properties, probe_writable, DatasetSummary, Table};
use super::error::Result;
use super::schema::file_metadata;
use super::writer::{PartitionedWriter, PropertiesFor, Rotation};
use super::{readings, tel_mppt};
use crate::model::partition::utc_day;
use crate::model::{MpptRecord, Reading};

/// One day, ns: `tel_mppt` files never split inside a date partition.
const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The telemetry tables, written on the caller's thread.
pub struct TelemetryDataset {
    readings: Option<Table<Reading>>,
    tel_mppt: Option<Table<MpptRecord>>,
}

impl TelemetryDataset {
    /// Checks the settings and the output folder before any data arrives.
    pub fn create(config: &ParquetConfig, info: &DatasetInfo) -> Result<Self> {
        config.validate()?;
        probe_writable(&config.out)?;
        let writer = |table: &'static str, span_ns: i64| {
            let properties = base_properties(config, config.row_group_rows)
                .set_key_value_metadata(Some(file_metadata(table, info, false, &[])))
                .build();
            let properties_for: PropertiesFor = Box::new(move |_| properties.clone());
            let rotation = Rotation {
                span_ns,
                max_bytes: config.max_file_bytes,
                fsync: config.fsync,
            };
            PartitionedWriter::new(&config.out, table, rotation, properties_for)
        };
        Ok(TelemetryDataset {
            readings: config.tables.readings.then(|| {
                Table::new(
                    readings::spec(),
                    writer(readings::TABLE, config.max_file_span_ns()),
                    |r: &Reading| r.time_ns,
                    config.row_group_rows,
                )
            }),
            tel_mppt: config.tables.tel_mppt.then(|| {
                Table::new(
                    tel_mppt::spec(),
                    writer(tel_mppt::TABLE, NS_PER_DAY).sharing_files(),
                    |r: &MpptRecord| r.time_event_ns,
                    config.row_group_rows,
                )
            }),
        })
    }

    pub fn write_reading(&mut self, reading: Reading) -> Result<()> {
        match &mut self.readings {
            Some(table) => table.push(reading, usize::MAX),
            None => Ok(()),
        }
    }

    pub fn write_mppt(&mut self, record: MpptRecord) -> Result<()> {
        match &mut self.tel_mppt {
            Some(table) => table.push(record, usize::MAX),
            None => Ok(()),
        }
    }

    /// Writes every waiting row as finished files: readings by device and
    /// time, `tel_mppt` by date, `mppt_id`, time.
    pub fn flush(&mut self) -> Result<()> {
        let mut result = Ok(());
        if let Some(table) = &mut self.readings {
            table.sort_pending_by(|a, b| (&a.device, a.time_ns).cmp(&(&b.device, b.time_ns)));
            result = result.and(table.close());
        }
        if let Some(table) = &mut self.tel_mppt {
            table.sort_pending_by(|a, b| {
                (utc_day(a.time_event_ns), &a.mppt_id, a.time_event_ns).cmp(&(
                    utc_day(b.time_event_ns),
                    &b.mppt_id,
                    b.time_event_ns,
                ))
            });
            result = result.and(table.close());
        }
        result
    }

    /// Finished files and rows so far.
    pub fn summary(&self) -> DatasetSummary {
        let mut summary = DatasetSummary::default();
        if let Some(t) = &self.readings {
            summary.files.extend_from_slice(t.writer().finished_files());
            summary.rows.insert(readings::TABLE, t.rows());
        }
        if let Some(t) = &self.tel_mppt {
            summary.files.extend_from_slice(t.writer().finished_files());
            summary.rows.insert(tel_mppt::TABLE, t.rows());
        }
        summary
    }

    /// Flushes and reports what was written.
    pub fn close(mut self) -> Result<DatasetSummary> {
        self.flush()?;
        Ok(self.summary())
    }
}
