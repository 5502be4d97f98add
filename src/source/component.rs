//! Sources as components: the [`Source`] trait every kind of input
//! implements and the [`SourceContext`] the runner hands it. The context's
//! services are traits the runner implements (`pipeline`), so a source
//! knows the records it makes and nothing of the log, the state store, the
//! engine's threads or the outputs behind them. The registry from a
//! pipeline's `[source] kind` to its builder is `pipeline::sources`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::metric::Metric;
use crate::model::run_report::{DeviceSummary, RunReport};
use crate::model::stream_positions::StreamPositions;
use crate::model::{DeviceInfo, EnergyCounters, Record};
use crate::wire::samples::SampleBlock;

use super::capture::SessionDescription;
use super::decoder::Decoded;
use super::event::SourceEvent;

/// An input of a pipeline, built from its config, run by the runner.
pub trait Source: Send {
    /// Where its records come from (recorded in the dataset's file metadata).
    fn origin(&self) -> String;

    /// How the runner keeps the records it produces.
    fn durability(&self) -> Durability;

    /// Meter streams: the window workers the runner starts for it.
    fn engine(&self) -> Option<EngineSpec> {
        None
    }

    /// What it measures about itself, for `/metrics` and `/healthz`.
    fn metrics(&self) -> Option<Arc<dyn SourceMetrics>> {
        None
    }

    /// What the command says once it runs (where it listens, what it reads).
    fn started(&self) -> Vec<String>;

    /// What stopping it on a signal (Ctrl-C, SIGTERM) does, said as it
    /// starts; `None`: a signal does not stop it in order (a batch cannot
    /// stop part way through its files; Ctrl-C ends the process).
    fn stopping(&self) -> Option<&'static str>;

    /// Runs until its input ends or `cx.cancel` fires, then stops taking
    /// input and returns once everything it took is handed on (to the
    /// engine or the record bus). The runner drains the engine and the
    /// outputs after it.
    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<'static, anyhow::Result<SourceEnd>>;
}

/// How the runner keeps a source's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Its input can be read again (capture files, a demo's virtual
    /// meters): no record log, meter state in memory, no `/metrics`.
    Rereadable,
    /// Live input: every record is in the record log before an output may
    /// lose it; an unclean stop loses what came after the log's end, and
    /// that loss is recorded per meter.
    Log,
    /// Live input that its upstream delivers again after an unclean stop
    /// (a writer's JetStream consumer): the record log, and nothing is lost.
    LogRedelivered,
}

impl Durability {
    pub fn has_log(self) -> bool {
        self != Durability::Rereadable
    }
}

/// The window workers a meter-stream source needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSpec {
    pub workers: usize,
    /// Jobs queued per worker before a connection waits.
    pub queue_depth: usize,
    /// Samples taken per session at most (virtual meters that stop after theirs).
    pub sample_limit: Option<u64>,
}

/// What a running source is given.
#[derive(Clone)]
pub struct SourceContext {
    /// Where records go: through the record log (when there is one) to every output.
    pub records: Arc<dyn RecordHandle>,
    /// Per-meter state (energy registers, stream positions), rebuilt from the log.
    pub meters: Arc<dyn MeterStates>,
    /// Health of a source that registers itself beside the outputs.
    pub health: Arc<dyn SourceHealth>,
    /// The window workers, for a source whose [`Source::engine`] asked.
    pub engine: Option<Arc<dyn WindowEngine>>,
    /// The device engine on the source's own threads (capture files read
    /// in parallel); its records go to `records`.
    pub devices: Arc<dyn DeviceEngines>,
    /// Fires when the run is asked to stop.
    pub cancel: CancellationToken,
}

/// What a source's run leaves.
pub struct SourceEnd {
    /// What it took in; the runner adds the devices of its engine, the
    /// outputs, the checkpoint and the time.
    pub report: RunReport,
    /// What to do once the outputs have everything (a cluster node gives
    /// its meters' leases back only after their last records are published).
    pub after_outputs: Option<BoxFuture<'static, ()>>,
}

impl From<RunReport> for SourceEnd {
    fn from(report: RunReport) -> Self {
        SourceEnd {
            report,
            after_outputs: None,
        }
    }
}

/// What a source measures about itself while it runs.
pub trait SourceMetrics: Send + Sync {
    fn metrics(&self) -> Vec<Metric>;

    /// Why the source is unhealthy now (`/healthz` answers 503).
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }

    /// What it is doing, one line for `/healthz` (e.g. `meters streaming: 3`).
    fn status(&self) -> String;
}

/// Where a source hands its records (the runner's record bus).
pub trait RecordHandle: Send + Sync {
    /// Hands a record to every output, through the record log when there
    /// is one; blocks while the log is full. Returns the record's seq.
    fn emit(&self, record: Record) -> anyhow::Result<u64>;

    /// Returns once every record through `seq` is on disk (at once without
    /// a log): a source acknowledges upstream only after this.
    fn make_durable(&self, seq: u64) -> anyhow::Result<()>;

    /// The seq of the last record emitted.
    fn last_seq(&self) -> u64;

    /// Whether raw sample blocks are wanted (the raw archive is on).
    fn wants_raw(&self) -> bool {
        false
    }

    /// Shows a device's newest samples on the live view, when there is one
    /// (past the record log: the waveform is for looking at, not keeping).
    fn tap_samples(&self, _device: &DeviceInfo, _block: &SampleBlock) {}
}

/// Per-meter state the runner keeps from the records (energy registers,
/// how far each meter's results reach, a writer's stream positions).
pub trait MeterStates: Send + Sync {
    /// Takes the registers a meter's records left in the cluster (it
    /// connected here, last streamed to `from_node`), unless this node's
    /// own state is as far.
    fn adopt(
        &self,
        meter: &str,
        energy: EnergyCounters,
        covered_until_ns: i64,
        from_node: &str,
        this_node: &str,
    );

    /// Forgets meters idle longer than `max_idle_ns`; returns their names.
    fn evict_idle(&self, now_ns: i64, max_idle_ns: i64) -> Vec<String>;

    /// How far a writer has read the cluster's stream.
    fn positions(&self) -> StreamPositions;
}

/// `/healthz` for a source that reports its own health (a writer's consumer).
pub trait SourceHealth: Send + Sync {
    fn register(&self, name: &'static str);
    fn fail(&self, name: &'static str, error: &anyhow::Error);
    fn ok(&self, name: &'static str, position: u64, degraded: Option<String>);
}

/// The window workers of a meter-stream source: each session's jobs go,
/// in order, to one worker.
pub trait WindowEngine: Send + Sync {
    /// The queue of the least loaded worker for a stream of `load` bytes
    /// per second; dropping the lane gives its load back.
    fn assign(&self, load: u64) -> EngineLane;
}

/// The engine of one device at a time, driven by the source itself.
pub trait DeviceEngines: Send + Sync {
    /// The engine of `session`'s device; its records go to the run's outputs.
    fn open(&self, session: &SessionDescription) -> anyhow::Result<Box<dyn DeviceLane>>;
}

/// One device's engine: blocks and stream events in, records out.
pub trait DeviceLane: Send {
    fn block(&mut self, block: &SampleBlock);
    fn event(&mut self, event: &SourceEvent);
    /// Continues the energy registers of an earlier session of the device.
    fn restore_energy(&mut self, energy: EnergyCounters);
    fn energy(&self) -> &EnergyCounters;
    /// Flushes what is pending (the last window, open aggregates).
    fn finish(self: Box<Self>) -> DeviceSummary;
}

/// One session's way into a worker.
pub struct EngineLane {
    pub sender: mpsc::Sender<Job>,
    /// Gives the load back when dropped.
    pub held: Box<dyn Send + Sync>,
}

/// What a meter-stream session hands to its worker.
pub enum Job {
    /// A meter started sampling on connection `connection`.
    Start {
        connection: u64,
        description: Box<SessionDescription>,
        counters: Arc<EngineCounters>,
    },
    /// Items that arrived together; `arrived` is the earliest they may have
    /// reached the socket (the read, or the start of the pause before it).
    Items {
        connection: u64,
        items: Vec<Decoded>,
        arrived: Instant,
    },
    /// The connection is over: finish the device, save its state.
    End { connection: u64 },
}

/// What the engine counts per meter, for the source's `/metrics`.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub samples: AtomicU64,
    pub windows: AtomicU64,
}
