//! The stream sink under faults, as real processes on loopback: `kill -9`
//! mid-stream and a restart, a full disk under the dataset, SIGTERM. The
//! record log between the engine and the outputs must keep every result it
//! made durable: no window twice, no unreadable file, no packet lost, energy
//! continuing from the log, and what was lost recorded per meter.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{http_get, wait_for};
use common::mosquitto::free_port;
use common::rows::{
    by_device, check_energy_continues, check_packets_cover_intervals, check_windows, temp_files,
    text, ts, Row,
};
use meterflow::meter::firmware::MeterSettings;
use meterflow::meter::fleet::{run_fleet, FleetConfig, FleetMode};
use meterflow::meter::pacing::Pacing;
use tokio_util::sync::CancellationToken;

/// A sink pipeline file: files rotate every 2 s so that commits happen while
/// meters stream; the record log fsyncs every 0.2 s.
fn pipeline(dir: &Path, out: &Path, port: u16, metrics_port: u16) -> PathBuf {
    pipeline_with(dir, out, port, metrics_port, "flush_interval_s = 0.2")
}

/// [`pipeline`] with these `[record_log]` keys.
fn pipeline_with(
    dir: &Path,
    out: &Path,
    port: u16,
    metrics_port: u16,
    record_log: &str,
) -> PathBuf {
    pipeline_with_keys(dir, out, port, metrics_port, record_log, "")
}

/// [`pipeline_with`] and these extra `[sink.parquet]` keys.
fn pipeline_with_keys(
    dir: &Path,
    out: &Path,
    port: u16,
    metrics_port: u16,
    record_log: &str,
    parquet_keys: &str,
) -> PathBuf {
    let path = dir.join("sink.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[source]
kind = "smartmeter_server"
listen = "127.0.0.1:{port}"
rate = 4000
[aggregation]
packet_interval_s = 1.0
[sink.parquet]
out = "{parquet}"
max_file_span_s = 2
late_rows_grace_s = 0.5
{parquet_keys}
[sink.packets.targets.ndjson]
dir = "{state}/packets"
[sink.packets.targets.spool]
dir = "{state}/spool"
[service]
state_dir = "{state}/state"
metrics_listen = "127.0.0.1:{metrics_port}"
packet_grace_s = 0.5
[record_log]
{record_log}
"#,
            parquet = out.display(),
            state = dir.display(),
        ),
    )
    .unwrap();
    path
}

/// A sink process; killed if the test fails first. Its log goes to `<dir>/sink-<n>.log`.
struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(pipeline: &Path, n: u32) -> Sink {
    let log = std::fs::File::create(pipeline.with_file_name(format!("sink-{n}.log"))).unwrap();
    Sink(
        Command::new(env!("CARGO_BIN_EXE_meterflow"))
            .args(["sink", "--pipeline"])
            .arg(pipeline)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The sink logs, for a failure message.
fn logs(dir: &Path) -> String {
    (1..=2)
        .filter_map(|n| std::fs::read_to_string(dir.join(format!("sink-{n}.log"))).ok())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

fn fleet(port: u16, meters: usize, prefix: &str) -> FleetConfig {
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: format!("127.0.0.1:{port}"),
            reconnect: Duration::from_millis(200),
        },
        meters,
    );
    fleet.name_prefix = prefix.to_string();
    fleet.template = MeterSettings {
        pacing: Pacing::RealTime,
        ..MeterSettings::new(prefix)
    };
    fleet
}

fn sigterm_and_wait(sink: &mut Sink) {
    let child = &mut sink.0;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(
                exit.success(),
                "the sink exited with {exit:?} after SIGTERM"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sink did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `meters` real-time meters dialing into the sink on `port`, and
/// waits for the sink's `/healthz`.
fn start_meters(
    runtime: &tokio::runtime::Runtime,
    port: u16,
    metrics_port: u16,
    meters: usize,
    prefix: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let fleet = fleet(port, meters, prefix);
    let stop = cancel.clone();
    let task = runtime.spawn(async move {
        let _ = run_fleet(fleet, stop).await;
    });
    wait_for(
        Duration::from_secs(30),
        "the sink to serve /healthz",
        || http_get(metrics_port, "/healthz").is_some_and(|(code, _)| code == 200),
    );
    (cancel, task)
}

#[test]
fn kill_9_mid_stream_then_restart_loses_only_the_unflushed_tail_and_records_it() {
    kill_9_mid_stream_then_restart("");
}

/// The same with every meter's rows in shared files (the shipped sink's
/// layout): a commit covers many meters' rows at once.
#[test]
fn kill_9_with_shared_files_loses_only_the_unflushed_tail_and_writes_no_row_twice() {
    kill_9_mid_stream_then_restart("layout = \"shared_files\"\nrow_group_rows = 64");
}

fn kill_9_mid_stream_then_restart(parquet_keys: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parquet");
    let (port, metrics_port) = (free_port(), free_port());
    let pipeline = pipeline_with_keys(
        dir.path(),
        &out,
        port,
        metrics_port,
        "flush_interval_s = 0.2",
        parquet_keys,
    );

    let mut sink = start_sink(&pipeline, 1);
    let (cancel, meters) = start_meters(&runtime, port, metrics_port, 3, "crash");
    std::thread::sleep(Duration::from_secs(5));
    sink.0.kill().unwrap();
    let killed_at = Instant::now();
    sink.0.wait().unwrap();
    // No output acknowledged a record the log had not made durable.
    let log_dir = dir.path().join("state").join("record-log");
    let last_on_disk = last_entry_seq(&log_dir).unwrap_or(0);
    let acks = acked_seqs(&log_dir);
    assert!(
        acks.values().all(|&acked| acked <= last_on_disk),
        "acks {acks:?} past the last entry on disk, {last_on_disk}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut sink = start_sink(&pipeline, 2);
    let restarted_after = killed_at.elapsed();
    // The meters reconnect (every 200 ms) and stream a few more seconds;
    // every output has what it needs, so /healthz never answers 503.
    let health = healthz_while(metrics_port, Duration::from_secs(5));
    let metrics = http_get(metrics_port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    sigterm_and_wait(&mut sink);
    cancel.cancel();
    let _ = runtime.block_on(meters);

    assert!(
        logs(dir.path()).contains("did not stop cleanly"),
        "{}",
        logs(dir.path())
    );
    let restarted = run_log(dir.path(), 2);
    assert!(!restarted.contains("no longer holds"), "{restarted}");
    assert!(
        !health.is_empty() && health.iter().all(|&code| code == 200),
        "/healthz after the restart: {health:?}\n{restarted}"
    );
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    let windows = by_device(&out.join("windows"), "window_start");
    assert_eq!(windows.len(), 3, "{:?}", windows.keys());
    let events = by_device(&out.join("events"), "time");
    let lost_spans = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meterflow_lost_result_spans_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(
        lost_spans,
        Some(3.0),
        "one lost span per meter is counted:\n{metrics}\n{}",
        logs(dir.path())
    );
    for (device, rows) in &windows {
        let gaps = check_windows(device, rows);
        // One hole: from the last durable window to the first after the
        // reconnect. It spans the downtime plus at most the unflushed tail
        // (0.2 s log interval) and the reconnect; 3 s bounds that with room
        // for a loaded machine.
        assert_eq!(gaps.len(), 1, "{device}: {gaps:?}");
        let (from, to) = gaps[0];
        let hole_s = (to - from) as f64 / 1e9;
        assert!(
            hole_s >= restarted_after.as_secs_f64() - 0.5
                && hole_s <= restarted_after.as_secs_f64() + 3.0,
            "{device}: results missing for {hole_s:.3} s, the sink was down {restarted_after:?}"
        );
        // The restart recorded exactly that span.
        let lost: Vec<&Row> = events[device]
            .iter()
            .filter(|e| text(e, "kind") == "lost_results")
            .collect();
        assert_eq!(lost.len(), 1, "{device}: {lost:?}");
        assert_eq!(
            ts(lost[0], "time"),
            from,
            "{device}: the lost span starts at the last durable window"
        );
        // Energy continues from the last durable window.
        check_energy_continues(device, rows, to);
    }

    // Every packet interval in the dataset left as a packet (duplicates of
    // the same identity are allowed, loss is not).
    let intervals = check_packets_cover_intervals(&dir.path().join("packets"), &out);
    assert!(intervals >= 15, "{intervals} packet intervals");
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a small tmpfs (needs root); None when this machine cannot.
fn mount_tmpfs(dir: &Path, size: &str) -> Option<Tmpfs> {
    std::fs::create_dir_all(dir).ok()?;
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| Tmpfs(dir.to_path_buf()))
}

/// Waits for `/healthz` to answer 503; returns its body.
fn wait_for_503(metrics_port: u16) -> String {
    let mut reason = String::new();
    wait_for(
        Duration::from_secs(30),
        "/healthz to answer 503",
        || match http_get(metrics_port, "/healthz") {
            Some((503, body)) => {
                reason = body;
                true
            }
            _ => false,
        },
    );
    reason
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_turns_healthz_503_and_the_rows_that_waited_are_written_once_freed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parquet");
    let Some(_tmpfs) = mount_tmpfs(&out, "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    };
    let (port, metrics_port) = (free_port(), free_port());
    let pipeline = pipeline(dir.path(), &out, port, metrics_port);
    let mut sink = start_sink(&pipeline, 1);
    let (cancel, meters) = start_meters(&runtime, port, metrics_port, 2, "full");
    std::thread::sleep(Duration::from_secs(3));

    let filler = out.join("filler");
    fill(&filler);
    let reason = wait_for_503(metrics_port);
    assert!(
        reason.contains("output parquet"),
        "{reason}\n{}",
        logs(dir.path())
    );
    let metrics = http_get(metrics_port, "/metrics").unwrap().1;
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meterflow_output_errors_total{output=\"parquet\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "{metrics}");
    // Full for a few seconds more: rows keep waiting in the record log.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::remove_file(&filler).unwrap();
    wait_for(Duration::from_secs(40), "/healthz to recover", || {
        http_get(metrics_port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    std::thread::sleep(Duration::from_secs(2));
    sigterm_and_wait(&mut sink);
    cancel.cancel();
    let _ = runtime.block_on(meters);

    // One log line when the output started failing and one when it
    // recovered, not one per device or per retry.
    let log = logs(dir.path());
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("output failing"), 1, "{log}");
    assert_eq!(lines("output recovered"), 1, "{log}");

    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    let windows = by_device(&out.join("windows"), "window_start");
    assert_eq!(windows.len(), 2, "{:?}", windows.keys());
    for (device, rows) in &windows {
        // Streaming never stopped: every window is there, once, back to back.
        let gaps = check_windows(device, rows);
        assert!(gaps.is_empty(), "{device}: windows missing at {gaps:?}");
        let span_s =
            (ts(rows.last().unwrap(), "window_end") - ts(&rows[0], "window_start")) as f64 / 1e9;
        assert!(span_s >= 10.0, "{device}: only {span_s:.1} s of windows");
    }
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_full_disk_under_the_record_log_holds_the_meters_back_and_loses_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(_tmpfs) = mount_tmpfs(&state, "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    };
    let out = dir.path().join("parquet");
    let (port, metrics_port) = (free_port(), free_port());
    // A small unflushed buffer: a failing log fills it within seconds.
    let pipeline = pipeline_with(
        dir.path(),
        &out,
        port,
        metrics_port,
        "flush_interval_s = 0.2\nmax_buffer_bytes = 65536",
    );
    let mut sink = start_sink(&pipeline, 1);
    let (cancel, meters) = start_meters(&runtime, port, metrics_port, 2, "held");
    std::thread::sleep(Duration::from_secs(3));

    let filler = state.join("filler");
    fill(&filler);
    let reason = wait_for_503(metrics_port);
    assert!(
        reason.contains("record log"),
        "{reason}\n{}",
        logs(dir.path())
    );
    wait_for(
        Duration::from_secs(30),
        "the engine to wait for the log",
        || {
            http_get(metrics_port, "/metrics")
                .is_some_and(|(_, m)| metric(&m, "meterflow_record_log_full_waits_total") >= 1.0)
        },
    );
    // Held back a few seconds: the meters buffer meanwhile (~37 s at 4 kHz).
    std::thread::sleep(Duration::from_secs(3));
    let metrics = http_get(metrics_port, "/metrics").unwrap().1;
    assert!(
        metric(&metrics, "meterflow_record_log_flush_errors_total") >= 1.0,
        "{metrics}"
    );
    std::fs::remove_file(&filler).unwrap();
    wait_for(Duration::from_secs(40), "/healthz to recover", || {
        http_get(metrics_port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    std::thread::sleep(Duration::from_secs(2));
    sigterm_and_wait(&mut sink);
    cancel.cancel();
    let _ = runtime.block_on(meters);

    let log = logs(dir.path());
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("record log full"), 1, "{log}");
    assert_eq!(lines("record log takes records again"), 1, "{log}");
    let windows = by_device(&out.join("windows"), "window_start");
    assert_eq!(windows.len(), 2, "{:?}", windows.keys());
    for (device, rows) in &windows {
        let gaps = check_windows(device, rows);
        assert!(
            gaps.is_empty(),
            "{device}: windows missing at {gaps:?}\n{log}"
        );
        let span_s =
            (ts(rows.last().unwrap(), "window_end") - ts(&rows[0], "window_start")) as f64 / 1e9;
        assert!(span_s >= 10.0, "{device}: only {span_s:.1} s of windows");
    }
    // The meters never had to drop anything.
    let events = by_device(&out.join("events"), "time");
    for (device, rows) in &events {
        assert!(
            rows.iter().all(|e| text(e, "kind") != "gap"),
            "{device}: {rows:?}"
        );
    }
}

/// The sink log of run `n`.
fn run_log(dir: &Path, n: u32) -> String {
    std::fs::read_to_string(dir.join(format!("sink-{n}.log"))).unwrap_or_default()
}

/// The acked seq of every output, from `acks/<output>.ack` (a 20-byte stamp
/// whose bytes 8..16 are the seq, little-endian).
fn acked_seqs(log_dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(log_dir.join("acks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ack"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let output = p.file_stem().unwrap().to_string_lossy().into_owned();
            (output, u64::from_le_bytes(bytes[8..16].try_into().unwrap()))
        })
        .collect()
}

/// First seqs of the segment files, oldest first.
fn segments(log_dir: &Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = std::fs::read_dir(log_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wal").and_then(|n| n.parse().ok())
        })
        .collect();
    firsts.sort_unstable();
    firsts
}

/// The seq of the last whole entry on disk, from the documented format: a
/// segment is a 20-byte header, then entries of a 16-byte header (payload
/// length u32, CRC u32, seq u64, little-endian) and the payload.
fn last_entry_seq(log_dir: &Path) -> Option<u64> {
    segments(log_dir).into_iter().rev().find_map(|first| {
        let bytes = std::fs::read(log_dir.join(format!("{first:020}.wal"))).unwrap();
        // `MFRZ`: the entries are in zstd frames (raw length u32, then zstd).
        let framed = bytes.starts_with(b"MFRZ");
        let mut last = None;
        for (_, payload) in stored_entries(&bytes[20..]) {
            last = if framed {
                let raw = u32::from_le_bytes(payload[..4].try_into().unwrap()) as usize;
                let entries = zstd::bulk::decompress(&payload[4..], raw).unwrap();
                stored_entries(&entries).last().map(|(seq, _)| seq)
            } else {
                stored_entries(payload).next().map(|(seq, _)| seq)
            }
            .or(last);
        }
        last
    })
}

/// The `(seq, payload)` of each whole entry of `bytes` (len u32, crc u32,
/// seq u64, payload), up to the first cut short.
fn stored_entries(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + 16)?;
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(header[8..16].try_into().unwrap());
        let payload = bytes.get(at + 16..at + 16 + len)?;
        at += 16 + len;
        Some((seq, payload))
    })
}

/// The end of a `lost_results` row's span, from its message
/// ("no results from <from> to <to> (...)"), in ns.
fn lost_until(row: &Row) -> i64 {
    let message = text(row, "message");
    let to = message
        .split(" to ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no end in {message:?}"));
    chrono::DateTime::parse_from_rfc3339(to)
        .unwrap_or_else(|e| panic!("{to:?} in {message:?}: {e}"))
        .timestamp_nanos_opt()
        .unwrap()
}

/// Polls `/healthz` while streaming for `span`; returns the statuses seen.
fn healthz_while(metrics_port: u16, span: Duration) -> Vec<u16> {
    let until = Instant::now() + span;
    let mut seen = Vec::new();
    while Instant::now() < until {
        if let Some((code, _)) = http_get(metrics_port, "/healthz") {
            seen.push(code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

/// How a test damages a segment of the record log.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Delete,
    /// One flipped payload bit in each entry: the header stays valid.
    Corrupt,
}

fn damage(path: &Path, how: Damage) {
    match how {
        Damage::Delete => std::fs::remove_file(path).unwrap(),
        Damage::Corrupt => {
            let mut bytes = std::fs::read(path).unwrap();
            // The first entry's payload starts after the 20-byte segment
            // header and its 16-byte entry header.
            bytes[20 + 16 + 1] ^= 0x10;
            std::fs::write(path, bytes).unwrap();
        }
    }
}

#[test]
fn segments_removed_from_the_record_log_after_kill_9_are_recorded_per_meter() {
    hole_in_the_record_log_after_kill_9(Damage::Delete);
}

#[test]
fn segments_corrupted_in_the_record_log_after_kill_9_are_recorded_per_meter() {
    hole_in_the_record_log_after_kill_9(Damage::Corrupt);
}

/// kill -9, then the middle third of the log past the dataset's ack is
/// damaged; the restart must record every span that cost, per meter.
fn hole_in_the_record_log_after_kill_9(how: Damage) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parquet");
    let (port, metrics_port) = (free_port(), free_port());
    // Segments of about one record; files that stay open for the whole run,
    // so the dataset acknowledges nothing before the kill.
    let pipeline = pipeline_with(
        dir.path(),
        &out,
        port,
        metrics_port,
        // Plain entries: zstd frames would put several flushes in the
        // smallest segment; the hole's accounting is the same for both.
        "flush_interval_s = 0.2\nsegment_bytes = 1024\ncompression = \"none\"",
    );
    let toml = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        toml.replace("max_file_span_s = 2\n", "max_file_span_s = 3600\n"),
    )
    .unwrap();
    let log_dir = dir.path().join("state").join("record-log");

    let mut sink = start_sink(&pipeline, 1);
    let (cancel, meters) = start_meters(&runtime, port, metrics_port, 3, "hole");
    std::thread::sleep(Duration::from_secs(6));
    sink.0.kill().unwrap();
    sink.0.wait().unwrap();

    // Damage the middle third of the segments the dataset has not
    // acknowledged (their windows are in no visible file): the hole has
    // results of every meter on both sides. Segments hold about one entry.
    let acks = acked_seqs(&log_dir);
    let parquet_ack = acks.get("parquet").copied().unwrap_or(0);
    let unacked: Vec<u64> = segments(&log_dir)
        .into_iter()
        .filter(|&first| first > parquet_ack)
        .collect();
    assert!(
        unacked.len() >= 30,
        "too few segments past the dataset's ack ({acks:?}) to cut a hole: {unacked:?}"
    );
    let (start, end) = (unacked.len() / 3, 2 * unacked.len() / 3);
    for first in &unacked[start..end] {
        damage(&log_dir.join(format!("{first:020}.wal")), how);
    }
    let hole = (unacked[start], unacked[end] - 1);

    let mut sink = start_sink(&pipeline, 2);
    wait_for(
        Duration::from_secs(30),
        "the restarted sink's /healthz",
        || http_get(metrics_port, "/healthz").is_some(),
    );
    // The meters reconnect (every 200 ms) and stream a few more seconds.
    let health = healthz_while(metrics_port, Duration::from_secs(5));
    let metrics = http_get(metrics_port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    sigterm_and_wait(&mut sink);
    cancel.cancel();
    let _ = runtime.block_on(meters);

    let log = run_log(dir.path(), 2);
    assert!(
        log.contains(&format!("records {} to {} are lost", hole.0, hole.1)),
        "{how:?}: the hole {hole:?} is logged:\n{log}"
    );
    assert!(!log.contains("no longer holds"), "{log}");
    assert!(
        health.iter().all(|&code| code == 200),
        "/healthz after the restart: {health:?}\n{log}"
    );
    let windows = by_device(&out.join("windows"), "window_start");
    assert_eq!(windows.len(), 3, "{:?}", windows.keys());
    let events = by_device(&out.join("events"), "time");
    let mut recorded = 0;
    for (device, rows) in &windows {
        // Every span without windows is one lost_results row from its
        // start to its end: the tail the kill cut off, and the hole where
        // it held windows of this meter.
        let gaps = check_windows(device, rows);
        let lost: Vec<&Row> = events[device]
            .iter()
            .filter(|e| text(e, "kind") == "lost_results")
            .collect();
        let spans: Vec<(i64, i64)> = lost
            .iter()
            .map(|e| (ts(e, "time"), lost_until(e)))
            .collect();
        assert_eq!(
            gaps.len(),
            2,
            "{device}: windows missing at {gaps:?}, lost rows {spans:?}"
        );
        for (&(from, to), &(lost_from, lost_to)) in gaps.iter().zip(&spans) {
            assert_eq!(lost_from, from, "{device}: {gaps:?} vs {spans:?}");
            // The message gives the end to the millisecond.
            assert!(
                (lost_to - to).abs() < 1_000_000,
                "{device}: {gaps:?} vs {spans:?}"
            );
        }
        recorded += spans.len();
    }
    assert_eq!(
        metric(&metrics, "meterflow_lost_result_spans_total"),
        recorded as f64,
        "{metrics}"
    );
}

#[test]
fn a_damaged_checkpoint_copy_is_ignored_and_the_registers_continue_from_the_log() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parquet");
    let (port, metrics_port) = (free_port(), free_port());
    let pipeline = pipeline(dir.path(), &out, port, metrics_port);
    let checkpoint = dir.path().join("state").join("checkpoint.json");

    let mut sink = start_sink(&pipeline, 1);
    let (cancel, meters) = start_meters(&runtime, port, metrics_port, 2, "copy");
    std::thread::sleep(Duration::from_secs(4));
    sigterm_and_wait(&mut sink);
    let written = std::fs::read(&checkpoint).unwrap();
    assert!(written.len() > 20, "{written:?}");
    // Run 2 finds it empty, run 3 cut in the middle.
    let damage: [&[u8]; 2] = [b"", &written[..written.len() / 2]];
    for (run, bytes) in (2..).zip(damage) {
        std::fs::write(&checkpoint, bytes).unwrap();
        let mut sink = start_sink(&pipeline, run);
        wait_for(
            Duration::from_secs(30),
            "the sink with a damaged checkpoint to serve /healthz",
            || http_get(metrics_port, "/healthz").is_some_and(|(code, _)| code == 200),
        );
        std::thread::sleep(Duration::from_secs(3));
        sigterm_and_wait(&mut sink);
        let log = run_log(dir.path(), run);
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("checkpoint.json") && l.contains("WARN"))
            .collect();
        assert_eq!(warnings.len(), 1, "run {run}:\n{log}");
        assert!(warnings[0].contains("ignored"), "{}", warnings[0]);
    }
    cancel.cancel();
    let _ = runtime.block_on(meters);

    let windows = by_device(&out.join("windows"), "window_start");
    assert_eq!(windows.len(), 2, "{:?}", windows.keys());
    let events = by_device(&out.join("events"), "time");
    for (device, rows) in &windows {
        // Two clean restarts: two spans without windows, nothing lost.
        let gaps = check_windows(device, rows);
        assert_eq!(gaps.len(), 2, "{device}: {gaps:?}");
        for &(_, to) in &gaps {
            check_energy_continues(device, rows, to);
        }
        assert!(
            events[device]
                .iter()
                .all(|e| text(e, "kind") != "lost_results"),
            "{device}: {:?}",
            events[device]
        );
    }
}

#[test]
fn after_kill_9_no_output_waits_for_records_the_log_never_made_durable() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parquet");
    let (port, metrics_port) = (free_port(), free_port());
    // The default fsync interval (0.5 s), longer than the packet output's
    // flush interval (0.25 s).
    let pipeline = pipeline_with(dir.path(), &out, port, metrics_port, "");
    let log_dir = dir.path().join("state").join("record-log");
    let mut sink = start_sink(&pipeline, 1);
    let (cancel, meters) = start_meters(&runtime, port, metrics_port, 3, "durable");
    std::thread::sleep(Duration::from_secs(4));
    for run in 2..=4 {
        sink.0.kill().unwrap();
        sink.0.wait().unwrap();
        let last_on_disk = last_entry_seq(&log_dir).unwrap_or(0);
        let acks = acked_seqs(&log_dir);
        assert!(
            acks.values().all(|&acked| acked <= last_on_disk),
            "run {}: acks {acks:?} past the last entry on disk, {last_on_disk}",
            run - 1
        );
        sink = start_sink(&pipeline, run);
        let health = healthz_while(metrics_port, Duration::from_secs(4));
        let log = run_log(dir.path(), run);
        assert!(!log.contains("no longer holds"), "run {run}:\n{log}");
        assert!(
            !health.is_empty() && health.iter().all(|&code| code == 200),
            "run {run}: /healthz {health:?}\n{log}"
        );
    }
    sigterm_and_wait(&mut sink);
    cancel.cancel();
    let _ = runtime.block_on(meters);
    // Each run's tail is recorded once per meter; no window twice.
    let windows = by_device(&out.join("windows"), "window_start");
    assert_eq!(windows.len(), 3, "{:?}", windows.keys());
    let events = by_device(&out.join("events"), "time");
    for (device, rows) in &windows {
        let gaps = check_windows(device, rows);
        let lost: Vec<i64> = events[device]
            .iter()
            .filter(|e| text(e, "kind") == "lost_results")
            .map(|e| ts(e, "time"))
            .collect();
        let starts: Vec<i64> = gaps.iter().map(|&(from, _)| from).collect();
        assert_eq!(
            lost, starts,
            "{device}: lost rows vs windows missing at {gaps:?}"
        );
    }
}
