//! `meterflow sink [--pipeline FILE]`: the long-running stream sink. With no
//! file, the built-in `pipelines/sink.toml` (port 54322, metrics on
//! 127.0.0.1:9102, outputs and state under ./out/). Runs until SIGINT or
//! SIGTERM, then stops every meter, drains, flushes and checkpoints.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use meterflow::pipeline::config::SourceConfig;
use meterflow::pipeline::sources::RunOptions;
use meterflow::pipeline::PipelineConfig;

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
        Some(path) => {
            let config = PipelineConfig::load_unvalidated(path)?;
            check_source(&config.source).with_context(|| format!("pipeline {}", path.display()))?;
            config
        }
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
    let validated = config.validate();
    match &args.pipeline {
        Some(path) => validated.with_context(|| format!("pipeline {}", path.display()))?,
        None => validated.context("the built-in sink pipeline")?,
    }
    Ok(config)
}

/// The sink runs meter sources only; any other (or none, which a file for
/// batches leaves out) is named before its own checks talk about it.
fn check_source(source: &SourceConfig) -> anyhow::Result<()> {
    match source {
        SourceConfig::SmartmeterServer(_) | SourceConfig::SmartmeterClient(_) => Ok(()),
        SourceConfig::Files(files) if files.paths.is_empty() => anyhow::bail!(
            "meterflow sink needs a [source] with kind = \"smartmeter_server\" or \
             \"smartmeter_client\"; this file has no [source]"
        ),
        other => anyhow::bail!(
            "meterflow sink needs a [source] with kind = \"smartmeter_server\" or \
             \"smartmeter_client\", not kind = {:?} (run it with meterflow run)",
            other.kind()
        ),
    }
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let config = load(&args)?;
    super::execute(config, RunOptions::default()).await?;
    Ok(())
}
