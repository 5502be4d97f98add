//! The one topology every meter pipeline runs on: records enter through
//! the [`RecordBus`], optionally pass the write-ahead record log, and reach
//! every output on its own thread ([`runner`]). The topology owns the flush
//! policy (each output's interval, the log's fsync interval, snapshots of
//! the meter state), health, and the shutdown order: sources stop and the
//! engine drains first (the caller), then [`Topology::close`] drains the
//! queues, flushes and closes every output, snapshots and closes the log.

pub mod bus;
pub mod codec;
pub mod health;
mod lost_spans;
pub mod output_metrics;
pub mod runner;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::bounded;

use crate::model::run_report::OutputSummary;
use crate::nats::config::ClusterConfig;
use crate::sink::live::{LiveBoard, FORGET_AFTER};

use super::config::PipelineConfig;
use super::outputs::{self, BuiltOutput, OutputContext};
use super::record_log::{Flusher, RecordLog, RecordLogConfig};
use super::state::StateStore;

pub use bus::RecordBus;
pub use health::{HealthBoard, OutputHealth};
pub use output_metrics::OutputViews;
use runner::OutputRunner;

/// Records queued per output before, with a log, it reads from the log instead.
const QUEUE_DEPTH: usize = 4096;
/// How often the meter state is snapshotted into the log.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);
/// The marker of a running sink: found at start, the last run did not stop cleanly.
const RUNNING_MARKER: &str = "running";
const LOG_ID_FILE: &str = "log-id";

/// Durability: the log and the state derived from it.
pub struct Durable {
    pub log: RecordLogConfig,
    pub state: Arc<StateStore>,
    /// An ingest node of a cluster: its one output publishes to JetStream
    /// (the writers run the dataset and packets).
    pub publish: Option<Publish>,
    /// Which node of a cluster this is (an ingest or a writer node), for
    /// the live view to say.
    pub node: Option<String>,
    /// Whether an unclean stop loses results (a writer loses none:
    /// JetStream redelivers what its log did not take).
    pub crash_loses_results: bool,
}

/// Where an ingest node publishes.
#[derive(Clone)]
pub struct Publish {
    pub cluster: ClusterConfig,
    pub node: String,
}

/// A running topology.
pub struct Topology {
    bus: Arc<RecordBus>,
    runners: Vec<OutputRunner>,
    log: Option<Arc<RecordLog>>,
    flusher: Option<Flusher>,
    health: Arc<HealthBoard>,
    state: Option<Arc<StateStore>>,
    snapshots: Option<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)>,
    outputs: OutputViews,
    live: Option<Arc<LiveBoard>>,
}

impl Topology {
    /// Builds the outputs the registry finds in `config` (`source` goes
    /// into file metadata). With `durable`, records go through the record
    /// log in `durable.log`: the meter state is rebuilt from it, and each
    /// output is first fed what it had not acknowledged before. Call inside
    /// a tokio runtime (packet delivery runs on it).
    pub fn start(
        config: &PipelineConfig,
        source: &str,
        durable: Option<Durable>,
    ) -> anyhow::Result<Self> {
        let health = Arc::new(HealthBoard::default());
        let publish = durable.as_ref().and_then(|d| d.publish.clone());
        // A long-running pipeline serves the live view next to `/metrics`.
        let live = (durable.is_some() && config.service.metrics).then(|| {
            let node = durable.as_ref().and_then(|d| d.node.clone());
            Arc::new(LiveBoard::new(node, FORGET_AFTER))
        });
        let mut cx = OutputContext {
            config: config.clone(),
            source: source.to_owned(),
            log_id: None,
            publish,
            live,
        };
        if cx.publish.is_some() && durable.is_none() {
            anyhow::bail!("publishing to JetStream needs the record log");
        }
        let (log, state, lost) = match durable {
            Some(durable) => {
                let opened = open_log(&outputs::wanted(&cx), durable)?;
                cx.log_id = Some(opened.id);
                (Some(opened.log), Some(opened.state), opened.lost)
            }
            None => (None, None, Vec::new()),
        };
        let raw = outputs::wants_raw(&cx);
        let built = outputs::build(&cx)?;
        let topology = Self::with_outputs(built, log, state, health, raw, cx.live)?;
        for row in lost {
            // A refusal is logged and counted by the bus.
            let _ = topology.bus.record_loss(row);
        }
        Ok(topology)
    }

    /// Starts a runner per output, the bus, the log's flusher and snapshots.
    fn with_outputs(
        built: Vec<BuiltOutput>,
        log: Option<Arc<RecordLog>>,
        state: Option<Arc<StateStore>>,
        health: Arc<HealthBoard>,
        raw: bool,
        live: Option<Arc<LiveBoard>>,
    ) -> anyhow::Result<Self> {
        let mut senders = Vec::new();
        let mut runners = Vec::new();
        for BuiltOutput {
            name,
            retry_first,
            mut factory,
        } in built
        {
            // The first build's error is a configuration error: report it
            // now. An output on a broker is built on its own thread instead
            // (it may block on the network), and retried while it fails.
            let output = if retry_first && log.is_some() {
                None
            } else {
                Some(factory()?)
            };
            let (sender, receiver) = bounded(QUEUE_DEPTH);
            senders.push(sender);
            runners.push(OutputRunner::start(
                name,
                output,
                factory,
                receiver,
                log.clone(),
                Arc::clone(&health),
            )?);
        }
        let outputs = OutputViews::new(runners.iter().map(|r| (r.name, r.metrics())).collect());
        let bus = Arc::new(RecordBus::new(
            senders,
            log.clone(),
            state.clone(),
            raw,
            live.clone(),
        ));
        let flusher = match &log {
            Some(log) => Some(log.spawn_flusher()?),
            None => None,
        };
        let snapshots = match (&log, &state) {
            (Some(log), Some(state)) => Some(spawn_snapshots(&bus, log, state)?),
            _ => None,
        };
        Ok(Topology {
            bus,
            runners,
            log,
            flusher,
            health,
            state,
            snapshots,
            outputs,
            live,
        })
    }

    /// The live view's board, when the run serves one.
    pub fn live(&self) -> Option<Arc<LiveBoard>> {
        self.live.clone()
    }

    /// What the outputs measure while they run.
    pub fn outputs(&self) -> OutputViews {
        self.outputs.clone()
    }

    /// Where sources and the engine hand their records.
    pub fn bus(&self) -> Arc<RecordBus> {
        Arc::clone(&self.bus)
    }

    pub fn health(&self) -> Arc<HealthBoard> {
        Arc::clone(&self.health)
    }

    pub fn log(&self) -> Option<Arc<RecordLog>> {
        self.log.clone()
    }

    /// Drains every output and closes them, then the log. Blocking: the
    /// engine must have finished (no more records). Every output is closed
    /// even when one fails; the first error is returned.
    pub fn close(self) -> anyhow::Result<Vec<OutputSummary>> {
        let Topology {
            bus,
            runners,
            log,
            flusher,
            health: _,
            state,
            snapshots,
            outputs: _,
            live: _,
        } = self;
        bus.close();
        let mut summaries = Vec::new();
        let mut first_error = None;
        for runner in runners {
            match runner.finish() {
                Ok(done) => summaries.push(done),
                Err(error) => {
                    tracing::error!("{error:#}");
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some((stop, thread)) = snapshots {
            drop(stop);
            let _ = thread.join();
        }
        if let (Some(log), Some(state)) = (&log, &state) {
            snapshot(&bus, log, state, &mut false);
            if let Some(flusher) = flusher {
                flusher.stop().context("stopping the record log flusher")?;
            }
            log.close().context("closing the record log")?;
            let _ = std::fs::remove_file(state_dir_of(log).join(RUNNING_MARKER));
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(summaries),
        }
    }
}

fn state_dir_of(log: &RecordLog) -> std::path::PathBuf {
    log.config().dir.clone()
}

/// The record log as `open_log` found it.
struct OpenedLog {
    log: Arc<RecordLog>,
    state: Arc<StateStore>,
    id: String,
    /// A `lost_results` row per meter for what damage inside the log lost.
    lost: Vec<crate::model::EventRow>,
}

/// Opens the log for these consumers, rebuilds the meter state from its
/// snapshot and tail, and notes a crash of the last run (its results after
/// the log's end are lost) and what damage inside the log lost.
fn open_log(consumers: &[&str], durable: Durable) -> anyhow::Result<OpenedLog> {
    let (log, recovery) = RecordLog::open(durable.log.clone(), consumers)?;
    let dir = &durable.log.dir;
    let log_id = log_id(dir)?;
    let state = durable.state;
    if let Some(snapshot) = &recovery.snapshot {
        state.restore(&snapshot.bytes)?;
    }
    let after = recovery.snapshot.as_ref().map_or(0, |s| s.seq);
    let mut replayed = 0u64;
    for entry in log.read_from(after) {
        let (seq, bytes) = entry.context("reading the record log")?;
        match codec::decode(seq, &bytes) {
            Ok(record) => {
                state.apply(&record);
                replayed += 1;
            }
            Err(error) => tracing::warn!("{error:#}"),
        }
    }
    let lost = if recovery.lost.is_empty() {
        Vec::new()
    } else {
        let passed = recovery
            .acked
            .iter()
            .map(|&(_, acked)| acked)
            .chain(recovery.snapshot.as_ref().map(|s| s.seq))
            .min()
            .unwrap_or(0);
        lost_spans::lost_result_rows(&log, &recovery.lost, passed, &state)?
    };
    let marker = dir.join(RUNNING_MARKER);
    let crashed = marker.exists();
    if crashed && !durable.crash_loses_results {
        tracing::warn!(log = %dir.display(), "the last run did not stop cleanly; the cluster redelivers what its log lacks");
    } else if crashed {
        state.mark_crashed();
        tracing::warn!(
            log = %dir.display(),
            meters = state.len(),
            "the last run did not stop cleanly: results after the record log's end are lost, recorded per meter when it comes back"
        );
    }
    std::fs::write(&marker, b"").with_context(|| format!("writing {}", marker.display()))?;
    tracing::info!(
        log = %dir.display(),
        entries = recovery.entries,
        replayed_into_state = replayed,
        torn_bytes = recovery.torn_bytes,
        lost_ranges = recovery.lost.len(),
        "record log open"
    );
    Ok(OpenedLog {
        log: Arc::new(log),
        state,
        id: log_id,
        lost,
    })
}

/// The log's identity, made once: another log's seqs mean nothing to a dataset.
fn log_id(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(LOG_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
    let seed = format!(
        "{}-{}-{}",
        dir.display(),
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes()).to_string();
    crate::sink::atomic_file::write_atomically(&path, id.as_bytes())?;
    Ok(id)
}

/// Snapshots the meter state into the log (and its readable copy); returns
/// whether that worked, so failures are logged once per change.
fn snapshot(bus: &RecordBus, log: &RecordLog, state: &StateStore, failing: &mut bool) {
    let Some((seq, bytes)) = bus.state_at() else {
        return;
    };
    let result = log.write_snapshot(seq, &bytes).map(drop).and_then(|()| {
        state
            .save()
            .map(drop)
            .context("the readable checkpoint copy")
    });
    match result {
        Err(error) if !*failing => {
            *failing = true;
            tracing::warn!(
                "meter state snapshot failed, retried every {SNAPSHOT_EVERY:?}: {error:#}"
            );
        }
        Ok(()) if *failing => {
            *failing = false;
            tracing::warn!("meter state snapshots work again");
        }
        _ => {}
    }
}

fn spawn_snapshots(
    bus: &Arc<RecordBus>,
    log: &Arc<RecordLog>,
    state: &Arc<StateStore>,
) -> anyhow::Result<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)> {
    let (stop, stopped) = bounded::<()>(0);
    let (bus, log, state) = (Arc::clone(bus), Arc::clone(log), Arc::clone(state));
    let thread = std::thread::Builder::new()
        .name("state-snapshots".into())
        .spawn(move || {
            let mut failing = false;
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(SNAPSHOT_EVERY)
            {
                snapshot(&bus, &log, &state, &mut failing);
            }
        })
        .context("starting the snapshot thread")?;
    Ok((stop, thread))
}
