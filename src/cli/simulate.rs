//! `meterflow simulate`: runs a fleet of firmware-faithful virtual meters so a
//! sink can be developed, demonstrated and load-tested without hardware.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use meterflow::meter::command_port::COMMAND_PORT;
use meterflow::meter::firmware::{MeterSettings, SessionLimit, DEFAULT_SEND_INTERVAL};
use meterflow::meter::fleet::{start_fleet, FleetConfig, FleetMode};
use meterflow::meter::pacing::{Pacing, FIRMWARE_BUFFER_SIZE};
use meterflow::meter::raw_port::RAW_PORT;
use meterflow::meter::signal::SignalConfig;
use meterflow::model::number::compact_number;
use meterflow::pipeline::limits;
use meterflow::wire::layout::{Measures, DEFAULT_RATE};

/// How the virtual meters meet the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimulateMode {
    /// Dial out to a stream server, like a meter with `streamServer` set.
    DialIn,
    /// Listen for command clients (the firmware's port 54321).
    CommandPort,
    /// Listen and stream bare f32le on connect (the firmware's port 54322).
    Raw,
}

/// Options of `meterflow simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// How meters meet the sink.
    #[arg(long, value_enum, default_value_t = SimulateMode::DialIn)]
    pub mode: SimulateMode,
    /// Stream server to dial (dial-in mode), host:port; several, comma-separated, are tried in turn.
    #[arg(long, default_value = "127.0.0.1:54322")]
    pub server: String,
    /// Seconds between connection attempts to the stream server.
    #[arg(long, default_value_t = 30.0)]
    pub reconnect_secs: f64,
    /// With several --server: meter k dials the k-th first (as round-robin DNS would).
    #[arg(long)]
    pub spread: bool,
    /// Address to listen on (command-port and raw modes).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// First listening port; meter k uses port + k - 1 (default 54321
    /// command-port, 54322 raw; 0 picks free ports).
    #[arg(long)]
    pub port: Option<u16>,
    /// Number of meters.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub meters: usize,
    /// Meter names are this prefix plus a three-digit number.
    #[arg(long, default_value = "smartmeter")]
    pub name_prefix: String,
    /// Number of the first meter.
    #[arg(long, default_value_t = 1)]
    pub first_number: usize,
    /// Signal configuration file (TOML or JSON, see `SignalConfig`).
    #[arg(long, value_name = "FILE")]
    pub signal: Option<PathBuf>,
    /// Base seed (meter k uses seed + k); default: the signal file's seed or 0.
    #[arg(long)]
    pub seed: Option<u64>,
    /// RMS voltage, V.
    #[arg(long)]
    pub voltage: Option<f64>,
    /// Grid frequency, Hz.
    #[arg(long)]
    pub frequency: Option<f64>,
    /// RMS current, A.
    #[arg(long)]
    pub current: Option<f64>,
    /// Current lag behind the voltage, degrees.
    #[arg(long)]
    pub angle: Option<f64>,
    /// Produce samples as fast as the socket takes them (load tests) instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Real-time pacing: take samples and write the chunks ready every this
    /// many ms (more chunks per write, fewer wakes; the frames are the same).
    #[arg(long, default_value_t = DEFAULT_SEND_INTERVAL.as_millis() as u64)]
    pub send_interval_ms: u64,
    /// Stop each sampling session after this many seconds of samples, send
    /// tail and stop answer, disconnect.
    #[arg(long, conflicts_with = "samples")]
    pub duration: Option<f64>,
    /// Stop each sampling session after this many samples.
    #[arg(long)]
    pub samples: Option<u64>,
    /// Write the bytes each meter sends to this file (`{name}` is replaced by
    /// the meter name; with several meters `-<name>` is added otherwise).
    #[arg(long, value_name = "PATH")]
    pub capture: Option<PathBuf>,
    /// Sample buffer per meter, bytes (the firmware's 3.6 MB by default).
    #[arg(long, default_value_t = FIRMWARE_BUFFER_SIZE)]
    pub buffer_size: usize,
    /// Sampling rate of the raw port, Hz.
    #[arg(long, default_value_t = DEFAULT_RATE)]
    pub raw_rate: u32,
    /// Layout of the raw port.
    #[arg(long, default_value = "v,i,v,i,v,i")]
    pub raw_measures: Measures,
}

/// The fleet the arguments describe.
pub fn fleet_config(args: &SimulateArgs) -> anyhow::Result<FleetConfig> {
    let mut signal = match &args.signal {
        Some(path) => {
            let signal = SignalConfig::load(path)?;
            signal
                .validate()
                .with_context(|| format!("signal file {}", path.display()))?;
            signal
        }
        None => SignalConfig::default(),
    };
    type Set = fn(&mut SignalConfig, f64);
    let overrides: [(&str, Option<f64>, Set); 4] = [
        ("--voltage", args.voltage, |s, v| s.voltage_rms_v = v),
        ("--frequency", args.frequency, |s, v| s.frequency_hz = v),
        ("--current", args.current, |s, v| s.current_rms_a = v),
        ("--angle", args.angle, |s, v| s.current_angle_deg = v),
    ];
    for (flag, value, set) in overrides {
        if let Some(value) = value {
            set(&mut signal, value);
            signal
                .validate()
                .with_context(|| format!("{flag} {}", compact_number(value)))?;
        }
    }
    if let Some(seed) = args.seed {
        signal.seed = seed;
    }
    args.raw_measures
        .validate_rate(args.raw_rate)
        .context("invalid --raw-rate for --raw-measures")?;
    limits::METERS.check_usize("--meters", args.meters)?;
    limits::METER_NUMBER.check_usize("--first-number", args.first_number)?;
    limits::METER_NUMBER.check_usize(
        "--first-number + --meters",
        args.first_number + args.meters - 1,
    )?;
    limits::METER_BUFFER_BYTES.check_usize("--buffer-size", args.buffer_size)?;

    let mode = match args.mode {
        SimulateMode::DialIn => FleetMode::DialIn {
            server: args.server.clone(),
            reconnect: limits::METER_RECONNECT.check_s("--reconnect-secs", args.reconnect_secs)?,
        },
        SimulateMode::CommandPort => FleetMode::CommandPort {
            bind: args.bind,
            base_port: args.port.unwrap_or(COMMAND_PORT),
        },
        SimulateMode::Raw => FleetMode::Raw {
            bind: args.bind,
            base_port: args.port.unwrap_or(RAW_PORT),
        },
    };
    let limit = match (args.duration, args.samples) {
        (Some(secs), _) => Some(SessionLimit::Duration(
            limits::RUN_SECONDS.check_s("--duration", secs)?,
        )),
        (None, Some(n)) => Some(SessionLimit::Samples(n)),
        (None, None) => None,
    };
    let mut template = MeterSettings::new(args.name_prefix.clone());
    template.signal = signal;
    template.pacing = if args.fast {
        Pacing::Fast
    } else {
        Pacing::RealTime
    };
    template.send_interval =
        limits::METER_SEND_INTERVAL.check_ms("--send-interval-ms", args.send_interval_ms)?;
    template.buffer_size = args.buffer_size;
    template.limit = limit;
    template.raw_measures = args.raw_measures;
    template.raw_rate = args.raw_rate;
    Ok(FleetConfig {
        mode,
        meters: args.meters,
        name_prefix: args.name_prefix.clone(),
        first_number: args.first_number,
        template,
        capture: args.capture.clone(),
        spread_servers: args.spread,
    })
}

/// Runs the fleet until Ctrl-C, or until every meter reached its session limit.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = fleet_config(&args)?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::info!("stopping the virtual meters");
        on_signal.cancel();
    });
    let meters = config.meters;
    let fleet = start_fleet(config, cancel.clone()).await?;
    for (name, addr) in &fleet.listen_addrs {
        tracing::info!(meter = %name, %addr, "listening");
    }
    tracing::info!(meters, mode = ?args.mode, "virtual meters running");
    let report = fleet.wait().await;
    cancel.cancel();
    eprintln!(
        "simulate: {} meters, {} samples sent, {} dropped",
        report.meters.len(),
        report.sent_samples(),
        report.dropped_samples()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn simulate_arguments_build_a_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let signal = dir.path().join("signal.toml");
        std::fs::write(
            &signal,
            "voltage_rms_v = 120.0\nfrequency_hz = 60.0\nseed = 9\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "simulate",
            "--meters",
            "3",
            "--signal",
            signal.to_str().unwrap(),
            "--current",
            "5",
            "--fast",
            "--duration",
            "2",
            "--mode",
            "command-port",
            "--port",
            "0",
        ])
        .unwrap();
        let config = fleet_config(&cli.args).unwrap();
        assert_eq!(config.meters, 3);
        assert_eq!(config.template.signal.voltage_rms_v, 120.0);
        assert_eq!(config.template.signal.current_rms_a, 5.0);
        assert_eq!(config.template.signal.seed, 9);
        assert_eq!(config.template.pacing, Pacing::Fast);
        assert_eq!(
            config.template.limit,
            Some(SessionLimit::Duration(Duration::from_secs(2)))
        );
        assert!(matches!(
            config.mode,
            FleetMode::CommandPort { base_port: 0, .. }
        ));
    }

    #[test]
    fn negative_or_endless_seconds_are_refused() {
        for bad in ["-1", "NaN", "inf"] {
            let duration = format!("--duration={bad}");
            let cli = Cli::try_parse_from(["simulate", duration.as_str()]).unwrap();
            let error = fleet_config(&cli.args).unwrap_err().to_string();
            assert!(error.contains("--duration"), "{bad}: {error}");
        }
    }
}
