//! `meterflow sink [--pipeline FILE]`: the long-running stream sink. With no
//! file, the built-in `pipelines/sink.toml` (port 54322, metrics on
//! 127.0.0.1:9102, outputs and state under ./out/). Runs until SIGINT or
//! SIGTERM, then stops every meter, drains, flushes and checkpoints.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use meterflow::pipeline::config::SourceConfig;
use meterflow::pipeline::server::{SinkReport, StreamSink};
use meterflow::pipeline::PipelineConfig;

use super::summary::{print_devices, print_outputs};

/// The built-in sink pipeline.
pub const SINK_PIPELINE: &str = include_str!("../../pipelines/sink.toml");

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SinkArgs {
    /// Pipeline file with a smartmeter_server or smartmeter_client source.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Address meters dial into (overrides the file), e.g. 0.0.0.0:54322.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address of /metrics and /healthz (overrides the file).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// State folder: record log and meter state (overrides the file).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Output folder (overrides the file): Parquet tables under <out>/parquet,
    /// packets under <out>/packets, state under <out>/state unless --state-dir.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn load(args: &SinkArgs) -> anyhow::Result<PipelineConfig> {
    let mut config = match &args.pipeline {
        Some(path) => PipelineConfig::load(path)?,
        None => PipelineConfig::parse(SINK_PIPELINE).context("the built-in sink pipeline")?,
    };
    if let (Some(listen), SourceConfig::SmartmeterServer(link)) = (args.listen, &mut config.source)
    {
        link.listen = listen;
    }
    if let Some(metrics) = args.metrics_listen {
        config.service.metrics_listen = metrics;
    }
    meterflow::pipeline::out_dir::direct_service(
        &mut config,
        args.out.as_deref(),
        args.state_dir.as_ref(),
    );
    config.validate()?;
    Ok(config)
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let config = load(&args)?;
    run_sink(config).await
}

/// Runs a sink pipeline until a signal, then prints what it did.
pub async fn run_sink(config: PipelineConfig) -> anyhow::Result<()> {
    let sink = StreamSink::bind(config.clone()).await?;
    match sink.local_addr() {
        Some(addr) => println!("meterflow sink: listening for meters on {addr}"),
        None => println!("meterflow sink: connecting to the meters' command ports"),
    }
    if let Some(addr) = sink.metrics_addr() {
        println!("meterflow sink: metrics on http://{addr}/metrics");
    }
    if sink.restored_meters() > 0 {
        println!(
            "meterflow sink: continuing the state of {} meters",
            sink.restored_meters()
        );
    }
    let cancel = CancellationToken::new();
    super::cancel_on_signal(
        &cancel,
        "stopping: asking every meter to stop, then flushing the outputs",
    );
    let report = sink.run(cancel).await?;
    print_report(&report, &config);
    Ok(())
}

fn print_report(report: &SinkReport, config: &PipelineConfig) {
    print_devices(&report.sessions);
    print_outputs(&report.outputs, config);
    let dropped: Vec<String> = report
        .dropped
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    println!(
        "{} connections accepted, {} meters at most at once, dropped peers: {}",
        report.accepted,
        report.peak_streaming,
        if dropped.is_empty() {
            "none".to_string()
        } else {
            dropped.join(", ")
        }
    );
    println!(
        "checkpoint {}; ran {:.1} s",
        report.checkpoint.display(),
        report.elapsed_s
    );
}
