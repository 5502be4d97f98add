//! Cluster mode on a real NATS JetStream, as real processes on loopback:
//! ingest nodes (`meterflow sink` with `[cluster]`), writer nodes
//! (`meterflow writer`), virtual meters dialing the ingest nodes in turn.
//! Faults: kill -9 of an ingest node, kill -9 of a writer, NATS down, one
//! server of a three-server R3 cluster killed; foreign messages on the
//! record subjects. Every window must land in the dataset exactly once.
//! The writers share files among meters as the shipped cluster pipeline
//! does (`layout = "shared_files"`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::http::{http_get, wait_for};
use common::mosquitto::free_port;
use common::nats::{start_cluster, NatsServer};
use common::rows::{
    by_device, check_energy_continues, check_packets_cover_intervals, check_windows, temp_files,
    text, ts, Row,
};
use meterflow::meter::firmware::MeterSettings;
use meterflow::meter::fleet::{run_fleet, FleetConfig, FleetMode};
use meterflow::meter::pacing::Pacing;
use tokio_util::sync::CancellationToken;

/// These tests each run several processes: one at a time on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// A meterflow process (sink or writer); killed if the test fails first.
struct Node {
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
    stdout: PathBuf,
    metrics_port: u16,
    starts: u32,
}

impl Node {
    fn start(role: &str, pipeline: &Path, metrics_port: u16) -> Node {
        let dir = pipeline.parent().unwrap();
        let stem = pipeline.file_stem().unwrap().to_string_lossy().into_owned();
        let mut node = Node {
            child: None,
            args: vec![
                role.to_string(),
                "--pipeline".to_string(),
                pipeline.display().to_string(),
            ],
            log: dir.join(format!("{stem}.log")),
            stdout: dir.join(format!("{stem}.out")),
            metrics_port,
            starts: 0,
        };
        node.restart();
        node
    }

    fn restart(&mut self) {
        self.starts += 1;
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap()
        };
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_meterflow"))
                .args(&self.args)
                .env("RUST_LOG", "info,async_nats=warn")
                .stdout(open(&self.stdout))
                .stderr(open(&self.log))
                .spawn()
                .unwrap(),
        );
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn sigterm_and_wait(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
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
                    "{:?} exited with {exit:?} after SIGTERM:\n{}",
                    self.args,
                    self.logs()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} did not exit after SIGTERM",
                self.args
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let body = http_get(self.metrics_port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// What the node's live view says: its node name and how many meters it shows.
    fn live_meters(&self) -> (String, usize) {
        let (status, body) = http_get(self.metrics_port, "/api/meters").unwrap_or_default();
        assert_eq!(status, 200, "{body}");
        let fleet: serde_json::Value = serde_json::from_str(&body).unwrap();
        let node = fleet["node"].as_str().unwrap_or_default().to_string();
        (node, fleet["meters"].as_array().map_or(0, Vec::len))
    }

    fn healthz(&self) -> Option<(u16, String)> {
        http_get(self.metrics_port, "/healthz")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Where a test's nodes keep things.
struct Layout {
    dir: tempfile::TempDir,
    urls: Vec<String>,
    replicas: usize,
    lease_ttl_s: f64,
    /// Appended to every node's pipeline file (it ends inside `[cluster]`).
    extra: String,
}

impl Layout {
    fn new(urls: Vec<String>, replicas: usize, lease_ttl_s: f64) -> Self {
        Layout {
            dir: tempfile::tempdir().unwrap(),
            urls,
            replicas,
            lease_ttl_s,
            extra: String::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn dataset(&self) -> PathBuf {
        self.path().join("parquet")
    }

    fn packets(&self) -> PathBuf {
        self.path().join("packets")
    }

    /// One node's pipeline file: the same outputs and cluster for every
    /// node (as one file serves every role), its own ports and state.
    fn pipeline(&self, node: &str, port: u16, metrics_port: u16) -> PathBuf {
        let path = self.path().join(format!("{node}.toml"));
        let urls = self
            .urls
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &path,
            format!(
                r#"
name = "cluster-test"
[source]
kind = "smartmeter_server"
listen = "127.0.0.1:{port}"
rate = 4000
[aggregation]
packet_interval_s = 1.0
[sink.parquet]
out = "{parquet}"
layout = "shared_files"
row_group_rows = 64
max_file_span_s = 2
late_rows_grace_s = 0.5
fsync = false
[sink.packets.targets.ndjson]
dir = "{packets}"
[service]
state_dir = "{state}"
metrics_listen = "127.0.0.1:{metrics_port}"
packet_grace_s = 0.5
[record_log]
flush_interval_s = 0.2
[cluster]
urls = [{urls}]
node = "{node}"
replicas = {replicas}
partitions = 4
lease_ttl_s = {ttl}
publish_interval_s = 0.2
request_timeout_s = 2.0
{extra}
"#,
                extra = self.extra,
                parquet = self.dataset().display(),
                packets = self.packets().display(),
                state = self.path().join(node).join("state").display(),
                replicas = self.replicas,
                ttl = self.lease_ttl_s,
            ),
        )
        .unwrap();
        path
    }

    /// An ingest node; returns it and the port meters dial. A port found
    /// free may be taken by a parallel test before the node binds it, so a
    /// node that does not come up is started again on other ports.
    fn ingest(&self, node: &str) -> (Node, u16) {
        let mut logs = String::new();
        for _ in 0..3 {
            let (port, metrics_port) = (free_port(), free_port());
            let pipeline = self.pipeline(node, port, metrics_port);
            let ingest = Node::start("sink", &pipeline, metrics_port);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if ingest.healthz().is_some() {
                    return (ingest, port);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            logs = ingest.logs();
        }
        panic!("an ingest node's /healthz never answered; its last log:\n{logs}");
    }

    fn writer(&self, node: &str) -> Node {
        let metrics_port = free_port();
        let pipeline = self.pipeline(node, free_port(), metrics_port);
        let writer = Node::start("writer", &pipeline, metrics_port);
        wait_for(Duration::from_secs(30), "a writer's /healthz", || {
            writer.healthz().is_some()
        });
        writer
    }

    fn logs(&self, nodes: &[&Node]) -> String {
        nodes
            .iter()
            .map(|n| format!("== {:?}\n{}", n.args, n.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Real-time meters dialing `servers` in turn (reconnecting every 200 ms).
fn start_meters(
    runtime: &tokio::runtime::Runtime,
    servers: &[u16],
    meters: usize,
    prefix: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let server = servers
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server,
            reconnect: Duration::from_millis(200),
        },
        meters,
    );
    fleet.name_prefix = prefix.to_string();
    fleet.template = MeterSettings {
        pacing: Pacing::RealTime,
        ..MeterSettings::new(prefix)
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = runtime.spawn(async move {
        let _ = run_fleet(fleet, stop).await;
    });
    (cancel, task)
}

/// Stops the meters, then the ingest nodes (each publishes its last
/// records), waits for every writer to take all of its share, and stops
/// the writers (each finishes its files).
fn drain(
    runtime: &tokio::runtime::Runtime,
    meters: (CancellationToken, tokio::task::JoinHandle<()>),
    ingests: &mut [&mut Node],
    writers: &mut [&mut Node],
) {
    meters.0.cancel();
    let _ = runtime.block_on(meters.1);
    for ingest in ingests.iter_mut() {
        ingest.sigterm_and_wait();
    }
    for writer in writers.iter_mut() {
        let mut last = -1.0;
        let mut stable_since = Instant::now();
        wait_for(
            Duration::from_secs(60),
            "a writer to take every published message",
            || {
                let taken = writer.metric("meterflow_writer_messages_total");
                let pending = writer.metric("meterflow_writer_pending_messages");
                if taken != last {
                    last = taken;
                    stable_since = Instant::now();
                }
                // Healthy: its consumer is connected and fetching (right
                // after an outage it is still reconnecting, and its pending
                // count is from before).
                let healthy = writer.healthz().is_some_and(|(code, _)| code == 200);
                healthy && pending == 0.0 && stable_since.elapsed() > Duration::from_secs(2)
            },
        );
        writer.sigterm_and_wait();
    }
}

/// A device's windows and the gaps between them.
type DeviceWindows = (String, Vec<Row>, Vec<(i64, i64)>);

/// Windows per device, each window once; returns them with their gaps.
fn windows_once(layout: &Layout) -> Vec<DeviceWindows> {
    let out = layout.dataset();
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    by_device(&out.join("windows"), "window_start")
        .into_iter()
        .map(|(device, rows)| {
            let gaps = check_windows(&device, &rows);
            (device, rows, gaps)
        })
        .collect()
}

#[test]
fn an_ingest_node_killed_hands_its_meters_to_another_with_energy_continuing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(scratch.path());
    let layout = Layout::new(vec![nats.url()], 1, 2.0);
    let (mut a, port_a) = layout.ingest("ingest-a");
    let (mut b, port_b) = layout.ingest("ingest-b");
    let mut writer = layout.writer("writer");
    let meters = start_meters(&runtime, &[port_a, port_b], 3, "move");
    wait_for(
        Duration::from_secs(30),
        "node a to hold the 3 meters",
        || a.metric("meterflow_cluster_leases_held") == 3.0,
    );
    wait_for(Duration::from_secs(30), "windows in the writer", || {
        writer.metric("meterflow_writer_records_total") >= 60.0
    });
    // Node a's live view shows the meters it holds, and says it is node a;
    // the writer's shows the meters it writes, and says which writer it is.
    assert_eq!(a.live_meters(), ("ingest-a".to_string(), 3));
    assert_eq!(writer.live_meters(), ("writer0".to_string(), 3));

    // The same meter dialing node b while it streams to node a is refused.
    let twin = start_meters(&runtime, &[port_b], 1, "move");
    wait_for(Duration::from_secs(20), "node b to refuse the twin", || {
        b.metric("meterflow_cluster_leases_refused_total") >= 1.0
    });
    twin.0.cancel();
    let _ = runtime.block_on(twin.1);
    assert_eq!(b.metric("meterflow_cluster_leases_held"), 0.0);

    a.kill_9();
    let killed = Instant::now();
    wait_for(Duration::from_secs(30), "node b to take the meters", || {
        b.metric("meterflow_cluster_leases_held") == 3.0
    });
    let moved_after = killed.elapsed();
    std::thread::sleep(Duration::from_secs(4));
    drain(&runtime, meters, &mut [&mut b], &mut [&mut writer]);

    let logs = layout.logs(&[&a, &b, &writer]);
    let windows = windows_once(&layout);
    assert_eq!(windows.len(), 3, "{logs}");
    let events = by_device(&layout.dataset().join("events"), "time");
    for (device, rows, gaps) in &windows {
        // One hole: from the last window node a published to the first on
        // node b. It spans the move (lease expiry and reconnect) plus a's
        // unpublished tail (0.2 s publish interval); 3 s more is room for a
        // loaded machine.
        assert_eq!(gaps.len(), 1, "{device}: {gaps:?}\n{logs}");
        let (from, to) = gaps[0];
        let hole_s = (to - from) as f64 / 1e9;
        assert!(
            hole_s <= moved_after.as_secs_f64() + 3.0,
            "{device}: results missing for {hole_s:.3} s, the move took {moved_after:?}"
        );
        let lost: Vec<&Row> = events[device]
            .iter()
            .filter(|e| text(e, "kind") == "lost_results")
            .collect();
        assert_eq!(lost.len(), 1, "{device}: {lost:?}");
        assert_eq!(ts(lost[0], "time"), from, "{device}: the hole is reported");
        assert!(text(lost[0], "message").contains("ingest-a"), "{lost:?}");
        // Energy continues from the registers node a's records left in KV.
        check_energy_continues(device, rows, to);
    }
    assert!(check_packets_cover_intervals(&layout.packets(), &layout.dataset()) >= 15);
}

/// A window record of `meter` ending at `end_ns` whose registers hold
/// `measured_s` seconds.
fn window_record(meter: &str, end_ns: i64, measured_s: f64) -> meterflow::model::Record {
    use meterflow::model::{DeviceInfo, EnergyCounters, Record, WindowMetrics, WindowRow};
    let mut energy = EnergyCounters::new([true, true, true]);
    energy.measured_s = measured_s;
    Record::Window(WindowRow {
        device: DeviceInfo::new(meter, 7, meterflow::wire::Measures::ThreePhase),
        metrics: WindowMetrics {
            start_unix_ns: end_ns - 200_000_000,
            end_unix_ns: end_ns,
            ..Default::default()
        },
        energy: Some(energy),
    })
}

/// A node killed between JetStream's ack of its records and the state
/// bucket's write leaves the bucket one publish behind: the next node takes
/// the registers of the meter's last published window, and whose it was.
#[test]
fn a_meter_taken_over_carries_on_from_its_last_published_window_when_the_state_lags() {
    use meterflow::model::meter_registers::MeterRegisters;
    use meterflow::nats::batch::{RecordBatch, FORMAT, FORMAT_HEADER, NODE_HEADER};
    use meterflow::nats::config::ClusterConfig;
    use meterflow::nats::{connect, subjects};
    use meterflow::pipeline::cluster::lease::LeaseBook;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(scratch.path());
    let config = ClusterConfig {
        url: nats.url(),
        lease_ttl_s: 2.0,
        ..Default::default()
    };
    let t0 = 1_800_000_000_000_000_000_i64;
    runtime.block_on(async {
        let client = connect::connect(&config, "test", false).await.unwrap();
        let js = connect::context(&config, client);
        connect::records_stream(&config, &js).await.unwrap();
        let state = connect::state_bucket(&config, &js).await.unwrap();
        // "lagging": the bucket at t0, the stream's last window at t0 + 0.4 s.
        // "bucket_only": no message in the stream.
        for meter in ["lagging", "bucket_only"] {
            let stored = MeterRegisters::after(&window_record(meter, t0, 10.0), "node-a").unwrap();
            state
                .put(
                    subjects::meter_token(meter),
                    stored.encode().unwrap().into(),
                )
                .await
                .unwrap();
        }
        let records = vec![
            window_record("lagging", t0 + 200_000_000, 10.2),
            window_record("lagging", t0 + 400_000_000, 10.4),
        ];
        let body = RecordBatch {
            format: FORMAT,
            origin: "log-a".to_string(),
            seqs: vec![1, 2],
            records,
        }
        .encode()
        .unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(FORMAT_HEADER, FORMAT.to_string().as_str());
        headers.insert(NODE_HEADER, "node-a");
        let subject = subjects::record_subject(
            &config.subject_prefix,
            config.partitions,
            "lagging",
            "window",
        );
        js.publish_with_headers(subject, headers, body.into())
            .await
            .unwrap()
            .await
            .unwrap();

        let book = LeaseBook::start(&config, "node-b").await.unwrap();
        let lagging = book.acquire("lagging").await.unwrap().unwrap();
        assert_eq!(lagging.node, "node-a");
        assert_eq!(lagging.covered_until_ns, t0 + 400_000_000);
        assert_eq!(lagging.energy.measured_s, 10.4);
        let bucket_only = book.acquire("bucket_only").await.unwrap().unwrap();
        assert_eq!(bucket_only.covered_until_ns, t0);
        assert_eq!(bucket_only.energy.measured_s, 10.0);
        assert!(book.acquire("new_meter").await.unwrap().is_none());
    });
}

#[test]
fn a_writer_killed_and_restarted_writes_every_record_once_and_foreign_messages_are_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(scratch.path());
    let layout = Layout::new(vec![nats.url()], 1, 5.0);
    let (mut ingest, port) = layout.ingest("ingest");
    let mut writer = layout.writer("writer");
    let meters = start_meters(&runtime, &[port], 3, "steady");
    wait_for(Duration::from_secs(30), "windows in the writer", || {
        writer.metric("meterflow_writer_records_total") >= 60.0
    });

    // Garbage and a batch of another format on a record subject.
    let url = nats.url();
    runtime.block_on(async move {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let foreign = meterflow::nats::batch::RecordBatch {
            format: 99,
            origin: "elsewhere".to_string(),
            seqs: vec![1],
            records: vec![meterflow::model::Record::DeviceFinished("steady001".into())],
        };
        for (subject, body) in [
            ("meterflow.rec.0.window.intruder", b"garbage".to_vec()),
            (
                "meterflow.rec.0.finished.steady001",
                foreign.encode().unwrap(),
            ),
        ] {
            js.publish(subject, body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });

    std::thread::sleep(Duration::from_secs(1));
    writer.kill_9();
    std::thread::sleep(Duration::from_secs(2));
    writer.restart();
    wait_for(
        Duration::from_secs(30),
        "the restarted writer to take records",
        || writer.metric("meterflow_writer_records_total") >= 30.0,
    );
    let health = writer.healthz();
    assert_eq!(health.as_ref().map(|h| h.0), Some(200), "{health:?}");
    drain(&runtime, meters, &mut [&mut ingest], &mut [&mut writer]);

    let logs = layout.logs(&[&ingest, &writer]);
    assert!(logs.contains("did not stop cleanly"), "{logs}");
    assert!(logs.contains("body is not a record batch"), "{logs}");
    assert!(logs.contains("batch format 99"), "{logs}");
    let windows = windows_once(&layout);
    assert_eq!(windows.len(), 3, "{logs}");
    for (device, rows, gaps) in &windows {
        // The meters never stopped: no hole at all, every window once.
        assert!(gaps.is_empty(), "{device}: {gaps:?}\n{logs}");
        assert!(rows.len() >= 20, "{device}: {} windows", rows.len());
    }
    let events = by_device(&layout.dataset().join("events"), "time");
    for (device, rows) in &events {
        assert!(
            rows.iter().all(|e| text(e, "kind") != "lost_results"),
            "{device}: a writer's crash loses nothing: {rows:?}"
        );
    }
    assert!(check_packets_cover_intervals(&layout.packets(), &layout.dataset()) >= 15);
}

#[test]
fn the_raw_archive_travels_through_jetstream_sample_for_sample() {
    use common::parquet_read::{read_rows, Cell};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(scratch.path());
    let mut layout = Layout::new(vec![nats.url()], 1, 5.0);
    layout.extra = "raw_archive = true\n[sink.parquet.tables]\nraw = true\n".to_string();
    let (mut ingest, port) = layout.ingest("ingest");
    let mut writer = layout.writer("writer");
    let meters = start_meters(&runtime, &[port], 2, "archived");
    wait_for(Duration::from_secs(30), "windows in the writer", || {
        writer.metric("meterflow_writer_records_total") >= 40.0
    });
    drain(&runtime, meters, &mut [&mut ingest], &mut [&mut writer]);
    let logs = layout.logs(&[&ingest, &writer]);

    let windows = windows_once(&layout);
    assert_eq!(windows.len(), 2, "{logs}");
    let raw = by_device(&layout.dataset().join("raw"), "time");
    assert_eq!(raw.len(), 2, "{logs}");
    for (device, rows, gaps) in &windows {
        assert!(gaps.is_empty(), "{device}: {gaps:?}");
        let samples = &raw[device];
        // Every sample the meter sent, once, in order: indices 0, 1, 2, …
        for (k, row) in samples.iter().enumerate() {
            assert_eq!(row["sample_index"], Cell::U64(k as u64), "{device}");
        }
        // As many as the windows span (4 kHz), give or take the ends.
        let first = ts(&rows[0], "window_start");
        let last = ts(&rows[rows.len() - 1], "window_end");
        let spanned = (last - first) as f64 * 4000.0 / 1e9;
        assert!(
            samples.len() as f64 >= spanned && samples.len() as f64 <= spanned + 4000.0,
            "{device}: {} samples, windows span {spanned}",
            samples.len()
        );
        // The virtual meter's 230 V: the archive's RMS of L1.
        let squares: f64 = samples
            .iter()
            .map(|r| match r["v_l1"] {
                Cell::F32(v) => f64::from(v) * f64::from(v),
                ref other => panic!("v_l1 is {other:?}"),
            })
            .sum();
        let rms = (squares / samples.len() as f64).sqrt();
        assert!((rms - 230.0).abs() < 0.5, "{device}: RMS {rms} V");
    }
    assert!(
        read_rows(&layout.dataset().join("events"))
            .iter()
            .all(|e| text(e, "kind") != "lost_results"),
        "{logs}"
    );
}

#[test]
fn with_nats_down_the_ingest_node_keeps_computing_and_publishes_the_backlog_in_order() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(scratch.path());
    let layout = Layout::new(vec![nats.url()], 1, 30.0);
    let (mut ingest, port) = layout.ingest("ingest");
    let mut writer = layout.writer("writer");
    let meters = start_meters(&runtime, &[port], 2, "outage");
    wait_for(Duration::from_secs(30), "windows in the writer", || {
        writer.metric("meterflow_writer_records_total") >= 40.0
    });

    nats.kill();
    let mut reason = String::new();
    wait_for(
        Duration::from_secs(30),
        "the ingest node's 503",
        || match ingest.healthz() {
            Some((503, body)) => {
                reason = body;
                true
            }
            _ => false,
        },
    );
    assert!(reason.contains("output jetstream"), "{reason}");
    std::thread::sleep(Duration::from_secs(3));
    let waiting = ingest.metric("meterflow_record_log_lag");
    nats.restart();
    wait_for(
        Duration::from_secs(60),
        "the ingest node to recover",
        || ingest.healthz().is_some_and(|(code, _)| code == 200),
    );
    std::thread::sleep(Duration::from_secs(2));
    let failed = ingest.metric("meterflow_cluster_failed_publishes_total")
        + ingest.metric("meterflow_output_errors_total");
    drain(&runtime, meters, &mut [&mut ingest], &mut [&mut writer]);

    let logs = layout.logs(&[&ingest, &writer]);
    assert!(failed >= 1.0, "the outage was counted\n{logs}");
    assert_eq!(
        ingest.logs().matches("output failing").count(),
        1,
        "one line when publishing starts failing\n{logs}"
    );
    assert_eq!(
        ingest.logs().matches("output recovered").count(),
        1,
        "{logs}"
    );
    let windows = windows_once(&layout);
    assert_eq!(windows.len(), 2, "{logs}");
    for (device, rows, gaps) in &windows {
        assert!(
            gaps.is_empty(),
            "{device}: {gaps:?} (backlog {waiting})\n{logs}"
        );
        assert!(rows.len() >= 20, "{device}: {} windows", rows.len());
    }
}

#[test]
fn one_server_of_an_r3_cluster_killed_loses_and_doubles_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut servers = start_cluster(scratch.path());
    let urls = servers.iter().map(NatsServer::url).collect();
    let layout = Layout::new(urls, 3, 10.0);
    let (mut ingest, port) = layout.ingest("ingest");
    let mut writer = layout.writer("writer");
    let meters = start_meters(&runtime, &[port], 2, "quorum");
    wait_for(Duration::from_secs(60), "windows in the writer", || {
        writer.metric("meterflow_writer_records_total") >= 40.0
    });
    servers[0].kill();
    std::thread::sleep(Duration::from_secs(6));
    wait_for(
        Duration::from_secs(60),
        "the cluster to serve again",
        || ingest.healthz().is_some_and(|(code, _)| code == 200),
    );
    drain(&runtime, meters, &mut [&mut ingest], &mut [&mut writer]);

    let logs = layout.logs(&[&ingest, &writer]);
    let windows = windows_once(&layout);
    assert_eq!(windows.len(), 2, "{logs}");
    for (device, rows, gaps) in &windows {
        assert!(gaps.is_empty(), "{device}: {gaps:?}\n{logs}");
        assert!(rows.len() >= 20, "{device}: {} windows", rows.len());
    }
}

/// The first of `count` consecutive loopback ports that are free now.
fn free_port_run(count: u16) -> u16 {
    loop {
        let first = free_port();
        if first < u16::MAX - count
            && (0..count).all(|k| std::net::TcpListener::bind(("127.0.0.1", first + k)).is_ok())
        {
            return first;
        }
    }
}

#[test]
fn meterflow_cluster_runs_every_node_restarts_a_killed_one_and_drains_on_sigterm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(scratch.path());
    let layout = Layout::new(vec![nats.url()], 1, 2.0);
    let (port, metrics_port) = (free_port_run(2), free_port_run(3));
    // One file for every node: the node names come from each listen port.
    let pipeline = layout.pipeline("cluster", port, metrics_port);
    let file = std::fs::read_to_string(&pipeline).unwrap();
    let file: String = file
        .lines()
        .filter(|l| !l.starts_with("node = "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&pipeline, file).unwrap();
    let stdout = layout.path().join("cluster.out");
    let mut cluster = Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(["cluster", "--pipeline"])
        .arg(&pipeline)
        .args(["--ingest", "2", "--writers", "1"])
        .env("RUST_LOG", "info,async_nats=warn")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(layout.path().join("cluster.err")).unwrap())
        .spawn()
        .unwrap();
    let node_metric = |k: u16, name: &str| -> f64 {
        http_get(metrics_port + k, "/metrics")
            .map(|(_, body)| {
                body.lines()
                    .filter(|l| l.starts_with(name) && !l.starts_with('#'))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(0.0)
    };
    wait_for(Duration::from_secs(60), "the writer of the cluster", || {
        http_get(metrics_port + 2, "/healthz").is_some()
    });
    let server = format!("127.0.0.1:{port},127.0.0.1:{}", port + 1);
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server,
            reconnect: Duration::from_millis(200),
        },
        4,
    );
    fleet.name_prefix = "local".to_string();
    fleet.spread_servers = true;
    fleet.template = MeterSettings {
        pacing: Pacing::RealTime,
        ..MeterSettings::new("local")
    };
    let stop_meters = CancellationToken::new();
    let meters = runtime.spawn({
        let stop = stop_meters.clone();
        async move {
            let _ = run_fleet(fleet, stop).await;
        }
    });
    wait_for(
        Duration::from_secs(30),
        "two meters on each ingest node",
        || {
            node_metric(0, "meterflow_cluster_leases_held") == 2.0
                && node_metric(1, "meterflow_cluster_leases_held") == 2.0
        },
    );
    wait_for(Duration::from_secs(30), "windows in the writer", || {
        node_metric(2, "meterflow_writer_records_total") >= 80.0
    });

    // The table names each node's pid: kill -9 ingest1; the cluster starts
    // it again and its meters move on (to ingest0, or back to it).
    let table = std::fs::read_to_string(&stdout).unwrap();
    let pid = table
        .lines()
        .find(|l| l.trim_start().starts_with("ingest1 "))
        .and_then(|l| {
            l.split("pid ")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no pid of ingest1 in:\n{table}"));
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    wait_for(Duration::from_secs(30), "ingest1 started again", || {
        std::fs::read_to_string(&stdout).is_ok_and(|t| t.contains("node ingest1 exited"))
    });
    wait_for(Duration::from_secs(30), "all 4 meters held again", || {
        node_metric(0, "meterflow_cluster_leases_held")
            + node_metric(1, "meterflow_cluster_leases_held")
            == 4.0
    });
    std::thread::sleep(Duration::from_secs(3));

    stop_meters.cancel();
    let _ = runtime.block_on(meters);
    let status = Command::new("kill")
        .args(["-TERM", &cluster.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let exit = loop {
        if let Some(exit) = cluster.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "meterflow cluster did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    let logs: String = ["cluster.out", "cluster.err"]
        .iter()
        .map(|f| std::fs::read_to_string(layout.path().join(f)).unwrap_or_default())
        .collect();
    assert!(exit.success(), "{exit:?}\n{logs}");

    let windows = windows_once(&layout);
    assert_eq!(windows.len(), 4, "{logs}");
    let events = by_device(&layout.dataset().join("events"), "time");
    for (device, rows, gaps) in &windows {
        // The two meters of the killed node have one hole each, reported.
        let lost = events[device]
            .iter()
            .filter(|e| text(e, "kind") == "lost_results")
            .count();
        assert_eq!(gaps.len(), lost, "{device}: {gaps:?}\n{logs}");
        assert!(gaps.len() <= 1, "{device}: {gaps:?}");
        assert!(rows.len() >= 20, "{device}: {} windows", rows.len());
    }
    let moved = windows
        .iter()
        .filter(|(_, _, gaps)| gaps.len() == 1)
        .count();
    assert_eq!(moved, 2, "the killed node's two meters moved\n{logs}");
}
