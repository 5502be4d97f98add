//! `meterflow run`: the main job. Until sinks exist it runs the built-in demo
//! pipeline (virtual fleet → stream server → decoder) and prints per-meter counts.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::cli::simulate::load_signal;
use crate::pipeline::demo::{run_demo, DemoConfig, DemoReport};
use crate::wire::Measures;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Pipeline file (TOML); see pipelines/demo.toml. Flags override it.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Number of virtual meters.
    #[arg(long, short = 'n')]
    pub meters: Option<usize>,
    /// Seconds of samples taken from each meter.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Sampling rate asked from the meters, Hz.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Channel layout asked from the meters (e.g. v,i,v,i,v,i or v,i).
    #[arg(long)]
    pub measures: Option<Measures>,
    /// Stream as fast as possible instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Signal configuration file (TOML or JSON).
    #[arg(long, value_name = "FILE")]
    pub signal: Option<PathBuf>,
}

/// Builds the demo configuration: defaults, then the pipeline file, then flags.
pub fn demo_config(args: &RunArgs) -> anyhow::Result<DemoConfig> {
    let mut config = match &args.pipeline {
        Some(path) => DemoConfig::load(path)?,
        None => DemoConfig::default(),
    };
    if let Some(meters) = args.meters {
        config.meters = meters;
    }
    if let Some(seconds) = args.seconds {
        config.seconds = seconds;
    }
    if let Some(rate) = args.rate {
        config.rate = rate;
    }
    if let Some(measures) = args.measures {
        config.measures = measures;
    }
    if args.fast {
        config.realtime = false;
    }
    if let Some(path) = &args.signal {
        config.signal = load_signal(path)?;
    }
    config.validate()?;
    Ok(config)
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = demo_config(&args)?;
    println!(
        "meterflow: {} virtual meters dial into a loopback stream server; {} s of {} at {} Hz each ({})",
        config.meters,
        config.seconds,
        config.measures,
        config.rate,
        if config.realtime { "real time" } else { "as fast as possible" }
    );
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        crate::cli::shutdown_signal().await;
        eprintln!("stopping: asking every meter to stop and draining its tail");
        on_signal.cancel();
    });
    let report = run_demo(&config, cancel).await?;
    print_report(&report);
    if !report.failures.is_empty() {
        anyhow::bail!("{} meter connection(s) failed", report.failures.len());
    }
    Ok(())
}

fn print_report(report: &DemoReport) {
    println!(
        "{:<14} {:>7} {:<12} {:>8} {:>10} {:>9} {:>6} {:>9} {:>11}",
        "meter",
        "rate",
        "measures",
        "frames",
        "samples",
        "seconds",
        "lost",
        "anomalies",
        "meter sent"
    );
    for meter in &report.meters {
        println!(
            "{:<14} {:>7} {:<12} {:>8} {:>10} {:>9.3} {:>6} {:>9} {:>11}",
            meter.name,
            meter.rate,
            meter.measures.to_string(),
            meter.frames,
            meter.samples,
            meter.samples as f64 / f64::from(meter.rate.max(1)),
            meter.lost_samples,
            meter.anomalies,
            meter
                .meter_sent
                .map_or_else(|| "-".to_string(), |sent| sent.to_string()),
        );
    }
    let values: u64 = report
        .meters
        .iter()
        .map(|m| m.samples * m.measures.channel_count() as u64)
        .sum();
    println!(
        "{} meters, {} channel values decoded in {:.2} s",
        report.meters.len(),
        values,
        report.elapsed.as_secs_f64()
    );
    for failure in &report.failures {
        eprintln!("failed: {failure}");
    }
}
