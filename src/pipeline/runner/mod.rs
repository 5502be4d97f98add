//! The one runner of every mode (`run`, `batch`, `sink`, telemetry, cluster
//! ingest and writer nodes): it builds the source from the registry, the
//! record log and meter state its durability asks for, the window workers
//! its engine needs and the outputs (the [`Topology`]); serves `/metrics`,
//! `/healthz` and the live view (`/api`) for every long-running pipeline; and stops in one order:
//! the source stops taking input → the engine drains → the outputs catch
//! up and close → the state is snapshotted and the log closed. Every
//! command prints from the one [`RunReport`] it returns.

mod endpoint;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::config::PipelineConfig;
use super::device::DeviceFactory;
use super::sources::{self, Role, RunOptions};
use super::state::StateStore;
use super::topology::{Durable, Publish, Topology};
use super::workers::{WorkerContext, WorkerPool};
use crate::model::run_report::RunReport;
use crate::source::component::{
    Durability, Source, SourceContext, SourceEnd, SourceMetrics, WindowEngine,
};
use crate::source::jetstream::writer_name;

pub use view::RunView;

/// A pipeline whose source, engine and outputs are built, ready to run.
pub struct Run {
    config: PipelineConfig,
    source: Box<dyn Source>,
    topology: Topology,
    state: Arc<StateStore>,
    engine: Option<(Arc<WorkerPool>, Arc<WorkerContext>)>,
    metrics_listener: Option<TcpListener>,
    /// The token `/`, `/api` and `/metrics` require (`service.http_token_file`).
    http_token: Option<String>,
    source_metrics: Option<Arc<dyn SourceMetrics>>,
    durable: bool,
    stopping: CancellationToken,
    started: Instant,
}

/// Builds the run of `config` for `options`: its source from the registry.
/// Call inside a tokio runtime.
pub async fn start(config: PipelineConfig, options: RunOptions) -> anyhow::Result<Run> {
    let config = match options.role {
        Role::Writer => super::cluster::writer::node_config(config)?,
        Role::Pipeline => config,
    };
    let source = sources::build(config.clone(), options).await?;
    let (publish, node) = match options.role {
        Role::Writer => (None, config.cluster.as_ref().map(writer_name)),
        Role::Pipeline => {
            let publish = sources::ingest_publish(&config);
            let node = publish.as_ref().map(|p| p.node.clone());
            (publish, node)
        }
    };
    start_with(config, source, publish, node).await
}

/// Builds the run of a source its caller built (tests, benchmarks).
pub async fn start_source(config: PipelineConfig, source: Box<dyn Source>) -> anyhow::Result<Run> {
    let publish = sources::ingest_publish(&config);
    let node = publish.as_ref().map(|p| p.node.clone());
    start_with(config, source, publish, node).await
}

/// `publish`: a cluster ingest node's records go to JetStream; `node`:
/// which node of a cluster this is.
async fn start_with(
    config: PipelineConfig,
    source: Box<dyn Source>,
    publish: Option<Publish>,
    node: Option<String>,
) -> anyhow::Result<Run> {
    let durability = source.durability();
    let durable = durability.has_log();
    let service = &config.service;
    let metrics_listener = if durable && service.metrics {
        Some(
            TcpListener::bind(service.metrics_listen)
                .await
                .with_context(|| format!("serving metrics on {}", service.metrics_listen))?,
        )
    } else {
        None
    };
    let http_token = match metrics_listener {
        Some(_) => service.http_token()?,
        None => None,
    };
    let state = Arc::new(if durable {
        StateStore::open(&service.state_dir)?
    } else {
        StateStore::in_memory()
    });
    let topology = Topology::start(
        &config,
        &source.origin(),
        durable.then(|| Durable {
            log: config.record_log(),
            state: Arc::clone(&state),
            publish,
            node,
            crash_loses_results: durability == Durability::Log,
        }),
    )?;
    let engine = match source.engine() {
        Some(spec) => {
            let context = Arc::new(WorkerContext {
                config: config.clone(),
                records: topology.bus(),
                state: Arc::clone(&state),
                window_latency: Default::default(),
                sample_limit: spec.sample_limit,
            });
            let pool = WorkerPool::start(spec.workers, spec.queue_depth, Arc::clone(&context))?;
            Some((Arc::new(pool), context))
        }
        None => None,
    };
    Ok(Run {
        source_metrics: source.metrics(),
        config,
        source,
        topology,
        state,
        engine,
        metrics_listener,
        http_token,
        durable,
        stopping: CancellationToken::new(),
        started: Instant::now(),
    })
}

impl Run {
    /// What the command says once the run starts.
    pub fn started(&self) -> Vec<String> {
        let mut lines = self.source.started();
        if let Some(address) = self.metrics_addr() {
            lines.push(format!("meterflow: metrics on http://{address}/metrics"));
        }
        if self.durable && !self.state.is_empty() {
            lines.push(format!(
                "meterflow: continuing the state of {} meters",
                self.state.len()
            ));
        }
        lines
    }

    /// What a signal does to this run (see [`Source::stopping`]).
    pub fn stopping(&self) -> Option<&'static str> {
        self.source.stopping()
    }

    /// Where `/metrics` and `/healthz` answer (long-running pipelines).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// A view of the running pipeline that does not keep its parts alive.
    pub fn view(&self) -> RunView {
        RunView {
            health: self.topology.health(),
            bus: Arc::downgrade(&self.topology.bus()),
            log: self.topology.log().as_ref().map(Arc::downgrade),
            outputs: self.topology.outputs(),
            engine: self
                .engine
                .as_ref()
                .map(|(pool, context)| (Arc::downgrade(pool), Arc::downgrade(context))),
            source: self.source_metrics.clone(),
            started: self.started,
            stopping: self.stopping.clone(),
            live: self.topology.live(),
        }
    }

    /// Runs until the source's input ends or `cancel` fires, then stops in
    /// order (module docs) and returns the report.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<RunReport> {
        let view = self.view();
        let endpoint_stop = CancellationToken::new();
        let endpoint = self.metrics_listener.map(|listener| {
            let access = endpoint::Access {
                token: self.http_token.clone(),
            };
            tokio::spawn(endpoint::serve(
                listener,
                view,
                access,
                endpoint_stop.clone(),
            ))
        });
        let stopping = self.stopping.clone();
        let forward = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                stopping.cancel();
            })
        };
        let cx = SourceContext {
            records: self.topology.bus(),
            meters: Arc::clone(&self.state) as _,
            health: self.topology.health(),
            engine: self
                .engine
                .as_ref()
                .map(|(pool, _)| Arc::clone(pool) as Arc<dyn WindowEngine>),
            devices: Arc::new(DeviceFactory {
                config: self.config.clone(),
                records: self.topology.bus(),
            }),
            cancel,
        };
        let ended = self.source.run(cx).await;
        self.stopping.cancel();
        forward.abort();

        // The engine finishes every device the source handed it.
        let engine_started = Instant::now();
        let mut devices = Vec::new();
        if let Some((pool, context)) = self.engine {
            let pool = Arc::try_unwrap(pool)
                .map_err(|_| anyhow::anyhow!("a connection still holds the window workers"))?;
            devices = tokio::task::spawn_blocking(move || pool.finish())
                .await
                .context("window workers")?;
            devices.sort_by(|a, b| a.device.cmp(&b.device));
            drop(context);
        }
        let engine_s = engine_started.elapsed().as_secs_f64();
        let outputs_started = Instant::now();
        let topology = self.topology;
        let outputs = tokio::task::spawn_blocking(move || topology.close())
            .await
            .context("output threads")?;
        // Where a shutdown's time goes (the source's part ends before these).
        tracing::info!(
            engine_s = format_args!("{engine_s:.2}"),
            outputs_s = format_args!("{:.2}", outputs_started.elapsed().as_secs_f64()),
            "engine drained and outputs closed"
        );
        let SourceEnd {
            mut report,
            after_outputs,
        } = ended?;
        let outputs = outputs?;
        if let Some(after) = after_outputs {
            after.await;
        }
        endpoint_stop.cancel();
        if let Some(task) = endpoint {
            match task.await {
                Ok(Err(error)) => tracing::warn!(%error, "metrics endpoint"),
                Err(error) => tracing::warn!(%error, "metrics endpoint task"),
                Ok(Ok(())) => {}
            }
        }
        if report.devices.is_empty() {
            report.devices = devices;
        }
        report.outputs = outputs;
        if self.durable {
            report.checkpoint.get_or_insert_with(|| self.state.path());
        }
        report.elapsed_s = self.started.elapsed().as_secs_f64();
        Ok(report)
    }
}
