//! What a capture file holds, read without writing anything: its sessions,
//! frames and wire anomalies, and for waveform sessions the power-quality
//! events the engine would find and its wiring status (behind `meterflow
//! inspect`). A session's Udin and nominal frequency, when neither the
//! pipeline nor a flag gives them, are inferred from its first second as
//! `batch` does (the same engine).

use std::path::Path;

use anyhow::Context;

use crate::dsp::pq::PqConfig;
use crate::dsp::wiring::WiringCheck;
use crate::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use crate::model::pq_counts::PqEventCounts;
use crate::model::WiringStatus;
use crate::pipeline::PipelineConfig;
use crate::source::capture::{replay_file, CaptureSummary, RawParams};
use crate::source::recording::{is_recording, open_recording, Recording};
use crate::wire::{Measures, SampleBlock};

/// The engine settings the PQ counts run with: the pipeline file's `[dsp]`
/// (or the defaults), a nominal frequency and Udin given instead, PQ on
/// (the flickermeter off: its 10-minute values are no part of the summary).
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
    let pq = engine.pq.get_or_insert_with(PqConfig::default);
    pq.enabled = true;
    pq.flicker.enabled = false;
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
    /// Per session, in order: the Udin and frequency its engine ran with
    /// (`None`: no waveform engine).
    pub nominal: Vec<Option<SessionNominal>>,
}

/// The nominal values a waveform session was measured with.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionNominal {
    /// Udin, V, declared or inferred; `None`: neither (no PQ events then).
    pub udin_v: Option<f64>,
    pub frequency_hz: f64,
    /// What the session's first second said, when something was inferred
    /// (the message of batch's `nominal` events row).
    pub inferred: Option<String>,
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
    let mut inspection = CaptureInspection {
        pq_events: Vec::new(),
        wiring: Vec::new(),
        nominal: Vec::new(),
        summary,
    };
    for session in &inspection.summary.sessions {
        let description = &session.description;
        let key = (
            description.measures,
            description.rate,
            description.start_unix_ns,
        );
        let result = counted.next_if(|result| result.key == key);
        inspection
            .pq_events
            .push(result.as_ref().map(|r| r.pq.clone()));
        inspection
            .wiring
            .push(result.as_ref().and_then(|r| r.wiring.clone()));
        inspection.nominal.push(result.and_then(|r| r.nominal));
    }
    Ok(Inspection::Capture(inspection))
}

/// PQ event counts per session of a capture, in session order: a session
/// starts where the layout, rate or `startTs` changes or the sample index
/// goes back.
struct SessionEvents<'a> {
    engine: &'a EngineConfig,
    current: Option<OpenSession>,
    done: Vec<SessionResult>,
}

struct SessionResult {
    key: SessionKey,
    pq: Result<PqEventCounts, String>,
    wiring: Option<WiringStatus>,
    nominal: Option<SessionNominal>,
}

type SessionKey = (Measures, u32, i64);

/// One session's engine (the one a pipeline's meter gets: it infers what
/// the settings leave out) with the wiring checks on its windows.
struct OpenSession {
    key: SessionKey,
    next_index: u64,
    /// Why not, when the layout has no waveform or the engine refused.
    engine: Result<DeviceEngine, String>,
    measured: Measured,
}

/// What a session's engine said so far.
struct Measured {
    counts: PqEventCounts,
    check: WiringCheck,
    nominal: Option<SessionNominal>,
    /// Why no PQ events: no Udin or frequency, given or inferred.
    pq_off: Option<String>,
}

impl Measured {
    fn take(&mut self, output: EngineOutput<'_>) {
        match output {
            EngineOutput::Window(window) => {
                self.check.push(window);
            }
            EngineOutput::PqEvent(event) => self.counts.add(event),
            EngineOutput::Nominal { inference, config } => {
                self.nominal = Some(SessionNominal {
                    udin_v: config.declared_udin_v(),
                    frequency_hz: config.nominal_hz(),
                    inferred: Some(inference.message()),
                });
                if config.pq_config().is_none() {
                    self.pq_off = Some(inference.message());
                }
            }
            _ => {}
        }
    }
}

impl OpenSession {
    fn new(config: &EngineConfig, block: &SampleBlock) -> Self {
        let engine = if block.measures.is_latch() {
            Err(format!("{} carries no waveform", block.measures))
        } else {
            DeviceEngine::inferring(config, block.measures, block.rate, block.start_unix_ns)
                .map_err(|e| e.to_string())
        };
        // Given, not inferred: the engine says nothing of them.
        let nominal = engine.is_ok().then(|| SessionNominal {
            udin_v: config.declared_udin_v(),
            frequency_hz: config.nominal_hz(),
            inferred: None,
        });
        OpenSession {
            key: (block.measures, block.rate, block.start_unix_ns),
            next_index: 0,
            engine,
            measured: Measured {
                counts: PqEventCounts::default(),
                check: WiringCheck::new(),
                nominal,
                pq_off: None,
            },
        }
    }

    fn push(&mut self, block: &SampleBlock) {
        self.next_index = block.first_index + block.len() as u64;
        if let Ok(engine) = &mut self.engine {
            let measured = &mut self.measured;
            if let Err(error) = engine.push_block(block, &mut |output| measured.take(output)) {
                self.engine = Err(error.to_string());
            }
        }
    }

    fn finish(mut self) -> SessionResult {
        let measured = &mut self.measured;
        let (pq, wiring) = match &mut self.engine {
            Ok(engine) => {
                engine.finish(&mut |output| measured.take(output));
                measured.check.finish();
                let pq = match measured.pq_off.take() {
                    Some(why) => Err(why),
                    None => Ok(measured.counts),
                };
                (pq, measured.check.status().cloned())
            }
            Err(why) => (Err(why.clone()), None),
        };
        SessionResult {
            key: self.key,
            pq,
            wiring,
            nominal: self.measured.nominal,
        }
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
        self.current
            .get_or_insert_with(|| OpenSession::new(engine, block))
            .push(block);
    }

    fn close(&mut self) {
        if let Some(session) = self.current.take() {
            self.done.push(session.finish());
        }
    }

    fn finish(mut self) -> Vec<SessionResult> {
        self.close();
        self.done
    }
}
