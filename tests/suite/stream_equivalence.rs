//! One decoder, whichever way the bytes arrive: the same troubled meter
//! stream (a dropped chunk, a chunk of a bad length, a meter warning, an
//! `Error` answer, and an end without a stop answer) goes once through a
//! loopback socket into a real `meterflow sink` process and once through
//! `meterflow batch` of a capture file. Windows, `events` rows and counters
//! come out equal, and the events are the ones the faults put in.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::http::{http_get, wait_for};
use common::mosquitto::free_port;
use common::parquet_read::{read_rows, Cell};
use meterflow::meter::offline_capture::OfflineCapture;
use meterflow::meter::signal::SignalConfig;
use meterflow::wire::frame::{put_data_header, put_info_line};
use meterflow::wire::message::{ErrorAnswer, InfoMessage};
use meterflow::wire::{Frame, Measures, MeterCodec};
use tokio_util::codec::Decoder;

const METER: &str = "replay001";
const RATE: u32 = 4000;
/// Six seconds of samples the meter takes.
const SAMPLES: u64 = 6 * RATE as u64;
/// 3 phases at 4 kHz over TCP: 1008-byte chunks of 42 samples.
const CHUNK_SAMPLES: u64 = 42;
/// Packet number of the chunk left out.
const DROPPED: u32 = 40;
/// Packet number of the chunk cut to 100 bytes (not whole 24-byte samples).
const CUT: u32 = 100;
const CUT_LEN: usize = 100;
/// Packet numbers after which the warning and the error answer come.
const WARNING_AFTER: u32 = 200;
const ERROR_AFTER: u32 = 300;
/// 2026-01-01 00:00:00 UTC, the capture's `startTs`.
const START_NS: i64 = 1_767_225_600_000_000_000;

type Row = BTreeMap<String, Cell>;
/// An `events` row's kind, time, lost chunks, lost samples and bytes.
type EventCells = (String, i64, Option<u64>, Option<u64>, Option<u64>);

/// The troubled stream: its info line, and everything after it.
fn troubled_stream(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut capture =
        OfflineCapture::new(METER, SignalConfig::default(), Measures::ThreePhase, RATE);
    capture.samples = SAMPLES;
    assert_eq!(capture.samples_per_chunk() as u64, CHUNK_SAMPLES);
    let clean_path = dir.join("clean.mfcap");
    capture.write(&clean_path).unwrap();
    let clean = std::fs::read(&clean_path).unwrap();
    let mut codec = MeterCodec::new();
    let mut src = BytesMut::from(&clean[..]);
    let (mut greeting, mut rest) = (BytesMut::new(), BytesMut::new());
    let (mut stops, mut cut) = (0, false);
    while let Some(frame) = codec.decode_eof(&mut src).unwrap() {
        match frame {
            Frame::Info(text) => match InfoMessage::parse(&text).unwrap() {
                InfoMessage::DeviceInfo(_) => put_info_line(&mut greeting, &text),
                // The meter is gone before it answers a stop.
                InfoMessage::StopAnswer(_) => stops += 1,
                _ => put_info_line(&mut rest, &text),
            },
            Frame::Data { seq, payload } => {
                if seq == DROPPED {
                    continue;
                }
                let payload = if seq == CUT {
                    cut = true;
                    &payload[..CUT_LEN]
                } else {
                    &payload[..]
                };
                put_data_header(&mut rest, payload.len() as u16, seq);
                rest.extend_from_slice(payload);
                if seq == WARNING_AFTER {
                    put_info_line(&mut rest, "[W]01/01 00:00:05: MISSED 42 SAMPLES");
                }
                if seq == ERROR_AFTER {
                    let error = ErrorAnswer::new(Some("frobnicate"), "unknown command");
                    put_info_line(&mut rest, &serde_json::to_string(&error).unwrap());
                }
            }
            Frame::Anomaly(anomaly) => panic!("the clean capture has {anomaly:?}"),
        }
    }
    assert_eq!((stops, cut), (1, true), "the capture had what is taken out");
    assert!(!greeting.is_empty());
    (greeting.to_vec(), rest.to_vec())
}

/// A process of this test, killed if the test fails first.
struct Process(Option<Child>);

impl Process {
    /// SIGTERM, then its exit and output.
    fn terminate(mut self) -> Output {
        let mut child = self.0.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the sink did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn meterflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meterflow"))
}

/// What both runs compute with: only the sink's file names a source.
const ENGINE: &str = r#"
[aggregation]
packet_interval_s = 1.0
"#;

/// Replays the stream as a dialing meter does: the info line, then, once
/// the sink has sent `sample`, the rest; then it hangs up.
fn replay_into(port: u16, greeting: &[u8], rest: &[u8]) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket.write_all(greeting).unwrap();
    let mut command = Vec::new();
    let mut byte = [0u8; 1];
    while command.last() != Some(&b'\n') {
        let got = socket.read(&mut byte).expect("the sink sends a command");
        assert_eq!(got, 1, "the sink hung up before asking for samples");
        command.push(byte[0]);
    }
    let command = String::from_utf8_lossy(&command);
    assert!(command.contains("\"sample\""), "{command}");
    // In odd pieces, as a socket delivers them.
    for piece in rest.chunks(1531) {
        socket.write_all(piece).unwrap();
    }
    socket.shutdown(Shutdown::Write).unwrap();
    // The sink closes its side once the session is over.
    let mut drained = Vec::new();
    socket
        .read_to_end(&mut drained)
        .expect("the sink ends the connection");
}

/// A per-meter counter of the sink's `/metrics`.
fn meter_counter(metrics: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{meter=\"{METER}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// The summary line of the meter a command printed.
fn device_line(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(METER))
        .collect();
    assert_eq!(lines.len(), 1, "one summary line for the meter in:\n{text}");
    lines[0].to_string()
}

fn rows(dir: &Path, order: &str) -> Vec<Row> {
    let mut rows = read_rows(dir);
    rows.sort_by_key(|r| match r[order] {
        Cell::Ts(t) => t,
        ref other => panic!("{order} is {other:?}"),
    });
    rows
}

fn number(cell: &Cell) -> Option<f64> {
    match *cell {
        Cell::F64(x) => Some(x),
        Cell::F32(x) => Some(f64::from(x)),
        _ => None,
    }
}

/// Cells equal; floats within 1e-9 relative (the same engine over the same
/// samples; only the block boundaries differ between the two runs).
fn assert_same_rows(sink: &[Row], batch: &[Row], table: &str) {
    assert_eq!(sink.len(), batch.len(), "{table}: row count");
    for (k, (a, b)) in sink.iter().zip(batch).enumerate() {
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{table}: columns"
        );
        for (column, x) in a {
            let y = &b[column];
            match (number(x), number(y)) {
                (Some(x), Some(y)) => {
                    let tolerance = 1e-9 * x.abs().max(y.abs()).max(1e-6);
                    assert!(
                        (x - y).abs() <= tolerance || (x.is_nan() && y.is_nan()),
                        "{table} row {k}: {column}: sink {x} vs batch {y}"
                    );
                }
                _ => assert_eq!(x, y, "{table} row {k}: {column}"),
            }
        }
    }
}

fn text(row: &Row, column: &str) -> String {
    match &row[column] {
        Cell::Str(s) => s.clone(),
        other => panic!("{column} is {other:?}"),
    }
}

fn opt_u64(row: &Row, column: &str) -> Option<u64> {
    match row[column] {
        Cell::U64(x) => Some(x),
        Cell::Null => None,
        ref other => panic!("{column} is {other:?}"),
    }
}

fn time(row: &Row) -> i64 {
    match row["time"] {
        Cell::Ts(t) => t,
        ref other => panic!("time is {other:?}"),
    }
}

/// Meter time of sample `index` at 4 kHz.
fn at(index: u64) -> i64 {
    START_NS + (index * 250_000) as i64
}

#[test]
fn the_same_bytes_by_socket_and_by_file_give_the_same_tables_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let (greeting, rest) = troubled_stream(dir.path());

    // Through a socket into `meterflow sink`.
    let (port, metrics_port) = (free_port(), free_port());
    let sink_pipeline = dir.path().join("sink.toml");
    std::fs::write(
        &sink_pipeline,
        format!(
            r#"
[source]
kind = "smartmeter_server"
listen = "127.0.0.1:{port}"
rate = {RATE}
{ENGINE}
[service]
metrics_listen = "127.0.0.1:{metrics_port}"
"#
        ),
    )
    .unwrap();
    let sink_out = dir.path().join("sink-out");
    let sink = Process(Some(
        meterflow()
            .args(["sink", "--pipeline"])
            .arg(&sink_pipeline)
            .arg("--out")
            .arg(&sink_out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    wait_for(Duration::from_secs(30), "the sink's /healthz", || {
        http_get(metrics_port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    replay_into(port, &greeting, &rest);
    let mut metrics = String::new();
    // The connection ends first; its worker may still be on the last chunks.
    wait_for(
        Duration::from_secs(30),
        "the sink to take every sample",
        || {
            metrics = http_get(metrics_port, "/metrics").map_or_else(String::new, |(_, body)| body);
            metrics.contains(&format!("meterflow_meter_connected{{meter=\"{METER}\"}} 0"))
                && meter_counter(&metrics, "meterflow_meter_samples_total")
                    >= SAMPLES - 2 * CHUNK_SAMPLES
        },
    );
    let sink_output = sink.terminate();
    assert!(
        sink_output.status.success(),
        "sink: {}",
        String::from_utf8_lossy(&sink_output.stderr)
    );

    // Through a capture file into `meterflow batch`.
    let capture: PathBuf = dir.path().join("troubled.mfcap");
    std::fs::write(&capture, [&greeting[..], &rest[..]].concat()).unwrap();
    let batch_pipeline = dir.path().join("batch.toml");
    std::fs::write(&batch_pipeline, ENGINE).unwrap();
    let batch_out = dir.path().join("batch-out");
    let batch_output = meterflow()
        .arg("batch")
        .arg(&capture)
        .arg("--pipeline")
        .arg(&batch_pipeline)
        .arg("--out")
        .arg(&batch_out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        batch_output.status.success(),
        "batch: {}",
        String::from_utf8_lossy(&batch_output.stderr)
    );

    // Windows: the same, row for row.
    let sink_windows = rows(&sink_out.join("parquet/windows"), "window_start");
    let batch_windows = rows(&batch_out.join("parquet/windows"), "window_start");
    // Six seconds of 10-cycle (200 ms) windows, a few cut short by the losses.
    assert!(sink_windows.len() >= 28, "{} windows", sink_windows.len());
    assert_same_rows(&sink_windows, &batch_windows, "windows");

    // Events: the same rows, and the ones the faults put in.
    let sink_events = rows(&sink_out.join("parquet/events"), "time");
    let batch_events = rows(&batch_out.join("parquet/events"), "time");
    assert_same_rows(&sink_events, &batch_events, "events");
    let seen: Vec<EventCells> = sink_events
        .iter()
        .map(|r| {
            (
                text(r, "kind"),
                time(r),
                opt_u64(r, "lost_chunks"),
                opt_u64(r, "lost_samples"),
                opt_u64(r, "bytes"),
            )
        })
        .collect();
    let chunk_end = |seq: u32| (u64::from(seq) + 1) * CHUNK_SAMPLES;
    let want = vec![
        ("connect".to_string(), START_NS, None, None, None),
        // No Udin or frequency in the pipeline: inferred from the first second.
        ("nominal".to_string(), START_NS, None, None, None),
        // Stamped where the lost samples end and the next chunk begins.
        (
            "gap".to_string(),
            at(chunk_end(DROPPED)),
            Some(1),
            Some(CHUNK_SAMPLES),
            None,
        ),
        (
            "bad_data_length".to_string(),
            at(chunk_end(CUT)),
            None,
            Some(CHUNK_SAMPLES),
            Some(CUT_LEN as u64),
        ),
        (
            "meter_warning".to_string(),
            at(chunk_end(WARNING_AFTER)),
            None,
            Some(42),
            None,
        ),
        (
            "meter_warning".to_string(),
            at(chunk_end(ERROR_AFTER)),
            None,
            None,
            None,
        ),
        ("disconnect".to_string(), at(SAMPLES), None, None, None),
    ];
    assert_eq!(seen, want);
    assert_eq!(
        text(&sink_events[1], "message"),
        "Udin 230 V inferred (median RMS 230.0 V over the first 1.0 s, nearest standard \
         nominal within ±10 %); nominal frequency 50 Hz inferred"
    );
    assert!(text(&sink_events[5], "message").contains("unknown command"));
    assert_eq!(
        text(&sink_events[6], "message"),
        "session_stop: stream ended without a stop answer"
    );

    // Counters: the sink's per meter, against what the bytes hold; and
    // the summary both commands print (windows, energy, lost samples).
    assert_eq!(
        meter_counter(&metrics, "meterflow_meter_samples_total"),
        SAMPLES - 2 * CHUNK_SAMPLES
    );
    assert_eq!(meter_counter(&metrics, "meterflow_meter_gaps_total"), 1);
    assert_eq!(
        meter_counter(&metrics, "meterflow_meter_lost_chunks_total"),
        1
    );
    assert_eq!(
        meter_counter(&metrics, "meterflow_meter_bad_lengths_total"),
        1
    );
    assert_eq!(meter_counter(&metrics, "meterflow_meter_warnings_total"), 2);
    assert_eq!(meter_counter(&metrics, "meterflow_meter_resyncs_total"), 0);
    let sink_line = device_line(&sink_output.stdout);
    assert_eq!(sink_line, device_line(&batch_output.stdout));
    let lost: u64 = sink_line
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("lost samples at the end of {sink_line:?}"));
    assert_eq!(lost, 2 * CHUNK_SAMPLES);
}
