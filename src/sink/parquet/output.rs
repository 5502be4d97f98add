//! The dataset as an [`Output`], whatever the source: records become table
//! rows. Meter tables: with a record log behind it, files become visible
//! only at commits (see `commit`), so what it acks is exactly what readers
//! can see. Telemetry tables (opened with their first row) are finished on
//! the low-rate flush interval; the ack holds back for what they stage.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::model::run_report::OutputSummary;
use crate::model::Record;
use crate::sink::output::Output;

use super::commit::CommitRecovery;
use super::config::{DatasetInfo, ParquetConfig};
use super::dataset::{DatasetSummary, DatasetWriter};
use super::telemetry_output::TelemetryTables;

/// The `parquet` output.
pub struct ParquetOutput {
    dataset: DatasetWriter,
    config: ParquetConfig,
    info: DatasetInfo,
    telemetry: Option<TelemetryTables>,
    /// How often the telemetry tables' files are finished.
    low_rate_flush: Duration,
    last_seq: u64,
    /// Devices whose stream ended, finished together at the next flush (or
    /// before a row of theirs arrives): a sink's shutdown ends every meter
    /// at once, and finishing them as one step runs the tables side by side.
    ended: BTreeSet<Arc<str>>,
}

impl ParquetOutput {
    pub const NAME: &'static str = "parquet";

    /// A dataset fed from record log `log_id` (commits on), or, with `None`,
    /// one whose files appear as soon as they are finished and that skips
    /// the rows it already holds (a batch run).
    /// `low_rate_flush`: how often telemetry files are finished.
    pub fn open(
        config: &ParquetConfig,
        info: &DatasetInfo,
        log_id: Option<&str>,
        low_rate_flush: Duration,
    ) -> anyhow::Result<(Self, CommitRecovery)> {
        let dataset = DatasetWriter::create(config, info)?;
        let (dataset, recovery) = match log_id {
            Some(id) => dataset.with_commits(id)?,
            // A batch run: rows an earlier run wrote are not written again.
            None => (dataset.skipping_held_rows(), CommitRecovery::default()),
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
                config: config.clone(),
                info: info.clone(),
                telemetry: None,
                low_rate_flush,
                last_seq: 0,
                ended: BTreeSet::new(),
            },
            recovery,
        ))
    }
}

impl ParquetOutput {
    fn telemetry_tables(&mut self) -> anyhow::Result<&mut TelemetryTables> {
        let tables = match self.telemetry.take() {
            Some(tables) => tables,
            None => TelemetryTables::open(&self.config, &self.info, self.low_rate_flush)?,
        };
        Ok(self.telemetry.insert(tables))
    }

    /// Writes and finishes the files of the devices whose stream ended.
    fn finish_ended(&mut self) -> anyhow::Result<()> {
        if self.ended.is_empty() {
            return Ok(());
        }
        let ended: Vec<Arc<str>> = std::mem::take(&mut self.ended).into_iter().collect();
        Ok(self.dataset.finish_devices(&ended)?)
    }
}

/// The device whose table rows `record` brings, if it brings any.
fn rows_device(record: &Record) -> Option<&str> {
    match record {
        Record::DeviceFinished(_) | Record::Sensor(_) | Record::Readings(_) => None,
        other => other.device(),
    }
}

fn merged(mut meters: DatasetSummary, telemetry: DatasetSummary) -> DatasetSummary {
    meters.files.extend(telemetry.files);
    meters.rows.extend(telemetry.rows);
    meters.already_held.extend(telemetry.already_held);
    meters
}

impl Output for ParquetOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        self.last_seq = seq;
        self.dataset.at_seq(seq);
        // A device back after its end starts new files, as it did before.
        if rows_device(record).is_some_and(|device| self.ended.contains(device)) {
            self.finish_ended()?;
        }
        match record {
            Record::Window(row) => self.dataset.write_window(row.clone())?,
            Record::Latch(row) => self.dataset.write_latch(row.clone())?,
            Record::Aggregate(row) => self.dataset.write_aggregate(row.clone())?,
            Record::Event(row) => self.dataset.write_event(row.clone())?,
            Record::Raw(raw) => self.dataset.write_raw(&raw.device, &raw.block)?,
            Record::PqEvent(row) => self.dataset.write_pq_event(row.clone())?,
            Record::HalfCycle(row) => self.dataset.write_half_cycle(row.clone())?,
            Record::Pinst(row) => self.dataset.write_pinst(row.clone())?,
            Record::DeviceFinished(name) => {
                self.ended.insert(Arc::clone(name));
            }
            Record::Telemetry(batch) => self.telemetry_tables()?.write(seq, batch)?,
            Record::Sensor(_) | Record::Readings(_) | Record::Consumed(_) => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<u64> {
        self.finish_ended()?;
        self.dataset.seal_ended()?;
        self.dataset.commit()?;
        let staged = match &mut self.telemetry {
            Some(tables) => tables.flush()?,
            None => None,
        };
        let pending = [self.dataset.pending_min_seq(), staged]
            .into_iter()
            .flatten()
            .min();
        Ok(pending.map_or(self.last_seq, |seq| seq.saturating_sub(1)))
    }

    fn flush_interval(&self) -> Duration {
        match &self.telemetry {
            Some(_) => self.low_rate_flush.min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        }
    }

    fn relieve(&mut self) -> anyhow::Result<()> {
        self.finish_ended()?;
        self.dataset.seal_all()?;
        self.dataset.commit()?;
        if let Some(tables) = &mut self.telemetry {
            tables.flush_now()?;
        }
        Ok(())
    }

    fn close(mut self: Box<Self>) -> anyhow::Result<OutputSummary> {
        self.finish_ended()?;
        let ParquetOutput {
            dataset,
            telemetry,
            config,
            ..
        } = *self;
        let out = config.out;
        let meters = dataset.close()?;
        let dataset = match telemetry {
            // A telemetry run lists its own tables, not empty meter ones.
            Some(tables) if meters.rows.values().all(|rows| *rows == 0) => tables.close()?,
            Some(tables) => merged(meters, tables.close()?),
            None => meters,
        };
        Ok(summary_of(&dataset, &out))
    }
}

/// `parquet: N files under DIR (rows: table n, …)`, the rows a re-run found
/// already held, and the rows per table.
fn summary_of(dataset: &DatasetSummary, out: &std::path::Path) -> OutputSummary {
    let counts = |rows: &std::collections::BTreeMap<&'static str, u64>| {
        let rows: Vec<String> = rows
            .iter()
            .map(|(table, rows)| format!("{table} {rows}"))
            .collect();
        rows.join(", ")
    };
    let mut summary = OutputSummary::new(ParquetOutput::NAME);
    summary.lines.push(format!(
        "parquet: {} files under {} (rows: {})",
        dataset.files.len(),
        out.display(),
        counts(&dataset.rows)
    ));
    if !dataset.already_held.is_empty() {
        summary.lines.push(format!(
            "parquet: rows the dataset already held, not written again: {}",
            counts(&dataset.already_held)
        ));
    }
    summary
        .totals
        .insert("files".into(), dataset.files.len() as u64);
    for (table, rows) in &dataset.rows {
        summary.totals.insert(format!("rows.{table}"), *rows);
    }
    for (table, rows) in &dataset.already_held {
        summary
            .totals
            .insert(format!("already_held.{table}"), *rows);
    }
    summary
}
