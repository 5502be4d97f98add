//! The telemetry tables (`readings`, `tel_mppt`) as an [`Output`]: rows are
//! staged and every file is finished on the telemetry flush interval, so
//! what it acks is in finished files.

use std::time::{Duration, Instant};

use crate::model::{Record, TelemetryBatch};
use crate::sink::output::{Output, OutputSummary};

use super::config::{DatasetInfo, ParquetConfig};
use super::telemetry::TelemetryDataset;

/// The `telemetry` output.
pub struct TelemetryOutput {
    dataset: TelemetryDataset,
    interval: Duration,
    flushed_at: Instant,
    last_seq: u64,
    /// Everything up to this seq is in finished files.
    durable_seq: u64,
}

impl TelemetryOutput {
    pub const NAME: &'static str = "telemetry";

    pub fn open(
        config: &ParquetConfig,
        info: &DatasetInfo,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        Ok(TelemetryOutput {
            dataset: TelemetryDataset::create(config, info)?,
            interval: interval.max(Duration::from_millis(10)),
            flushed_at: Instant::now(),
            last_seq: 0,
            durable_seq: 0,
        })
    }
}

impl Output for TelemetryOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        self.last_seq = seq;
        match record {
            Record::Telemetry(TelemetryBatch::Mppt(records)) => {
                for record in records {
                    self.dataset.write_mppt(record.clone())?;
                }
            }
            Record::Telemetry(TelemetryBatch::Readings(readings)) => {
                for reading in readings {
                    self.dataset.write_reading(reading.clone())?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<u64> {
        if self.flushed_at.elapsed() >= self.interval {
            self.dataset.flush()?;
            self.flushed_at = Instant::now();
            self.durable_seq = self.last_seq;
        }
        Ok(self.durable_seq)
    }

    fn flush_interval(&self) -> Duration {
        self.interval.min(Duration::from_secs(1))
    }

    fn close(self: Box<Self>) -> anyhow::Result<OutputSummary> {
        Ok(OutputSummary {
            dataset: Some(self.dataset.close()?),
            ..OutputSummary::default()
        })
    }
}
