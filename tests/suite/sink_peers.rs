//! Hostile and odd peers against a real `meterflow sink` process on
//! loopback (issue 22, items 6, 14 and 17); the peers are this test's own
//! sockets speaking the meter protocol.
//!
//! - A peer that only says a meter's name never holds it: the real meter,
//!   which answers `sample`, streams; the impostor is dropped and counted.
//! - The `sample` answer is checked: rate 0 and `p,q` at 8000 Hz are refused
//!   (counted as `handshake`); another rate than asked, and a `startTs` of 0
//!   or in 2100, are accepted with an `events` row saying so (the latter
//!   timed by the sink's clock, so no 1970 or 2100 partition).
//! - A burst of refused peers gives a few WARN lines and one summary, not
//!   one line each; the counter has them all. So does a client source that
//!   redials a dead address every 10 ms.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::http::{http_get, wait_for};
use common::mosquitto::free_port;
use common::parquet_read::{read_rows, Cell};
use meterflow::wire::command::StreamType;
use meterflow::wire::frame::{put_data_frame, put_info_line};
use meterflow::wire::message::{InfoAnswer, SampleAnswer, StartTs};
use meterflow::wire::Measures;

const RATE: u32 = 4000;
/// 3 phases at 4 kHz: 42 samples a chunk.
const CHUNK: usize = 42;

/// The sink, killed if the test fails first.
struct Sink {
    child: Option<Child>,
    port: u16,
    metrics_port: u16,
}

impl Sink {
    /// A sink whose meters dial in to `port`; `extra` adds source keys.
    fn start(dir: &Path, extra: &str) -> Sink {
        let port = free_port();
        let source = format!(
            r#"kind = "smartmeter_server"
listen = "127.0.0.1:{port}"
info_timeout_s = 2.0
{extra}"#
        );
        Sink::start_source(dir, port, &source)
    }

    fn start_source(dir: &Path, port: u16, source: &str) -> Sink {
        let metrics_port = free_port();
        let pipeline = dir.join("sink.toml");
        std::fs::write(
            &pipeline,
            format!(
                r#"
[source]
rate = {RATE}
{source}
[aggregation]
packet_interval_s = 1.0
[service]
metrics_listen = "127.0.0.1:{metrics_port}"
"#
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_meterflow"))
            .args(["sink", "--pipeline"])
            .arg(&pipeline)
            .arg("--out")
            .arg(dir.join("out"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let sink = Sink {
            child: Some(child),
            port,
            metrics_port,
        };
        wait_for(Duration::from_secs(30), "the sink's /healthz", || {
            http_get(metrics_port, "/healthz").is_some_and(|(code, _)| code == 200)
        });
        sink
    }

    fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics").map_or_else(String::new, |(_, body)| body)
    }

    /// SIGTERM, then its exit and output.
    fn terminate(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the sink did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "sink: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A value of a counter in `/metrics` text, 0 when absent.
fn counter(metrics: &str, name_and_labels: &str) -> u64 {
    let prefix = format!("{name_and_labels} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn samples_of(metrics: &str, meter: &str) -> u64 {
    counter(
        metrics,
        &format!("meterflow_meter_samples_total{{meter=\"{meter}\"}}"),
    )
}

fn dropped(metrics: &str, reason: &str) -> u64 {
    counter(
        metrics,
        &format!("meterflow_peers_dropped_total{{reason=\"{reason}\"}}"),
    )
}

/// Connects and says `name` in an info line.
fn introduce(port: u16, name: &str) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut line = BytesMut::new();
    put_info_line(
        &mut line,
        &serde_json::to_string(&InfoAnswer::new(name, "127.0.0.1")).unwrap(),
    );
    socket.write_all(&line).unwrap();
    socket
}

/// Reads the sink's command line (up to `\n`).
fn read_command(socket: &mut TcpStream) -> String {
    let mut command = Vec::new();
    let mut byte = [0u8; 1];
    while command.last() != Some(&b'\n') {
        let got = socket.read(&mut byte).expect("the sink sends a command");
        assert_eq!(got, 1, "the sink hung up before its command");
        command.push(byte[0]);
    }
    String::from_utf8(command).unwrap()
}

fn answer(measures: Measures, rate: u32, start_ms: u64) -> SampleAnswer {
    let mut answer = SampleAnswer::new(
        measures,
        rate.clamp(1, 32_000),
        StreamType::Tcp,
        true,
        false,
        StartTs::from_unix_millis(start_ms),
    );
    answer.samplingrate = rate;
    answer
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Answers the sink's `sample` with `answer`, sends `chunks` chunks of a
/// 50 Hz three-phase signal, then hangs up and waits for the sink to close.
fn stream(mut socket: TcpStream, answer: &SampleAnswer, chunks: u32) {
    let command = read_command(&mut socket);
    assert!(command.contains("\"sample\""), "{command}");
    let mut buf = BytesMut::new();
    put_info_line(&mut buf, &serde_json::to_string(answer).unwrap());
    let channels = answer.measures.channel_count();
    let rate = f64::from(answer.samplingrate.max(1));
    for seq in 0..chunks {
        let values: Vec<f32> = (0..CHUNK * channels)
            .map(|n| {
                let t = (seq as usize * CHUNK + n / channels) as f64 / rate;
                let angle = std::f64::consts::TAU * 50.0 * t - (n % channels / 2) as f64 * 2.1;
                let amplitude = if n.is_multiple_of(2) { 325.0 } else { 14_142.0 };
                (amplitude * angle.sin()) as f32
            })
            .collect();
        put_data_frame(&mut buf, seq, &values);
    }
    socket.write_all(&buf).unwrap();
    socket.shutdown(Shutdown::Write).unwrap();
    let mut drained = Vec::new();
    let _ = socket.read_to_end(&mut drained);
}

/// Whether the sink closed `socket` (EOF or a reset; not the read timeout).
fn closed_by_sink(socket: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match socket.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

type Row = BTreeMap<String, Cell>;

fn events(out: &Path) -> Vec<Row> {
    read_rows(&out.join("parquet/events"))
}

fn text(row: &Row, column: &str) -> String {
    match &row[column] {
        Cell::Str(s) => s.clone(),
        other => panic!("{column} is {other:?}"),
    }
}

fn time(row: &Row, column: &str) -> i64 {
    match row[column] {
        Cell::Ts(t) => t,
        ref other => panic!("{column} is {other:?}"),
    }
}

#[test]
fn a_peer_that_only_says_a_name_cannot_keep_the_meter_out() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), "");
    // The impostor says the name and never answers `sample`.
    let mut impostor = introduce(sink.port, "smartmeter001");
    assert!(read_command(&mut impostor).contains("\"sample\""));
    // The real meter comes while the impostor still waits: it streams.
    let meter = introduce(sink.port, "smartmeter001");
    stream(meter, &answer(Measures::ThreePhase, RATE, now_ms()), 100);
    wait_for(Duration::from_secs(30), "the meter's samples", || {
        samples_of(&sink.metrics(), "smartmeter001") == 100 * CHUNK as u64
    });
    // The impostor is dropped when its answer does not come, and counted.
    assert!(closed_by_sink(&mut impostor));
    wait_for(Duration::from_secs(30), "the impostor counted", || {
        dropped(&sink.metrics(), "handshake") == 1
    });
    let metrics = sink.metrics();
    assert_eq!(dropped(&metrics, "duplicate_name"), 0);
    // Once more, the impostor first again: the meter still streams.
    let mut impostor = introduce(sink.port, "smartmeter001");
    assert!(read_command(&mut impostor).contains("\"sample\""));
    let meter = introduce(sink.port, "smartmeter001");
    stream(meter, &answer(Measures::ThreePhase, RATE, now_ms()), 50);
    wait_for(
        Duration::from_secs(30),
        "the second session's samples",
        || samples_of(&sink.metrics(), "smartmeter001") == 150 * CHUNK as u64,
    );
    drop(impostor);
    sink.terminate();
}

#[test]
fn sample_answers_that_cannot_be_right_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), "");
    let cases = [
        ("rate0", answer(Measures::ThreePhase, 0, now_ms())),
        ("pq8k", answer(Measures::PowerLatch, 8000, now_ms())),
    ];
    for (k, (name, bad)) in cases.iter().enumerate() {
        let mut socket = introduce(sink.port, name);
        let command = read_command(&mut socket);
        assert!(command.contains("\"sample\""), "{command}");
        let mut buf = BytesMut::new();
        put_info_line(&mut buf, &serde_json::to_string(bad).unwrap());
        socket.write_all(&buf).unwrap();
        // The sink hangs up at once (well before the 2-s handshake timeout
        // would matter, but no time is asserted) and counts the refusal.
        assert!(closed_by_sink(&mut socket), "{name}");
        wait_for(Duration::from_secs(30), "the refusal counted", || {
            dropped(&sink.metrics(), "handshake") == k as u64 + 1
        });
        assert_eq!(samples_of(&sink.metrics(), name), 0);
    }
    sink.terminate();
}

#[test]
fn odd_but_usable_answers_are_taken_with_an_event_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), "");
    let before_ns = now_ms() as i64 * 1_000_000;
    // Asked for 4000 Hz; answers 8000 Hz.
    stream(
        introduce(sink.port, "otherrate"),
        &answer(Measures::ThreePhase, 8000, now_ms()),
        200,
    );
    // Clock unset (1970) and clock in 2100.
    stream(
        introduce(sink.port, "clock1970"),
        &answer(Measures::ThreePhase, RATE, 0),
        200,
    );
    stream(
        introduce(sink.port, "clock2100"),
        &answer(Measures::ThreePhase, RATE, 4_102_444_800_000),
        200,
    );
    wait_for(Duration::from_secs(30), "every sample", || {
        let metrics = sink.metrics();
        ["otherrate", "clock1970", "clock2100"]
            .iter()
            .all(|m| samples_of(&metrics, m) == 200 * CHUNK as u64)
    });
    let after_ns = now_ms() as i64 * 1_000_000 + 1_000_000;
    sink.terminate();
    let out = dir.path().join("out");
    let rows = events(&out);
    let notes = |device: &str| -> Vec<(String, i64)> {
        rows.iter()
            .filter(|r| text(r, "device") == device && text(r, "kind") == "meter_warning")
            .map(|r| (text(r, "message"), time(r, "time")))
            .collect()
    };
    let other = notes("otherrate");
    assert_eq!(other.len(), 1, "{other:?}");
    assert!(
        other[0].0.contains(
            "asked for v,i,v,i,v,i at 4000 Hz, the meter answered v,i,v,i,v,i at 8000 Hz"
        ),
        "{other:?}"
    );
    for device in ["clock1970", "clock2100"] {
        let notes = notes(device);
        assert_eq!(notes.len(), 1, "{device}: {notes:?}");
        assert!(
            notes[0].0.contains("timed from the sink's clock"),
            "{notes:?}"
        );
        // Stamped at the sink's clock, which the test brackets.
        assert!(
            (before_ns..=after_ns).contains(&notes[0].1),
            "{device}: note at {}",
            notes[0].1
        );
    }
    // No window outside the test's run and the 2.1 s of samples each meter
    // sent (faster than real time): no 1970 or 2100 partition.
    let span_ns = (200 * CHUNK as i64) * 1_000_000_000 / i64::from(RATE);
    let windows = read_rows(&out.join("parquet/windows"));
    assert!(!windows.is_empty());
    for row in &windows {
        let start = time(row, "window_start");
        assert!(
            (before_ns..=after_ns + span_ns).contains(&start),
            "{}: window at {start}",
            text(row, "device")
        );
    }
    let mut partitions = Vec::new();
    for entry in walk(&out.join("parquet/windows")) {
        if let Some(year) = entry
            .to_string_lossy()
            .split('/')
            .find_map(|part| part.strip_prefix("year="))
        {
            partitions.push(year.to_string());
        }
    }
    assert!(
        partitions.iter().all(|y| y != "1970" && y != "2100"),
        "{partitions:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            }
            found.push(path);
        }
    }
    found
}

#[test]
fn a_burst_of_refused_peers_logs_a_few_lines_not_one_each() {
    let dir = tempfile::tempdir().unwrap();
    // Every name but "good*" is refused right after its info line.
    let sink = Sink::start(dir.path(), "allow_names = [\"good*\"]");
    const BURST: u64 = 300;
    let started = Instant::now();
    for k in 0..BURST {
        let mut socket = introduce(sink.port, &format!("evil{k}"));
        assert!(closed_by_sink(&mut socket));
    }
    let burst_s = started.elapsed().as_secs_f64();
    wait_for(Duration::from_secs(30), "every refusal counted", || {
        dropped(&sink.metrics(), "name_not_allowed") == BURST
    });
    // The burst has stopped: once its 10-s interval is over, the next
    // periodic summary (every 5 s) says how many were left out.
    std::thread::sleep(
        (started + Duration::from_secs(16)).saturating_duration_since(Instant::now()),
    );
    let output = sink.terminate();
    let log = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    let refused = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("peer dropped"))
        .count();
    let summaries = log
        .lines()
        .filter(|l| l.contains("more dropped peers were not logged"))
        .count();
    // Five lines per 10-s interval, and a summary opening each later one.
    let intervals = (burst_s / 10.0).floor() as usize + 1;
    assert!(
        refused >= 5 && refused <= 5 * intervals,
        "{refused} WARN lines for {BURST} refused peers in {burst_s:.1} s"
    );
    assert!(summaries <= intervals, "{summaries} summaries");
    // Every refusal is in the log: as its own line or in a summary's count.
    let left_out: u64 = log
        .lines()
        .filter(|l| l.contains("more dropped peers were not logged"))
        .filter_map(|l| {
            l.split("left_out=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(refused as u64 + left_out, BURST, "{log}");
}

#[test]
fn a_client_source_redialing_fast_logs_a_few_lines_not_one_each() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens there: every dial is refused at once.
    let dead = free_port();
    let source = format!(
        r#"kind = "smartmeter_client"
connect = ["127.0.0.1:{dead}"]
backoff_min_s = 0.01
backoff_max_s = 0.01"#
    );
    let started = Instant::now();
    let sink = Sink::start_source(dir.path(), 0, &source);
    // Some hundred dials (the duration bounds the expected lines below).
    std::thread::sleep(Duration::from_secs(2));
    let output = sink.terminate();
    let run_s = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    let failed = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("cannot connect"))
        .count();
    let intervals = (run_s / 10.0).floor() as usize + 1;
    assert!(
        failed >= 1 && failed <= 5 * intervals,
        "{failed} WARN lines for failed dials in {run_s:.1} s"
    );
}
