//! The `meterflow` command line; each subcommand lives in `cli/`.

mod cli;

use clap::{Parser, Subcommand};
use cli::{batch, benchmark, cluster, config, inspect, report, run, simulate, sink, writer};

/// meterflow: SmartMeter power-meter streams into trustworthy energy data.
#[derive(Debug, Parser)]
#[command(name = "meterflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job on its built-in default (the default command).
    Run(run::RunArgs),
    /// Recorded captures through the engine into Parquet and packets.
    Batch(batch::BatchArgs),
    /// End-to-end speed: batch over a generated capture (10 min, 32 kHz, 6 channels).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// The long-running stream sink meters dial into (port 54322), until SIGINT/SIGTERM.
    Sink(sink::SinkArgs),
    /// A writer node of a cluster: records from NATS JetStream into the outputs.
    Writer(writer::WriterArgs),
    /// A local cluster: ingest and writer nodes against a running nats-server.
    Cluster(cluster::ClusterArgs),
    /// Firmware-faithful virtual meters (dial-in, command port, raw port).
    Simulate(simulate::SimulateArgs),
    /// Summarise capture files: meter, sessions, frames, anomalies.
    Inspect(inspect::InspectArgs),
    /// Pipeline files: `reference` prints every section and key (docs/pipeline.md).
    Config {
        #[command(subcommand)]
        what: config::ConfigCommand,
    },
    /// One self-contained HTML page of charts from a Parquet dataset.
    Report(report::ReportArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Batch over a generated capture, raw archive off and on.
    Batch(benchmark::BenchArgs),
    /// The stream sink under N real-time virtual meters over loopback (default 1000 at 8 kHz, 60 s).
    Sink(benchmark::SinkBenchArgs),
    /// N ingest nodes and M writers on loopback with a nats-server and virtual meters.
    Cluster(benchmark::ClusterBenchArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(cli::stderr_is_styled())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command.unwrap_or(Command::Run(run::RunArgs::default())) {
        Command::Inspect(args) => inspect::run(args),
        Command::Config { what } => config::run(what),
        Command::Report(args) => report::run(args),
        Command::Bench {
            what: BenchCommand::Batch(args),
        } => runtime().and_then(|rt| rt.block_on(benchmark::batch(args))),
        Command::Bench {
            what: BenchCommand::Sink(args),
        } => runtime().and_then(|rt| rt.block_on(benchmark::sink(args))),
        Command::Bench {
            what: BenchCommand::Cluster(args),
        } => runtime().and_then(|rt| rt.block_on(benchmark::cluster(args))),
        Command::Batch(args) => runtime().and_then(|rt| rt.block_on(batch::run(args))),
        Command::Run(args) => runtime().and_then(|rt| {
            let outcome = rt.block_on(run::run(args));
            // A telemetry pipeline reading stdin leaves a read that cannot be
            // cancelled; do not hang on it once the run is over.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            outcome
        }),
        Command::Sink(args) => runtime().and_then(|rt| rt.block_on(sink::run(args))),
        Command::Cluster(args) => runtime().and_then(|rt| rt.block_on(cluster::run(args))),
        Command::Writer(args) => runtime().and_then(|rt| rt.block_on(writer::run(args))),
        Command::Simulate(args) => runtime().and_then(|rt| rt.block_on(simulate::run(args))),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meterflow: {}", cli::error_text(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
