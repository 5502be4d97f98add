//! `meterflow batch`: recorded captures through a pipeline's engine and sinks.

use std::path::PathBuf;

use anyhow::Context;

use meterflow::pipeline::batch::{expand_inputs, run_batch};
use meterflow::pipeline::batch_request::{raw_params, BatchRequest};
use meterflow::pipeline::config::{FilesConfig, PipelineConfig, RawFileConfig};
use meterflow::wire::Measures;

use super::summary::{print_devices, print_outputs};

#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Capture files or folders (meter byte streams, bare f32le, WAV float32).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder: Parquet tables under <out>/parquet, packets under <out>/packets.
    #[arg(long)]
    pub out: PathBuf,
    /// Pipeline file for the engine and sink settings (its source is ignored).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Bare f32le only: sampling rate, Hz.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Bare f32le (and WAV, to override): channel layout, e.g. v,i,v,i,v,i.
    #[arg(long)]
    pub measures: Option<Measures>,
    /// Bare f32le and WAV: time of the first sample (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub start: Option<String>,
    /// Bare f32le and WAV: the device name.
    #[arg(long)]
    pub name: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl BatchArgs {
    /// The library's request for these arguments.
    pub fn request(&self) -> BatchRequest {
        BatchRequest {
            inputs: self.inputs.clone(),
            out: self.out.clone(),
            pipeline: self.pipeline.clone(),
            raw: RawFileConfig {
                name: self.name.clone(),
                measures: self.measures,
                rate: self.rate,
                start: self.start.clone(),
            },
        }
    }
}

pub async fn run(args: BatchArgs) -> anyhow::Result<()> {
    let request = args.request();
    let config = request.config()?;
    let files = request.files()?;
    run_files_with(
        &config,
        &files,
        &request.raw,
        !args.quiet && super::stderr_is_terminal(),
    )
    .await
}

/// Runs the files of `config`'s files source and prints the summary; fails if any file did.
pub async fn run_files(config: &PipelineConfig, files: &FilesConfig) -> anyhow::Result<()> {
    let paths = expand_inputs(&files.paths, &raw_params(&files.raw)?)?;
    run_files_with(config, &paths, &files.raw, super::stderr_is_terminal()).await
}

async fn run_files_with(
    config: &PipelineConfig,
    files: &[PathBuf],
    raw: &RawFileConfig,
    progress: bool,
) -> anyhow::Result<()> {
    if files.is_empty() {
        anyhow::bail!("no capture files found in the inputs");
    }
    let report = run_batch(config, files, &raw_params(raw)?, progress)
        .await
        .context("running the batch")?;
    print_devices(&report.devices);
    print_outputs(&report.outputs, config);
    println!(
        "{} files, {:.1} MB in {:.2} s: {:.1} M samples/s, {:.1} MB/s",
        report.files.len(),
        report.bytes as f64 / 1e6,
        report.elapsed_s,
        report.values as f64 / report.elapsed_s.max(1e-9) / 1e6,
        report.bytes as f64 / report.elapsed_s.max(1e-9) / 1e6
    );
    let failed = report.failed_files();
    for file in report.files.iter().filter(|f| f.result.is_err()) {
        if let Err(reason) = &file.result {
            eprintln!("failed: {}: {reason}", file.path.display());
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files failed", report.files.len());
    }
    Ok(())
}
