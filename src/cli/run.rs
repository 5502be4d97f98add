//! `meterflow run [PIPELINE]`: runs a pipeline file; with none, the built-in
//! demo (`pipelines/demo.toml`): virtual meters through the engine into ./out/.
//! Capture files and telemetry sources run the same way.

use std::path::PathBuf;

use meterflow::pipeline::config::SourceConfig;
use meterflow::pipeline::out_dir::direct_outputs;
use meterflow::pipeline::sources::RunOptions;
use meterflow::pipeline::PipelineConfig;

/// The built-in default pipeline.
pub const DEMO_PIPELINE: &str = include_str!("../../pipelines/demo.toml");

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Pipeline file (TOML); without one, the built-in demo pipeline runs.
    pub pipeline: Option<PathBuf>,
    /// Seconds of samples from each virtual meter (overrides the file).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Stream virtual meters as fast as possible instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Output folder (overrides the file): Parquet tables under <out>/parquet, packets under <out>/packets.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn load(args: &RunArgs) -> anyhow::Result<PipelineConfig> {
    let mut config = match &args.pipeline {
        Some(path) => PipelineConfig::load(path)?,
        None => PipelineConfig::parse(DEMO_PIPELINE)?,
    };
    if let SourceConfig::VirtualMeters(meters) = &mut config.source {
        if let Some(seconds) = args.seconds {
            // The range of the pipeline's `source.seconds`.
            meterflow::pipeline::limits::RUN_SECONDS.check_s("--seconds", seconds)?;
            meters.seconds = seconds;
        }
        if args.fast {
            meters.realtime = false;
        }
    }
    if let Some(out) = &args.out {
        direct_outputs(&mut config, out);
    }
    config.validate()?;
    Ok(config)
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = load(&args)?;
    let options = RunOptions {
        progress: super::stderr_is_terminal(),
        ..RunOptions::default()
    };
    let report = super::execute(config.clone(), options).await?;
    if let (Some(parquet), None) = (&config.sink.parquet, &report.connections) {
        println!(
            "see it: meterflow report {} --out report.html",
            parquet.out.display()
        );
    }
    if report.failed_files() > 0 {
        anyhow::bail!(
            "{} of {} files failed",
            report.failed_files(),
            report.files.len()
        );
    }
    if !report.failures.is_empty() {
        anyhow::bail!("{} input(s) failed", report.failures.len());
    }
    Ok(())
}
