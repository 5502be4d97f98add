//! Many virtual meters in one process, one tokio task each: `smartmeter001`,
//! `smartmeter002`, …, meter k with signal seed `seed + k`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::capture::{meter_capture_path, CaptureTarget};
use super::command_port::serve_command_port;
use super::dial_in::{run_dial_in, DialInConfig};
use super::firmware::{MeterSettings, VirtualMeter};
use super::raw_port::serve_raw_port;

/// How the meters meet their sinks.
#[derive(Debug, Clone)]
pub enum FleetMode {
    /// Each meter dials the stream server and re-dials after `reconnect`.
    DialIn { server: String, reconnect: Duration },
    /// Meter k listens for command clients on `base_port + k - 1` (0: any free port).
    CommandPort { bind: IpAddr, base_port: u16 },
    /// Meter k streams raw f32le to whoever connects to `base_port + k - 1`.
    Raw { bind: IpAddr, base_port: u16 },
}

/// A fleet: how many meters, their template settings, where they go.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub mode: FleetMode,
    pub meters: usize,
    /// Names are `prefix` + three-digit number.
    pub name_prefix: String,
    /// Number of the first meter (1 gives `smartmeter001`).
    pub first_number: usize,
    /// Settings shared by all meters; `name` is replaced and
    /// `signal.seed` is the base seed (meter k gets `seed + k`).
    pub template: MeterSettings,
    /// Capture path template (`{name}` is replaced by the meter name).
    pub capture: Option<PathBuf>,
    /// Dial-in with several servers: meter k dials the k-th first (as
    /// round-robin DNS spreads a fleet), instead of all starting at the first.
    pub spread_servers: bool,
}

impl FleetConfig {
    pub fn new(mode: FleetMode, meters: usize) -> Self {
        FleetConfig {
            mode,
            meters,
            name_prefix: "smartmeter".to_string(),
            first_number: 1,
            template: MeterSettings::new("smartmeter"),
            capture: None,
            spread_servers: false,
        }
    }
}

/// `prefix` + number with at least three digits, e.g. `smartmeter001`.
pub fn meter_name(prefix: &str, number: usize) -> String {
    format!("{prefix}{number:03}")
}

/// What one meter did.
#[derive(Debug, Clone)]
pub struct MeterReport {
    pub name: String,
    pub connections: u64,
    pub sent_samples: u64,
    pub dropped_samples: u64,
    pub limit_reached: bool,
}

/// What the fleet did.
#[derive(Debug, Clone, Default)]
pub struct FleetReport {
    pub meters: Vec<MeterReport>,
}

impl FleetReport {
    pub fn sent_samples(&self) -> u64 {
        self.meters.iter().map(|m| m.sent_samples).sum()
    }

    pub fn dropped_samples(&self) -> u64 {
        self.meters.iter().map(|m| m.dropped_samples).sum()
    }
}

/// A started fleet: the meters run in their tasks.
#[derive(Debug)]
pub struct RunningFleet {
    /// Listening meters' addresses (empty in dial-in mode).
    pub listen_addrs: Vec<(String, SocketAddr)>,
    tasks: JoinSet<MeterReport>,
}

impl RunningFleet {
    /// Waits until every meter is done (cancelled or at its session limit).
    pub async fn wait(mut self) -> FleetReport {
        let mut report = FleetReport::default();
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(meter) => report.meters.push(meter),
                Err(error) => tracing::error!(%error, "meter task failed"),
            }
        }
        report.meters.sort_by(|a, b| a.name.cmp(&b.name));
        report
    }
}

/// Builds every meter, binds listeners, and spawns one task per meter.
pub async fn start_fleet(
    config: FleetConfig,
    cancel: CancellationToken,
) -> anyhow::Result<RunningFleet> {
    anyhow::ensure!(config.meters > 0, "a fleet needs at least one meter");
    let several = config.meters > 1;
    let mut tasks = JoinSet::new();
    let mut listen_addrs = Vec::new();
    for k in 0..config.meters {
        let number = config.first_number + k;
        let name = meter_name(&config.name_prefix, number);
        let mut settings = config.template.clone();
        settings.name = name.clone();
        settings.signal.seed = config.template.signal.seed.wrapping_add(number as u64);
        if let FleetMode::DialIn { server, .. } = &config.mode {
            settings.stream_server = server.clone();
        }
        let meter = VirtualMeter::new(settings).with_context(|| format!("setting up {name}"))?;
        let capture = config
            .capture
            .as_deref()
            .map(|template| CaptureTarget::new(meter_capture_path(template, &name, several)));
        let cancel = cancel.clone();
        match &config.mode {
            FleetMode::DialIn { server, reconnect } => {
                let dial = DialInConfig {
                    reconnect: *reconnect,
                    first_turn: if config.spread_servers { k } else { 0 },
                    ..DialInConfig::new(server.clone())
                };
                tasks.spawn(async move {
                    let done = run_dial_in(meter, dial, capture, cancel).await;
                    MeterReport {
                        name,
                        connections: done.connections,
                        sent_samples: done.sent_samples,
                        dropped_samples: done.dropped_samples,
                        limit_reached: done.limit_reached,
                    }
                });
            }
            FleetMode::CommandPort { bind, base_port } | FleetMode::Raw { bind, base_port } => {
                let port = port_of(*base_port, k)?;
                let listener = TcpListener::bind((*bind, port))
                    .await
                    .with_context(|| format!("{name}: binding {bind}:{port}"))?;
                let addr = listener
                    .local_addr()
                    .with_context(|| format!("{name}: reading the bound address"))?;
                listen_addrs.push((name.clone(), addr));
                let raw = matches!(config.mode, FleetMode::Raw { .. });
                tasks.spawn(async move {
                    let done = if raw {
                        serve_raw_port(meter, listener, capture, cancel).await
                    } else {
                        serve_command_port(meter, listener, capture, cancel).await
                    };
                    MeterReport {
                        name,
                        connections: done.connections,
                        sent_samples: done.sent_samples,
                        dropped_samples: done.dropped_samples,
                        limit_reached: false,
                    }
                });
            }
        }
    }
    Ok(RunningFleet {
        listen_addrs,
        tasks,
    })
}

/// Starts the fleet and waits for it.
pub async fn run_fleet(
    config: FleetConfig,
    cancel: CancellationToken,
) -> anyhow::Result<FleetReport> {
    Ok(start_fleet(config, cancel).await?.wait().await)
}

/// Port of the k-th meter (0-based); port 0 stays 0 (any free port).
fn port_of(base: u16, k: usize) -> anyhow::Result<u16> {
    if base == 0 {
        return Ok(0);
    }
    u16::try_from(usize::from(base) + k).with_context(|| {
        format!(
            "meter {} would need a port above 65535 (base {base})",
            k + 1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports() {
        assert_eq!(meter_name("smartmeter", 1), "smartmeter001");
        assert_eq!(meter_name("smartmeter", 1234), "smartmeter1234");
        assert_eq!(port_of(54321, 2).unwrap(), 54323);
        assert_eq!(port_of(0, 5).unwrap(), 0);
        assert!(port_of(65535, 1).is_err());
    }
}
