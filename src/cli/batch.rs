//! `meterflow batch`: recorded captures through a pipeline's engine and sinks.

use std::path::PathBuf;

use meterflow::pipeline::batch_request::BatchRequest;
use meterflow::pipeline::sources::RunOptions;
use meterflow::wire::Measures;

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
            ..BatchRequest::default()
        }
        .with_raw(
            self.name.clone(),
            self.measures,
            self.rate,
            self.start.clone(),
        )
    }
}

pub async fn run(args: BatchArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        // The range of the pipeline's `source.raw.rate`.
        meterflow::pipeline::limits::RATE_HZ.check("--rate", rate.into())?;
    }
    let config = args.request().config()?;
    let options = RunOptions {
        progress: !args.quiet && super::stderr_is_terminal(),
        ..RunOptions::default()
    };
    let report = super::execute(config, options).await?;
    let failed = report.failed_files();
    if failed > 0 {
        anyhow::bail!("{failed} of {} files failed", report.files.len());
    }
    Ok(())
}
