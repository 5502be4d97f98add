//! Regenerates the small captures in `testdata/` and the truth file beside
//! each: a virtual meter dials into a loopback sink that asks for the layout
//! and rate, takes the samples, stops the meter, and the meter's capture is
//! exactly the bytes it sent.
//!
//!     cargo run --release --example make_testdata -- testdata

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use meterflow::meter::firmware::{MeterSettings, SessionLimit};
use meterflow::meter::fleet::{start_fleet, FleetConfig, FleetMode};
use meterflow::meter::pacing::Pacing;
use meterflow::meter::signal::{Harmonic, LoadStep, SignalConfig};
use meterflow::source::meter_session::{run_session, SessionSettings};
use meterflow::wire::{Measures, Phase};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Capture {
    name: &'static str,
    what: &'static str,
    measures: Measures,
    rate: u32,
    seconds: f64,
    signal: SignalConfig,
}

fn harmonic(order: u32, magnitude: f64, phase_deg: f64) -> Harmonic {
    Harmonic {
        order,
        magnitude,
        phase_deg,
    }
}

fn captures() -> Vec<Capture> {
    vec![
        Capture {
            name: "three_phase_8khz",
            what: "three-phase 50 Hz, inductive load with current harmonics, small noise",
            measures: Measures::ThreePhase,
            rate: 8000,
            seconds: 2.0,
            signal: SignalConfig {
                current_rms_a: 16.0,
                current_angle_deg: 30.0,
                voltage_harmonics: vec![harmonic(5, 0.03, 0.0), harmonic(7, 0.015, 20.0)],
                current_harmonics: vec![harmonic(3, 0.25, -30.0), harmonic(5, 0.1, 45.0)],
                voltage_noise_rms_v: 0.05,
                current_noise_rms_a: 0.005,
                seed: 11,
                ..SignalConfig::default()
            },
        },
        Capture {
            name: "single_phase_4khz_60hz",
            what: "v,i (phase L1 only) on a 60 Hz grid, capacitive load",
            measures: Measures::SinglePhase,
            rate: 4000,
            seconds: 2.0,
            signal: SignalConfig {
                voltage_rms_v: 120.0,
                frequency_hz: 60.0,
                current_rms_a: 5.0,
                current_angle_deg: -20.0,
                seed: 12,
                ..SignalConfig::default()
            },
        },
        Capture {
            name: "phase_l2_16khz_drift",
            what: "v,i_L2 at 16 kHz with the grid frequency drifting up",
            measures: Measures::Phase(Phase::L2),
            rate: 16000,
            seconds: 1.0,
            signal: SignalConfig {
                frequency_hz: 49.9,
                frequency_drift_hz_per_s: 0.2,
                current_rms_a: 3.0,
                current_angle_deg: 10.0,
                current_harmonics: vec![harmonic(3, 0.4, 0.0)],
                seed: 13,
                ..SignalConfig::default()
            },
        },
        Capture {
            name: "three_phase_32khz_reversal",
            what: "three-phase at 32 kHz; at 0.25 s the load reverses and exports",
            measures: Measures::ThreePhase,
            rate: 32000,
            seconds: 0.5,
            signal: SignalConfig {
                current_rms_a: 20.0,
                current_angle_deg: 15.0,
                load_steps: vec![LoadStep {
                    at_s: 0.25,
                    current_rms_a: Some(12.0),
                    current_angle_deg: Some(165.0),
                }],
                seed: 14,
                ..SignalConfig::default()
            },
        },
        Capture {
            name: "power_latch_50hz",
            what: "p,q latch mode at 50 Hz output",
            measures: Measures::PowerLatch,
            rate: 50,
            seconds: 10.0,
            signal: SignalConfig {
                current_rms_a: 8.0,
                current_angle_deg: 36.87,
                seed: 15,
                ..SignalConfig::default()
            },
        },
        Capture {
            name: "rms_latch_10hz",
            what: "v,i_RMS latch mode at 10 Hz output with current harmonics",
            measures: Measures::RmsLatch,
            rate: 10,
            seconds: 10.0,
            signal: SignalConfig {
                current_rms_a: 4.0,
                current_harmonics: vec![harmonic(3, 0.3, 0.0)],
                voltage_imbalance: [1.0, 0.98, 1.01],
                seed: 16,
                ..SignalConfig::default()
            },
        },
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "testdata".into()));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for capture in captures() {
        make(&capture, &out).await.with_context(|| capture.name)?;
    }
    Ok(())
}

async fn make(capture: &Capture, out: &Path) -> anyhow::Result<()> {
    let file = out.join(format!("{}.mfcap", capture.name));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: addr.to_string(),
            reconnect: Duration::from_secs(1),
        },
        1,
    );
    // The fleet gives meter 1 the seed `seed + 1`: compensate so the truth
    // file's seed is the one on the wire.
    let mut signal = capture.signal.clone();
    signal.seed = capture.signal.seed.wrapping_sub(1);
    let samples = (capture.seconds * f64::from(capture.rate)).round() as u64;
    // The meter stops itself after exactly `samples` (tail, stop answer), so
    // the capture holds no more than asked for.
    fleet.template = MeterSettings {
        signal,
        pacing: Pacing::Fast,
        limit: Some(SessionLimit::Samples(samples)),
        ..MeterSettings::new("smartmeter")
    };
    // A name of its own per capture, as every real meter has.
    fleet.name_prefix = format!("{}-", capture.name);
    fleet.capture = Some(file.clone());
    let running = start_fleet(fleet, cancel.clone()).await?;
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .context("the meter did not dial in")??;
    let settings = SessionSettings {
        rate: capture.rate,
        measures: capture.measures,
        ..SessionSettings::default()
    };
    let report = run_session(
        socket,
        &settings,
        CancellationToken::new(),
        &mut |_: &meterflow::wire::SampleBlock| {},
    )
    .await?;
    anyhow::ensure!(
        report.samples == samples && report.stop.is_some(),
        "expected {samples} samples and a stop answer, got {} ({:?})",
        report.samples,
        report.end
    );
    cancel.cancel();
    running.wait().await;

    let truth = json!({
        "capture": file.file_name().map(|n| n.to_string_lossy().to_string()),
        "description": capture.what,
        "meter": report.info.name,
        "measures": capture.measures.as_str(),
        "rate_hz": capture.rate,
        "samples": report.samples,
        "start_ts": report.answer.start_ts.to_string(),
        "signal": capture.signal,
        "truth_at_start": capture.signal.truth_at(0.0),
        "truth_at_end": capture.signal.truth_at(report.samples as f64 / f64::from(capture.rate)),
    });
    let json_path = out.join(format!("{}.json", capture.name));
    std::fs::write(&json_path, serde_json::to_string_pretty(&truth)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!(
        "{}: {} samples, {} bytes",
        file.display(),
        report.samples,
        std::fs::metadata(&file)?.len()
    );
    Ok(())
}
