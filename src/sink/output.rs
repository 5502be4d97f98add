//! The one interface every output has: the topology hands it records in
//! record-log order, asks it now and then to make them durable, and reads
//! how far it got. Adding an output means implementing this, nothing else.

use std::time::Duration;

use crate::model::Record;

use super::packet::TargetStats;
use super::parquet::DatasetSummary;

/// What a closed output did, for the run's summary.
#[derive(Debug, Default)]
pub struct OutputSummary {
    pub dataset: Option<DatasetSummary>,
    pub packets_built: u64,
    pub targets: Vec<TargetStats>,
    pub spooled: u64,
}

impl OutputSummary {
    /// Folds another output's summary into this one.
    pub fn merge(&mut self, other: OutputSummary) {
        if other.dataset.is_some() {
            self.dataset = other.dataset;
        }
        self.packets_built += other.packets_built;
        self.targets.extend(other.targets);
        self.spooled += other.spooled;
    }
}

/// A sink of records.
pub trait Output: Send {
    /// Stable name: the consumer name in the record log, the `output` label
    /// of the metrics, the word in `/healthz`.
    fn name(&self) -> &'static str;

    /// Takes record `seq` (seqs are dense and increasing; an output sees
    /// every one, including kinds it ignores).
    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()>;

    /// Makes what it can durable; returns the seq through which every
    /// accepted record is durable in this output (what it acks in the log).
    fn flush(&mut self) -> anyhow::Result<u64>;

    /// How often the topology calls `flush`.
    fn flush_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// The record log is half full and this output holds it back: make
    /// everything accepted durable now, even if that means smaller files.
    fn relieve(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Why the output is degraded while it still accepts records (a
    /// delivery target down, packets spooling); `None` when all is well.
    fn degraded(&self) -> Option<String> {
        None
    }

    /// Flushes and finishes everything (last files, last packets).
    fn close(self: Box<Self>) -> anyhow::Result<OutputSummary>;
}
