//! The output registry: each kind of output says from the pipeline whether
//! it is wanted and builds its `Box<dyn Output>`; the topology runs what the
//! registry gives it and knows no output by name. Adding an output is one
//! entry here and its module under `sink/`.

use std::time::Duration;

use anyhow::Context;

use crate::sink::jetstream::output::{JetStreamOutput, PublishCounters};
use crate::sink::live::{LiveBoard, LiveOutput};
use crate::sink::output::Output;
use crate::sink::packet::PacketOutput;
use crate::sink::parquet::{DatasetInfo, ParquetOutput};

use super::config::{PipelineConfig, SourceConfig};
use super::topology::runner::OutputFactory;
use super::topology::Publish;

/// What a writer allows for a record's way through JetStream (publish ack,
/// fetch wait) on top of the publish interval.
const CLUSTER_DELIVERY_ALLOWANCE: Duration = Duration::from_secs(1);
/// How often telemetry rows become finished files when the source does not say.
const DEFAULT_LOW_RATE_FLUSH: Duration = Duration::from_secs(60);

/// What the builders read: the pipeline and the run's place in a cluster.
pub struct OutputContext {
    pub config: PipelineConfig,
    /// Where the records come from (recorded in file metadata).
    pub source: String,
    /// The record log's identity, when there is one (dataset commits).
    pub log_id: Option<String>,
    /// An ingest node of a cluster: it publishes, the writers write.
    pub publish: Option<Publish>,
    /// The live view's board, when the run serves one (`/`, `/api`).
    pub live: Option<std::sync::Arc<LiveBoard>>,
}

/// One kind of output.
struct OutputKind {
    name: &'static str,
    /// Built on its own thread and retried while it fails (a broker that is
    /// down at start), instead of failing the start.
    retry_first: bool,
    wanted: fn(&OutputContext) -> bool,
    /// Whether it needs the engine's raw sample blocks.
    wants_raw: fn(&OutputContext) -> bool,
    build: fn(&OutputContext) -> anyhow::Result<OutputFactory>,
}

const OUTPUTS: &[OutputKind] = &[
    OutputKind {
        name: ParquetOutput::NAME,
        retry_first: false,
        wanted: |cx| cx.publish.is_none() && cx.config.sink.parquet.is_some(),
        wants_raw: |cx| {
            cx.config
                .sink
                .parquet
                .as_ref()
                .is_some_and(|p| p.tables.raw)
        },
        build: parquet,
    },
    OutputKind {
        name: PacketOutput::NAME,
        retry_first: false,
        wanted: |cx| cx.publish.is_none() && cx.config.sink.packets.is_some(),
        wants_raw: |_| false,
        build: packets,
    },
    OutputKind {
        name: JetStreamOutput::NAME,
        retry_first: true,
        wanted: |cx| cx.publish.is_some(),
        wants_raw: |cx| cx.publish.as_ref().is_some_and(|p| p.cluster.raw_archive),
        build: jetstream,
    },
    OutputKind {
        name: LiveOutput::NAME,
        retry_first: false,
        wanted: |cx| cx.live.is_some(),
        // Its samples come through the engine's tap, not the record log.
        wants_raw: |_| false,
        build: live,
    },
];

/// An output ready to run.
pub struct BuiltOutput {
    pub name: &'static str,
    pub retry_first: bool,
    pub factory: OutputFactory,
}

/// The names of the outputs the pipeline wants (the record log's consumers).
pub fn wanted(cx: &OutputContext) -> Vec<&'static str> {
    OUTPUTS
        .iter()
        .filter(|kind| (kind.wanted)(cx))
        .map(|kind| kind.name)
        .collect()
}

/// Whether any wanted output needs raw sample blocks from the engine.
pub fn wants_raw(cx: &OutputContext) -> bool {
    OUTPUTS
        .iter()
        .any(|kind| (kind.wanted)(cx) && (kind.wants_raw)(cx))
}

/// Builds every wanted output's factory. Call inside a tokio runtime.
pub fn build(cx: &OutputContext) -> anyhow::Result<Vec<BuiltOutput>> {
    OUTPUTS
        .iter()
        .filter(|kind| (kind.wanted)(cx))
        .map(|kind| {
            Ok(BuiltOutput {
                name: kind.name,
                retry_first: kind.retry_first,
                factory: (kind.build)(cx)?,
            })
        })
        .collect()
}

fn parquet(cx: &OutputContext) -> anyhow::Result<OutputFactory> {
    let config = &cx.config;
    let parquet = config
        .sink
        .parquet
        .clone()
        .context("no [sink.parquet] section")?;
    let info = DatasetInfo {
        source: cx.source.clone(),
        pipeline: config.name.clone(),
        thd_max_order: config.dsp.harmonic_order(),
        nominal_frequency_hz: config.dsp.nominal_frequency_hz,
    };
    let low_rate_flush = match &config.source {
        SourceConfig::Telemetry(telemetry) => super::telemetry::flush_interval(telemetry),
        _ => DEFAULT_LOW_RATE_FLUSH,
    };
    let log_id = cx.log_id.clone();
    Ok(Box::new(move || {
        let (output, _) = ParquetOutput::open(&parquet, &info, log_id.as_deref(), low_rate_flush)
            .with_context(|| format!("Parquet output {}", parquet.out.display()))?;
        Ok(Box::new(output) as Box<dyn Output>)
    }))
}

fn packets(cx: &OutputContext) -> anyhow::Result<OutputFactory> {
    let config = &cx.config;
    let packets = config
        .sink
        .packets
        .clone()
        .context("no [sink.packets] section")?;
    let runtime =
        tokio::runtime::Handle::try_current().context("packet delivery needs a tokio runtime")?;
    // A writer gets each meter's records a publish interval and a fetch
    // later than the ingest node made them: wait that long more before
    // cutting a packet, or a meter's late sensor would make a second packet
    // of the same identity.
    let lag = config.service.packet_grace()
        + config.cluster.as_ref().map_or(Duration::ZERO, |cluster| {
            cluster.publish_interval() + CLUSTER_DELIVERY_ALLOWANCE
        });
    Ok(Box::new(move || {
        let _entered = runtime.enter();
        let output = PacketOutput::start(&packets.build, &packets.targets, lag)?;
        Ok(Box::new(output) as Box<dyn Output>)
    }))
}

fn live(cx: &OutputContext) -> anyhow::Result<OutputFactory> {
    let board = cx.live.clone().context("the run serves no live view")?;
    // One board for every build of the output: what the view knows outlives rebuilds.
    Ok(Box::new(move || {
        Ok(Box::new(LiveOutput::new(std::sync::Arc::clone(&board))) as Box<dyn Output>)
    }))
}

fn jetstream(cx: &OutputContext) -> anyhow::Result<OutputFactory> {
    let publish = cx.publish.clone().context("not an ingest node")?;
    let origin = cx
        .log_id
        .clone()
        .context("publishing to JetStream needs the record log")?;
    let runtime = tokio::runtime::Handle::try_current()
        .context("publishing to JetStream needs a tokio runtime")?;
    // One set of counters for every build of the output: they outlive rebuilds.
    let counters = std::sync::Arc::new(PublishCounters {
        node: publish.node.clone(),
        ..PublishCounters::default()
    });
    Ok(Box::new(move || {
        let output = JetStreamOutput::open(
            &publish.cluster,
            &origin,
            &publish.node,
            runtime.clone(),
            std::sync::Arc::clone(&counters),
        )?;
        Ok(Box::new(output) as Box<dyn Output>)
    }))
}
