//! `--out DIR` puts everything a command writes under DIR (Parquet, packets,
//! spool, state), whatever folders the pipeline file names: each command
//! runs in an empty working folder whose built-in or given pipeline names
//! `out/...` folders, and afterwards that working folder holds only DIR.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn meterflow(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running the meterflow binary")
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Files below `dir` whose names end in `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found
}

/// The working folder holds only `ds`, which holds Parquet and packets.
fn assert_all_under(cwd: &Path, what: &str) {
    assert_eq!(
        entries(cwd),
        vec!["ds".to_string()],
        "{what} wrote outside --out"
    );
    let ds = cwd.join("ds");
    assert!(
        !files_ending(&ds.join("parquet"), ".parquet").is_empty(),
        "{what}: no Parquet file under ds/parquet"
    );
    assert!(
        !files_ending(&ds.join("packets"), ".ndjson").is_empty(),
        "{what}: no packet file under ds/packets"
    );
}

#[test]
fn run_of_the_built_in_demo_writes_only_under_out() {
    let cwd = tempfile::tempdir().unwrap();
    let output = meterflow(
        &["run", "--seconds", "1", "--fast", "--out", "ds"],
        cwd.path(),
    );
    assert_ok(&output, "run");
    assert_all_under(cwd.path(), "run");
}

#[test]
fn batch_with_a_pipeline_naming_ndjson_and_spool_writes_only_under_out() {
    let cwd = tempfile::tempdir().unwrap();
    let output = meterflow(
        &[
            "batch",
            &repo("testdata/three_phase_8khz.mfcap"),
            "--pipeline",
            &repo("pipelines/demo.toml"),
            "--out",
            "ds",
            "--quiet",
        ],
        cwd.path(),
    );
    assert_ok(&output, "batch");
    assert_all_under(cwd.path(), "batch");
}

#[test]
fn a_telemetry_run_writes_only_under_out() {
    let cwd = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let pipeline = files.path().join("telemetry.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "telemetry"
[source]
kind = "telemetry"
[[source.rtl433]]
file = "{}"
time_zone = "UTC"
relative_start = "2024-05-01T12:00:00Z"
[source.mppt]
files = ["{}"]
[sink.parquet]
out = "out/parquet"
[sink.packets.targets.ndjson]
dir = "out/packets"
[sink.packets.targets.spool]
dir = "out/spool"
[service]
state_dir = "out/state"
"#,
            repo("testdata/telemetry/rtl433.jsonl"),
            repo("testdata/telemetry/mppt_body.json"),
        ),
    )
    .unwrap();
    let output = meterflow(
        &["run", &pipeline.display().to_string(), "--out", "ds"],
        cwd.path(),
    );
    assert_ok(&output, "telemetry run");
    assert_all_under(cwd.path(), "telemetry run");
}

#[test]
fn the_sink_writes_only_under_out() {
    let cwd = tempfile::tempdir().unwrap();
    let mut sink = Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args([
            "sink",
            "--out",
            "ds",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sink.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the sink ended before it listened")
            .unwrap();
        if let Some(address) = line.strip_prefix("meterflow sink: listening for meters on ") {
            break address.trim().to_string();
        }
    };
    // Keeps the sink's stdout drained so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let meter = meterflow(
        &[
            "simulate",
            "--server",
            &address,
            "--fast",
            "--samples",
            "24000",
            "--reconnect-secs",
            "3600",
        ],
        cwd.path(),
    );
    assert_ok(&meter, "simulate");
    let status = Command::new("kill")
        .args(["-TERM", &sink.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = sink.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the sink did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "the sink exited with {exit:?}");
    drain.join().unwrap();
    assert_all_under(cwd.path(), "sink");
    assert!(
        cwd.path().join("ds/state/record-log").is_dir(),
        "the record log is not under ds/state"
    );
}
