//! The built-in demo pipeline: a virtual fleet dials into a stream server on
//! loopback, every stream is decoded, and each meter is asked to stop after a
//! set duration. No hardware and no outside service.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::meter::firmware::MeterSettings;
use crate::meter::fleet::{start_fleet, FleetConfig, FleetMode};
use crate::meter::pacing::Pacing;
use crate::meter::signal::SignalConfig;
use crate::source::meter_session::SessionSettings;
use crate::source::stream_server::{serve, ConnectionOutcome};
use crate::wire::layout::DEFAULT_RATE;
use crate::wire::Measures;

/// What the demo runs; `pipelines/demo.toml` is this in file form.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Virtual meters dialing in.
    pub meters: usize,
    /// Seconds of samples asked from each meter before `stop`.
    pub seconds: f64,
    pub rate: u32,
    pub measures: Measures,
    /// Real-time pacing like a real meter; false streams as fast as possible.
    pub realtime: bool,
    /// The signal on every meter's terminals (meter k uses seed + k).
    pub signal: SignalConfig,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            meters: 4,
            seconds: 5.0,
            rate: DEFAULT_RATE,
            measures: Measures::ThreePhase,
            realtime: true,
            signal: SignalConfig::default(),
        }
    }
}

impl DemoConfig {
    /// Reads a TOML demo pipeline file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading pipeline {}", path.display()))?;
        let config: DemoConfig = toml::from_str(&text)
            .with_context(|| format!("parsing pipeline {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("pipeline {}", path.display()))?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.meters == 0 {
            anyhow::bail!("meters must be at least 1");
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            anyhow::bail!("seconds must be a positive number, got {}", self.seconds);
        }
        self.measures.validate_rate(self.rate)?;
        self.signal.validate()?;
        Ok(())
    }

    /// Samples asked from each meter.
    pub fn samples_per_meter(&self) -> u64 {
        (self.seconds * f64::from(self.rate)).ceil() as u64
    }
}

/// What one meter delivered.
#[derive(Debug, Clone)]
pub struct MeterOutcome {
    pub name: String,
    pub rate: u32,
    pub measures: Measures,
    pub frames: u64,
    pub samples: u64,
    pub lost_samples: u64,
    pub anomalies: u64,
    pub meter_warnings: u64,
    /// Samples the meter says it sent (its stop answer), when it answered.
    pub meter_sent: Option<u64>,
}

/// What the demo saw, one row per connection, plus failures.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub meters: Vec<MeterOutcome>,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

/// Runs the demo until every meter has streamed its samples (or `cancel` fires).
pub async fn run_demo(
    config: &DemoConfig,
    cancel: CancellationToken,
) -> anyhow::Result<DemoReport> {
    config.validate()?;
    let started = tokio::time::Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo stream server on loopback")?;
    let server_addr = listener
        .local_addr()
        .context("reading the demo server address")?;

    let settings = SessionSettings {
        rate: config.rate,
        measures: config.measures,
        stop_after_samples: Some(config.samples_per_meter()),
        ..SessionSettings::default()
    };
    let (outcome_tx, mut outcome_rx) = mpsc::unbounded_channel();
    let server_cancel = cancel.child_token();
    let server = tokio::spawn(serve(
        listener,
        settings,
        server_cancel.clone(),
        Some(config.meters),
        outcome_tx,
    ));

    let fleet_cancel = CancellationToken::new();
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: server_addr.to_string(),
            reconnect: Duration::from_secs(1),
        },
        config.meters,
    );
    fleet.template = MeterSettings {
        signal: config.signal.clone(),
        pacing: if config.realtime {
            Pacing::RealTime
        } else {
            Pacing::Fast
        },
        stream_server: server_addr.ip().to_string(),
        ..MeterSettings::new("smartmeter")
    };
    let running = start_fleet(fleet, fleet_cancel.clone())
        .await
        .context("starting the virtual fleet")?;

    let mut report = DemoReport::default();
    // Generous: connection set-up plus the streaming time plus the stop.
    let patience = Duration::from_secs_f64(config.seconds * 2.0 + 30.0);
    let deadline = tokio::time::Instant::now() + patience;
    while report.meters.len() + report.failures.len() < config.meters {
        let outcome = tokio::select! {
            outcome = outcome_rx.recv() => outcome,
            _ = tokio::time::sleep_until(deadline) => {
                report.failures.push(format!(
                    "only {} of {} meters finished within {:.0} s",
                    report.meters.len() + report.failures.len(),
                    config.meters,
                    patience.as_secs_f64()
                ));
                server_cancel.cancel();
                break;
            }
        };
        let Some(ConnectionOutcome { peer, result }) = outcome else {
            break;
        };
        match result {
            Ok(session) => report.meters.push(MeterOutcome {
                name: session.info.name.clone(),
                rate: session.answer.samplingrate,
                measures: session.answer.measures,
                frames: session.wire.data_frames,
                samples: session.samples,
                lost_samples: session.lost_samples,
                anomalies: session.wire.anomalies(),
                meter_warnings: session.meter_warnings,
                meter_sent: session.stop.as_ref().map(|stop| stop.sent_samples),
            }),
            Err(error) => report.failures.push(format!("{peer}: {error}")),
        }
    }
    server_cancel.cancel();
    fleet_cancel.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => report.failures.push(format!("stream server: {error}")),
        Err(error) => report.failures.push(format!("stream server task: {error}")),
    }
    running.wait().await;
    report.meters.sort_by(|a, b| a.name.cmp(&b.name));
    report.elapsed = started.elapsed();
    Ok(report)
}
