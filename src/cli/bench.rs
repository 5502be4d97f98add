//! `meterflow bench batch`: end-to-end batch speed on a generated capture
//! (by default 10 minutes of a 32 kHz three-phase stream, ~460 MB), once
//! without and once with the raw waveform archive.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use bytes::BytesMut;

use crate::meter::signal::{Harmonic, SignalConfig, SignalGenerator};
use crate::pipeline::batch::run_batch;
use crate::pipeline::config::{PacketSinkConfig, PipelineConfig, SinkConfig, SourceConfig};
use crate::sink::packet::{DeliveryConfig, NdjsonConfig, SpoolConfig};
use crate::sink::parquet::ParquetConfig;
use crate::source::capture::RawParams;
use crate::wire::command::StreamType;
use crate::wire::frame::{put_data_frame, put_info_line};
use crate::wire::message::{DeviceInfo, SampleAnswer, StartTs, StopAnswer};
use crate::wire::Measures;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Minutes of stream in the generated capture.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Sampling rate of the generated capture, Hz.
    #[arg(long, default_value_t = 32_000)]
    pub rate: u32,
    /// Work folder (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
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
    let bytes = write_capture(&capture, args.rate, samples)?;
    println!(
        "generated {} ({:.1} MB, {} samples x 6 channels) in {:.1} s",
        capture.display(),
        bytes as f64 / 1e6,
        samples,
        started.elapsed().as_secs_f64()
    );
    let raw_f32_bytes = samples * Measures::ThreePhase.bytes_per_sample() as u64;
    for archive in [false, true] {
        let out = dir.join(if archive { "out-archive" } else { "out" });
        let _ = std::fs::remove_dir_all(&out);
        let config = bench_config(&capture, &out, archive);
        let report = run_batch(
            &config,
            std::slice::from_ref(&capture),
            &RawParams::default(),
            false,
        )
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
            "batch, raw archive {}: {:.2} s, {:.1} M samples/s, {:.1} MB/s",
            if archive { "on " } else { "off" },
            seconds,
            report.values as f64 / seconds / 1e6,
            report.bytes as f64 / seconds / 1e6
        );
        if archive {
            let archive_bytes = folder_bytes(&out.join("parquet/raw"))?;
            println!(
                "raw archive: {:.1} MB, {:.1} % of the {:.1} MB of raw f32 samples",
                archive_bytes as f64 / 1e6,
                100.0 * archive_bytes as f64 / raw_f32_bytes as f64,
                raw_f32_bytes as f64 / 1e6
            );
        }
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("meterflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn bench_config(capture: &Path, out: &Path, archive: bool) -> PipelineConfig {
    let mut parquet = ParquetConfig::new(out.join("parquet"));
    parquet.tables.raw = archive;
    parquet.fsync = false;
    PipelineConfig {
        name: "bench".to_string(),
        source: SourceConfig::Files(crate::pipeline::config::FilesConfig {
            paths: vec![capture.to_path_buf()],
            raw: Default::default(),
        }),
        dsp: Default::default(),
        aggregation: Default::default(),
        sink: SinkConfig {
            parquet: Some(parquet),
            packets: Some(ndjson_packets(out)),
        },
        service: Default::default(),
        record_log: Default::default(),
        cluster: None,
    }
}

/// Packets as NDJSON under `dir/packets`, spooled under `dir/spool`.
pub(crate) fn ndjson_packets(dir: &Path) -> PacketSinkConfig {
    PacketSinkConfig {
        build: Default::default(),
        targets: DeliveryConfig {
            ndjson: Some(NdjsonConfig::new(dir.join("packets"))),
            spool: SpoolConfig {
                dir: dir.join("spool"),
                ..SpoolConfig::default()
            },
            ..DeliveryConfig::default()
        },
    }
}

/// A meter byte stream as the virtual meter would send it, written fast.
fn write_capture(path: &Path, rate: u32, samples: u64) -> anyhow::Result<u64> {
    let measures = Measures::ThreePhase;
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
        seed: 42,
        ..SignalConfig::default()
    };
    let mut generator = SignalGenerator::new(signal, measures, rate)?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let start = StartTs::from_unix_millis(1_767_225_600_000);
    let mut buf = BytesMut::with_capacity(1 << 20);
    let info = serde_json::to_string(&DeviceInfo::new("bench001", "127.0.0.1"))?;
    put_info_line(&mut buf, &info);
    let answer = SampleAnswer::new(measures, rate, StreamType::Tcp, true, false, start);
    put_info_line(&mut buf, &serde_json::to_string(&answer)?);
    let samples_per_chunk = answer.chunksize / measures.bytes_per_sample();
    let mut values = vec![0f32; samples_per_chunk * measures.channel_count()];
    let mut written = 0u64;
    let mut seq = 0u32;
    let mut bytes = 0u64;
    while written < samples {
        let take = (samples - written).min(samples_per_chunk as u64) as usize;
        let chunk = &mut values[..take * measures.channel_count()];
        generator.fill(chunk);
        put_data_frame(&mut buf, seq, chunk);
        seq = seq.wrapping_add(1);
        written += take as u64;
        if buf.len() > (1 << 20) - 2048 {
            out.write_all(&buf).context("writing the bench capture")?;
            bytes += buf.len() as u64;
            buf.clear();
        }
    }
    let duration_ms = written * 1000 / u64::from(rate);
    let stop = StopAnswer::new(
        start,
        StartTs::from_unix_millis(start.to_unix_millis() + duration_ms),
        duration_ms,
        written,
        written,
        "127.0.0.1",
    );
    put_info_line(&mut buf, &serde_json::to_string(&stop)?);
    out.write_all(&buf).context("writing the bench capture")?;
    bytes += buf.len() as u64;
    out.flush().context("writing the bench capture")?;
    Ok(bytes)
}

/// Total size of the files under `dir`.
fn folder_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    if !dir.exists() {
        return Ok(0);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        total += if path.is_dir() {
            folder_bytes(&path)?
        } else {
            std::fs::metadata(&path)?.len()
        };
    }
    Ok(total)
}
