//! What the built binary prints when its output is piped (a log collector, a
//! file, CI): no terminal colour codes, no progress bar, summaries in words
//! rather than Rust `Debug` structs, and a bad config named by its key.

use std::path::Path;
use std::process::{Command, Output};

fn meterflow(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .expect("running the meterflow binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Plain text: no ANSI escapes, no progress-bar redraws, no Debug braces.
fn assert_plain(stdout: &str, stderr: &str) {
    for (name, stream) in [("stdout", stdout), ("stderr", stderr)] {
        assert!(
            !stream.contains("\x1b["),
            "{name} has colour codes:\n{stream}"
        );
        assert!(
            !stream.contains('\r'),
            "{name} has a progress bar:\n{stream}"
        );
    }
    for debug in ["Stats {", "Summary {", " { ", "Some(", "None,"] {
        assert!(
            !stdout.contains(debug),
            "stdout prints a Debug value ({debug:?}):\n{stdout}"
        );
    }
}

#[test]
fn a_virtual_meter_run_prints_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("run.toml");
    std::fs::write(
        &pipeline,
        r#"
name = "cli"
[source]
kind = "virtual_meters"
seconds = 1.0
realtime = false
[[source.meter]]
name = "m1"
[aggregation]
packet_interval_s = 1.0
[sink.parquet]
out = "out/parquet"
[sink.packets.targets.ndjson]
dir = "out/packets"
[sink.packets.targets.spool]
dir = "out/spool"
"#,
    )
    .unwrap();
    let output = meterflow(&["run", "run.toml", "--fast"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // RUST_LOG=info makes the run log, so the colour check has lines to see.
    assert!(stderr.contains("INFO"), "no log lines:\n{stderr}");
    assert_plain(&stdout, &stderr);
    assert!(
        stdout.contains("packets to NDJSON files in out/packets: ")
            && stdout.contains(" delivered, 0 spooled, 0 in memory, 0 rejected, 0 failed attempts"),
        "{stdout}"
    );
}

#[test]
fn a_batch_with_piped_stderr_has_no_colour_and_no_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let capture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/single_phase_4khz_60hz.mfcap");
    let out = dir.path().join("out");
    let output = meterflow(
        &[
            "batch",
            capture.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_plain(&stdout, &stderr);
    assert!(stdout.contains(" 1 delivered, "), "{stdout}");
}

#[test]
fn a_bad_duration_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[source]\nkind = \"virtual_meters\"\n[aggregation]\npacket_interval_s = 1e20\n",
    )
    .unwrap();
    let output = meterflow(&["run", "bad.toml"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success());
    assert!(
        stderr.contains("aggregation.packet_interval_s: 1e20 s is out of range (0.1 s ..= 1 day)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_plain(&stdout, &stderr);
}

#[test]
fn inspect_and_the_config_reference_print_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/three_phase_8khz.mfcap");
    let output = meterflow(&["inspect", capture.to_str().unwrap()], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_plain(&stdout, &stderr);
    assert!(stdout.contains("state idle)"), "{stdout}");

    let output = meterflow(&["config", "reference"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("| `packet_interval_s` | float | `5.0` |"),
        "{stdout}"
    );
    assert!(!stdout.contains("\x1b["), "{stdout}");
}

#[test]
fn inspect_counts_the_power_quality_events_of_a_capture() {
    use meterflow::meter::disturbance::Disturbance;
    use meterflow::meter::offline_capture::OfflineCapture;
    use meterflow::meter::signal::SignalConfig;
    use meterflow::wire::Measures;

    let change = |at_s: f64, duration_s: f64, phases: Vec<u8>, level_pct: f64| Disturbance {
        at_s,
        duration_s: Some(duration_s),
        phases,
        level_pct: Some(level_pct),
        level_v: None,
    };
    let dir = tempfile::tempdir().unwrap();
    for frequency_hz in [50.0, 60.0] {
        // Two dips (one on L2, one on all phases) and a swell on L3.
        let signal = SignalConfig {
            frequency_hz,
            disturbances: vec![
                change(1.0, 0.2, vec![2], 50.0),
                change(2.0, 0.3, vec![3], 120.0),
                change(3.0, 0.1, vec![], 70.0),
            ],
            ..SignalConfig::default()
        };
        let mut capture = OfflineCapture::new("pq", signal, Measures::ThreePhase, 8000);
        capture.samples = 4 * 8000;
        let file = dir.path().join(format!("pq{frequency_hz}.mfcap"));
        capture.write(&file).unwrap();
        let hz = format!("{frequency_hz}");
        let output = meterflow(
            &["inspect", "--nominal-hz", &hz, file.to_str().unwrap()],
            dir.path(),
        );
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert_plain(&stdout, &stderr);
        assert!(
            stdout.contains(&format!(
                "PQ events: 2 dips, 1 swells, 0 interruptions, 0 RVCs (Udin 230 V, {hz} Hz)"
            )),
            "{stdout}"
        );
    }
    // A latch-mode capture has no waveform to measure, and says so.
    let latch = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/power_latch_50hz.mfcap");
    let output = meterflow(&["inspect", latch.to_str().unwrap()], dir.path());
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("PQ events: not measured (p,q carries no waveform)"),
        "{stdout}"
    );
}

#[test]
fn the_demo_ends_by_naming_the_report_command() {
    let dir = tempfile::tempdir().unwrap();
    let output = meterflow(
        &["run", "--fast", "--seconds", "0.5", "--out", "demo-out"],
        dir.path(),
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_plain(&stdout, &stderr);
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last, "see it: meterflow report demo-out/parquet --out report.html",
        "{stdout}"
    );
    assert!(dir.path().join("demo-out/parquet/windows").is_dir());
}
