//! The sink the live-view tests (`live_view`, `live_page`) run: virtual
//! meters dial in to a `smartmeter_server` at [`RATE`], Parquet goes to a
//! temporary directory, and the metrics listener (which serves `/`, `/api`
//! and `/metrics`) is on a free loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use meterflow::meter::firmware::MeterSettings;
use meterflow::meter::fleet::{start_fleet, FleetConfig, FleetMode, RunningFleet};
use meterflow::meter::signal::SignalConfig;
use meterflow::model::run_report::RunReport;
use meterflow::pipeline::runner;
use meterflow::pipeline::PipelineConfig;
use tokio_util::sync::CancellationToken;

/// Sampling rate asked of every meter, Hz.
pub const RATE: u32 = 4000;

/// The sink's pipeline called `name`, writing under `out`, with `more`
/// (more tables, e.g. `[source.meters."x"]`) after it.
pub fn sink_config(name: &str, out: &Path, more: &str) -> PipelineConfig {
    let text = format!(
        r#"
name = "{name}"
[source]
kind = "smartmeter_server"
listen = "127.0.0.1:0"
rate = {RATE}
[sink.parquet]
out = "{out}/parquet"
fsync = false
[service]
state_dir = "{out}/state"
metrics_listen = "127.0.0.1:0"
{more}"#,
        out = out.display(),
    );
    PipelineConfig::parse(&text).unwrap()
}

/// A running sink: where meters dial in, where the live view answers.
pub struct Sink {
    pub addr: SocketAddr,
    pub http: SocketAddr,
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<RunReport>>,
}

pub async fn start_sink(config: PipelineConfig) -> Sink {
    let sink = meterflow::pipeline::sources::bind_meter_stream(&config)
        .await
        .unwrap();
    let addr = sink.local_addr().unwrap();
    let run = runner::start_source(config, Box::new(sink)).await.unwrap();
    let http = run.metrics_addr().unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run.run(cancel.clone()));
    Sink {
        addr,
        http,
        cancel,
        task,
    }
}

/// `count` virtual meters `prefix`001.. of `signal` dialling in to `server`
/// (reconnecting after 200 ms) until `cancel`.
pub async fn dial_in(
    server: SocketAddr,
    prefix: &str,
    count: usize,
    signal: SignalConfig,
    cancel: &CancellationToken,
) -> RunningFleet {
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: server.to_string(),
            reconnect: Duration::from_millis(200),
        },
        count,
    );
    fleet.name_prefix = prefix.to_string();
    fleet.template = MeterSettings {
        signal,
        raw_rate: RATE,
        ..MeterSettings::new(prefix)
    };
    start_fleet(fleet, cancel.clone()).await.unwrap()
}

/// Polls `/api/meters` until `count` meters are listed and `ready` holds
/// for each (within 60 s, else the test fails saying so).
pub async fn wait_for_meters(
    http: SocketAddr,
    count: usize,
    ready: impl Fn(&serde_json::Value) -> bool,
) {
    let poll = async {
        loop {
            let text = reqwest::get(format!("http://{http}/api/meters"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let fleet: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let meters = fleet["meters"].as_array().cloned().unwrap_or_default();
            if meters.len() == count && meters.iter().all(&ready) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), poll)
        .await
        .expect("the meters on the live view within 60 s");
}
