//! The registry of sources: a pipeline's `[source] kind` → the builder of
//! its component (`source::component::Source`). Adding a source is its
//! module under `source/` and one line in [`SOURCES`]; the runner
//! (`pipeline::runner`) does the rest the same way for every kind.

use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::cluster::lease::LeaseBook;
use super::config::{PipelineConfig, SourceConfig};
use super::topology::Publish;
use crate::source::component::Source;
use crate::source::meter_server::config::MeterLinkConfig;
use crate::source::meter_server::leases::ClusterLeases;
use crate::source::meter_server::{LinkRole, StreamSink};

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
        super::batch::build(config, options.progress).boxed()
    }),
    ("virtual_meters", |config, _| {
        super::live::VirtualMeters::build(config).boxed()
    }),
    ("smartmeter_server", |config, _| {
        meter_stream_source(config).boxed()
    }),
    ("smartmeter_client", |config, _| {
        meter_stream_source(config).boxed()
    }),
    ("telemetry", |config, _| {
        super::telemetry::build(config).boxed()
    }),
];

/// Builds the source of `config` for `options.role` (a writer node's
/// JetStream consumer, or the component of its `[source] kind`).
pub async fn build(config: PipelineConfig, options: RunOptions) -> anyhow::Result<Box<dyn Source>> {
    if options.role == Role::Writer {
        return super::cluster::writer::build(config);
    }
    let kind = config.source.kind();
    let (_, build) = SOURCES
        .iter()
        .find(|(name, _)| *name == kind)
        .with_context(|| format!("no source component for kind {kind:?}"))?;
    build(config, options).await
}

async fn meter_stream_source(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
    Ok(Box::new(bind_meter_stream(&config).await?))
}

/// The meter stream source of a `smartmeter_server` or `smartmeter_client`
/// pipeline, its port bound; in cluster mode it joins the fleet's meter
/// leases. Needs a tokio runtime.
pub async fn bind_meter_stream(config: &PipelineConfig) -> anyhow::Result<StreamSink> {
    config.validate()?;
    let (link, role) = meter_link(config)
        .context("the stream sink needs a smartmeter_server or smartmeter_client source")?;
    let cluster = match ingest_publish(config) {
        Some(publish) => Some(ClusterLeases {
            leases: LeaseBook::start(&publish.cluster, &publish.node).await?,
            // The meter's last records must be published first.
            release_after: publish.cluster.publish_interval() * 3 + Duration::from_secs(1),
        }),
        None => None,
    };
    StreamSink::bind(
        link.clone(),
        role,
        config.service.forget_meters_after(),
        cluster,
    )
    .await
}

fn meter_link(config: &PipelineConfig) -> Option<(&MeterLinkConfig, LinkRole)> {
    match &config.source {
        SourceConfig::SmartmeterServer(link) => Some((link, LinkRole::Server)),
        SourceConfig::SmartmeterClient(link) => Some((link, LinkRole::Client)),
        _ => None,
    }
}

/// Where an ingest node publishes: a meter stream pipeline with a
/// `[cluster]` section.
pub fn ingest_publish(config: &PipelineConfig) -> Option<Publish> {
    let cluster = config.cluster.as_ref()?;
    let (link, _) = meter_link(config)?;
    Some(Publish {
        node: cluster.node_name(&default_node_name(link)),
        cluster: cluster.clone(),
    })
}

/// A node's name when `cluster.node` is not set: host and listen port.
fn default_node_name(link: &MeterLinkConfig) -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    match link.listen.port() {
        // Ports picked by the OS (tests) say nothing: tell processes apart.
        0 => format!("{host}-pid{}", std::process::id()),
        port => format!("{host}-{port}"),
    }
}
