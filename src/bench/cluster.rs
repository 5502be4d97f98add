//! `meterflow bench cluster`: N ingest nodes and M writers (child
//! processes, as `meterflow cluster` runs them) on loopback, against a
//! nats-server this command starts (or `--nats URL`), under K real-time
//! virtual meters in a further child. Measured once every meter streams:
//! meters held, records/s through JetStream, window end → taken by a writer
//! and window end → in a finished Parquet file (p50/p99), bytes per meter
//! on each hop, CPU per meter per role.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use arrow::array::{Array, TimestampNanosecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::nats::NatsServer;
use super::proc_stats::{cpu_seconds, peak_rss_kib};
use super::sink::{stop_child, SinkBench};
use crate::model::bounds::{Span, DAY};
use crate::model::clock::unix_now_ns;
use crate::pipeline::cluster::local::{plan_nodes, write_pipeline, LocalCluster, Restart, Role};
use crate::pipeline::config::FileLayout;
use crate::pipeline::PipelineConfig;
use crate::wire::Measures;

/// The cluster, the load and where everything goes.
#[derive(Debug, Clone)]
pub struct ClusterBench {
    /// The `meterflow` executable the nodes and the meters run.
    pub program: PathBuf,
    /// Ingest nodes (meters are spread over them).
    pub ingest: usize,
    /// Writer nodes sharing the partitions.
    pub writers: usize,
    /// Virtual meters dialing in.
    pub meters: usize,
    /// Sampling rate asked of every meter, Hz.
    pub rate: u32,
    /// Channels asked of every meter.
    pub measures: Measures,
    /// Seconds measured once every meter streams.
    pub seconds: f64,
    /// Longest wait for every meter to dial in, s.
    pub connect_timeout: f64,
    /// Data time a Parquet file covers (`sink.parquet.max_file_span_s`).
    pub file_span_s: u32,
    /// Partitions of the meters over the writers.
    pub partitions: u32,
    /// A running NATS server with JetStream; `None` starts one on a free port.
    pub nats: Option<String>,
    /// Work folder (default: a temporary one, removed afterwards).
    pub dir: Option<PathBuf>,
    /// Runs `bench sink` on the same meters and outputs first, and prints
    /// the cluster's CPU per meter against the single node's.
    pub compare: bool,
    /// The virtual meters' write period, ms (`simulate --send-interval-ms`).
    pub meter_send_interval_ms: u64,
}

/// What the cluster cost while measured, cores (CPU seconds per second).
#[derive(Debug, Clone, Copy)]
pub struct ClusterFigures {
    pub meters: f64,
    pub ingest_cores: f64,
    pub writer_cores: f64,
    /// The NATS server's, when the bench started it.
    pub nats_cores: Option<f64>,
}

impl ClusterFigures {
    pub fn total_cores(&self) -> f64 {
        self.ingest_cores + self.writer_cores + self.nats_cores.unwrap_or(0.0)
    }
}

/// What `--seconds` and `--connect-timeout` may be.
const BENCH_SPAN: Span = Span::new(0.1, DAY);
/// What the writers' files may wait for late rows (`late_rows_grace_s`).
const LATE_ROWS_GRACE_S: f64 = 1.0;
/// Longest wait for the Parquet files of the measured span, s: at a longer
/// file span the bench reports the files that finished.
const MAX_PARQUET_WAIT_S: f64 = 120.0;

pub async fn run(args: ClusterBench) -> anyhow::Result<ClusterFigures> {
    let single = if args.compare {
        println!("single node first: `bench sink` on the same meters and outputs");
        Some(
            super::sink::run(SinkBench {
                program: args.program.clone(),
                meters: args.meters,
                rate: args.rate,
                measures: args.measures,
                seconds: args.seconds,
                connect_timeout: args.connect_timeout,
                workers: 0,
                parquet: true,
                // As the cluster's writer: no fsync.
                fsync: false,
                file_span_s: Some(args.file_span_s),
                // As the cluster's writer.
                layout: FileLayout::SharedFiles,
                rss_every_s: None,
                live: false,
                dir: args.dir.as_ref().map(|d| d.join("single")),
                meter_send_interval_ms: args.meter_send_interval_ms,
            })
            .await
            .context("the single-node run of --compare")?,
        )
    } else {
        None
    };
    if single.is_some() {
        println!();
        println!("cluster next");
    }
    let cluster = run_cluster(&args).await?;
    if let Some(single) = single {
        let per_1000 = |cores: f64, meters: f64| 1000.0 * cores / meters.max(1.0);
        let single_cores = per_1000(single.cores, single.meters);
        let cluster_cores = per_1000(cluster.total_cores(), cluster.meters);
        println!();
        println!(
            "compare              single node {single_cores:.2}, cluster {cluster_cores:.2} cores per 1000 meters: the cluster costs {:.2}x",
            cluster_cores / single_cores
        );
    }
    Ok(cluster)
}

async fn run_cluster(args: &ClusterBench) -> anyhow::Result<ClusterFigures> {
    anyhow::ensure!(args.meters > 0, "--meters must be at least 1");
    anyhow::ensure!(args.ingest > 0, "--ingest must be at least 1");
    anyhow::ensure!(args.writers > 0, "--writers must be at least 1");
    args.measures.validate_rate(args.rate)?;
    BENCH_SPAN.check_s("--connect-timeout", args.connect_timeout)?;
    BENCH_SPAN.check_s("--seconds", args.seconds)?;
    let temp = args.dir.is_none();
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            std::env::temp_dir().join(format!("meterflow-bench-cluster-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = measure(args, &dir).await;
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// Counters of the whole cluster at one moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    meter_bytes: f64,
    published_records: f64,
    published_bytes: f64,
    published_messages: f64,
    taken_records: f64,
    ingest_cpu_s: f64,
    writer_cpu_s: f64,
    nats_cpu_s: f64,
}

/// The NATS server the bench runs against: its URL, and the server when
/// the bench started it (stopped at the end, its CPU counted).
struct Nats {
    url: String,
    own: Option<NatsServer>,
}

impl Nats {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn pid(&self) -> Option<u32> {
        self.own.as_ref().and_then(NatsServer::pid)
    }
}

async fn measure(args: &ClusterBench, dir: &Path) -> anyhow::Result<ClusterFigures> {
    let mut nats = match &args.nats {
        Some(url) => Nats {
            url: url.clone(),
            own: None,
        },
        None => {
            let server = NatsServer::start(&dir.join("nats"), free_port_run(1)?, Vec::new())
                .context("starting nats-server (or give --nats URL)")?;
            Nats {
                url: server.url(),
                own: Some(server),
            }
        }
    };
    let outcome = measure_with(args, dir, &nats).await;
    if let Some(server) = &mut nats.own {
        server.stop();
    }
    outcome
}

async fn measure_with(
    args: &ClusterBench,
    dir: &Path,
    nats: &Nats,
) -> anyhow::Result<ClusterFigures> {
    let ports = free_port_run(2 * args.ingest + args.writers)?;
    let text = bench_pipeline(args, dir, &nats.url(), ports);
    let pipeline = dir.join("bench-cluster.toml");
    write_pipeline(&pipeline, &text)?;
    let config = PipelineConfig::parse(&text).context("the bench cluster pipeline")?;
    config.validate()?;
    let plans = plan_nodes(&pipeline, &config, args.ingest, args.writers)?;
    let servers: Vec<String> = plans
        .iter()
        .filter_map(|p| p.listen.map(|l| l.to_string()))
        .collect();
    let mut cluster = LocalCluster::start(&args.program, plans, &dir.join("logs"))?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    println!(
        "{} ingest + {} writer nodes on {}; starting {} virtual meters ({} at {} Hz, real-time) over {}",
        args.ingest,
        args.writers,
        nats.url(),
        args.meters,
        args.measures,
        args.rate,
        servers.join(", ")
    );
    let mut meters = spawn_meters(args, &servers)?;
    let outcome = measure_running(args, dir, &mut cluster, &mut meters, nats).await;
    stop_child(&mut meters);
    let stopped = cluster.stop(Duration::from_secs(60)).await;
    let figures = outcome?;
    stopped?;
    Ok(figures)
}

async fn measure_running(
    args: &ClusterBench,
    dir: &Path,
    cluster: &mut LocalCluster,
    meters: &mut Child,
    nats: &Nats,
) -> anyhow::Result<ClusterFigures> {
    let started = Instant::now();
    let connect_deadline = started + BENCH_SPAN.duration_s(args.connect_timeout);
    loop {
        let streaming = cluster
            .metric_of(Role::Ingest, "meterflow_connections_streaming")
            .await as usize;
        if streaming >= args.meters {
            break;
        }
        if Instant::now() > connect_deadline {
            println!(
                "only {streaming} of {} meters streaming after {:.0} s; measuring those",
                args.meters, args.connect_timeout
            );
            break;
        }
        if let Some(status) = meters.try_wait().context("watching the meter process")? {
            anyhow::bail!("the meter process exited early: {status}");
        }
        print_restarts(cluster.supervise()?);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let connected_after = started.elapsed().as_secs_f64();
    // Let the ramp-up (first leases, first publishes) settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = reading(cluster, nats).await;
    let start_unix_ns = unix_now_ns();
    let mut held_min = f64::INFINITY;
    let end_at = start.at + BENCH_SPAN.duration_s(args.seconds);
    while Instant::now() < end_at {
        tokio::time::sleep(Duration::from_millis(500)).await;
        held_min = held_min.min(
            cluster
                .metric_of(Role::Ingest, "meterflow_cluster_leases_held")
                .await,
        );
        print_restarts(cluster.supervise()?);
    }
    let end = reading(cluster, nats).await;
    let end_unix_ns = unix_now_ns();
    let writer_age = writer_window_age(cluster).await;
    let rss = |role| -> f64 {
        cluster
            .pids(role)
            .into_iter()
            .filter_map(|pid| peak_rss_kib(Some(pid)))
            .sum::<u64>() as f64
            / 1024.0
    };
    let (ingest_rss, writer_rss) = (rss(Role::Ingest), rss(Role::Writer));

    let elapsed = end.at.duration_since(start.at).as_secs_f64();
    let n = args.meters as f64;
    let per_s = |a: f64, b: f64| (b - a) / elapsed;
    let records_s = per_s(start.published_records, end.published_records);
    let taken_s = per_s(start.taken_records, end.taken_records);
    let wire_b_s = per_s(start.published_bytes, end.published_bytes);
    let meter_b_s = per_s(start.meter_bytes, end.meter_bytes);
    println!();
    println!(
        "meters held          {} of {} (fewest leases held while measured; all streaming after {connected_after:.1} s)",
        if held_min.is_finite() { held_min } else { 0.0 },
        args.meters
    );
    println!(
        "records/s            {records_s:.0} published to JetStream in {:.0} messages/s, {taken_s:.0} taken by the writers ({:.1} per meter)",
        per_s(start.published_messages, end.published_messages),
        records_s / n
    );
    print_quantiles("window → writer", &writer_age);
    println!(
        "bytes per meter      {:.0} B/s meter → ingest (samples), {:.0} B/s ingest → JetStream (records, zstd): {:.1} MB per meter per day",
        meter_b_s / n,
        wire_b_s / n,
        wire_b_s / n * 86_400.0 / 1e6
    );
    let figures = ClusterFigures {
        meters: n,
        ingest_cores: per_s(start.ingest_cpu_s, end.ingest_cpu_s),
        writer_cores: per_s(start.writer_cpu_s, end.writer_cpu_s),
        nats_cores: nats.pid().map(|_| per_s(start.nats_cpu_s, end.nats_cpu_s)),
    };
    print_role_cpu("ingest CPU", figures.ingest_cores, n, Some(ingest_rss));
    print_role_cpu("writer CPU", figures.writer_cores, n, Some(writer_rss));
    if let Some(cores) = figures.nats_cores {
        print_role_cpu("nats-server CPU", cores, n, None);
    }
    println!(
        "cluster CPU          {:.2} cores per 1000 meters in all",
        1000.0 * figures.total_cores() / n
    );

    // The files holding the measured windows finish one span (plus the
    // grace) of data time later; at a long span the bench does not wait
    // for them and reports the files that did finish.
    let finish = f64::from(args.file_span_s) + LATE_ROWS_GRACE_S + 3.0;
    if finish <= MAX_PARQUET_WAIT_S {
        println!("waiting {finish:.0} s for the Parquet files of the measured span");
        tokio::time::sleep(Duration::from_secs_f64(finish)).await;
    }
    let parquet = parquet_latency(
        &dir.join("parquet").join("windows"),
        start_unix_ns,
        end_unix_ns,
    )?;
    if parquet.count > 0 {
        print_quantiles("window → Parquet", &parquet);
    } else {
        println!(
            "window → Parquet     no file of the measured span finished yet (file span {} s)",
            args.file_span_s
        );
    }
    let meters_cpu = cpu_seconds(Some(meters.id()));
    let dataset_bytes: u64 = parquet_files(&dir.join("parquet"))?
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let streamed_s = started.elapsed().as_secs_f64() - connected_after;
    println!(
        "Parquet dataset      {:.1} MB finished after {streamed_s:.0} s of {} meters: about {:.1} MB per meter per day",
        dataset_bytes as f64 / 1e6,
        args.meters,
        dataset_bytes as f64 / n / streamed_s * 86_400.0 / 1e6
    );
    if let Some(cpu) = meters_cpu {
        println!(
            "load generator       CPU {cpu:.1} s in all (the virtual meters, not counted above)"
        );
    }
    Ok(figures)
}

/// One role's CPU: in all, per meter, per 1000 meters.
fn print_role_cpu(what: &str, cores: f64, meters: f64, rss_mb: Option<f64>) {
    let rss = rss_mb.map_or(String::new(), |mb| format!(", peak RSS {mb:.0} MB in all"));
    println!(
        "{what:<20} {:.1} % of one core in all, {:.3} % per meter ({:.2} cores per 1000 meters){rss}",
        100.0 * cores,
        100.0 * cores / meters,
        1000.0 * cores / meters
    );
}

async fn reading(cluster: &LocalCluster, nats: &Nats) -> Reading {
    let cpu = |role| -> f64 {
        cluster
            .pids(role)
            .into_iter()
            .filter_map(|pid| cpu_seconds(Some(pid)))
            .sum()
    };
    Reading {
        at: Instant::now(),
        meter_bytes: cluster
            .metric_of(Role::Ingest, "meterflow_meter_bytes_total")
            .await,
        published_records: cluster
            .metric_of(Role::Ingest, "meterflow_cluster_published_records_total")
            .await,
        published_bytes: cluster
            .metric_of(Role::Ingest, "meterflow_cluster_published_bytes_total")
            .await,
        published_messages: cluster
            .metric_of(Role::Ingest, "meterflow_cluster_published_messages_total")
            .await,
        taken_records: cluster
            .metric_of(Role::Writer, "meterflow_writer_records_total")
            .await,
        ingest_cpu_s: cpu(Role::Ingest),
        writer_cpu_s: cpu(Role::Writer),
        nats_cpu_s: nats
            .pid()
            .and_then(|pid| cpu_seconds(Some(pid)))
            .unwrap_or(0.0),
    }
}

fn print_restarts(restarts: Vec<Restart>) {
    for restart in restarts {
        println!(
            "node {} exited ({}); started again, pid {} (log {})",
            restart.node,
            restart.status,
            restart.pid,
            restart.log.display()
        );
    }
}

/// p50 / p99 / max, seconds, and how many values.
#[derive(Debug, Clone, Copy, Default)]
struct Quantiles {
    p50: f64,
    p99: f64,
    max: f64,
    count: u64,
}

fn print_quantiles(what: &str, q: &Quantiles) {
    println!(
        "{what:<20} p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} windows)",
        q.p50, q.p99, q.max, q.count
    );
}

/// The writers' `meterflow_writer_window_age_seconds` (since their start; the
/// largest of the writers' quantiles, which bounds the merged one).
async fn writer_window_age(cluster: &LocalCluster) -> Quantiles {
    let mut q = Quantiles::default();
    let names: Vec<String> = cluster
        .plans()
        .filter(|p| p.role == Role::Writer)
        .map(|p| p.name.clone())
        .collect();
    for name in names {
        let quantile = |x: &str| window_age_quantile(&name, x);
        let p50 = cluster.metric(&name, &quantile("0.5")).await.unwrap_or(0.0);
        let p99 = cluster
            .metric(&name, &quantile("0.99"))
            .await
            .unwrap_or(0.0);
        let p999 = cluster
            .metric(&name, &quantile("0.999"))
            .await
            .unwrap_or(0.0);
        let count = cluster
            .metric(&name, "meterflow_writer_window_age_seconds_count")
            .await
            .unwrap_or(0.0);
        q.p50 = q.p50.max(p50);
        q.p99 = q.p99.max(p99);
        q.max = q.max.max(p999);
        q.count += count as u64;
    }
    q
}

/// The sample of quantile `q` of writer `name`'s window age: the writer
/// labels its samples with its name, which is the node's.
fn window_age_quantile(name: &str, q: &str) -> String {
    format!("meterflow_writer_window_age_seconds{{writer=\"{name}\",quantile=\"{q}\"}}")
}

/// Window end → the finished file holding it (its modification time, set
/// by the last write before the rename), for windows ending in `[from, to)`.
fn parquet_latency(windows: &Path, from_ns: i64, to_ns: i64) -> anyhow::Result<Quantiles> {
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 86_400_000, 3)
        .context("a latency histogram")?;
    let mut max_ms = 0u64;
    for file in parquet_files(windows)? {
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading the time of {}", file.display()))?;
        let finished_ns = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let reader =
            std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(reader)
            .with_context(|| format!("reading {}", file.display()))?;
        let Some(column) = builder
            .schema()
            .fields()
            .iter()
            .position(|f| f.name() == "window_end")
        else {
            continue;
        };
        let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
        for batch in builder
            .with_projection(mask)
            .build()
            .with_context(|| format!("reading {}", file.display()))?
        {
            let batch = batch.with_context(|| format!("reading {}", file.display()))?;
            let Some(ends) = batch
                .column(0)
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
            else {
                anyhow::bail!("{}: window_end is not a timestamp", file.display());
            };
            for end in ends.iter().flatten() {
                if end < from_ns || end >= to_ns {
                    continue;
                }
                let ms = (finished_ns.saturating_sub(end) / 1_000_000).max(1) as u64;
                max_ms = max_ms.max(ms);
                histogram.saturating_record(ms);
            }
        }
    }
    Ok(Quantiles {
        p50: histogram.value_at_quantile(0.5) as f64 / 1e3,
        p99: histogram.value_at_quantile(0.99) as f64 / 1e3,
        max: max_ms as f64 / 1e3,
        count: histogram.len(),
    })
}

fn parquet_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .with_context(|| format!("listing {}", folder.display()))?
                .path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// The bench's pipeline: loopback ports from `ports` (ingest listen ports,
/// then metrics ports of every node), small files so windows reach Parquet
/// soon, no fsync (the bench measures the cluster, not the disk).
fn bench_pipeline(args: &ClusterBench, dir: &Path, nats_url: &str, ports: u16) -> String {
    let metrics = ports + args.ingest as u16;
    let out = dir.display();
    let mut text = format!(
        r#"name = "bench-cluster"

[source]
kind = "smartmeter_server"
listen = "127.0.0.1:{ports}"
rate = {rate}
measures = "{measures}"
max_connections = {connections}
max_pending = {connections}

[sink.parquet]
out = "{out}/parquet"
layout = "shared_files"
row_group_rows = 16384
fsync = false
max_file_span_s = {span}
late_rows_grace_s = {LATE_ROWS_GRACE_S}

[sink.packets.targets.ndjson]
dir = "{out}/packets"

[sink.packets.targets.spool]
dir = "{out}/spool"

[service]
state_dir = "{out}/state"
metrics = true
metrics_listen = "127.0.0.1:{metrics}"

[cluster]
url = "{nats_url}"
replicas = 1
partitions = {partitions}
"#,
        rate = args.rate,
        measures = args.measures,
        connections = args.meters + 64,
        span = args.file_span_s,
        partitions = args.partitions,
    );
    text.push_str(&format!("stream = \"BENCH_{}\"\n", std::process::id()));
    text
}

/// The first of `count` consecutive loopback ports that are free now.
fn free_port_run(count: usize) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let probe = TcpListener::bind(("127.0.0.1", 0)).context("binding a loopback port")?;
        let first = probe.local_addr().context("a bound port")?.port();
        drop(probe);
        if usize::from(first) + count >= usize::from(u16::MAX) {
            continue;
        }
        let all_free =
            (0..count as u16).all(|k| TcpListener::bind(("127.0.0.1", first + k)).is_ok());
        if all_free {
            return Ok(first);
        }
    }
    anyhow::bail!("no run of {count} free loopback ports found")
}

fn spawn_meters(args: &ClusterBench, servers: &[String]) -> anyhow::Result<Child> {
    Command::new(&args.program)
        .args(["simulate", "--server", &servers.join(","), "--spread"])
        .args([
            "--reconnect-secs",
            "1",
            "--meters",
            &args.meters.to_string(),
        ])
        .args(["--name-prefix", "bench"])
        .args([
            "--send-interval-ms",
            &args.meter_send_interval_ms.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the virtual meters (meterflow simulate)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_age_is_read_as_a_writer_renders_it() {
        use crate::model::latency::LatencyRecorder;
        use crate::model::metric::Metric;
        let age = LatencyRecorder::default();
        age.record_many(Duration::from_millis(300), 99);
        age.record_many(Duration::from_millis(900), 1);
        let snapshot = age.snapshot();
        let metric = Metric::summary("meterflow_writer_window_age_seconds", "age", snapshot)
            .with("writer", "writer0");
        let mut body = String::new();
        crate::pipeline::prometheus::write_metrics(&mut body, &[metric]);
        let p50 =
            crate::pipeline::prometheus::metric_sum(&body, &window_age_quantile("writer0", "0.5"));
        assert!((p50 - 0.3).abs() < 0.01, "{body}");
        assert_eq!(p50, snapshot.quantiles_s[0]);
    }

    #[test]
    fn the_bench_pipeline_is_valid_and_plans_every_node() {
        let args = ClusterBench {
            program: PathBuf::from("meterflow"),
            ingest: 3,
            writers: 2,
            meters: 10,
            rate: 8000,
            measures: "v,i,v,i,v,i".parse().unwrap(),
            seconds: 1.0,
            connect_timeout: 1.0,
            file_span_s: 5,
            partitions: 8,
            nats: None,
            dir: None,
            compare: false,
            meter_send_interval_ms: 10,
        };
        let text = bench_pipeline(&args, Path::new("/tmp/b"), "nats://127.0.0.1:4999", 40000);
        let config = PipelineConfig::parse(&text).unwrap();
        config.validate().unwrap();
        let plans = plan_nodes(Path::new("/tmp/b/p.toml"), &config, 3, 2).unwrap();
        let listens: Vec<u16> = plans
            .iter()
            .filter_map(|p| p.listen.map(|l| l.port()))
            .collect();
        assert_eq!(listens, [40000, 40001, 40002]);
        let metrics: Vec<u16> = plans.iter().map(|p| p.metrics.port()).collect();
        assert_eq!(metrics, [40003, 40004, 40005, 40006, 40007]);
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.partitions, 8);
    }
}
