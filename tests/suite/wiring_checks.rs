//! Wiring checks through `meterflow batch`: virtual meters wired wrong (a
//! reversed clamp, a clamp on the wrong phase, a swapped phase order, a
//! missing voltage, an empty clamp, a wrong voltage scale) are each found with
//! the right reason and phase within 10 s of meter time, as a `wiring` row
//! in `events` and in the device summary; a clean three-phase meter and one
//! exporting on every phase (PV) are not flagged.
//!
//! Ground truth is the virtual meter's configuration: which input it wired
//! wrong is what the check must name. Signals carry noise (0.2 V, 20 mA) and
//! a load that lags 20° (PF 0.94), so no finding rests on exact numbers.

use crate::common;

use std::path::Path;

use common::batch::batch_file;
use common::parquet_read::read_rows;
use common::rows::{text, ts};
use meterflow::meter::offline_capture::OfflineCapture;
use meterflow::meter::signal::SignalConfig;
use meterflow::meter::wiring::WiringConfig;
use meterflow::model::run_report::RunReport;
use meterflow::model::WiringReason;
use meterflow::wire::Measures;

/// 2026-01-01 00:00:00 UTC, the captures' `startTs`.
const START_MS: u64 = 1_767_225_600_000;
/// Seconds of meter time each capture holds.
const CAPTURE_S: u64 = 12;
/// A finding must come within this much meter time of the start.
const FOUND_WITHIN_S: f64 = 10.0;
const RATE: u32 = 4000;

fn signal(wiring: WiringConfig) -> SignalConfig {
    SignalConfig {
        current_angle_deg: 20.0,
        voltage_noise_rms_v: 0.2,
        current_noise_rms_a: 0.02,
        seed: 23,
        wiring,
        ..SignalConfig::default()
    }
}

/// Batches one virtual meter's capture; returns the report and the
/// `wiring` rows of `events` as (seconds since the start, message).
async fn batch(dir: &Path, name: &str, signal: SignalConfig) -> (RunReport, Vec<(f64, String)>) {
    batch_with(dir, name, signal, None).await
}

/// [`batch`] with a pipeline file's text (no `[source]`).
async fn batch_with(
    dir: &Path,
    name: &str,
    signal: SignalConfig,
    pipeline: Option<&str>,
) -> (RunReport, Vec<(f64, String)>) {
    let mut capture = OfflineCapture::new(name, signal, Measures::ThreePhase, RATE);
    capture.start_unix_ms = START_MS;
    capture.samples = CAPTURE_S * u64::from(RATE);
    let file = dir.join(format!("{name}.mfcap"));
    capture.write(&file).unwrap_or_else(|e| panic!("{e:#}"));
    let out = dir.join(format!("out-{name}"));
    let report = batch_file(&file, &out, pipeline).await;
    let events_dir = out.join("parquet").join("events");
    let rows = if events_dir.exists() {
        read_rows(&events_dir)
    } else {
        Vec::new()
    };
    let mut wiring: Vec<(f64, String)> = rows
        .iter()
        .filter(|r| text(r, "kind") == "wiring")
        .map(|r| {
            let since_start = (ts(r, "time") - START_MS as i64 * 1_000_000) as f64 * 1e-9;
            (since_start, text(r, "message"))
        })
        .collect();
    wiring.sort_by(|a, b| a.0.total_cmp(&b.0));
    (report, wiring)
}

/// The fault each virtual meter is wired with, and what the check must say.
fn faults() -> Vec<(&'static str, WiringConfig, WiringReason, Option<u8>)> {
    let base = WiringConfig::default;
    vec![
        (
            "reversed",
            WiringConfig {
                reversed_clamps: vec![2],
                ..base()
            },
            WiringReason::ReversedClamp,
            Some(1),
        ),
        (
            "wrongphase",
            // Meter L3's clamp sits on the grid L1 conductor.
            WiringConfig {
                clamp_phases: vec![1, 2, 1],
                ..base()
            },
            WiringReason::ClampOnWrongPhase,
            Some(2),
        ),
        (
            "swapped",
            WiringConfig {
                swapped_phase_order: true,
                ..base()
            },
            WiringReason::NegativeSequence,
            None,
        ),
        (
            "novoltage",
            WiringConfig {
                missing_voltages: vec![3],
                ..base()
            },
            WiringReason::MissingVoltage,
            Some(2),
        ),
        (
            "noclamp",
            WiringConfig {
                empty_clamps: vec![1],
                ..base()
            },
            WiringReason::EmptyClamp,
            Some(0),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_wiring_fault_is_found_with_its_reason_and_phase() {
    let dir = tempfile::tempdir().unwrap();
    for (name, wiring, reason, phase) in faults() {
        let (report, rows) = batch(dir.path(), name, signal(wiring)).await;
        let summary = report
            .devices
            .iter()
            .find(|d| d.device == name)
            .unwrap_or_else(|| panic!("{name}: no summary in {:?}", report.devices));
        let status = summary
            .wiring
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no wiring status"));
        assert_eq!(
            (status.reason, status.phase),
            (reason, phase),
            "{name}: {status}"
        );
        assert!(status.confidence > 0.5, "{name}: {status}");
        // One finding, written once, early.
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
        let (at_s, message) = &rows[0];
        assert!(*at_s <= FOUND_WITHIN_S, "{name}: found at {at_s} s");
        let expected = match phase {
            Some(k) => format!("{} L{}", reason.as_str(), k + 1),
            None => reason.as_str().to_string(),
        };
        assert!(
            message.starts_with(&format!("{expected} (")),
            "{name}: {message}"
        );
    }
}

/// With power quality on, a phase without voltage is a dip to 0 % for the
/// whole stream: every window carries the PQ flag, and the check still
/// finds the missing voltage (it looks past that flag, not past gaps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_voltage_is_found_with_power_quality_on() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = WiringConfig {
        missing_voltages: vec![2],
        ..WiringConfig::default()
    };
    let (report, rows) = batch_with(dir.path(), "pqon", signal(wiring), Some("[dsp.pq]\n")).await;
    assert!(
        report.devices[0].pq_events.dips >= 1,
        "{:?}",
        report.devices[0]
    );
    let status = report.devices[0]
        .wiring
        .as_ref()
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(
        (status.reason, status.phase),
        (WiringReason::MissingVoltage, Some(1)),
        "{status}"
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].0 <= FOUND_WITHIN_S, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_voltage_scale_is_found() {
    // A 400 V reading per phase: 15 % above 347 V, the nearest nominal.
    let dir = tempfile::tempdir().unwrap();
    let signal = SignalConfig {
        voltage_rms_v: 400.0,
        ..signal(WiringConfig::default())
    };
    let (report, rows) = batch(dir.path(), "scale", signal).await;
    let status = report.devices[0]
        .wiring
        .as_ref()
        .unwrap_or_else(|| panic!("no status"));
    // Every phase is off: the meter's scaling, not one phase.
    assert_eq!(
        (status.reason, status.phase),
        (WiringReason::VoltageOffNominal, None),
        "{status}"
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].0 <= FOUND_WITHIN_S, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_meter_and_an_all_phase_exporter_are_not_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = SignalConfig {
        // PV feeding in at PF 0.97: the current 165° from each voltage.
        current_angle_deg: 165.0,
        ..signal(WiringConfig::default())
    };
    for (name, signal) in [("clean", signal(WiringConfig::default())), ("pv", exporter)] {
        let (report, rows) = batch(dir.path(), name, signal).await;
        assert!(rows.is_empty(), "{name}: {rows:?}");
        let status = report.devices[0]
            .wiring
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no wiring status"));
        assert_eq!(status.reason, WiringReason::Ok, "{name}: {status}");
        assert_eq!(status.confidence, 1.0, "{name}: {status}");
    }
}

/// The demo fleet (`meterflow run`) shows what the checks are for: its
/// `miswired` meter (L2 clamp on backwards) is named in the summary, its
/// other meters (a PV exporter among them) are not.
#[test]
fn the_demo_names_its_miswired_meter_and_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(["run", "--fast", "--seconds", "6", "--out", "demo-out"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let wiring: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(": wiring: "))
        .collect();
    assert_eq!(wiring.len(), 5, "{stdout}");
    for line in wiring {
        if line.trim_start().starts_with("miswired:") {
            assert!(line.contains(": wiring: reversed_clamp L2 ("), "{line}");
        } else {
            assert!(line.contains(": wiring: ok ("), "{line}");
        }
    }
}

/// `meterflow inspect` prints each waveform session's wiring status: a
/// capture of a meter with its L2 and L3 swapped reads negative sequence.
#[test]
fn inspect_prints_the_wiring_status() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = WiringConfig {
        swapped_phase_order: true,
        ..WiringConfig::default()
    };
    let mut capture = OfflineCapture::new("swapped", signal(wiring), Measures::ThreePhase, RATE);
    // 2 s: shorter than one regular assessment, long enough for the one at the end.
    capture.samples = 2 * u64::from(RATE);
    let file = dir.path().join("swapped.mfcap");
    capture.write(&file).unwrap_or_else(|e| panic!("{e:#}"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .arg("inspect")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("wiring: ")).collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0]
            .trim_start()
            .starts_with("wiring: negative_sequence ("),
        "{stdout}"
    );
}
