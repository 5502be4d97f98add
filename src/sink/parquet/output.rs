//! The meter dataset as an [`Output`]: records become table rows; with a
//! record log behind it, files become visible only at commits (see
//! `commit`), so what it acks is exactly what readers can see.

use crate::model::Record;
use crate::sink::output::{Output, OutputSummary};

use super::commit::CommitRecovery;
use super::config::{DatasetInfo, ParquetConfig};
use super::dataset::DatasetWriter;

/// The `parquet` output.
pub struct ParquetOutput {
    dataset: DatasetWriter,
    last_seq: u64,
}

impl ParquetOutput {
    pub const NAME: &'static str = "parquet";

    /// A dataset fed from record log `log_id` (commits on), or, with `None`,
    /// one whose files appear as soon as they are finished (a batch run).
    pub fn open(
        config: &ParquetConfig,
        info: &DatasetInfo,
        log_id: Option<&str>,
    ) -> anyhow::Result<(Self, CommitRecovery)> {
        let dataset = DatasetWriter::create(config, info)?;
        let (dataset, recovery) = match log_id {
            Some(id) => dataset.with_commits(id)?,
            None => (dataset, CommitRecovery::default()),
        };
        if recovery.rolled_forward > 0 || recovery.removed_temps > 0 {
            tracing::info!(
                dataset = %config.out.display(),
                completed = recovery.rolled_forward,
                removed = recovery.removed_temps,
                "finished an interrupted commit and removed uncommitted files; the record log brings their rows again"
            );
        }
        Ok((
            ParquetOutput {
                dataset,
                last_seq: 0,
            },
            recovery,
        ))
    }
}

impl Output for ParquetOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        self.last_seq = seq;
        self.dataset.at_seq(seq);
        match record {
            Record::Window(row) => self.dataset.write_window(row.clone())?,
            Record::Latch(row) => self.dataset.write_latch(row.clone())?,
            Record::Aggregate(row) => self.dataset.write_aggregate(row.clone())?,
            Record::Event(row) => self.dataset.write_event(row.clone())?,
            Record::Raw(raw) => self.dataset.write_raw(&raw.device, &raw.block)?,
            Record::PqEvent(row) => self.dataset.write_pq_event(row.clone())?,
            Record::HalfCycle(row) => self.dataset.write_half_cycle(row.clone())?,
            Record::Pinst(row) => self.dataset.write_pinst(row.clone())?,
            Record::DeviceFinished(name) => self.dataset.finish_device(name)?,
            Record::Sensor(_)
            | Record::Telemetry(_)
            | Record::Readings(_)
            | Record::Consumed(_) => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<u64> {
        self.dataset.seal_ended()?;
        self.dataset.commit()?;
        Ok(self
            .dataset
            .pending_min_seq()
            .map_or(self.last_seq, |seq| seq.saturating_sub(1)))
    }

    fn relieve(&mut self) -> anyhow::Result<()> {
        self.dataset.seal_all()?;
        self.dataset.commit()?;
        Ok(())
    }

    fn close(self: Box<Self>) -> anyhow::Result<OutputSummary> {
        Ok(OutputSummary {
            dataset: Some(self.dataset.close()?),
            ..OutputSummary::default()
        })
    }
}
