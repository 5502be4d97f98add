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

/// Without `--udin` and `--nominal-hz` (and no pipeline), `inspect` infers
/// each session's Udin and frequency from its first second as `batch` does,
/// prints what it inferred, and counts the events against that Udin: a
/// 120 V / 60 Hz capture with one dip to 50 % on all phases is 120 V and
/// 60 Hz and has that one dip (against 230 V it would sit in a dip throughout).
#[test]
fn inspect_infers_udin_and_frequency_like_batch() {
    use meterflow::meter::disturbance::Disturbance;
    use meterflow::meter::offline_capture::OfflineCapture;
    use meterflow::meter::signal::SignalConfig;
    use meterflow::wire::Measures;

    let dir = tempfile::tempdir().unwrap();
    let signal = SignalConfig {
        frequency_hz: 60.0,
        voltage_rms_v: 120.0,
        disturbances: vec![Disturbance {
            at_s: 1.5,
            duration_s: Some(0.2),
            phases: vec![],
            level_pct: Some(50.0),
            level_v: None,
        }],
        ..SignalConfig::default()
    };
    let mut capture = OfflineCapture::new("us", signal, Measures::ThreePhase, 8000);
    capture.samples = 3 * 8000;
    let file = dir.path().join("us.mfcap");
    capture.write(&file).unwrap();
    let output = meterflow(&["inspect", file.to_str().unwrap()], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_plain(&stdout, &stderr);
    assert!(
        stdout.contains("    nominal: Udin 120 V inferred (")
            && stdout.contains("; nominal frequency 60 Hz inferred"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PQ events: 1 dips, 0 swells, 0 interruptions, 0 RVCs (Udin 120 V, 60 Hz)"),
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

/// Runs `args`; asserts a clear refusal: exit 1 or 2, no panic or abort,
/// stderr naming `name` and the range; returns stderr.
fn refused(args: &[&str], dir: &Path, name: &str, range: &str) -> String {
    let output = meterflow(args, dir);
    let stderr = text(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(1 | 2)),
        "{args:?}: {:?}\n{stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(
        stderr.contains(name),
        "{args:?} does not name {name}: {stderr}"
    );
    assert!(
        stderr.contains(range),
        "{args:?} does not give {range}: {stderr}"
    );
    stderr
}

/// `inspect --nominal-hz` and `--udin` take the ranges of their pipeline
/// keys: absurd values are refused naming the flag, never a panic or an
/// allocation abort; values inside the range still run.
#[test]
fn inspect_flags_take_their_keys_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/three_phase_8khz.mfcap");
    let capture = capture.to_str().unwrap();
    for hz in [
        "1e20", "1e10", "1e-9", "0", "-0", "-50", "NaN", "inf", "4.9e-324",
    ] {
        let flag = format!("--nominal-hz={hz}");
        refused(
            &["inspect", capture, &flag],
            dir.path(),
            "--nominal-hz",
            "1 ..= 1000 Hz",
        );
    }
    for volts in ["1e308", "1e-300", "0", "-230", "NaN", "inf"] {
        let flag = format!("--udin={volts}");
        refused(
            &["inspect", capture, &flag],
            dir.path(),
            "--udin",
            "1 ..= 1e6 V",
        );
    }
    let output = meterflow(
        &["inspect", capture, "--nominal-hz", "50", "--udin", "230"],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// A rate is held to 1 ..= 1 000 000 Hz however it arrives: `batch
/// --rate`, a WAV header, the pipeline's `source.raw.rate`.
#[test]
fn rates_are_range_checked_from_every_way_in() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("x.f32");
    std::fs::write(&raw, vec![0u8; 24 * 100]).unwrap();
    let raw = raw.to_str().unwrap();
    for rate in ["4294967295", "2000000", "0"] {
        let args = [
            "batch",
            raw,
            "--rate",
            rate,
            "--measures",
            "v,i,v,i,v,i",
            "--start",
            "1700000000",
            "--name",
            "f",
            "--out",
            "o",
            "--quiet",
        ];
        refused(&args, dir.path(), "--rate", "1 ..= 1000000 Hz");
    }
    // A WAV header saying 2 MHz (6 float channels, 100 samples).
    let mut wav = meterflow::source::wav::wav_header(6, 2_000_000, 100);
    wav.extend(vec![0u8; 24 * 100]);
    std::fs::write(dir.path().join("fast.wav"), wav).unwrap();
    let args = [
        "batch",
        "fast.wav",
        "--start",
        "1700000000",
        "--out",
        "w",
        "--quiet",
    ];
    refused(&args, dir.path(), "2000000 Hz", "1 ..= 1000000 Hz");
    // The pipeline key, with the nominal frequency that made 4294967295 Hz
    // an allocation of 51.5 GB.
    std::fs::write(
        dir.path().join("p.toml"),
        "[dsp]\nnominal_frequency_hz = 1.0\n[source]\nkind = \"files\"\npaths = [\"x.f32\"]\n\
         [source.raw]\nrate = 4294967295\nmeasures = \"v,i,v,i,v,i\"\nstart = \"1700000000\"\nname = \"f\"\n",
    )
    .unwrap();
    refused(
        &["run", "p.toml"],
        dir.path(),
        "source.raw.rate",
        "1 ..= 1000000 Hz",
    );
    // And the engine itself refuses what a library caller might hand it.
    use meterflow::dsp::{DeviceEngine, EngineConfig};
    use meterflow::wire::Measures;
    let config = EngineConfig::default();
    for rate in [0, 1_000_001, u32::MAX] {
        assert!(DeviceEngine::new(&config, Measures::ThreePhase, rate, 0).is_err());
        assert!(DeviceEngine::new(&config, Measures::PowerLatch, rate, 0).is_err());
    }
    for hz in [1e20, 1e10, 1e-9, 0.0, f64::NAN] {
        let config = EngineConfig {
            nominal_frequency_hz: Some(hz),
            ..EngineConfig::default()
        };
        assert!(DeviceEngine::new(&config, Measures::ThreePhase, 8000, 0).is_err());
    }
}

/// A dataset of one capture, for the report's messages.
fn small_dataset(dir: &Path) -> std::path::PathBuf {
    let capture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/single_phase_4khz_60hz.mfcap");
    let out = dir.join("run");
    let output = meterflow(
        &[
            "batch",
            capture.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ],
        dir,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    out
}

/// `report` on a path that is not there says so (not "holds no dataset");
/// on a file it says a dataset is a folder.
#[test]
fn report_on_a_missing_path_says_it_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let output = meterflow(&["report", "nowhere", "--out", "r.html"], dir.path());
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("meterflow: nowhere does not exist"),
        "{stderr}"
    );
    std::fs::write(dir.path().join("file.parquet"), b"x").unwrap();
    let output = meterflow(&["report", "file.parquet", "--out", "r.html"], dir.path());
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("meterflow: file.parquet is a file; a dataset is a folder"),
        "{stderr}"
    );
    assert!(!dir.path().join("r.html").exists());
}

/// A `--png-dir` that cannot be made fails before the page is written, and
/// the OS error is printed once, not once per level of the error.
#[test]
fn a_bad_png_dir_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = small_dataset(dir.path());
    std::fs::write(dir.path().join("blocker"), b"a file, not a folder").unwrap();
    let output = meterflow(
        &[
            "report",
            dataset.to_str().unwrap(),
            "--out",
            "r.html",
            "--png-dir",
            "blocker/png",
        ],
        dir.path(),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("meterflow: cannot create folder blocker/png: "),
        "{stderr}"
    );
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
    assert!(!dir.path().join("r.html").exists(), "the page was written");
    // The same dataset with a usable folder: page and PNGs.
    let output = meterflow(
        &[
            "report",
            dataset.to_str().unwrap(),
            "--out",
            "r.html",
            "--png-dir",
            "png",
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(dir.path().join("r.html").is_file());
    let pngs = std::fs::read_dir(dir.path().join("png")).unwrap().count();
    assert!(pngs > 0, "no PNGs written");
}

/// A bad key in `batch --pipeline FILE` names the file and the key, and
/// prints the value as written.
#[test]
fn batch_pipeline_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[dsp]\nnominal_frequency_hz = 1e300\n",
    )
    .unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/three_phase_8khz.mfcap");
    let output = meterflow(
        &[
            "batch",
            capture.to_str().unwrap(),
            "--out",
            "out",
            "--pipeline",
            "p.toml",
        ],
        dir.path(),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "meterflow: pipeline p.toml: dsp.nominal_frequency_hz: 1e300 Hz is out of range (1 ..= 1000 Hz)\n"
        ),
        "{stderr}"
    );
}

/// `sink --pipeline` with a file that has no meter source says which
/// source the sink needs, not what a batch's capture files need.
#[test]
fn sink_without_a_meter_source_names_the_source_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("files.toml"),
        "[source]\nkind = \"files\"\npaths = [\"x\"]\n",
    )
    .unwrap();
    for (file, tail) in [
        ("empty.toml", "this file has no [source]"),
        ("files.toml", "not kind = \"files\""),
    ] {
        let output = meterflow(&["sink", "--pipeline", file], dir.path());
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "meterflow: pipeline {file}: meterflow sink needs a [source] with kind = \"smartmeter_server\" or \"smartmeter_client\""
            )),
            "{stderr}"
        );
        assert!(stderr.contains(tail), "{stderr}");
        assert!(!stderr.contains("capture"), "{stderr}");
    }
}
