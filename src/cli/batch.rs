//! `meterflow batch`: recorded captures through a pipeline's engine and sinks.

use std::path::PathBuf;

use anyhow::Context;

use crate::pipeline::batch::{expand_inputs, run_batch};
use crate::pipeline::config::{parse_start, FilesConfig, PipelineConfig, SinkConfig, SourceConfig};
use crate::pipeline::limits;
use crate::source::capture::RawParams;
use crate::wire::Measures;

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

/// The pipeline a batch runs: the file's settings, sinks pointed at `--out`.
pub fn batch_config(args: &BatchArgs) -> anyhow::Result<PipelineConfig> {
    let mut config = match &args.pipeline {
        // Its source, if any, gives way to the inputs named here.
        Some(path) => PipelineConfig::load_unvalidated(path)?,
        None => PipelineConfig {
            name: "batch".to_string(),
            source: SourceConfig::Files(FilesConfig {
                paths: args.inputs.clone(),
                raw: Default::default(),
            }),
            dsp: Default::default(),
            aggregation: Default::default(),
            sink: SinkConfig::default(),
            service: Default::default(),
            record_log: Default::default(),
            cluster: None,
        },
    };
    config.source = SourceConfig::Files(FilesConfig {
        paths: args.inputs.clone(),
        raw: Default::default(),
    });
    super::out_dir::direct_outputs(&mut config, &args.out);
    config.validate()?;
    Ok(config)
}

pub async fn run(args: BatchArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        // The range of the pipeline's `source.raw.rate`.
        limits::RATE_HZ.check("--rate", rate.into())?;
    }
    let config = batch_config(&args)?;
    let raw = RawParams {
        name: args.name.clone(),
        measures: args.measures,
        rate: args.rate,
        start_unix_ns: args.start.as_deref().map(parse_start).transpose()?,
        ..RawParams::default()
    };
    let files = expand_inputs(&args.inputs, &raw)?;
    run_files_with(
        &config,
        &files,
        &raw,
        !args.quiet && super::stderr_is_terminal(),
    )
    .await
}

/// Runs files through `config` and prints the summary; fails if any file did.
pub async fn run_files(
    config: &PipelineConfig,
    inputs: &[PathBuf],
    raw: &RawParams,
) -> anyhow::Result<()> {
    let files = expand_inputs(inputs, raw)?;
    run_files_with(config, &files, raw, super::stderr_is_terminal()).await
}

async fn run_files_with(
    config: &PipelineConfig,
    files: &[PathBuf],
    raw: &RawParams,
    progress: bool,
) -> anyhow::Result<()> {
    if files.is_empty() {
        anyhow::bail!("no capture files found in the inputs");
    }
    let report = run_batch(config, files, raw, progress)
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
