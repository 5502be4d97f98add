//! `meterflow bench sink`: the stream sink under load over loopback. The
//! sink runs in this process with its full outputs (Parquet, NDJSON
//! packets); N virtual meters run in a child `meterflow simulate` process,
//! paced in real time like the firmware. Once all have dialed in, the sink
//! is measured for the given duration: meters held, samples/s and MB/s
//! ingested, lost chunks, dropped peers, window and packet latency
//! quantiles, peak RSS and CPU seconds of both processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::proc_stats::{cpu_seconds, peak_rss_kib, rss_kib};
use crate::model::bounds::{Span, DAY};
use crate::model::latency::LatencySnapshot;
use crate::pipeline::cluster::local::terminate_child;
use crate::pipeline::config::FileLayout;
use crate::pipeline::config::SourceConfig;
use crate::pipeline::out_dir::direct_outputs;
use crate::pipeline::runner;
use crate::pipeline::service::ServiceConfig;
use crate::pipeline::PipelineConfig;
use crate::source::meter_server::config::MeterLinkConfig;
use crate::source::meter_server::registry::Registry;
use crate::wire::Measures;

/// The load and where the outputs go.
#[derive(Debug, Clone)]
pub struct SinkBench {
    /// The `meterflow` executable, run as `meterflow simulate` for the meters.
    pub program: PathBuf,
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
    /// Window threads (0: one per CPU).
    pub workers: usize,
    /// Whether the Parquet dataset is written (without: packets only).
    pub parquet: bool,
    /// fsync each Parquet file before it is published (`sink.parquet.fsync`).
    pub fsync: bool,
    /// Data time a Parquet file covers (`sink.parquet.max_file_span_s`);
    /// `None`: the pipeline default.
    pub file_span_s: Option<u32>,
    /// `sink.parquet.layout`.
    pub layout: FileLayout,
    /// Prints the sink's resident memory this often while measuring (a soak).
    pub rss_every_s: Option<f64>,
    /// Work folder for the outputs (default: a temporary one, removed afterwards).
    pub dir: Option<PathBuf>,
    /// Serve the live view, read by a page and a scraper (see [`view_live`]).
    pub live: bool,
    /// The virtual meters' write period, ms (`simulate --send-interval-ms`).
    pub meter_send_interval_ms: u64,
}

/// What the sink cost while measured.
#[derive(Debug, Clone, Copy)]
pub struct SinkFigures {
    /// Meters streaming all through the measured span (the fewest held).
    pub meters: f64,
    /// CPU seconds per second of the sink process.
    pub cores: f64,
}

/// Counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    samples: u64,
    bytes: u64,
    cpu_s: f64,
}

/// What `--seconds` and `--connect-timeout` may be.
const BENCH_SPAN: Span = Span::new(0.1, DAY);

pub async fn run(args: SinkBench) -> anyhow::Result<SinkFigures> {
    anyhow::ensure!(args.meters > 0, "--meters must be at least 1");
    args.measures.validate_rate(args.rate)?;
    BENCH_SPAN.check_s("--connect-timeout", args.connect_timeout)?;
    BENCH_SPAN.check_s("--seconds", args.seconds)?;
    let temp = args.dir.is_none();
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("meterflow-bench-sink-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = measure(&args, &dir).await;
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

async fn measure(args: &SinkBench, dir: &Path) -> anyhow::Result<SinkFigures> {
    let config = bench_config(args, dir);
    let sink = crate::pipeline::sources::bind_meter_stream(&config).await?;
    let addr = sink
        .local_addr()
        .context("the bench sink has no listen address")?;
    let registry = sink.registry();
    let run = runner::start_source(config, Box::new(sink)).await?;
    let observer = run.view();
    let http = run.metrics_addr();
    let cancel = CancellationToken::new();
    let sink_task = tokio::spawn(run.run(cancel.clone()));
    println!(
        "sink on {addr}; starting {} virtual meters ({} at {} Hz, real-time pacing, a write every {} ms) in a child process",
        args.meters, args.measures, args.rate, args.meter_send_interval_ms
    );
    let mut meters = spawn_meters(args, addr)?;

    let server = &registry.server;
    let connect_deadline = Instant::now() + BENCH_SPAN.duration_s(args.connect_timeout);
    while (server.streaming.load(Relaxed) as usize) < args.meters {
        if Instant::now() > connect_deadline {
            println!(
                "only {} of {} meters streaming after {:.0} s; measuring those",
                server.streaming.load(Relaxed),
                args.meters,
                args.connect_timeout
            );
            break;
        }
        if let Some(status) = meters.try_wait().context("watching the meter process")? {
            cancel.cancel();
            let _ = sink_task.await;
            anyhow::bail!("the meter process exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected_after = observer.started().elapsed();
    // Let the ramp-up settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lost_before = registry.total(|m| &m.lost_chunks);
    let dropped_before = server.dropped_total();
    observer.reset_latencies();
    let viewer = http.map(|http| tokio::spawn(view_live(http, cancel.clone())));
    let start = reading(&registry);
    let mut held_min = server.streaming.load(Relaxed);
    let end_at = start.at + BENCH_SPAN.duration_s(args.seconds);
    let rss_every = args.rss_every_s.map(|s| BENCH_SPAN.duration_s(s));
    let mut next_rss = rss_every.map(|every| start.at + every);
    if rss_every.is_some() {
        print_rss(start.at, start.at, dir);
    }
    while Instant::now() < end_at {
        tokio::time::sleep(Duration::from_millis(250)).await;
        held_min = held_min.min(server.streaming.load(Relaxed));
        if let (Some(at), Some(every)) = (next_rss, rss_every) {
            if Instant::now() >= at {
                print_rss(start.at, Instant::now(), dir);
                next_rss = Some(at + every);
            }
        }
    }
    let end = reading(&registry);
    let window = observer.window_latency();
    let packet = observer.packet_latency();
    let queue = observer.queue_depths();
    let lost = registry.total(|m| &m.lost_chunks) - lost_before;
    let dropped = server.dropped_total() - dropped_before;
    let meters_rss = peak_rss_kib(Some(meters.id()));
    let meters_cpu = cpu_seconds(Some(meters.id()));

    cancel.cancel();
    let viewed = match viewer {
        Some(task) => Some(task.await.context("live view reader")?),
        None => None,
    };
    let stop_started = Instant::now();
    let stop_cpu_before = cpu_seconds(None).unwrap_or(0.0);
    let report = sink_task.await.context("sink task")??;
    let stop_s = stop_started.elapsed().as_secs_f64();
    let stop_cpu_s = cpu_seconds(None).unwrap_or(0.0) - stop_cpu_before;
    stop_child(&mut meters);

    let elapsed = end.at.duration_since(start.at).as_secs_f64();
    let samples_per_s = (end.samples - start.samples) as f64 / elapsed;
    let expected = args.meters as f64 * f64::from(args.rate);
    println!();
    println!(
        "meters held          {held_min} of {} (all connected after {:.1} s)",
        args.meters,
        connected_after.as_secs_f64()
    );
    println!(
        "ingested             {:.2} M samples/s ({:.1} % of {} meters x {} Hz), {:.1} MB/s payload",
        samples_per_s / 1e6,
        100.0 * samples_per_s / expected,
        args.meters,
        args.rate,
        (end.bytes - start.bytes) as f64 / elapsed / 1e6
    );
    if let Some(viewed) = viewed {
        println!(
            "live view            {} SSE bytes, {} requests, {} failed (read in this process)",
            viewed.stream_bytes, viewed.requests, viewed.failures
        );
    }
    println!("lost chunks          {lost}");
    println!("dropped peers        {dropped}");
    print_latency("window latency", &window);
    print_latency("packet latency", &packet);
    let queue: Vec<String> = queue.iter().map(usize::to_string).collect();
    println!(
        "worker queues        {} batches at the end",
        queue.join(", ")
    );
    println!(
        "sink process         peak RSS {:.0} MB, CPU {:.1} s over {:.1} s ({:.0} % of one core)",
        peak_rss_kib(None).unwrap_or(0) as f64 / 1024.0,
        end.cpu_s - start.cpu_s,
        elapsed,
        100.0 * (end.cpu_s - start.cpu_s) / elapsed
    );
    if let (Some(rss), Some(cpu)) = (meters_rss, meters_cpu) {
        println!(
            "meter process        peak RSS {:.0} MB, CPU {:.1} s in all (load generator)",
            rss as f64 / 1024.0,
            cpu
        );
    }
    println!(
        "shutdown             {:.1} s to stop {} meters, drain and close, CPU {:.1} s (windows {}, packets {})",
        stop_s,
        report
            .connections
            .as_ref()
            .map_or(0, |connections| connections.peak_streaming),
        stop_cpu_s,
        report.devices.iter().map(|s| s.windows).sum::<u64>(),
        report.output_total("packets", "built")
    );
    Ok(SinkFigures {
        meters: held_min as f64,
        cores: (end.cpu_s - start.cpu_s) / elapsed,
    })
}

/// One line of a soak: the sink's resident memory, and what its record
/// log and Parquet dataset hold on disk (files being written included).
fn print_rss(start: Instant, now: Instant, dir: &Path) {
    let mb = |folder: &str| super::folder_bytes(&dir.join(folder)).unwrap_or(0) as f64 / 1e6;
    println!(
        "rss                  {:>6.0} s: {:.0} MB; state (record log) {:.1} MB, parquet {:.1} MB",
        now.duration_since(start).as_secs_f64(),
        rss_kib(None).unwrap_or(0) as f64 / 1024.0,
        mb("state"),
        mb("parquet"),
    );
}

/// What the live view's reader got.
#[derive(Debug, Default)]
struct Viewed {
    stream_bytes: u64,
    requests: u64,
    failures: u64,
}

/// Reads the live view as an open page and a Prometheus scraper do until
/// `cancel`: the event stream, and every second `/metrics`, the fleet's
/// first meter and its waveform.
async fn view_live(http: std::net::SocketAddr, cancel: CancellationToken) -> Viewed {
    let client = reqwest::Client::new();
    let mut viewed = Viewed::default();
    let stream = client.get(format!("http://{http}/api/stream")).send().await;
    let mut stream = match stream {
        Ok(response) => Some(response),
        Err(_) => {
            viewed.failures += 1;
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut meter: Option<String> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return viewed,
            chunk = async { stream.as_mut()?.chunk().await.ok()? } , if stream.is_some() => {
                match chunk {
                    Some(bytes) => viewed.stream_bytes += bytes.len() as u64,
                    None => stream = None,
                }
            }
            _ = tick.tick() => {
                let mut paths = vec!["/metrics".to_string(), "/api/meters".to_string()];
                if let Some(name) = &meter {
                    paths.push(format!("/api/meters/{name}"));
                    paths.push(format!("/api/meters/{name}/waveform"));
                }
                for path in paths {
                    viewed.requests += 1;
                    let body = match client.get(format!("http://{http}{path}")).send().await {
                        Ok(response) if response.status().is_success() => response.text().await.ok(),
                        _ => None,
                    };
                    let Some(body) = body else {
                        viewed.failures += 1;
                        continue;
                    };
                    if path == "/api/meters" && meter.is_none() {
                        meter = serde_json::from_str::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|fleet| fleet["meters"][0]["name"].as_str().map(str::to_owned));
                    }
                }
            }
        }
    }
}

fn print_latency(what: &str, latency: &LatencySnapshot) {
    let [p50, _, p99, p999] = latency.quantiles_s;
    println!(
        "{what:<20} p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} recorded)",
        p50 * 1e3,
        p99 * 1e3,
        p999 * 1e3,
        latency.max_s * 1e3,
        latency.count
    );
}

fn reading(registry: &Registry) -> Reading {
    Reading {
        at: Instant::now(),
        samples: registry.total(|m| &m.engine.samples),
        bytes: registry.total(|m| &m.bytes),
        cpu_s: cpu_seconds(None).unwrap_or(0.0),
    }
}

fn bench_config(args: &SinkBench, dir: &Path) -> PipelineConfig {
    let mut config = PipelineConfig {
        name: "bench-sink".to_string(),
        source: SourceConfig::SmartmeterServer(MeterLinkConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            rate: args.rate,
            measures: args.measures,
            max_connections: args.meters + 64,
            // Every meter dials at once.
            max_pending: args.meters + 64,
            workers: args.workers,
            ..MeterLinkConfig::default()
        }),
        dsp: Default::default(),
        aggregation: Default::default(),
        sink: Default::default(),
        service: ServiceConfig {
            state_dir: dir.join("state"),
            metrics: args.live,
            metrics_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServiceConfig::default()
        },
        record_log: Default::default(),
        cluster: None,
    };
    // Parquet under dir/parquet, NDJSON packets under dir/packets.
    direct_outputs(&mut config, dir);
    if !args.parquet {
        config.sink.parquet = None;
    }
    if let Some(parquet) = &mut config.sink.parquet {
        if let Some(span) = args.file_span_s {
            parquet.max_file_span_s = u64::from(span);
        }
        parquet.fsync = args.fsync;
        // As in pipelines/sink.toml: every meter's rows share the files and
        // gather in big row groups; in device folders each meter's rows
        // wait for small ones (the shipped setting before shared files).
        parquet.layout = args.layout;
        parquet.row_group_rows = match args.layout {
            FileLayout::SharedFiles => 16_384,
            FileLayout::DeviceFolders => 512,
        };
    }
    config
}

fn spawn_meters(args: &SinkBench, addr: std::net::SocketAddr) -> anyhow::Result<Child> {
    Command::new(&args.program)
        .args([
            "simulate",
            "--server",
            &addr.to_string(),
            "--reconnect-secs",
            "1",
        ])
        .args([
            "--meters",
            &args.meters.to_string(),
            "--name-prefix",
            "bench",
            "--send-interval-ms",
            &args.meter_send_interval_ms.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the virtual meters (meterflow simulate)")
}

/// SIGTERM lets the meters close their sockets; killed after 10 s.
pub(crate) fn stop_child(child: &mut Child) {
    let _ = terminate_child(child, Duration::from_secs(10));
}
