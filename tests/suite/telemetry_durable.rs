//! A telemetry pipeline keeps what it acknowledged: MPPT datasets POSTed to
//! a running `meterflow run` are each answered 200, the process is killed
//! with -9, started again on the same state folder and stopped cleanly;
//! every acknowledged dataset is then in `tel_mppt`, once.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::parquet_read::{read_rows, Cell};

const DATASETS: usize = 30;
const API_KEY: &str = "key-1";

/// One dataset; `k` makes its battery voltage (and so its row) its own.
fn body(k: usize) -> String {
    format!(
        r#"{{"datasets":[{{"mppt":{{"id":"IT6415AD-01-001"}},"data":[{{"time_local":"20190209T1500{:02}.032+0700","pv":{{"volts":[48.0,48.0],"amps":[6.0,6.0]}},"battery":{{"volts":{},"amps":0.0}},"load":{{"volts":[48.0,48.0],"amps":[1.2,1.2]}},"status":"1A79"}}]}}]}}"#,
        k,
        battery_volts(k)
    )
}

fn battery_volts(k: usize) -> f64 {
    50.0 + k as f64 * 0.25
}

/// `POST /devices/dataset/mppt`; the status code.
fn post(address: &str, body: &str) -> u16 {
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        socket,
        "POST /devices/dataset/mppt HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// `GET path`; the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    (status, body)
}

/// The value of an unlabelled sample `name` in a Prometheus text body.
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// Starts `meterflow run pipeline` and reads the MPPT endpoint's address
/// from its first line, the metrics endpoint's from the next.
fn start(pipeline: &Path, cwd: &Path) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(["run", &pipeline.display().to_string()])
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("meterflow printed nothing").unwrap();
    let address = first
        .split("MPPT endpoint http://")
        .nth(1)
        .and_then(|rest| rest.split([',', ')']).next())
        .unwrap_or_else(|| panic!("no MPPT endpoint in {first:?}"))
        .to_string();
    let second = lines.next().expect("meterflow printed one line").unwrap();
    let metrics = second
        .strip_prefix("meterflow: metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics endpoint in {second:?}"))
        .to_string();
    std::thread::spawn(move || lines.map_while(Result::ok).count());
    (child, address, metrics)
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(Instant::now() < deadline, "meterflow did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_acknowledged_mppt_dataset_survives_kill_9() {
    let cwd = tempfile::tempdir().unwrap();
    let pipeline = cwd.path().join("mppt.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "mppt-durable"
[source]
kind = "telemetry"
[source.mppt]
listen = "127.0.0.1:0"
api_keys = {{ "{API_KEY}" = "S000" }}
[sink.parquet]
out = "ds/parquet"
[service]
state_dir = "ds/state"
metrics_listen = "127.0.0.1:0"
"#
        ),
    )
    .unwrap();

    let (mut first, address, metrics_address) = start(&pipeline, cwd.path());
    for k in 0..DATASETS {
        assert_eq!(post(&address, &body(k)), 200, "dataset {k}");
    }
    // A long-running telemetry pipeline shows itself as the sink does.
    let (status, health) = get(&metrics_address, "/healthz");
    assert_eq!(
        (status, health.lines().next()),
        (200, Some("ok")),
        "{health}"
    );
    let (status, metrics) = get(&metrics_address, "/metrics");
    assert_eq!(status, 200);
    // Each dataset is at least its tel_mppt record and its readings: 2 records.
    assert!(
        metric(&metrics, "meterflow_records_total") >= 2.0 * DATASETS as f64,
        "{metrics}"
    );
    assert!(metric(&metrics, "meterflow_record_log_bytes") > 0.0);
    assert!(metrics.contains("meterflow_output_up{output=\"parquet\"} 1"));
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, _, _) = start(&pipeline, cwd.path());
    // Its signal handler is in place a moment after its first line.
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_for_exit(&mut second, Duration::from_secs(60));
    assert!(exit.success(), "the restarted run exited with {exit:?}");

    let rows = read_rows(&cwd.path().join("ds/parquet/tel_mppt"));
    let mut volts: Vec<f64> = rows
        .iter()
        .map(|row| match row.get("battery.volts") {
            Some(Cell::F64(v)) => *v,
            other => panic!("battery.volts is {other:?}"),
        })
        .collect();
    volts.sort_by(f64::total_cmp);
    let expected: Vec<f64> = (0..DATASETS).map(battery_volts).collect();
    // Each value is written as sent (k / 4 is exact in binary); 1e-9 V allows for decimal text.
    assert_eq!(volts.len(), DATASETS, "rows: {volts:?}");
    for (got, want) in volts.iter().zip(&expected) {
        assert!(
            (got - want).abs() < 1e-9,
            "got {volts:?}, want {expected:?}"
        );
    }
}
