//! The source registry and the one way every command runs a pipeline:
//! [`start`] builds the source the pipeline's `[source] kind` names (or a
//! writer node's JetStream consumer), the command prints what it
//! [`Source::started`], and [`Source::run`] goes until the input ends or
//! the run is cancelled, stops in order (sources, engine, outputs, state)
//! and returns the one [`RunReport`]. Adding a source is a component and a
//! line in [`SOURCES`].

use std::path::PathBuf;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::batch::{expand_inputs, run_batch};
use super::batch_request::raw_params;
use super::cluster::writer::Writer;
use super::config::{FilesConfig, PipelineConfig, SourceConfig, VirtualMetersConfig};
use super::live::run_virtual_meters;
use super::run_report::RunReport;
use super::server::StreamSink;
use super::telemetry::{start_telemetry, TelemetryRun};

/// A running source of a pipeline, its engine and outputs.
pub trait Source: Send {
    /// What the command says once the source runs (where it listens, what it continues).
    fn started(&self) -> Vec<String>;

    /// What stopping it on a signal (Ctrl-C, SIGTERM) does, said as it
    /// starts; `None`: a signal does not stop it in order (a batch cannot
    /// stop part way through its files; Ctrl-C ends the process).
    fn stopping(&self) -> Option<&'static str>;

    /// Runs until the input ends or `cancel` fires, then stops in order:
    /// sources, engine, outputs, state.
    fn run(
        self: Box<Self>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>>;
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
    ("files", |config, options| files(config, options).boxed()),
    ("virtual_meters", |config, _| virtual_meters(config).boxed()),
    ("smartmeter_server", |config, _| meter_link(config).boxed()),
    ("smartmeter_client", |config, _| meter_link(config).boxed()),
    ("telemetry", |config, _| telemetry(config).boxed()),
];

/// Builds the source of `config` for `options.role`, its engine and outputs.
/// Call inside a tokio runtime.
pub async fn start(config: PipelineConfig, options: RunOptions) -> anyhow::Result<Box<dyn Source>> {
    if options.role == Role::Writer {
        return jetstream(config);
    }
    let kind = config.source.kind();
    let (_, build) = SOURCES
        .iter()
        .find(|(name, _)| *name == kind)
        .with_context(|| format!("no source component for kind {kind:?}"))?;
    build(config, options).await
}

/// Capture files, read in parallel: a batch.
struct Files {
    config: PipelineConfig,
    paths: Vec<PathBuf>,
    source: FilesConfig,
    progress: bool,
}

async fn files(config: PipelineConfig, options: RunOptions) -> anyhow::Result<Box<dyn Source>> {
    let SourceConfig::Files(source) = config.source.clone() else {
        anyhow::bail!("not a files source");
    };
    let paths = expand_inputs(&source.paths, &raw_params(&source.raw)?)?;
    if paths.is_empty() {
        anyhow::bail!("no capture files found in the inputs");
    }
    Ok(Box::new(Files {
        config,
        paths,
        source,
        progress: options.progress,
    }))
}

impl Source for Files {
    fn started(&self) -> Vec<String> {
        Vec::new()
    }

    fn stopping(&self) -> Option<&'static str> {
        None
    }

    fn run(
        self: Box<Self>,
        _cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>> {
        async move {
            let raw = raw_params(&self.source.raw)?;
            run_batch(&self.config, &self.paths, &raw, self.progress)
                .await
                .context("running the batch")
        }
        .boxed()
    }
}

/// Virtual meters dialing into an in-process stream sink.
struct VirtualMeters {
    config: PipelineConfig,
    meters: VirtualMetersConfig,
}

async fn virtual_meters(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
    let SourceConfig::VirtualMeters(meters) = config.source.clone() else {
        anyhow::bail!("not a virtual_meters source");
    };
    Ok(Box::new(VirtualMeters { config, meters }))
}

impl Source for VirtualMeters {
    fn started(&self) -> Vec<String> {
        let meters = &self.meters;
        vec![format!(
            "meterflow: pipeline {:?}: {} virtual meters, {} s of {} at {} Hz each ({})",
            self.config.name,
            meters.meter.len(),
            meters.seconds,
            meters.measures,
            meters.rate,
            if meters.realtime {
                "real time"
            } else {
                "as fast as possible"
            }
        )]
    }

    fn stopping(&self) -> Option<&'static str> {
        Some("stopping: asking every meter to stop, then flushing the outputs")
    }

    fn run(
        self: Box<Self>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>> {
        async move { run_virtual_meters(&self.config, &self.meters, cancel).await }.boxed()
    }
}

/// The stream sink: a meter server or client.
async fn meter_link(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
    Ok(Box::new(StreamSink::bind(config).await?))
}

impl Source for StreamSink {
    fn started(&self) -> Vec<String> {
        let mut lines = vec![match self.local_addr() {
            Some(addr) => format!("meterflow sink: listening for meters on {addr}"),
            None => "meterflow sink: connecting to the meters' command ports".to_string(),
        }];
        if let Some(addr) = self.metrics_addr() {
            lines.push(format!("meterflow sink: metrics on http://{addr}/metrics"));
        }
        if self.restored_meters() > 0 {
            lines.push(format!(
                "meterflow sink: continuing the state of {} meters",
                self.restored_meters()
            ));
        }
        lines
    }

    fn stopping(&self) -> Option<&'static str> {
        Some("stopping: asking every meter to stop, then flushing the outputs")
    }

    fn run(
        self: Box<Self>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>> {
        StreamSink::run(*self, cancel).boxed()
    }
}

/// Telemetry adapters.
struct Telemetry {
    config: PipelineConfig,
    run: TelemetryRun,
    rtl433_inputs: usize,
}

async fn telemetry(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
    let SourceConfig::Telemetry(telemetry) = config.source.clone() else {
        anyhow::bail!("not a telemetry source");
    };
    let run = start_telemetry(&config, &telemetry, CancellationToken::new()).await?;
    Ok(Box::new(Telemetry {
        config,
        run,
        rtl433_inputs: telemetry.rtl433.len(),
    }))
}

impl Source for Telemetry {
    fn started(&self) -> Vec<String> {
        vec![format!(
            "meterflow: pipeline {:?}: telemetry ({} rtl_433 input(s){}{})",
            self.config.name,
            self.rtl433_inputs,
            self.run
                .mppt_address
                .map_or(String::new(), |a| format!(", MPPT endpoint http://{a}")),
            self.run
                .airlink_address
                .map_or(String::new(), |a| format!(", AirLink endpoint http://{a}")),
        )]
    }

    fn stopping(&self) -> Option<&'static str> {
        Some("stopping: closing the inputs, then flushing the outputs")
    }

    fn run(
        self: Box<Self>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>> {
        async move {
            let stop = self.run.stopper();
            let forward = tokio::spawn(async move {
                cancel.cancelled().await;
                stop.cancel();
            });
            let report = self.run.finish().await;
            forward.abort();
            report
        }
        .boxed()
    }
}

/// A writer node's JetStream consumer.
fn jetstream(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
    Ok(Box::new(Writer::open(config)?))
}

impl Source for Writer {
    fn started(&self) -> Vec<String> {
        vec![self.describe()]
    }

    fn stopping(&self) -> Option<&'static str> {
        Some("stopping: writing what was taken, then closing the outputs")
    }

    fn run(
        self: Box<Self>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>> {
        Writer::run(*self, cancel).boxed()
    }
}
