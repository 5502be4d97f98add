//! Live sources through the pipeline: virtual meters dial into a loopback
//! stream server, each connection's session feeds a device processor, and
//! packets leave once their interval is over. No hardware, no outside service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::meter::dial_in::{run_dial_in, DialInConfig};
use crate::meter::firmware::{MeterSettings, VirtualMeter};
use crate::meter::fleet::meter_name;
use crate::meter::pacing::Pacing;
use crate::source::capture::{CaptureVisitor, SessionDescription};
use crate::source::event::SourceEvent;
use crate::source::meter_session::{run_session, SessionSettings};
use crate::wire::samples::SampleBlock;

use super::config::{PipelineConfig, VirtualMetersConfig};
use super::device::{DeviceProcessor, DeviceSummary};
use super::outputs::OutputsSummary;
use super::topology::{RecordBus, Topology};

/// What a live run did.
#[derive(Debug)]
pub struct LiveReport {
    pub devices: Vec<DeviceSummary>,
    pub failures: Vec<String>,
    pub outputs: OutputsSummary,
    pub elapsed_s: f64,
}

/// One connection's device.
struct ConnectionVisitor<'a> {
    config: &'a PipelineConfig,
    records: &'a Arc<RecordBus>,
    processor: Option<DeviceProcessor>,
    error: Option<String>,
}

impl CaptureVisitor for ConnectionVisitor<'_> {
    fn session_start(&mut self, session: &SessionDescription) {
        match DeviceProcessor::new(session, self.config, Arc::clone(self.records)) {
            Ok(processor) => self.processor = Some(processor),
            Err(error) => self.error = Some(format!("{error:#}")),
        }
    }
    fn block(&mut self, block: &SampleBlock) {
        if let Some(processor) = self.processor.as_mut() {
            processor.block(block);
        }
    }
    fn event(&mut self, event: SourceEvent) {
        if let Some(processor) = self.processor.as_mut() {
            processor.event(&event);
        }
    }
}

/// Runs virtual meters through the pipeline until each has streamed its
/// seconds (or `cancel` fires: then every meter is asked to stop and drained).
pub async fn run_virtual_meters(
    config: &PipelineConfig,
    meters: &VirtualMetersConfig,
    cancel: CancellationToken,
) -> anyhow::Result<LiveReport> {
    let started = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the loopback stream server")?;
    let server = listener
        .local_addr()
        .context("reading the stream server address")?;
    let topology = Topology::start(
        config,
        &format!("virtual meters via stream server {server}"),
        None,
    )?;
    let records = topology.bus();

    let meters_cancel = CancellationToken::new();
    let mut meter_tasks = JoinSet::new();
    for (k, meter) in meters.meter.iter().enumerate() {
        let name = meter
            .name
            .clone()
            .unwrap_or_else(|| meter_name("smartmeter", k + 1));
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
        let dial = DialInConfig {
            reconnect: Duration::from_secs(1),
            ..DialInConfig::new(server.to_string())
        };
        meter_tasks.spawn(run_dial_in(
            virtual_meter,
            dial,
            None,
            meters_cancel.clone(),
        ));
    }

    let settings = SessionSettings {
        rate: meters.rate,
        measures: meters.measures,
        stop_after_samples: Some((meters.seconds * f64::from(meters.rate)).ceil() as u64),
        ..SessionSettings::default()
    };
    let mut sessions = JoinSet::new();
    let patience =
        super::limits::RUN_SECONDS.duration_s(meters.seconds) * 2 + Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + patience;
    let mut failures = Vec::new();
    for _ in 0..meters.meter.len() {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(error) => {
                    failures.push(format!("accepting a meter: {error}"));
                    continue;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                failures.push(format!("not every meter dialed in within {:.0} s", patience.as_secs_f64()));
                break;
            }
            _ = cancel.cancelled() => break,
        };
        let config = config.clone();
        let records = Arc::clone(&records);
        let settings = settings.clone();
        let session_cancel = cancel.child_token();
        sessions.spawn(async move {
            let mut visitor = ConnectionVisitor {
                config: &config,
                records: &records,
                processor: None,
                error: None,
            };
            let result = run_session(socket, &settings, session_cancel, &mut visitor).await;
            let summary = visitor.processor.take().map(DeviceProcessor::finish);
            match (result, visitor.error, summary) {
                (Err(error), _, _) => Err(error.to_string()),
                (Ok(_), Some(error), _) => Err(error),
                (Ok(_), None, Some(summary)) => Ok(summary),
                (Ok(report), None, None) => Err(format!("{}: no samples", report.info.name)),
            }
        });
    }
    let mut devices = Vec::new();
    while let Some(done) = sessions.join_next().await {
        match done {
            Ok(Ok(summary)) => devices.push(summary),
            Ok(Err(failure)) => failures.push(failure),
            Err(error) => failures.push(format!("session task: {error}")),
        }
    }
    meters_cancel.cancel();
    while meter_tasks.join_next().await.is_some() {}
    drop(records);
    let outputs = tokio::task::spawn_blocking(move || topology.close())
        .await
        .context("output threads")??;
    devices.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(LiveReport {
        devices,
        failures,
        outputs,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}
