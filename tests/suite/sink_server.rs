//! The long-running stream sink over loopback: virtual meters dial in (or
//! are dialed), their windows match batch mode over the very bytes they
//! sent, energy continues across reconnects and restarts, bad peers are
//! dropped without costing the good meters, and SIGTERM leaves finished
//! files and a consistent checkpoint.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use common::parquet_read::{read_rows, Cell};
use meterflow::meter::firmware::{MeterSettings, SessionLimit};
use meterflow::meter::fleet::{run_fleet, start_fleet, FleetConfig, FleetMode};
use meterflow::meter::pacing::Pacing;
use meterflow::model::run_report::RunReport;
use meterflow::pipeline::runner;
use meterflow::pipeline::sources::RunOptions;
use meterflow::pipeline::PipelineConfig;
use meterflow::wire::command::StreamType;
use meterflow::wire::frame::put_info_line;
use meterflow::wire::message::{InfoAnswer, SampleAnswer, StartTs};
use meterflow::wire::Measures;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A sink pipeline on free loopback ports writing under `out`.
fn sink_config(out: &Path, source_extra: &str, state: &Path) -> PipelineConfig {
    let text = format!(
        r#"
name = "sink-test"
[source]
kind = "smartmeter_server"
listen = "127.0.0.1:0"
rate = 8000
{source_extra}
[aggregation]
packet_interval_s = 0.5
[sink.parquet]
out = "{out}/parquet"
fsync = false
[sink.packets.targets.ndjson]
dir = "{out}/packets"
[sink.packets.targets.spool]
dir = "{out}/spool"
[service]
state_dir = "{state}"
metrics_listen = "127.0.0.1:0"
"#,
        out = out.display(),
        state = state.display(),
    );
    PipelineConfig::parse(&text).unwrap()
}

/// A started sink: its address, and the task that runs it until cancelled.
struct RunningSink {
    addr: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    registry: std::sync::Arc<meterflow::source::meter_server::registry::Registry>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<RunReport>>,
}

async fn start_sink(config: PipelineConfig) -> RunningSink {
    let sink = meterflow::pipeline::sources::bind_meter_stream(&config)
        .await
        .unwrap();
    let addr = sink.local_addr().unwrap();
    let registry = sink.registry();
    let run = runner::start_source(config, Box::new(sink)).await.unwrap();
    let metrics = run.metrics_addr().unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run.run(cancel.clone()));
    RunningSink {
        addr,
        metrics,
        registry,
        cancel,
        task,
    }
}

impl RunningSink {
    /// Waits until no meter streams any more (their tails are in), then stops.
    async fn stop_when_idle(self) -> RunReport {
        let server = &self.registry.server;
        for _ in 0..600 {
            if server.streaming.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop().await
    }

    async fn stop(self) -> RunReport {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the sink shuts down within 60 s")
            .unwrap()
            .unwrap()
    }
}

fn fleet(server: std::net::SocketAddr, meters: usize, prefix: &str) -> FleetConfig {
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: server.to_string(),
            reconnect: Duration::from_millis(200),
        },
        meters,
    );
    fleet.name_prefix = prefix.to_string();
    fleet.template = MeterSettings {
        pacing: Pacing::Fast,
        ..MeterSettings::new(prefix)
    };
    fleet
}

/// Rows of one table, grouped by device, ordered by window start.
fn rows_by_device(dir: &Path) -> BTreeMap<String, Vec<BTreeMap<String, Cell>>> {
    let mut devices: BTreeMap<String, Vec<_>> = BTreeMap::new();
    if !dir.exists() {
        return devices;
    }
    for row in read_rows(dir) {
        let Cell::Str(device) = row["device"].clone() else {
            panic!("device column");
        };
        devices.entry(device).or_default().push(row);
    }
    for rows in devices.values_mut() {
        rows.sort_by_key(|r| match r["window_start"] {
            Cell::Ts(t) => t,
            _ => panic!("window_start"),
        });
    }
    devices
}

fn number(cell: &Cell) -> Option<f64> {
    match *cell {
        Cell::F64(x) => Some(x),
        Cell::F32(x) => Some(f64::from(x)),
        Cell::U64(x) => Some(x as f64),
        Cell::I64(x) | Cell::Ts(x) => Some(x as f64),
        Cell::I32(x) => Some(f64::from(x)),
        _ => None,
    }
}

/// Cells equal, floats within 1e-9 relative (the same engine over the same
/// samples; only the block boundaries differ between the two runs).
fn assert_same_row(sink: &BTreeMap<String, Cell>, batch: &BTreeMap<String, Cell>, what: &str) {
    assert_eq!(
        sink.keys().collect::<Vec<_>>(),
        batch.keys().collect::<Vec<_>>(),
        "{what}: columns"
    );
    for (column, a) in sink {
        let b = &batch[column];
        match (a, b, number(a), number(b)) {
            (Cell::F64(_) | Cell::F32(_), _, Some(x), Some(y)) => {
                let tolerance = 1e-9 * x.abs().max(y.abs()).max(1e-6);
                assert!(
                    (x - y).abs() <= tolerance || (x.is_nan() && y.is_nan()),
                    "{what}: {column}: sink {x} vs batch {y}"
                );
            }
            _ => assert_eq!(a, b, "{what}: {column}"),
        }
    }
}

fn f64_of(row: &BTreeMap<String, Cell>, column: &str) -> f64 {
    number(&row[column]).unwrap_or_else(|| panic!("{column} is {:?}", row[column]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_meters_of_mixed_rates_and_layouts_match_batch_mode() {
    let dir = tempfile::tempdir().unwrap();
    let layouts = [
        (4000, "v,i,v,i,v,i"),
        (8000, "v,i"),
        (16000, "v,i_L2"),
        (32000, "v,i,v,i,v,i"),
        (50, "p,q"),
    ];
    let mut overrides = String::new();
    for k in 1..=20usize {
        let (rate, measures) = layouts[k % layouts.len()];
        overrides.push_str(&format!(
            "[source.meters.\"mix{k:03}\"]\nrate = {rate}\nmeasures = \"{measures}\"\n"
        ));
    }
    let out = dir.path().join("sink");
    let sink = start_sink(sink_config(&out, &overrides, &dir.path().join("state"))).await;

    let mut meters = fleet(sink.addr, 20, "mix");
    meters.template.limit = Some(SessionLimit::Duration(Duration::from_millis(1500)));
    meters.capture = Some(dir.path().join("captures/{name}.mfcap"));
    let sent = run_fleet(meters, CancellationToken::new()).await.unwrap();
    assert_eq!(sent.meters.len(), 20);
    assert!(sent.meters.iter().all(|m| m.limit_reached), "{sent:?}");
    let report = sink.stop_when_idle().await;
    assert_eq!(report.devices.len(), 20, "{report:?}");
    let dropped = &report.connections.as_ref().unwrap().dropped;
    assert!(dropped.is_empty(), "{dropped:?}");

    // The same bytes through batch mode.
    let mut batch_config = sink_config(&dir.path().join("batch"), "", &dir.path().join("unused"));
    batch_config.source =
        meterflow::pipeline::config::SourceConfig::Files(meterflow::source::files::FilesConfig {
            paths: vec![dir.path().join("captures")],
            raw: Default::default(),
        });
    let captures: Vec<PathBuf> = std::fs::read_dir(dir.path().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(captures.len(), 20);
    runner::start(batch_config, RunOptions::default())
        .await
        .unwrap()
        .run(CancellationToken::new())
        .await
        .unwrap();

    for table in ["windows", "latch"] {
        let sink_rows = rows_by_device(&out.join("parquet").join(table));
        let batch_rows = rows_by_device(&dir.path().join("batch/parquet").join(table));
        assert_eq!(
            sink_rows.keys().collect::<Vec<_>>(),
            batch_rows.keys().collect::<Vec<_>>(),
            "{table}: devices"
        );
        for (device, rows) in &sink_rows {
            let batch = &batch_rows[device];
            assert_eq!(rows.len(), batch.len(), "{table}/{device}: row count");
            assert!(!rows.is_empty());
            for (k, (a, b)) in rows.iter().zip(batch).enumerate() {
                assert_same_row(a, b, &format!("{table}/{device} row {k}"));
            }
        }
    }
    let windows = rows_by_device(&out.join("parquet/windows"));
    let latch = rows_by_device(&out.join("parquet/latch"));
    assert_eq!(windows.len() + latch.len(), 20, "every meter has rows");

    // Packets: the same readings per sensor and interval.
    let sink_packets = readings(&out.join("packets"));
    let batch_packets = readings(&dir.path().join("batch/packets"));
    assert_eq!(
        sink_packets.keys().collect::<Vec<_>>(),
        batch_packets.keys().collect::<Vec<_>>()
    );
    for (key, value) in &sink_packets {
        let other = batch_packets[key];
        assert!(
            (value - other).abs() <= 1e-9 * value.abs().max(1e-6),
            "{key:?}: sink {value} vs batch {other}"
        );
    }
}

/// (sensor, measurand timestamp, key) → value over every NDJSON packet.
fn readings(dir: &Path) -> BTreeMap<(String, i64, String), f64> {
    let mut readings = BTreeMap::new();
    for packet in common::ndjson::packets(dir) {
        for sensor in packet["sensors"].as_array().unwrap() {
            let id = sensor["sensor_id"].as_str().unwrap().to_string();
            for m in sensor["measurands"].as_array().unwrap() {
                if let Some(value) = m["value"].as_f64() {
                    let key = (
                        id.clone(),
                        m["timestamp"].as_i64().unwrap(),
                        m["key"].as_str().unwrap().to_string(),
                    );
                    assert!(
                        readings.insert(key.clone(), value).is_none(),
                        "{key:?} twice"
                    );
                }
            }
        }
    }
    assert!(!readings.is_empty(), "no packets in {}", dir.display());
    readings
}

/// Checks that a device's cumulative import continues across `boundary`
/// (the index of the first window of a later connection or run): the step
/// is that window's own import, max(P, 0)·t / 3600 Wh, within 1e-6 Wh.
fn assert_energy_continues(rows: &[BTreeMap<String, Cell>], boundary: usize, what: &str) {
    assert!(
        boundary > 0 && boundary < rows.len(),
        "{what}: boundary {boundary} of {}",
        rows.len()
    );
    let before = f64_of(&rows[boundary - 1], "cum_import_total_wh");
    let after = f64_of(&rows[boundary], "cum_import_total_wh");
    let own = f64_of(&rows[boundary], "p_total_w").max(0.0) * f64_of(&rows[boundary], "duration_s")
        / 3600.0;
    assert!(before > 0.0, "{what}: energy before the boundary");
    let step = after - before;
    let flagged = rows[boundary]["flagged"] == Cell::Bool(true);
    if flagged {
        assert!(
            (-1e-6..=own + 1e-6).contains(&step),
            "{what}: step {step} Wh, window {own} Wh"
        );
    } else {
        assert!(
            (step - own).abs() <= 1e-6,
            "{what}: step {step} Wh, window {own} Wh"
        );
    }
    // No window twice: starts strictly increase.
    for pair in rows.windows(2) {
        assert!(
            number(&pair[1]["window_start"]) > number(&pair[0]["window_start"]),
            "{what}: a window repeats"
        );
    }
}

/// Index of the first row that starts at or after `time_ns`.
fn first_row_after(rows: &[BTreeMap<String, Cell>], time_ns: i64) -> usize {
    rows.iter()
        .position(|r| matches!(r["window_start"], Cell::Ts(t) if t >= time_ns))
        .unwrap_or(rows.len())
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn energy_continues_across_a_reconnect_and_a_sink_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let state = dir.path().join("state");
    let sink = start_sink(sink_config(&out, "", &state)).await;

    // First connection: real time, cut off mid-stream (the meter goes away).
    let mut meter = fleet(sink.addr, 1, "meter");
    meter.template.pacing = Pacing::RealTime;
    let cut = CancellationToken::new();
    let running = start_fleet(meter.clone(), cut.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cut.cancel();
    running.wait().await;
    let reconnect_at = now_ns();
    // Second connection of the same meter, after the first is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    meter.template.limit = Some(SessionLimit::Duration(Duration::from_secs(1)));
    run_fleet(meter.clone(), CancellationToken::new())
        .await
        .unwrap();
    let first_run = sink.stop_when_idle().await;
    assert_eq!(first_run.devices.len(), 2, "{:?}", first_run.devices);

    // The sink restarts on the same state folder and outputs.
    let sink = start_sink(sink_config(&out, "", &state)).await;
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("checkpoint.json")).unwrap()).unwrap();
    let saved = checkpoint["meters"]["meter001"]["energy"]["total"]["import_wh"]
        .as_f64()
        .unwrap();
    // A fast meter's samples run ahead of the clock: the restarted sink
    // leaves out what the checkpoint already covers.
    let restart_at = checkpoint["meters"]["meter001"]["covered_until_ns"]
        .as_i64()
        .unwrap();
    let mut meter = fleet(sink.addr, 1, "meter");
    meter.template.limit = Some(SessionLimit::Duration(Duration::from_secs(1)));
    run_fleet(meter, CancellationToken::new()).await.unwrap();
    let second_run = sink.stop_when_idle().await;
    assert_eq!(second_run.devices.len(), 1);

    let rows = &rows_by_device(&out.join("parquet/windows"))["meter001"];
    let reconnect = first_row_after(rows, reconnect_at);
    assert_energy_continues(rows, reconnect, "reconnect");
    let restart = first_row_after(rows, restart_at);
    assert_energy_continues(rows, restart, "restart");
    let before_restart = f64_of(&rows[restart - 1], "cum_import_total_wh");
    assert!(
        (saved - before_restart).abs() <= 1e-9,
        "checkpoint {saved} Wh vs last window before the restart {before_restart} Wh"
    );
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("checkpoint.json")).unwrap()).unwrap();
    let last = f64_of(rows.last().unwrap(), "cum_import_total_wh");
    let saved = checkpoint["meters"]["meter001"]["energy"]["total"]["import_wh"]
        .as_f64()
        .unwrap();
    assert!(
        (saved - last).abs() <= 1e-9,
        "final checkpoint {saved} vs {last}"
    );
    assert_eq!(checkpoint["meters"]["meter001"]["sessions"], 3);
}

/// A peer that sends a valid info line and sample answer, then a `Data:`
/// header announcing 65 535 bytes, and nothing more.
async fn huge_length_peer(addr: std::net::SocketAddr) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let mut buf = BytesMut::new();
    put_info_line(
        &mut buf,
        &serde_json::to_string(&InfoAnswer::new("evil", "127.0.0.1")).unwrap(),
    );
    socket.write_all(&buf).await.unwrap();
    let mut command = [0u8; 512];
    let _ = socket.read(&mut command).await.unwrap();
    buf.clear();
    let start = StartTs::from_unix_millis(chrono::Utc::now().timestamp_millis() as u64);
    let answer = SampleAnswer::new(
        Measures::ThreePhase,
        8000,
        StreamType::Tcp,
        true,
        false,
        start,
    );
    put_info_line(&mut buf, &serde_json::to_string(&answer).unwrap());
    buf.extend_from_slice(b"Data:\x00\x00\x00\x00\xff\xff");
    buf.extend_from_slice(&[0x41; 100]);
    socket.write_all(&buf).await.unwrap();
    // Hold the connection until the sink gives up on it.
    let _ = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut command)).await;
}

async fn metrics_text(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_are_dropped_and_the_good_meters_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let limits = "max_pending = 40\ninfo_timeout_s = 1.0\nidle_timeout_s = 1.5\nallow_names = [\"good*\", \"evil\"]\n";
    let sink = start_sink(sink_config(&out, limits, &dir.path().join("state"))).await;
    let addr = sink.addr;

    // Three good meters stream 4 s in real time while the bad peers act.
    let mut good = fleet(addr, 3, "good");
    good.template.pacing = Pacing::RealTime;
    good.template.limit = Some(SessionLimit::Duration(Duration::from_secs(4)));
    let good = tokio::spawn(run_fleet(good, CancellationToken::new()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A second connection under a good meter's name, and a name not allowed.
    let mut twin = fleet(addr, 1, "good");
    twin.template.limit = Some(SessionLimit::Duration(Duration::from_secs(1)));
    twin.mode = twin_fleet_mode(addr);
    let twin_cancel = CancellationToken::new();
    let twin_fleet = start_fleet(twin, twin_cancel.clone()).await.unwrap();
    let mut stranger = fleet(addr, 1, "stranger");
    stranger.mode = twin_fleet_mode(addr);
    let stranger_cancel = CancellationToken::new();
    let stranger_fleet = start_fleet(stranger, stranger_cancel.clone())
        .await
        .unwrap();

    // They dial in before the flood fills the pending slots.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut bad = tokio::task::JoinSet::new();
    // Garbage and no info line.
    bad.spawn(async move {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let garbage: Vec<u8> = (0..200_000u32)
            .map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = socket.write_all(&garbage).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut [0u8; 64])).await;
    });
    // Silence.
    bad.spawn(async move {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut [0u8; 64])).await;
    });
    bad.spawn(huge_length_peer(addr));
    // A flood of connections that never speak.
    bad.spawn(async move {
        let mut sockets = Vec::new();
        for _ in 0..300 {
            if let Ok(socket) = TcpStream::connect(addr).await {
                sockets.push(socket);
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    while bad.join_next().await.is_some() {}
    let metrics = metrics_text(sink.metrics).await;
    twin_cancel.cancel();
    stranger_cancel.cancel();
    twin_fleet.wait().await;
    stranger_fleet.wait().await;
    let good = good.await.unwrap().unwrap();
    assert!(good.meters.iter().all(|m| m.limit_reached), "{good:?}");
    let report = sink.stop_when_idle().await;

    let dropped: BTreeMap<_, _> = report
        .connections
        .as_ref()
        .unwrap()
        .dropped
        .iter()
        .copied()
        .collect();
    for reason in [
        "no_info_line",
        "too_many_pending",
        "duplicate_name",
        "name_not_allowed",
        "idle",
    ] {
        assert!(
            dropped.get(reason).copied().unwrap_or(0) >= 1,
            "{reason}: {dropped:?}"
        );
    }
    assert!(
        metric(
            &metrics,
            "meterflow_peers_dropped_total{reason=\"too_many_pending\"}"
        ) >= 1.0
    );

    // The good meters: every sample they sent, in clean windows, no gaps.
    let sessions: Vec<_> = report
        .devices
        .iter()
        .filter(|s| s.device.starts_with("good"))
        .collect();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    for (session, sent) in sessions.iter().zip(&good.meters) {
        assert_eq!(session.device, sent.name);
        assert_eq!(session.samples, sent.sent_samples, "{}", session.device);
        assert_eq!(session.samples, 4 * 8000, "{}", session.device);
        assert_eq!(session.lost_samples, 0, "{}", session.device);
    }
    let windows = rows_by_device(&out.join("parquet/windows"));
    for k in 1..=3 {
        let rows = &windows[&format!("good{k:03}")];
        // 4 s of 50 Hz in 10-cycle windows: 20, less the fragments at the ends.
        let clean = rows
            .iter()
            .filter(|r| r["flagged"] == Cell::Bool(false))
            .count();
        assert!(
            clean >= 18,
            "good{k:03}: {clean} clean windows of {}",
            rows.len()
        );
        let gaps = rows
            .iter()
            .filter(|r| r["flag_gap"] == Cell::Bool(true))
            .count();
        assert_eq!(gaps, 0, "good{k:03}");
    }
    assert!(!windows.contains_key("stranger001"));
}

fn twin_fleet_mode(addr: std::net::SocketAddr) -> FleetMode {
    FleetMode::DialIn {
        server: addr.to_string(),
        reconnect: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_source_dials_the_meters_command_ports() {
    let dir = tempfile::tempdir().unwrap();
    let cancel_meters = CancellationToken::new();
    let mut meters = FleetConfig::new(
        FleetMode::CommandPort {
            bind: "127.0.0.1".parse().unwrap(),
            base_port: 0,
        },
        2,
    );
    meters.template.pacing = Pacing::RealTime;
    let meters = start_fleet(meters, cancel_meters.clone()).await.unwrap();
    let connect: Vec<String> = meters
        .listen_addrs
        .iter()
        .map(|(_, addr)| format!("\"{addr}\""))
        .collect();
    let out = dir.path().join("out");
    let text = format!(
        r#"
[source]
kind = "smartmeter_client"
connect = [{connect}]
rate = 4000
backoff_min_s = 0.2
[aggregation]
packet_interval_s = 0.5
[sink.parquet]
out = "{out}/parquet"
fsync = false
[service]
state_dir = "{out}/state"
metrics = false
"#,
        connect = connect.join(", "),
        out = out.display()
    );
    let config = PipelineConfig::parse(&text).unwrap();
    let run = runner::start(config, RunOptions::default()).await.unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    let report = task.await.unwrap().unwrap();
    cancel_meters.cancel();
    meters.wait().await;
    assert_eq!(report.devices.len(), 2, "{report:?}");
    for session in &report.devices {
        assert_eq!(session.rate, 4000);
        // About 3 s of samples, ended by our `stop` (its tail included).
        assert!(session.samples >= 4000, "{session:?}");
        assert!(session.windows >= 5, "{session:?}");
        assert_eq!(session.lost_samples, 0);
    }
}

#[test]
fn sigterm_mid_stream_finishes_every_file_and_the_checkpoint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let pipeline = dir.path().join("sink.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[source]
kind = "smartmeter_server"
listen = "127.0.0.1:{port}"
[aggregation]
packet_interval_s = 1.0
[sink.parquet]
out = "{out}/parquet"
[sink.packets.targets.ndjson]
dir = "{out}/packets"
[sink.packets.targets.spool]
dir = "{out}/spool"
[service]
state_dir = "{out}/state"
metrics = false
"#,
            out = out.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(["sink", "--pipeline"])
        .arg(&pipeline)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let cancel = CancellationToken::new();
    let fleet_task = {
        let mut meters = fleet(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            3,
            "term",
        );
        meters.template.pacing = Pacing::RealTime;
        let cancel = cancel.clone();
        runtime.spawn(async move { run_fleet(meters, cancel).await })
    };
    // Let the meters connect and stream a few seconds.
    std::thread::sleep(Duration::from_secs(4));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    cancel.cancel();
    let _ = runtime.block_on(fleet_task);
    assert!(exit.success(), "exit status {exit:?}");

    // Every file finished (no temporary part files) and readable.
    let mut temporaries = Vec::new();
    visit(&out, &mut |path| {
        if path.to_string_lossy().ends_with(".tmp") {
            temporaries.push(path.to_path_buf());
        }
    });
    assert!(temporaries.is_empty(), "{temporaries:?}");
    let windows = rows_by_device(&out.join("parquet/windows"));
    assert_eq!(windows.len(), 3, "{:?}", windows.keys());
    // The checkpoint holds each meter's registers as its last window left them.
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("state/checkpoint.json")).unwrap()).unwrap();
    for (device, rows) in &windows {
        assert!(rows.len() >= 5, "{device}: {} windows", rows.len());
        let last = f64_of(rows.last().unwrap(), "cum_import_total_wh");
        let saved = checkpoint["meters"][device]["energy"]["total"]["import_wh"]
            .as_f64()
            .unwrap();
        assert!(
            (saved - last).abs() <= 1e-9,
            "{device}: checkpoint {saved} vs {last}"
        );
        let covered = checkpoint["meters"][device]["covered_until_ns"]
            .as_i64()
            .unwrap();
        assert_eq!(
            Cell::Ts(covered),
            rows.last().unwrap()["window_end"],
            "{device}"
        );
    }
    let packets = std::fs::read_dir(out.join("packets")).unwrap().count();
    assert!(packets >= 1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, f);
        } else {
            f(&path);
        }
    }
}
