//! `meterflow run [PIPELINE]`: runs a pipeline file; with none, the built-in
//! demo (`pipelines/demo.toml`): virtual meters through the engine into ./out/.
//! Capture files and telemetry sources run the same way.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use meterflow::pipeline::config::SourceConfig;
use meterflow::pipeline::live::run_virtual_meters;
use meterflow::pipeline::out_dir::direct_outputs;
use meterflow::pipeline::PipelineConfig;

use super::summary::{print_devices, print_outputs};

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
    match &config.source {
        SourceConfig::VirtualMeters(meters) => {
            println!(
                "meterflow: pipeline {:?}: {} virtual meters, {} s of {} at {} Hz each ({})",
                config.name,
                meters.meter.len(),
                meters.seconds,
                meters.measures,
                meters.rate,
                if meters.realtime {
                    "real time"
                } else {
                    "as fast as possible"
                }
            );
            let cancel = CancellationToken::new();
            super::cancel_on_signal(
                &cancel,
                "stopping: asking every meter to stop, then flushing the outputs",
            );
            let report = run_virtual_meters(&config, meters, cancel).await?;
            print_devices(&report.devices);
            print_outputs(&report.outputs, &config);
            println!("done in {:.1} s", report.elapsed_s);
            if let Some(parquet) = &config.sink.parquet {
                println!(
                    "see it: meterflow report {} --out report.html",
                    parquet.out.display()
                );
            }
            for failure in &report.failures {
                eprintln!("failed: {failure}");
            }
            if !report.failures.is_empty() {
                anyhow::bail!("{} meter connection(s) failed", report.failures.len());
            }
        }
        SourceConfig::Files(files) => super::batch::run_files(&config, files).await?,
        SourceConfig::SmartmeterServer(_) | SourceConfig::SmartmeterClient(_) => {
            super::sink::run_sink(config.clone()).await?;
        }
        SourceConfig::Telemetry(telemetry) => super::telemetry::run(&config, telemetry).await?,
    }
    Ok(())
}
