//! `meterflow bench batch`: end-to-end batch speed on a generated capture
//! (by default 10 minutes of a 32 kHz three-phase stream, ~460 MB): the
//! plain engine, with power quality on (events and flicker), and with the
//! raw waveform archive.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::meter::disturbance::Disturbance;
use crate::meter::offline_capture::OfflineCapture;
use crate::meter::signal::{Harmonic, SignalConfig};
use crate::pipeline::batch_request::BatchRequest;
use crate::pipeline::runner;
use crate::pipeline::sources::RunOptions;
use crate::pipeline::PipelineConfig;
use crate::wire::Measures;

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct BatchBench {
    /// Minutes of stream in the generated capture.
    pub minutes: f64,
    /// Sampling rate of the generated capture, Hz.
    pub rate: u32,
    /// Work folder (default: a temporary one, removed afterwards).
    pub dir: Option<PathBuf>,
}

pub async fn run(args: BatchBench) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile_dir()?;
            temp.clone()
        }
    };
    let capture = dir.join("bench.mfcap");
    let started = Instant::now();
    let samples = (args.minutes * 60.0 * f64::from(args.rate)).round() as u64;
    let bytes = bench_capture(args.rate, samples).write(&capture)?;
    println!(
        "generated {} ({:.1} MB, {} samples x 6 channels) in {:.1} s",
        capture.display(),
        bytes as f64 / 1e6,
        samples,
        started.elapsed().as_secs_f64()
    );
    let raw_f32_bytes = samples * Measures::ThreePhase.bytes_per_sample() as u64;
    for run in [Run::Plain, Run::Defaults, Run::RawArchive] {
        let out = dir.join(run.folder());
        let _ = std::fs::remove_dir_all(&out);
        let request = BatchRequest {
            inputs: vec![capture.clone()],
            out: out.clone(),
            ..BatchRequest::default()
        };
        let config = bench_config(&request, run)?;
        let report = runner::start(config, RunOptions::default())
            .await?
            .run(tokio_util::sync::CancellationToken::new())
            .await?;
        if report.failed_files() > 0 {
            let reasons: Vec<String> = report
                .files
                .iter()
                .filter_map(|f| f.result.as_ref().err())
                .cloned()
                .collect();
            anyhow::bail!("the bench capture failed: {}", reasons.join("; "));
        }
        let seconds = report.elapsed_s.max(1e-9);
        println!(
            "batch, {}: {:.2} s, {:.1} M samples/s, {:.1} MB/s",
            run.label(),
            seconds,
            report.values as f64 / seconds / 1e6,
            report.bytes as f64 / seconds / 1e6
        );
        match run {
            Run::Plain => {}
            Run::Defaults => {
                let pq = report
                    .devices
                    .iter()
                    .fold(0, |n, d| n + d.pq_events.total());
                println!("power quality: {pq} events in the pq_events table");
            }
            Run::RawArchive => {
                let archive_bytes = super::folder_bytes(&out.join("parquet/raw"))?;
                println!(
                    "raw archive: {:.1} MB, {:.1} % of the {:.1} MB of raw f32 samples",
                    archive_bytes as f64 / 1e6,
                    100.0 * archive_bytes as f64 / raw_f32_bytes as f64,
                    raw_f32_bytes as f64 / 1e6
                );
            }
        }
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// The three batch runs over the same capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// `[dsp.pq] enabled = false`, Udin 230 V and 50 Hz given: what a batch
    /// without a pipeline file did before power quality was on by default.
    Plain,
    /// No pipeline file: PQ events and the flickermeter on every voltage
    /// channel, Udin and frequency inferred from the first second.
    Defaults,
    /// As `Plain`, with the raw archive.
    RawArchive,
}

impl Run {
    fn folder(self) -> &'static str {
        match self {
            Run::Plain => "out",
            Run::Defaults => "out-pq",
            Run::RawArchive => "out-archive",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Run::Plain => "PQ off, raw archive off",
            Run::Defaults => "defaults: PQ on (events + flicker), Udin and Hz inferred",
            Run::RawArchive => "PQ off, raw archive on",
        }
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("meterflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The batch's pipeline for `run`: outputs under the request's folder
/// without fsync (the bench measures the engine, not the disk).
fn bench_config(request: &BatchRequest, run: Run) -> anyhow::Result<PipelineConfig> {
    let mut config = request.config()?;
    config.name = "bench".to_string();
    if let Some(parquet) = &mut config.sink.parquet {
        parquet.tables.raw = run == Run::RawArchive;
        parquet.fsync = false;
    }
    if run != Run::Defaults {
        config.dsp.pq = None;
        config.dsp.declared_voltage_v = Some(230.0);
        config.dsp.nominal_frequency_hz = Some(50.0);
    }
    config.validate()?;
    Ok(config)
}

/// A loaded three-phase meter with a dip, a swell and an RVC step each
/// minute, so the PQ run has events to find (the other runs ignore them).
fn bench_capture(rate: u32, samples: u64) -> OfflineCapture {
    let minutes = samples / (60 * u64::from(rate.max(1)));
    let disturbances = (0..minutes)
        .flat_map(|m| {
            let at = m as f64 * 60.0;
            [
                disturbance(at + 10.0, Some(0.3), vec![1], 60.0),
                disturbance(at + 25.0, Some(0.1), vec![], 115.0),
                disturbance(at + 40.0, Some(10.0), vec![2], 95.0),
            ]
        })
        .collect();
    let signal = SignalConfig {
        frequency_hz: 50.02,
        current_rms_a: 20.0,
        current_angle_deg: 25.0,
        current_harmonics: vec![
            Harmonic {
                order: 3,
                magnitude: 0.2,
                phase_deg: 0.0,
            },
            Harmonic {
                order: 5,
                magnitude: 0.1,
                phase_deg: 30.0,
            },
        ],
        voltage_noise_rms_v: 0.1,
        disturbances,
        seed: 42,
        ..SignalConfig::default()
    };
    OfflineCapture {
        samples,
        ..OfflineCapture::new("bench001", signal, Measures::ThreePhase, rate)
    }
}

fn disturbance(at_s: f64, duration_s: Option<f64>, phases: Vec<u8>, level_pct: f64) -> Disturbance {
    Disturbance {
        at_s,
        duration_s,
        phases,
        level_pct: Some(level_pct),
        level_v: None,
    }
}
