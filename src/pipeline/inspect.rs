//! What a capture file holds, read without writing anything: its sessions,
//! frames and wire anomalies, and for waveform sessions the power-quality
//! events the engine would find and its wiring status (behind `meterflow
//! inspect`).

use std::path::Path;

use anyhow::Context;

use crate::dsp::pq::{PqConfig, PqOutput, PqStream};
use crate::dsp::wiring::WiringCheck;
use crate::dsp::{EngineConfig, EngineOutput, WaveformEngine};
use crate::model::pq_counts::PqEventCounts;
use crate::model::WiringStatus;
use crate::pipeline::PipelineConfig;
use crate::source::capture::{replay_file, CaptureSummary, RawParams};
use crate::source::recording::{is_recording, open_recording, Recording};
use crate::wire::{Measures, SampleBlock};

/// The engine settings the PQ counts run with: the pipeline file's `[dsp]`
/// (or the defaults), a nominal frequency and Udin given instead, PQ on.
pub fn engine_config(
    pipeline: Option<&Path>,
    nominal_hz: Option<f64>,
    udin_v: Option<f64>,
) -> anyhow::Result<EngineConfig> {
    // Only `[dsp]` counts here, so a file for batches (no `[source]`) serves.
    let mut engine = match pipeline {
        Some(path) => {
            let engine = PipelineConfig::load_unvalidated(path)?.dsp;
            super::limits::dsp(&engine)
                .and_then(|()| Ok(engine.validate()?))
                .with_context(|| format!("pipeline {}", path.display()))?;
            engine
        }
        None => EngineConfig::default(),
    };
    // The flags take the ranges of the keys they override.
    if let Some(hz) = nominal_hz {
        engine.nominal_frequency_hz =
            Some(super::limits::NOMINAL_FREQUENCY.check("--nominal-hz", hz)?);
    }
    if let Some(volts) = udin_v {
        engine.declared_voltage_v = Some(super::limits::DECLARED_VOLTAGE.check("--udin", volts)?);
        if let Some(pq) = &mut engine.pq {
            pq.udin_v = None;
        }
    }
    // Counting events is what inspect is for, whatever the pipeline says.
    engine.pq.get_or_insert_with(PqConfig::default).enabled = true;
    super::limits::dsp(&engine).context("inspect settings")?;
    engine.validate().context("inspect settings")?;
    Ok(engine)
}

/// What one file holds.
#[derive(Debug)]
pub enum Inspection {
    /// A meter byte stream, replayed.
    Capture(CaptureInspection),
    /// A Matroska recording: its tags as ffprobe reads them (nothing decoded).
    Recording(Recording),
}

#[derive(Debug)]
pub struct CaptureInspection {
    pub summary: CaptureSummary,
    /// Per session of `summary.sessions`, in order: PQ event counts, why
    /// they could not be measured, or `None` for a session without samples.
    pub pq_events: Vec<Option<Result<PqEventCounts, String>>>,
    /// Per session, in order: the wiring checks' last finding (`None`: no
    /// waveform, or too short for one).
    pub wiring: Vec<Option<WiringStatus>>,
}

/// Reads `path` (a meter byte stream or a recording) and counts the PQ
/// events of its waveform sessions with `engine`.
pub fn inspect(path: &Path, engine: &EngineConfig) -> anyhow::Result<Inspection> {
    if is_recording(path) {
        let recording = open_recording(path, &RawParams::default())
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(Inspection::Recording(recording));
    }
    let mut pq = SessionEvents::new(engine);
    let summary = replay_file(path, |block| pq.push(block))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut counted = pq.finish().into_iter().peekable();
    let (pq_events, wiring) = summary
        .sessions
        .iter()
        .map(|session| {
            let description = &session.description;
            let key = (
                description.measures,
                description.rate,
                description.start_unix_ns,
            );
            match counted.next_if(|(k, _, _)| *k == key) {
                Some((_, counts, wiring)) => (Some(counts), wiring),
                None => (None, None),
            }
        })
        .unzip();
    Ok(Inspection::Capture(CaptureInspection {
        summary,
        pq_events,
        wiring,
    }))
}

/// PQ event counts per session of a capture, in session order: a session
/// starts where the layout, rate or `startTs` changes or the sample index
/// goes back.
struct SessionEvents<'a> {
    engine: &'a EngineConfig,
    current: Option<OpenSession>,
    done: Vec<SessionResult>,
}

type SessionResult = (
    SessionKey,
    Result<PqEventCounts, String>,
    Option<WiringStatus>,
);

type SessionKey = (Measures, u32, i64);

struct OpenSession {
    key: SessionKey,
    next_index: u64,
    /// Why not, when the layout has no waveform voltage to measure.
    stream: Result<PqStream, String>,
    counts: PqEventCounts,
    wiring: Option<SessionWiring>,
}

/// The windows of a session (without PQ: that runs beside it) and the
/// wiring checks on them.
struct SessionWiring {
    engine: WaveformEngine,
    check: WiringCheck,
}

impl SessionWiring {
    /// `None` for a layout or rate the engine does not take (latch layouts).
    fn new(engine: &EngineConfig, block: &SampleBlock) -> Option<Self> {
        let windows_only = EngineConfig {
            pq: None,
            ..engine.clone()
        };
        let engine = WaveformEngine::new(
            &windows_only,
            block.measures,
            block.rate,
            block.start_unix_ns,
        )
        .ok()?;
        Some(SessionWiring {
            engine,
            check: WiringCheck::new(),
        })
    }

    /// False when the engine refused the block (the session then has no status).
    fn push(&mut self, block: &SampleBlock) -> bool {
        let check = &mut self.check;
        self.engine
            .push_block(block, &mut |output| {
                if let EngineOutput::Window(window) = output {
                    check.push(window);
                }
            })
            .is_ok()
    }

    fn finish(mut self) -> Option<WiringStatus> {
        let check = &mut self.check;
        self.engine.finish(&mut |output| {
            if let EngineOutput::Window(window) = output {
                check.push(window);
            }
        });
        self.check.finish();
        self.check.status().cloned()
    }
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
                wiring: SessionWiring::new(engine, block),
            }
        });
        if session.wiring.as_mut().is_some_and(|w| !w.push(block)) {
            session.wiring = None;
        }
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
            let wiring = session.wiring.and_then(SessionWiring::finish);
            self.done.push((key, result, wiring));
        }
    }

    fn finish(mut self) -> Vec<SessionResult> {
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
