//! The one interface every output has: the topology hands it records in
//! record-log order, asks it now and then to make them durable, and reads
//! how far it got. Adding an output means implementing this, nothing else.

use std::sync::Arc;
use std::time::Duration;

use crate::model::latency::LatencySnapshot;
use crate::model::metric::Metric;
use crate::model::run_report::OutputSummary;
use crate::model::Record;

/// What a running output measures about itself, read from other threads
/// (`/metrics`, benchmarks) while the output works on its own.
pub trait OutputMetrics: Send + Sync {
    fn metrics(&self) -> Vec<Metric>;

    /// From a record's input to its output, where the output measures it.
    fn latency(&self) -> Option<LatencySnapshot> {
        None
    }

    /// Forgets the latencies recorded so far (a benchmark's warm-up).
    fn reset_latency(&self) {}
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

    /// Its metrics while it runs; the runner drops its handle before
    /// [`close`](Self::close).
    fn metrics(&self) -> Option<Arc<dyn OutputMetrics>> {
        None
    }

    /// Flushes and finishes everything (last files, last packets).
    fn close(self: Box<Self>) -> anyhow::Result<OutputSummary>;
}
