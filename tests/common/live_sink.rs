//! The sink the live-view tests (`live_view`, `live_page`) run: virtual
//! meters dial in to a `smartmeter_server` at [`RATE`], Parquet goes to a
//! temporary directory, and the metrics listener (which serves `/`, `/api`
//! and `/metrics`) is on a free loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use meterflow::model::run_report::RunReport;
use meterflow::pipeline::runner;
use meterflow::pipeline::server::StreamSink;
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
    let sink = StreamSink::bind(&config).await.unwrap();
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
