//! The virtual meters source: virtual meters dial into a loopback stream
//! sink whose windows are computed on the runner's workers. No hardware,
//! no outside service.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::meter::dial_in::{run_dial_in, DialInConfig};
use crate::meter::firmware::{MeterSettings, VirtualMeter};
use crate::meter::fleet::meter_name;
use crate::meter::pacing::Pacing;
use crate::meter::signal::SignalConfig;
use crate::wire::layout::DEFAULT_RATE;
use crate::wire::Measures;

use super::config::{PipelineConfig, SourceConfig};
use crate::model::run_report::RunReport;
use crate::source::component::{Durability, EngineSpec, Source, SourceContext, SourceEnd};
use crate::source::meter_server::config::MeterLinkConfig;
use crate::source::meter_server::registry::{valid_meter_name, Registry, METER_NAME_RULE};
use crate::source::meter_server::StreamSink;

/// Virtual meters dialing into an in-process stream sink on loopback.
///
/// A demo run thus goes the way a deployment does: connection tasks only
/// read, windows are computed on the runner's worker threads, records reach
/// the outputs through the topology. Only the record log is left out (a
/// demo, not a service: its meters can stream again).
pub struct VirtualMeters {
    config: PipelineConfig,
    meters: VirtualMetersConfig,
    sink: StreamSink,
}

impl VirtualMeters {
    /// Binds the in-process sink the meters dial into.
    pub async fn build(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
        let SourceConfig::VirtualMeters(meters) = config.source.clone() else {
            anyhow::bail!("not a virtual_meters source");
        };
        let samples = (super::limits::RUN_SECONDS
            .duration_s(meters.seconds)
            .as_secs_f64()
            * f64::from(meters.rate))
        .ceil() as u64;
        let mut sink_config = config.clone();
        sink_config.source = SourceConfig::SmartmeterServer(MeterLinkConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate: meters.rate,
            measures: meters.measures,
            stop_after_samples: Some(samples.max(1)),
            ..MeterLinkConfig::default()
        });
        let sink = super::sources::bind_meter_stream(&sink_config).await?;
        Ok(Box::new(VirtualMeters {
            config,
            meters,
            sink,
        }))
    }
}

impl Source for VirtualMeters {
    fn origin(&self) -> String {
        match self.sink.local_addr() {
            Some(address) => format!("stream server {address}"),
            None => "virtual meters".to_string(),
        }
    }

    fn durability(&self) -> Durability {
        Durability::Rereadable
    }

    fn engine(&self) -> Option<EngineSpec> {
        Some(self.sink.engine_spec())
    }

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

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<'static, anyhow::Result<SourceEnd>> {
        let VirtualMeters { meters, sink, .. } = *self;
        run_virtual_meters(meters, sink, cx).boxed()
    }
}

/// Runs the meters until each has streamed its seconds (or `cx.cancel`
/// fires: then every meter is asked to stop and drained).
async fn run_virtual_meters(
    meters: VirtualMetersConfig,
    sink: StreamSink,
    cx: SourceContext,
) -> anyhow::Result<SourceEnd> {
    let server = sink
        .local_addr()
        .context("reading the stream server address")?;
    let registry = sink.registry();
    let cancel = cx.cancel.clone();
    let sink_cancel = CancellationToken::new();
    let sink_task = tokio::spawn(sink.serve(SourceContext {
        cancel: sink_cancel.clone(),
        ..cx
    }));

    let meters_cancel = CancellationToken::new();
    let mut meter_tasks = JoinSet::new();
    let mut names = Vec::new();
    for (meter, name) in meters.meter.iter().zip(meters.meter_names()) {
        let settings = MeterSettings {
            signal: meter.signal.clone(),
            pacing: if meters.realtime {
                Pacing::RealTime
            } else {
                Pacing::Fast
            },
            stream_server: server.ip().to_string(),
            ..MeterSettings::new(name.clone())
        };
        let virtual_meter =
            VirtualMeter::new(settings).with_context(|| format!("virtual meter {name}"))?;
        // A meter that was stopped after its samples must not dial again.
        let dial = DialInConfig {
            reconnect: Duration::from_secs(3600),
            ..DialInConfig::new(server.to_string())
        };
        meter_tasks.spawn(run_dial_in(
            virtual_meter,
            dial,
            None,
            meters_cancel.clone(),
        ));
        names.push(name);
    }

    let patience =
        super::limits::RUN_SECONDS.duration_s(meters.seconds) * 2 + Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + patience;
    let mut failures = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = cancel.cancelled() => break,
        }
        if every_meter_finished(&registry, &names) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            failures.push(format!(
                "not every meter finished its {} s within {:.0} s",
                meters.seconds,
                patience.as_secs_f64()
            ));
            break;
        }
    }
    // Stops (and drains) meters still streaming.
    sink_cancel.cancel();
    sink_task.await.context("the stream sink task")??;
    meters_cancel.cancel();
    while meter_tasks.join_next().await.is_some() {}
    // Received, not yet computed: the runner drains the engine after this.
    let streamed = registry.meters();
    for name in &names {
        let bytes = streamed
            .iter()
            .find(|(known, _)| known == name)
            .map_or(0, |(_, counters)| counters.bytes.load(Relaxed));
        if bytes == 0 {
            failures.push(format!("{name}: no samples"));
        }
    }
    // The in-process sink is the demo's transport, not a service: its
    // connections are not the run's to report.
    Ok(RunReport {
        failures,
        ..RunReport::default()
    }
    .into())
}

/// Whether every meter streamed one session and hung up.
fn every_meter_finished(registry: &Registry, names: &[String]) -> bool {
    let meters = registry.meters();
    names.iter().all(|name| {
        meters.iter().any(|(known, counters)| {
            known == name
                && counters.connections.load(Relaxed) >= 1
                && counters.connected.load(Relaxed) == 0
        })
    })
}

/// A few virtual meters with their own loads.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualMetersConfig {
    /// Seconds of samples taken from each meter before `stop`.
    pub seconds: f64,
    pub rate: u32,
    pub measures: Measures,
    /// Real-time pacing like a real meter; false streams as fast as possible.
    pub realtime: bool,
    /// One entry per meter.
    pub meter: Vec<VirtualMeterConfig>,
}

impl Default for VirtualMetersConfig {
    fn default() -> Self {
        VirtualMetersConfig {
            seconds: 20.0,
            rate: DEFAULT_RATE,
            measures: Measures::ThreePhase,
            realtime: true,
            meter: vec![VirtualMeterConfig::default()],
        }
    }
}

/// One virtual meter.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualMeterConfig {
    /// Meter name (its identity); default `smartmeter001`, `smartmeter002`, …
    pub name: Option<String>,
    pub signal: SignalConfig,
}

impl VirtualMetersConfig {
    /// Each meter's name: its own, else `smartmeter001`, `smartmeter002`, …
    /// by position.
    pub fn meter_names(&self) -> Vec<String> {
        self.meter
            .iter()
            .enumerate()
            .map(|(k, meter)| {
                meter
                    .name
                    .clone()
                    .unwrap_or_else(|| meter_name("smartmeter", k + 1))
            })
            .collect()
    }

    /// Names are identities (folders, metric labels, the stream server's
    /// one session per name): each must be usable and no two alike.
    pub(super) fn check_names(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for (k, name) in self.meter_names().into_iter().enumerate() {
            if !valid_meter_name(&name) {
                anyhow::bail!("source.meter[{k}].name = {name:?}: {METER_NAME_RULE}");
            }
            if !seen.insert(name.clone()) {
                anyhow::bail!(
                    "source.meter[{k}].name = {name:?}: an earlier [[source.meter]] has this name \
                     (unnamed meters are smartmeter001, smartmeter002, … by position)"
                );
            }
        }
        Ok(())
    }
}
