//! `meterflow inspect`: what a capture file holds (sessions, frames, wire
//! anomalies) and, for waveform sessions, the power-quality events in it;
//! nothing is written.

use std::path::PathBuf;

use anyhow::Context;

use crate::dsp::pq::{PqConfig, PqEventCounts, PqOutput, PqStream};
use crate::dsp::EngineConfig;
use crate::pipeline::{limits, PipelineConfig};
use crate::wire::SampleBlock;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Capture files (meter byte streams as `simulate --capture` writes them,
    /// Matroska recordings as the vendor's `recordingServer.py` writes them).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Pipeline file whose `[dsp]` and `[dsp.pq]` the event counts use
    /// (default: 50 Hz, Udin 230 V, the IEC 61000-4-30 thresholds).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Nominal grid frequency, Hz (overrides the pipeline's).
    #[arg(long, value_name = "HZ")]
    pub nominal_hz: Option<f64>,
    /// Udin, the declared supply voltage, V (overrides the pipeline's).
    #[arg(long, value_name = "V")]
    pub udin: Option<f64>,
}

/// The engine settings the PQ counts run with.
fn engine_config(args: &InspectArgs) -> anyhow::Result<EngineConfig> {
    let mut engine = match &args.pipeline {
        Some(path) => PipelineConfig::load(path)?.dsp,
        None => EngineConfig::default(),
    };
    // The flags take the ranges of the keys they override.
    if let Some(hz) = args.nominal_hz {
        engine.nominal_frequency_hz = limits::NOMINAL_FREQUENCY.check("--nominal-hz", hz)?;
    }
    if let Some(volts) = args.udin {
        engine.declared_voltage_v = Some(limits::DECLARED_VOLTAGE.check("--udin", volts)?);
        if let Some(pq) = &mut engine.pq {
            pq.udin_v = None;
        }
    }
    engine.pq.get_or_insert_with(PqConfig::default);
    limits::dsp(&engine).context("inspect settings")?;
    engine.validate().context("inspect settings")?;
    Ok(engine)
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let engine = engine_config(&args)?;
    let mut failed = 0;
    for path in &args.files {
        match inspect(path, &engine) {
            Ok(()) => {}
            Err(error) => {
                failed += 1;
                eprintln!("{}: {error:#}", path.display());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} captures could not be read",
            args.files.len()
        );
    }
    Ok(())
}

fn inspect(path: &std::path::Path, engine: &EngineConfig) -> anyhow::Result<()> {
    if crate::source::recording::is_recording(path) {
        return inspect_recording(path);
    }
    let mut pq = SessionEvents::new(engine);
    let summary = crate::source::capture::replay_file(path, |block| pq.push(block))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut pq_sessions = pq.finish().into_iter().peekable();
    println!("{}", path.display());
    match &summary.info {
        Some(info) => println!(
            "  meter {} (firmware {}, ip {}, state {})",
            info.name,
            info.version,
            info.ip,
            info.state
                .map_or_else(|| "not given".to_string(), |s| s.to_string())
        ),
        None => println!("  no device info line"),
    }
    for (k, session) in summary.sessions.iter().enumerate() {
        let description = &session.description;
        println!(
            "  session {k}: {} Hz, measures {}, unit {}, chunk {} B, start {}",
            description.rate,
            description.measures,
            description.measures.unit_string(),
            session.answer.as_ref().map_or(0, |answer| answer.chunksize),
            format_start(description.start_unix_ns)
        );
        println!(
            "    {} frames, {} samples ({:.3} s), {} samples lost{}",
            session.data_frames,
            session.samples,
            session.samples as f64 / f64::from(description.rate.max(1)),
            session.lost_samples,
            match &session.stop {
                Some(stop) => format!(", stopped: {} samples sent", stop.sent_samples),
                None => ", no stop answer".to_string(),
            }
        );
        let key = (
            description.measures,
            description.rate,
            description.start_unix_ns,
        );
        match pq_sessions.next_if(|(k, _)| *k == key).map(|(_, r)| r) {
            Some(Ok(counts)) => println!(
                "    PQ events: {} dips, {} swells, {} interruptions, {} RVCs (Udin {} V, {} Hz)",
                counts.dips,
                counts.swells,
                counts.interruptions,
                counts.rapid_voltage_changes,
                engine.udin_v(),
                engine.nominal_frequency_hz
            ),
            Some(Err(reason)) => println!("    PQ events: not measured ({reason})"),
            None => println!("    PQ events: no samples"),
        }
    }
    let wire = &summary.wire;
    println!(
        "  {} info lines ({} log, {} warnings), {} bad messages, {} anomalies (resyncs {}, gaps {}, bad lengths {}, truncated {})",
        wire.info_lines,
        summary.log_lines,
        summary.meter_warnings,
        summary.bad_messages,
        wire.anomalies(),
        wire.resyncs,
        wire.gaps,
        wire.bad_lengths,
        wire.truncated
    );
    Ok(())
}

/// PQ event counts per session of a capture, in session order: a session
/// starts where the layout, rate or `startTs` changes or the sample index
/// goes back.
struct SessionEvents<'a> {
    engine: &'a EngineConfig,
    current: Option<OpenSession>,
    done: Vec<(SessionKey, Result<PqEventCounts, String>)>,
}

type SessionKey = (crate::wire::Measures, u32, i64);

struct OpenSession {
    key: SessionKey,
    next_index: u64,
    /// Why not, when the layout has no waveform voltage to measure.
    stream: Result<PqStream, String>,
    counts: PqEventCounts,
}

impl<'a> SessionEvents<'a> {
    fn new(engine: &'a EngineConfig) -> Self {
        SessionEvents {
            engine,
            current: None,
            done: Vec::new(),
        }
    }

    fn push(&mut self, block: &SampleBlock) {
        let key = (block.measures, block.rate, block.start_unix_ns);
        if self
            .current
            .as_ref()
            .is_some_and(|s| s.key != key || block.first_index < s.next_index)
        {
            self.close();
        }
        let engine = self.engine;
        let session = self.current.get_or_insert_with(|| {
            let stream = if block.measures.is_latch() {
                Err(format!("{} carries no waveform", block.measures))
            } else {
                PqStream::new(
                    &engine.pq_config().unwrap_or_default(),
                    engine,
                    block.measures,
                    block.rate,
                    block.start_unix_ns,
                )
                .map_err(|e| e.to_string())
            };
            OpenSession {
                key,
                next_index: 0,
                stream,
                counts: PqEventCounts::default(),
            }
        });
        session.next_index = block.first_index + block.len() as u64;
        if let Ok(stream) = &mut session.stream {
            let pushed = stream.push_block(block, &mut count_into(&mut session.counts));
            if let Err(error) = pushed {
                session.stream = Err(error.to_string());
            }
        }
    }

    fn close(&mut self) {
        if let Some(mut session) = self.current.take() {
            let counts = &mut session.counts;
            let key = session.key;
            let result = session.stream.map(|mut stream| {
                stream.finish(&mut count_into(counts));
                *counts
            });
            self.done.push((key, result));
        }
    }

    fn finish(mut self) -> Vec<(SessionKey, Result<PqEventCounts, String>)> {
        self.close();
        self.done
    }
}

/// A PQ output sink that counts the events.
fn count_into(counts: &mut PqEventCounts) -> impl FnMut(PqOutput<'_>) + '_ {
    move |output| {
        if let PqOutput::Event(event) = output {
            counts.add(event);
        }
    }
}

/// A recording's tags, as ffprobe reads them (nothing is decoded).
fn inspect_recording(path: &std::path::Path) -> anyhow::Result<()> {
    let recording = crate::source::recording::open_recording(
        path,
        &crate::source::capture::RawParams::default(),
    )
    .with_context(|| format!("reading {}", path.display()))?;
    let session = &recording.session;
    println!("{}", path.display());
    println!(
        "  recording of {} ({} audio), CHANNEL_TAGS {}",
        session.device,
        recording.codec,
        recording.channel_tags.as_deref().unwrap_or("(none)")
    );
    println!(
        "  {} Hz, measures {}, unit {}, start {}, {}",
        session.rate,
        session.measures,
        session.measures.unit_string(),
        format_start(session.start_unix_ns),
        match (recording.expected_samples, recording.duration_s()) {
            (Some(samples), Some(seconds)) => format!("{samples} samples ({seconds:.3} s)"),
            _ => "length unknown".to_string(),
        }
    );
    Ok(())
}

fn format_start(unix_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_ns)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string()
}
