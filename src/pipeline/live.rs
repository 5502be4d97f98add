//! Live sources through the pipeline: virtual meters dial into a loopback
//! stream sink, which computes their windows on its workers and hands the
//! records to the outputs. No hardware, no outside service.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::meter::dial_in::{run_dial_in, DialInConfig};
use crate::meter::firmware::{MeterSettings, VirtualMeter};
use crate::meter::pacing::Pacing;

use super::config::{PipelineConfig, SourceConfig, VirtualMetersConfig};
use super::run_report::RunReport;
use super::server::config::MeterLinkConfig;
use super::server::registry::Registry;
use super::server::StreamSink;

/// Runs virtual meters through the pipeline until each has streamed its
/// seconds (or `cancel` fires: then every meter is asked to stop and drained).
///
/// The meters dial into an in-process stream sink, so a demo run goes the
/// way a deployment does: connection tasks only read, windows are computed
/// on the sink's worker threads, records reach the outputs through the
/// topology. Only the record log is left out (a demo, not a service).
pub async fn run_virtual_meters(
    config: &PipelineConfig,
    meters: &VirtualMetersConfig,
    cancel: CancellationToken,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
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
    sink_config.service.metrics = false;
    let sink = StreamSink::bind_with(sink_config, false).await?;
    let server = sink
        .local_addr()
        .context("reading the stream server address")?;
    let observer = sink.observer();
    let sink_cancel = CancellationToken::new();
    let sink_task = tokio::spawn(sink.run(sink_cancel.clone()));

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
        if every_meter_finished(&observer.registry, &names) {
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
    // Stops (and drains) meters still streaming, then the outputs.
    sink_cancel.cancel();
    let report = sink_task.await.context("the stream sink task")??;
    meters_cancel.cancel();
    while meter_tasks.join_next().await.is_some() {}
    let mut devices = report.devices;
    for name in &names {
        if !devices.iter().any(|d| &d.device == name) {
            failures.push(format!("{name}: no samples"));
        }
    }
    devices.sort_by(|a, b| a.device.cmp(&b.device));
    // The in-process sink is the demo's transport, not a service: its
    // connections and in-memory state are not the run's to report.
    Ok(RunReport {
        devices,
        failures,
        outputs: report.outputs,
        elapsed_s: started.elapsed().as_secs_f64(),
        ..RunReport::default()
    })
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
