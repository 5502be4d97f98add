//! Batch jobs end to end: the testdata captures through the engine into
//! Parquet and NDJSON packets, checked against the signals' analytic truth;
//! bad files are reported without costing the good ones.

use crate::common;

use std::path::{Path, PathBuf};

use common::ndjson::packets;
use meterflow::meter::signal::SignalConfig;
use meterflow::pipeline::batch::run_batch;
use meterflow::pipeline::batch_request::BatchRequest;
use meterflow::source::capture::RawParams;
use meterflow::source::files::expand_inputs;
use serde::Deserialize;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn args(inputs: Vec<PathBuf>, out: &Path) -> BatchRequest {
    BatchRequest {
        inputs,
        out: out.to_path_buf(),
        pipeline: None,
        ..BatchRequest::default()
    }
}

#[derive(Deserialize)]
struct Truth {
    signal: SignalConfig,
}

fn measurand(sensor: &serde_json::Value, key: &str) -> Option<f64> {
    sensor["measurands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == key)
        .and_then(|m| m["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testdata_through_the_engine_matches_the_signal_truth() {
    let out = tempfile::tempdir().unwrap();
    let args = args(vec![testdata()], out.path());
    let config = args.config().unwrap();
    let files = expand_inputs(&args.inputs, &RawParams::default()).unwrap();
    // Only the captures are taken from the folder, not their truth files.
    assert_eq!(files.len(), 6, "{files:?}");
    let report = run_batch(&config, &files, &RawParams::default(), false)
        .await
        .unwrap();
    assert_eq!(report.failed_files(), 0, "{:?}", report.files);
    assert_eq!(report.devices.len(), 6, "one meter per capture");

    // Parquet: a windows dataset partitioned by device and date.
    let windows = out
        .path()
        .join("parquet/windows/device=three_phase_8khz-001");
    let dates: Vec<_> = std::fs::read_dir(&windows).unwrap().collect();
    assert!(!dates.is_empty());
    let rows = |table: &str| report.output_total("parquet", &format!("rows.{table}"));
    assert!(rows("windows") > 0);
    // The p,q and v,i_RMS captures: 10 s each in 200 ms latch windows.
    assert_eq!(rows("latch"), 100, "{:?}", report.outputs);
    assert!(out
        .path()
        .join("parquet/latch/device=power_latch_50hz-001")
        .is_dir());

    // Packets: the three-phase capture's intervals carry its analytic power.
    let truth: Truth = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("three_phase_8khz.json")).unwrap(),
    )
    .unwrap();
    let expected = truth.signal.truth_at(0.5);
    let packets = packets(&out.path().join("packets"));
    assert!(!packets.is_empty());
    let sensors: Vec<&serde_json::Value> = packets
        .iter()
        .flat_map(|p| p["sensors"].as_array().unwrap())
        .collect();
    // The sensor of the three-phase capture's meter (UUIDv5 of its name).
    let sensor_id = meterflow::model::identity::name_uuid("three_phase_8khz-001").to_string();
    let three_phase: Vec<&&serde_json::Value> = sensors
        .iter()
        .filter(|s| s["sensor_id"] == sensor_id.as_str())
        .collect();
    // 2 s of data: one or two packet intervals.
    assert!(!three_phase.is_empty() && three_phase.len() <= 2);
    for sensor in three_phase {
        // Tolerances: the packet values are interval means of windows whose
        // accuracy the dsp tests pin down; noise in the capture adds a little.
        let p = measurand(sensor, "TOTAL_POWER_LOAD").unwrap();
        assert!(
            (p - expected.p_total_w).abs() <= 5e-4 * expected.s_total_va,
            "P {p}"
        );
        let v = measurand(sensor, "VOLTAGE").unwrap();
        let v_truth = expected.phases[0].v_rms_v;
        assert!((v - v_truth).abs() <= 2e-4 * v_truth, "V {v} vs {v_truth}");
        let i = measurand(sensor, "CURRENT").unwrap();
        let i_truth: f64 = expected.phases.iter().map(|p| p.i_rms_a).sum();
        assert!((i - i_truth).abs() <= 5e-4 * i_truth, "I {i} vs {i_truth}");
        let f = measurand(sensor, "FREQUENCY").unwrap();
        assert!((f - 50.0).abs() < 0.002, "f {f}");
        let thd = measurand(sensor, "PHASE_1_CURRENT_THD").unwrap();
        assert!(
            (thd - expected.phases[0].thd_i_pct).abs() < 0.05,
            "THD {thd}"
        );
        assert!(measurand(sensor, "ACTIVE_ENERGY_IMPORTED").unwrap() > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_reported_and_the_good_ones_finish() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let unknown_layout = dir.path().join("samples.f32");
    std::fs::write(&unknown_layout, vec![0u8; 2400]).unwrap();
    let good = testdata().join("single_phase_4khz_60hz.mfcap");
    let out = tempfile::tempdir().unwrap();
    let inputs = vec![empty.clone(), unknown_layout.clone(), good];
    let args = args(inputs.clone(), out.path());
    let config = args.config().unwrap();
    let report = run_batch(&config, &inputs, &RawParams::default(), false)
        .await
        .unwrap();
    assert_eq!(report.failed_files(), 2);
    let reason = |path: &Path| {
        report
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap()
            .result
            .as_ref()
            .unwrap_err()
            .clone()
    };
    assert!(reason(&empty).contains("empty"), "{}", reason(&empty));
    assert!(
        reason(&unknown_layout).contains("--measures"),
        "{}",
        reason(&unknown_layout)
    );
    assert_eq!(report.devices.len(), 1);
    assert!(report.devices[0].windows > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not_a_folder");
    std::fs::write(&blocker, b"x").unwrap();
    let args = args(vec![testdata().join("three_phase_8khz.mfcap")], &blocker);
    let config = args.config().unwrap();
    let error = run_batch(&config, &args.inputs, &RawParams::default(), false)
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("not_a_folder"), "{text}");
}

/// The repro (issue 22, item 2): a capture and its copy in another
/// folder, and the capture named twice. One run's windows and energy, not
/// two: the copy is refused naming both files, the second naming ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_given_twice_is_one_run() {
    let capture = testdata().join("three_phase_8khz.mfcap");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for folder in [&a, &b] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::copy(&capture, folder.join("c.mfcap")).unwrap();
    }
    let run = |inputs: Vec<PathBuf>| async move {
        let out = tempfile::tempdir().unwrap();
        let args = args(inputs, out.path());
        let config = args.config().unwrap();
        let files = expand_inputs(&args.inputs, &RawParams::default()).unwrap();
        let report = run_batch(&config, &files, &RawParams::default(), false)
            .await
            .unwrap();
        (files, report, out)
    };
    let (_, once, _once_out) = run(vec![capture.clone()]).await;
    let windows_once = once.output_total("parquet", "rows.windows");
    let energy_once = once.devices[0].energy_imported_wh;
    // The capture's analytic power over its duration (tolerance as for P in
    // the test above: the windows' accuracy plus the capture's noise).
    let truth: Truth = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("three_phase_8khz.json")).unwrap(),
    )
    .unwrap();
    let expected = truth.signal.truth_at(0.5);
    let hours = once.devices[0].duration_s / 3600.0;
    assert!(
        (energy_once - expected.p_total_w * hours).abs() <= 5e-4 * expected.s_total_va * hours,
        "{energy_once} Wh"
    );

    let (files, twice, _) = run(vec![capture.clone(), capture.clone()]).await;
    assert_eq!(files, vec![capture.clone()]);
    assert_eq!(twice.failed_files(), 0);
    assert_eq!(twice.output_total("parquet", "rows.windows"), windows_once);
    assert_eq!(twice.devices[0].energy_imported_wh, energy_once);

    let (files, copies, _) = run(vec![dir.path().to_path_buf()]).await;
    assert_eq!(files.len(), 2);
    assert_eq!(copies.failed_files(), 1);
    let refused = copies.files.iter().find(|f| f.result.is_err()).unwrap();
    let reason = refused.result.as_ref().unwrap_err();
    let other = files.iter().find(|f| **f != refused.path).unwrap();
    assert!(reason.contains(&other.display().to_string()), "{reason}");
    assert!(reason.contains("three_phase_8khz-001"), "{reason}");
    assert_eq!(copies.output_total("parquet", "rows.windows"), windows_once);
    assert_eq!(copies.devices.len(), 1);
    assert_eq!(copies.devices[0].energy_imported_wh, energy_once);
}
