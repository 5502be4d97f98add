//! Power quality on by default: `meterflow batch` without a pipeline file
//! finds a virtual meter's dips with the Udin and frequency inferred from
//! its first second, says so in the `events` table, infers nothing for a
//! meter far from every standard nominal, and `[dsp.pq] enabled = false`
//! turns it off.
//!
//! Truth is the signal's: its nominal (120 V / 60 Hz, 230 V / 50 Hz, 400 V)
//! and its dips (`disturbance::truth`). Tolerances as `pq_pipeline`:
//! times within one cycle, residual voltage within 0.2 % of Udin; window
//! length within one sample of 12 cycles at 60 Hz.

use crate::common;

use std::path::{Path, PathBuf};

use common::batch::batch_file;
use common::parquet_read::{read_rows, Cell};
use common::rows::{num, text, ts, Row};
use meterflow::meter::disturbance::{self, Disturbance};
use meterflow::meter::offline_capture::OfflineCapture;
use meterflow::meter::signal::SignalConfig;
use meterflow::wire::Measures;

/// 2026-01-01 00:00:00 UTC, the captures' `startTs`.
const START_MS: u64 = 1_767_225_600_000;
const RATE: u32 = 4000;

fn ns(t_s: f64) -> i64 {
    START_MS as i64 * 1_000_000 + (t_s * 1e9).round() as i64
}

fn dip(at_s: f64, duration_s: f64, phases: &[u8], level_pct: f64) -> Disturbance {
    Disturbance {
        at_s,
        duration_s: Some(duration_s),
        phases: phases.to_vec(),
        level_pct: Some(level_pct),
        level_v: None,
    }
}

fn signal(voltage_rms_v: f64, frequency_hz: f64, disturbances: Vec<Disturbance>) -> SignalConfig {
    SignalConfig {
        voltage_rms_v,
        frequency_hz,
        voltage_noise_rms_v: 0.05,
        current_angle_deg: 20.0,
        disturbances,
        seed: 5,
        ..SignalConfig::default()
    }
}

/// `meterflow batch` over a capture of `signal`, with `pipeline` as its
/// pipeline file or none at all.
async fn batch(dir: &Path, signal: SignalConfig, seconds: u64, pipeline: Option<&str>) -> PathBuf {
    let mut capture = OfflineCapture::new("m1", signal, Measures::ThreePhase, RATE);
    capture.start_unix_ms = START_MS;
    capture.samples = seconds * u64::from(RATE);
    let file = dir.join("meter.mfcap");
    capture.write(&file).unwrap_or_else(|e| panic!("{e:#}"));
    let out = dir.join("out");
    batch_file(&file, &out, pipeline).await;
    out.join("parquet")
}

fn rows(parquet: &Path, table: &str) -> Vec<Row> {
    let dir = parquet.join(table);
    if !dir.exists() {
        return Vec::new();
    }
    let mut rows = read_rows(&dir);
    let order = match table {
        "events" => "time",
        "windows" => "window_start",
        _ => "start",
    };
    rows.sort_by_key(|r| ts(r, order));
    rows
}

fn nominal_rows(parquet: &Path) -> Vec<Row> {
    rows(parquet, "events")
        .into_iter()
        .filter(|e| text(e, "kind") == "nominal")
        .collect()
}

fn flag(row: &Row, column: &str) -> bool {
    match row[column] {
        Cell::Bool(b) => b,
        ref other => panic!("{column} is {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_120_volt_60_hz_capture_gets_its_dips_with_the_inferred_udin() {
    let dir = tempfile::tempdir().unwrap();
    // One dip inside the first (held) second, one after it.
    let signal = signal(
        121.0,
        60.0,
        vec![dip(0.3013, 0.2, &[1], 50.0), dip(2.5021, 0.3, &[], 70.0)],
    );
    let truth = disturbance::truth(&signal, RATE);
    let parquet = batch(dir.path(), signal, 4, None).await;

    let nominal = nominal_rows(&parquet);
    assert_eq!(nominal.len(), 1, "{nominal:#?}");
    let message = text(&nominal[0], "message");
    assert!(message.contains("Udin 120 V inferred"), "{message}");
    assert!(
        message.contains("nominal frequency 60 Hz inferred"),
        "{message}"
    );

    let events = rows(&parquet, "pq_events");
    let kinds: Vec<String> = events.iter().map(|e| text(e, "kind")).collect();
    assert_eq!(kinds, ["dip", "dip"], "{events:#?}");
    let udin = 120.0;
    for (event, truth) in events.iter().zip(&truth) {
        assert_eq!(num(event, "udin_v"), udin);
        assert!(flag(event, "udin_inferred"));
        let cycle_ns = 1e9 / 60.0;
        let start_error = (ts(event, "start") - ns(truth.start_s)) as f64;
        assert!(start_error.abs() <= cycle_ns, "start {start_error} ns off");
        let end_s = truth.end_s.unwrap_or(f64::NAN);
        let end_error = (ts(event, "end") - ns(end_s)) as f64;
        assert!(end_error.abs() <= cycle_ns, "end {end_error} ns off");
        let residual = truth
            .phases
            .iter()
            .zip(truth.during_v)
            .filter(|(on, _)| **on)
            .map(|(_, v)| v)
            .fold(f64::INFINITY, f64::min);
        assert!(
            (num(event, "extreme_v") - residual).abs() <= 0.002 * udin,
            "residual {} V, truth {residual} V",
            num(event, "extreme_v")
        );
        let pct = num(event, "extreme_pct_udin");
        assert!((pct - num(event, "extreme_v") / udin * 100.0).abs() < 1e-9);
    }

    // Windows are 12 cycles of 60 Hz.
    let windows = rows(&parquet, "windows");
    let clean: Vec<&Row> = windows
        .iter()
        .filter(|w| matches!(w["flags"], Cell::I64(0) | Cell::I32(0)))
        .collect();
    assert!(clean.len() > 10, "{} clean windows", clean.len());
    for window in clean {
        let duration = num(window, "duration_s");
        assert!(
            (duration - 0.2).abs() <= 1.0 / f64::from(RATE),
            "window of {duration} s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_volt_meter_gets_no_udin_and_a_row_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let signal = signal(400.0, 50.0, vec![dip(1.5013, 0.2, &[], 50.0)]);
    let parquet = batch(dir.path(), signal, 3, None).await;
    let nominal = nominal_rows(&parquet);
    assert_eq!(nominal.len(), 1, "{nominal:#?}");
    let message = text(&nominal[0], "message");
    assert!(message.contains("no Udin inferred"), "{message}");
    assert!(message.contains("median RMS 400."), "{message}");
    assert!(message.contains("no power-quality events"), "{message}");
    assert_eq!(rows(&parquet, "pq_events").len(), 0);
    // The windows still are: 50 Hz was found.
    assert!(
        message.contains("nominal frequency 50 Hz inferred"),
        "{message}"
    );
    assert!(!rows(&parquet, "windows").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_false_turns_power_quality_off_and_a_declared_udin_is_not_inferred() {
    let signal = || signal(230.0, 50.0, vec![dip(1.5013, 0.2, &[], 50.0)]);

    let dir = tempfile::tempdir().unwrap();
    let off = "[dsp.pq]\nenabled = false\n";
    let parquet = batch(dir.path(), signal(), 3, Some(off)).await;
    assert_eq!(rows(&parquet, "pq_events").len(), 0);
    // Udin is still inferred (the aggregates' under/over deviation uses it).
    let nominal = nominal_rows(&parquet);
    assert_eq!(nominal.len(), 1, "{nominal:#?}");
    assert!(text(&nominal[0], "message").contains("Udin 230 V inferred"));

    let dir = tempfile::tempdir().unwrap();
    let given = "[dsp]\ndeclared_voltage_v = 230\nnominal_frequency_hz = 50\n";
    let parquet = batch(dir.path(), signal(), 3, Some(given)).await;
    assert_eq!(nominal_rows(&parquet).len(), 0);
    let events = rows(&parquet, "pq_events");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(num(&events[0], "udin_v"), 230.0);
    assert!(!flag(&events[0], "udin_inferred"));
}
