//! The telemetry tables (`readings`, `tel_mppt`) inside the Parquet output:
//! rows are staged and every file is finished on the low-rate flush
//! interval, so what is acked is in finished files.

use std::time::{Duration, Instant};

use crate::model::TelemetryBatch;

use super::config::{DatasetInfo, ParquetConfig};
use super::dataset::DatasetSummary;
use super::telemetry::TelemetryDataset;

/// The low-rate tables of a dataset, opened with their first row.
pub(super) struct TelemetryTables {
    dataset: TelemetryDataset,
    interval: Duration,
    flushed_at: Instant,
    last_seq: u64,
    /// Everything up to this seq is in finished files.
    durable_seq: u64,
}

impl TelemetryTables {
    /// Their files carry the run's source and pipeline, not the engine's settings.
    pub(super) fn open(
        config: &ParquetConfig,
        info: &DatasetInfo,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let info = DatasetInfo {
            source: info.source.clone(),
            pipeline: info.pipeline.clone(),
            ..DatasetInfo::default()
        };
        Ok(TelemetryTables {
            dataset: TelemetryDataset::create(config, &info)?,
            interval: interval.max(Duration::from_millis(10)),
            flushed_at: Instant::now(),
            last_seq: 0,
            durable_seq: 0,
        })
    }

    pub(super) fn write(&mut self, seq: u64, batch: &TelemetryBatch) -> anyhow::Result<()> {
        self.last_seq = seq;
        match batch {
            TelemetryBatch::Mppt(records) => {
                for record in records {
                    self.dataset.write_mppt(record.clone())?;
                }
            }
            TelemetryBatch::Readings(readings) => {
                for reading in readings {
                    self.dataset.write_reading(reading.clone())?;
                }
            }
        }
        Ok(())
    }

    /// Finishes the files when the interval is over; returns the seq
    /// through which every row taken is in finished files, and the seq of
    /// the first row that is not (none: all are).
    pub(super) fn flush(&mut self) -> anyhow::Result<Option<u64>> {
        if self.flushed_at.elapsed() >= self.interval {
            self.dataset.flush()?;
            self.flushed_at = Instant::now();
            self.durable_seq = self.last_seq;
        }
        Ok((self.durable_seq < self.last_seq).then_some(self.durable_seq + 1))
    }

    /// Finishes every file now.
    pub(super) fn flush_now(&mut self) -> anyhow::Result<()> {
        self.dataset.flush()?;
        self.flushed_at = Instant::now();
        self.durable_seq = self.last_seq;
        Ok(())
    }

    pub(super) fn close(self) -> anyhow::Result<DatasetSummary> {
        Ok(self.dataset.close()?)
    }
}
