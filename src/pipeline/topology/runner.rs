//! One output's thread: takes records in seq order (reading from the record
//! log whatever its queue dropped), flushes on the output's interval and
//! acks in the log what the output made durable.
//!
//! When the output fails (disk full, a target gone), its in-memory state is
//! dropped, it is built again after a backoff and fed from its last ack:
//! the log holds everything it had not made durable, and the output's own
//! commit protocol keeps the replay from writing anything twice. Without a
//! log there is nothing to replay from: the first failure ends the output.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::model::backoff::Backoff;
use crate::model::run_report::OutputSummary;
use crate::model::Record;
use crate::pipeline::record_log::{RecordLog, ReplayMark};
use crate::sink::output::{Output, OutputMetrics};

use super::bus::Entry;
use super::codec;
use super::health::HealthBoard;

/// Builds (and after a failure rebuilds) an output.
pub type OutputFactory = Box<dyn FnMut() -> anyhow::Result<Box<dyn Output>> + Send>;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The metrics of the output a runner holds now (none while it is down).
pub type MetricsSlot = Arc<Mutex<Option<Arc<dyn OutputMetrics>>>>;

/// A running output.
pub struct OutputRunner {
    pub name: &'static str,
    metrics: MetricsSlot,
    thread: JoinHandle<anyhow::Result<OutputSummary>>,
}

impl OutputRunner {
    pub fn start(
        name: &'static str,
        output: Option<Box<dyn Output>>,
        factory: OutputFactory,
        entries: Receiver<Entry>,
        log: Option<Arc<RecordLog>>,
        health: Arc<HealthBoard>,
    ) -> anyhow::Result<Self> {
        health.register(name);
        let next = log
            .as_ref()
            .and_then(|log| log.acked(name))
            .map_or(1, |acked| acked + 1);
        let retry_at = Instant::now();
        let metrics = MetricsSlot::default();
        let runner = Runner {
            name,
            metrics: Arc::clone(&metrics),
            interval: output
                .as_ref()
                .map_or(Duration::from_secs(1), |o| o.flush_interval()),
            output,
            factory,
            log,
            health,
            next,
            backoff: Backoff::new(MIN_BACKOFF, MAX_BACKOFF),
            retry_at,
            first_error: None,
            replay_mark: None,
        };
        runner.show_metrics();
        let thread = std::thread::Builder::new()
            .name(format!("output-{name}"))
            .spawn(move || runner.run(entries))
            .with_context(|| format!("starting the {name} output thread"))?;
        Ok(OutputRunner {
            name,
            metrics,
            thread,
        })
    }

    /// Where the output's metrics can be read while it runs.
    pub fn metrics(&self) -> MetricsSlot {
        Arc::clone(&self.metrics)
    }

    /// Waits for the output to drain (its queue must be closed) and close.
    pub fn finish(self) -> anyhow::Result<OutputSummary> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the {} output thread panicked", self.name))?
    }
}

struct Runner {
    name: &'static str,
    metrics: MetricsSlot,
    interval: Duration,
    output: Option<Box<dyn Output>>,
    factory: OutputFactory,
    log: Option<Arc<RecordLog>>,
    health: Arc<HealthBoard>,
    /// The seq the output needs next.
    next: u64,
    backoff: Backoff,
    retry_at: Instant,
    /// Without a log: the failure that ended the output.
    first_error: Option<anyhow::Error>,
    /// Where the last catch-up stopped reading the log.
    replay_mark: Option<ReplayMark>,
}

impl Runner {
    fn run(mut self, entries: Receiver<Entry>) -> anyhow::Result<OutputSummary> {
        // What an earlier run left unacknowledged comes first.
        if let Some(log) = self.log.clone().filter(|_| self.output.is_some()) {
            let last = log.last_seq();
            if self.next <= last {
                let result = self.catch_up(last);
                self.settle(result);
            }
        }
        let mut flush_at = Instant::now() + self.interval;
        loop {
            let wait = flush_at.saturating_duration_since(Instant::now());
            match entries.recv_timeout(wait) {
                Ok((seq, record)) => {
                    let result = self.take(seq, &record);
                    self.settle(result);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= flush_at {
                flush_at = Instant::now() + self.interval;
                let result = self.flush(entries.is_empty());
                self.settle(result);
            }
        }
        self.finish()
    }

    /// Feeds one live record, reading any it missed from the log first.
    fn take(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        if !self.ready() || seq < self.next {
            return Ok(());
        }
        if seq > self.next {
            self.catch_up(seq - 1)?;
        }
        self.accept(seq, record)
    }

    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        if let Some(output) = self.output.as_mut() {
            output.accept(seq, record)?;
        }
        self.next = seq + 1;
        Ok(())
    }

    /// Reads entries `next..=through` back from the log into the output.
    fn catch_up(&mut self, through: u64) -> anyhow::Result<()> {
        let Some(log) = self.log.clone() else {
            anyhow::bail!(
                "records {} to {through} never reached this output",
                self.next
            );
        };
        if log.durable_seq() < through {
            log.flush()
                .context("making the record log durable to replay it")?;
        }
        // On from where the last catch-up stopped: an output that keeps
        // falling behind would otherwise decompress its segment from the
        // start each time, and fall further behind.
        let mut replay = log.read_on(self.next - 1, self.replay_mark.take());
        for entry in replay.by_ref() {
            let (seq, bytes) = entry.context("reading the record log")?;
            if seq > through {
                break;
            }
            if seq < self.next {
                continue;
            }
            let record = codec::decode(seq, &bytes)?;
            self.accept(seq, &record)?;
        }
        self.replay_mark = replay.mark();
        // A range the log lost (damage found at open) never comes back.
        while self.next <= through {
            match log.lost_through(self.next) {
                Some(end) => self.next = end + 1,
                None => break,
            }
        }
        if self.next <= through {
            anyhow::bail!(
                "the record log no longer holds records {} to {through}",
                self.next
            );
        }
        Ok(())
    }

    /// Whether the output is up; rebuilds a failed one once its backoff is over.
    fn ready(&mut self) -> bool {
        if self.output.is_some() {
            return true;
        }
        let Some(log) = self.log.clone() else {
            return false;
        };
        if Instant::now() < self.retry_at {
            return false;
        }
        match (self.factory)() {
            Ok(output) => {
                self.interval = output.flush_interval();
                self.output = Some(output);
                self.show_metrics();
                self.next = log.acked(self.name).map_or(1, |acked| acked + 1);
                true
            }
            Err(error) => {
                self.failed(error);
                false
            }
        }
    }

    /// `idle`: the queue is empty, so records it lacks are only in the log.
    fn flush(&mut self, idle: bool) -> anyhow::Result<()> {
        if !self.ready() {
            return Ok(());
        }
        // An idle stream still needs what the log got while the output was down.
        if let Some(log) = self.log.clone().filter(|_| idle) {
            let last = log.durable_seq();
            if self.next <= last {
                self.catch_up(last)?;
            }
        }
        if !self.log_durable_through_next() {
            // The log reports its own failure; the output waits for it.
            return Ok(());
        }
        let Some(output) = self.output.as_mut() else {
            return Ok(());
        };
        if let Some(log) = &self.log {
            let on_disk = log.stats().bytes_on_disk;
            let acked = log.acked(self.name).unwrap_or(0);
            let lowest = log
                .stats()
                .consumers
                .iter()
                .map(|c| c.acked_seq)
                .min()
                .unwrap_or(0);
            if on_disk > log.config().max_bytes / 2 && acked <= lowest {
                tracing::info!(
                    output = self.name,
                    bytes = on_disk,
                    "record log half full behind this output: finishing its files early"
                );
                output.relieve()?;
            }
        }
        let durable = output.flush()?.min(self.next.saturating_sub(1));
        let durable = self
            .log
            .as_ref()
            .map_or(durable, |log| durable.min(log.durable_seq()));
        let degraded = output.degraded();
        if let Some(log) = &self.log {
            log.ack(self.name, durable)
                .with_context(|| format!("acknowledging {} in the record log", self.name))?;
        }
        self.health.ok(self.name, durable, degraded);
        self.backoff.reset();
        Ok(())
    }

    /// Makes the log durable through every record the output took, so that
    /// nothing the output publishes next is missing from the log after a
    /// crash. False when the log cannot write.
    fn log_durable_through_next(&self) -> bool {
        let Some(log) = &self.log else {
            return true;
        };
        let taken = self.next.saturating_sub(1);
        log.durable_seq() >= taken || log.flush().is_ok_and(|durable| durable >= taken)
    }

    fn settle(&mut self, result: anyhow::Result<()>) {
        if let Err(error) = result {
            self.failed(error);
        }
    }

    /// Publishes the metrics of the output it holds now.
    fn show_metrics(&self) {
        let metrics = self.output.as_ref().and_then(|output| output.metrics());
        *self.metrics.lock().unwrap_or_else(|e| e.into_inner()) = metrics;
    }

    /// Drops the output's state; it is rebuilt after the backoff.
    fn failed(&mut self, error: anyhow::Error) {
        self.health.fail(self.name, &error);
        if let Some(output) = self.output.take() {
            // What it held is in the log; closing it now may fail again.
            drop(output);
            self.show_metrics();
        }
        if self.log.is_none() {
            self.first_error.get_or_insert(error);
            return;
        }
        self.retry_at = Instant::now() + self.backoff.next_delay();
    }

    /// At the end: everything the log holds, a last flush, close.
    fn finish(mut self) -> anyhow::Result<OutputSummary> {
        if let Some(log) = self.log.clone() {
            // Retry a failing output a few times before giving up on this run;
            // what it misses stays in the log for the next one.
            for _ in 0..3 {
                let last = log.last_seq();
                let result = self.flush(true).and_then(|()| {
                    if self.output.is_some() && self.next <= last {
                        self.catch_up(last)
                    } else {
                        Ok(())
                    }
                });
                match result {
                    Ok(()) if self.output.is_some() => break,
                    Ok(()) => {
                        std::thread::sleep(self.retry_at.saturating_duration_since(Instant::now()))
                    }
                    Err(error) => self.failed(error),
                }
            }
        }
        if let Some(error) = self.first_error.take() {
            return Err(error.context(format!("the {} output failed", self.name)));
        }
        let Some(output) = self.output.take() else {
            anyhow::bail!("the {} output was failing at shutdown; its records stay in the record log for the next run", self.name);
        };
        if !self.log_durable_through_next() {
            drop(output);
            anyhow::bail!(
                "the record log could not make records up to {} durable, so the {} output was not closed \
                 (it publishes nothing the log lacks); its records are replayed from the log at the next run",
                self.next.saturating_sub(1),
                self.name
            );
        }
        // Closing may need the output to be the only holder of its parts.
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let summary = output.close()?;
        if let Some(log) = &self.log {
            log.ack(self.name, self.next.saturating_sub(1))
                .with_context(|| format!("acknowledging {} in the record log", self.name))?;
        }
        Ok(summary)
    }
}
