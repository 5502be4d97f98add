//! Sources as components: the [`Source`] trait every kind of input
//! implements, the [`SourceContext`] the runner hands it, and the registry
//! from the pipeline's `[source] kind` to the builder of its component.
//! Adding a source is its module and one line in [`SOURCES`]; the runner
//! (`pipeline::runner`) does the rest the same way for every kind.

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::model::metric::Metric;

use super::config::PipelineConfig;
use super::record_log::RecordLog;
use super::server::state::StateStore;
use super::server::workers::WorkerPool;
use super::topology::{HealthBoard, Publish, RecordBus};
use crate::model::run_report::RunReport;

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

    /// A cluster ingest node: its records go to JetStream, not to the
    /// pipeline's own outputs.
    fn publish(&self) -> Option<Publish> {
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
    pub config: PipelineConfig,
    /// Where records go: through the record log (when there is one) to every output.
    pub records: Arc<RecordBus>,
    /// Per-meter state (energy registers, positions), rebuilt from the log.
    pub state: Arc<StateStore>,
    /// The record log, for a source that acknowledges upstream only once
    /// its records are durable.
    pub log: Option<Arc<RecordLog>>,
    /// Health of the outputs, and of a source that registers itself.
    pub health: Arc<HealthBoard>,
    /// The window workers, for a source whose [`Source::engine`] asked.
    pub engine: Option<Arc<WorkerPool>>,
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

/// What a run is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// The pipeline's own `[source]`.
    #[default]
    Pipeline,
    /// A writer node: the cluster's JetStream records into the outputs.
    Writer,
}

/// How a run shows itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub role: Role,
    /// A progress bar for files (a terminal is watching).
    pub progress: bool,
}

type Builder =
    fn(PipelineConfig, RunOptions) -> BoxFuture<'static, anyhow::Result<Box<dyn Source>>>;

/// `[source] kind` → the builder of its component.
const SOURCES: &[(&str, Builder)] = &[
    ("files", |config, options| {
        super::batch::FilesSource::build(config, options.progress).boxed()
    }),
    ("virtual_meters", |config, _| {
        super::live::VirtualMeters::build(config).boxed()
    }),
    ("smartmeter_server", |config, _| {
        super::server::StreamSink::build(config).boxed()
    }),
    ("smartmeter_client", |config, _| {
        super::server::StreamSink::build(config).boxed()
    }),
    ("telemetry", |config, _| {
        super::telemetry::Telemetry::build(config).boxed()
    }),
];

/// Builds the source of `config` for `options.role` (a writer node's
/// JetStream consumer, or the component of its `[source] kind`).
pub async fn build(config: PipelineConfig, options: RunOptions) -> anyhow::Result<Box<dyn Source>> {
    if options.role == Role::Writer {
        return super::cluster::writer::Writer::build(config);
    }
    let kind = config.source.kind();
    let (_, build) = SOURCES
        .iter()
        .find(|(name, _)| *name == kind)
        .with_context(|| format!("no source component for kind {kind:?}"))?;
    build(config, options).await
}
