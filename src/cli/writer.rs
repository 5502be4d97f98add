//! `meterflow writer --pipeline FILE`: a writer node of a cluster. It takes
//! the same pipeline file as the ingest nodes (`[source]` unused; its
//! outputs and `[cluster]` are what count) and writes its share of the
//! meters from JetStream into them until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;

use meterflow::pipeline::sources::{Role, RunOptions};
use meterflow::pipeline::PipelineConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct WriterArgs {
    /// Pipeline file with a [cluster] section and the outputs to write.
    #[arg(long, value_name = "FILE")]
    pub pipeline: PathBuf,
    /// This writer's number, 0-based (overrides cluster.writer_index).
    #[arg(long)]
    pub index: Option<u32>,
    /// How many writers share the meters (overrides cluster.writers).
    #[arg(long)]
    pub of: Option<u32>,
    /// Address of /metrics and /healthz (overrides the file).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// State folder: this writer's record log (overrides the file).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Output folder (overrides the file): Parquet tables under <out>/parquet,
    /// packets under <out>/packets, state under <out>/state unless --state-dir.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn load(args: &WriterArgs) -> anyhow::Result<PipelineConfig> {
    // Checked below as a writer's: its `[source]` is not read.
    let mut config = PipelineConfig::load_unvalidated(&args.pipeline)?;
    let Some(cluster) = config.cluster.as_mut() else {
        anyhow::bail!(
            "pipeline {}: meterflow writer needs a [cluster] section",
            args.pipeline.display()
        );
    };
    if let Some(index) = args.index {
        cluster.writer_index = index;
    }
    if let Some(of) = args.of {
        cluster.writers = of;
    }
    if let Some(metrics) = args.metrics_listen {
        config.service.metrics_listen = metrics;
    }
    meterflow::pipeline::out_dir::direct_service(
        &mut config,
        args.out.as_deref(),
        args.state_dir.as_ref(),
    );
    let validated = config
        .validate_writer()
        .with_context(|| format!("pipeline {}", args.pipeline.display()));
    match (args.index, args.of) {
        (None, None) => validated?,
        _ => validated.context("with --index/--of")?,
    }
    Ok(config)
}

pub async fn run(args: WriterArgs) -> anyhow::Result<()> {
    let config = load(&args)?;
    let options = RunOptions {
        role: Role::Writer,
        ..RunOptions::default()
    };
    super::execute(config, options).await?;
    Ok(())
}
