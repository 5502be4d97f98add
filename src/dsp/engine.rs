//! The per-device engine: SampleBlocks in, in order and cut anywhere;
//! windows, 10-s frequencies and energy out.
//!
//! Single-threaded and allocation-free once its buffers have grown to a
//! window's size: samples are copied into per-channel buffers that keep
//! their capacity, windows are computed in place and handed to a callback
//! by reference.

use super::flicker::{FlickerMeter, FlickerValue};
use super::frequency::{
    CycleFrequency, CycleTracker, SampleClock, TenSecondFrequency, TenSecondTracker,
};
use super::inferring::InferringEngine;
use super::latch::{check_block, LatchEngine};
use super::metrics::{ChannelMap, WindowCalculator};
use super::nominal::NominalInference;
use super::pq::{PqDetector, PqOutput};
use super::sample_screen::{InvalidSamples, SampleScreen};
use super::window::{WindowAssembler, WindowSpan};
use super::zero_crossing::ZeroCrossingDetector;
use super::EngineConfig;
use crate::model::energy::EnergyCounters;
use crate::model::latch::LatchWindow;
use crate::model::pq_event::{HalfCycleRms, PqEvent};
use crate::model::window::{WindowFlags, WindowMetrics};
use crate::wire::layout::Measures;
use crate::wire::SampleBlock;

/// Why a block or a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("invalid engine configuration: {0}")]
    BadConfig(&'static str),
    #[error("invalid power-quality configuration: {0}")]
    BadPqConfig(String),
    #[error("sampling rate {0} Hz is out of range (1 ..= 1000000 Hz)")]
    RateOutOfRange(u32),
    #[error("block starts at sample {got}, before the expected {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("block layout or rate differs from the device's")]
    LayoutChanged,
    #[error("block channels are missing or of unequal length")]
    RaggedBlock,
    #[error("measures {0} is not a waveform layout")]
    NotWaveform(Measures),
    #[error("measures {0} is not a latch layout")]
    NotLatch(Measures),
}

/// What an engine hands out; borrowed values are reused for the next one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EngineOutput<'a> {
    Window(&'a WindowMetrics),
    Latch(&'a LatchWindow),
    TenSecondFrequency(TenSecondFrequency),
    /// Only with `emit_cycle_frequency`.
    Cycle(CycleFrequency),
    /// Only with `[dsp.pq]`: a dip, swell, interruption or RVC, when it ends.
    PqEvent(&'a PqEvent),
    /// Only with `[dsp.pq]` and `keep_half_cycle`.
    HalfCycle(&'a HalfCycleRms),
    /// Only with `[dsp.pq.flicker]`: `Pst`, `Plt` (and `Pinst` with
    /// `keep_pinst`) of one voltage channel.
    Flicker(FlickerValue),
    /// A run of samples outside the channels' physical range (or NaN/inf),
    /// once it has ended; the windows holding them are flagged.
    InvalidSamples(InvalidSamples),
    /// Only from an inferring engine, before anything else: what its first
    /// second said and the configuration the engine runs with.
    Nominal {
        inference: &'a NominalInference,
        config: &'a EngineConfig,
    },
}

impl EngineOutput<'_> {
    /// An owned copy (allocates), e.g. to send to another thread.
    pub fn to_owned_output(&self) -> OwnedOutput {
        match *self {
            EngineOutput::Window(w) => OwnedOutput::Window(Box::new(w.clone())),
            EngineOutput::Latch(w) => OwnedOutput::Latch(Box::new(w.clone())),
            EngineOutput::TenSecondFrequency(f) => OwnedOutput::TenSecondFrequency(f),
            EngineOutput::Cycle(c) => OwnedOutput::Cycle(c),
            EngineOutput::PqEvent(e) => OwnedOutput::PqEvent(*e),
            EngineOutput::HalfCycle(h) => OwnedOutput::HalfCycle(*h),
            EngineOutput::Flicker(f) => OwnedOutput::Flicker(f),
            EngineOutput::InvalidSamples(run) => OwnedOutput::InvalidSamples(run),
            EngineOutput::Nominal { inference, config } => OwnedOutput::Nominal {
                inference: *inference,
                config: Box::new(config.clone()),
            },
        }
    }
}

/// Owned form of [`EngineOutput`].
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedOutput {
    Window(Box<WindowMetrics>),
    Latch(Box<LatchWindow>),
    TenSecondFrequency(TenSecondFrequency),
    Cycle(CycleFrequency),
    PqEvent(PqEvent),
    HalfCycle(HalfCycleRms),
    Flicker(FlickerValue),
    InvalidSamples(InvalidSamples),
    Nominal {
        inference: NominalInference,
        config: Box<EngineConfig>,
    },
}

/// Engine for waveform layouts (`v,i,v,i,v,i`, `v,i`, `v,i_Lx`).
#[derive(Debug)]
pub struct WaveformEngine {
    measures: Measures,
    rate: u32,
    clock: SampleClock,
    reference: Option<usize>,
    detector: ZeroCrossingDetector,
    assembler: WindowAssembler,
    ten_seconds: TenSecondTracker,
    /// Per-cycle frequencies, when enabled.
    cycles: Option<CycleTracker>,
    calculator: WindowCalculator,
    /// Samples from `buffer_start` on, per channel.
    buffer: Vec<Vec<f32>>,
    buffer_start: u64,
    next_index: Option<u64>,
    crossings: Vec<f64>,
    spans: Vec<WindowSpan>,
    frequencies: Vec<TenSecondFrequency>,
    metrics: WindowMetrics,
    energy: EnergyCounters,
    /// With `[dsp.pq]`; windows then wait until it knows every event they
    /// could overlap (about two cycles).
    pq: Option<Box<PqDetector>>,
    /// With `[dsp.pq.flicker]`: (phase, channel, meter) per voltage channel.
    flicker: Vec<(u8, usize, FlickerMeter)>,
    /// Keeps invalid samples out of every stage above.
    screen: SampleScreen,
}

impl WaveformEngine {
    pub fn new(
        config: &EngineConfig,
        measures: Measures,
        rate: u32,
        start_unix_ns: i64,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        if measures.is_latch() {
            return Err(EngineError::NotWaveform(measures));
        }
        if !crate::wire::samples::rate_in_range(rate) {
            return Err(EngineError::RateOutOfRange(rate));
        }
        let nominal = config.nominal_hz();
        let map = ChannelMap::of(measures);
        let clock = SampleClock {
            start_unix_ns,
            rate,
        };
        let present = [0, 1, 2].map(|k| map.voltage[k].is_some() && map.current[k].is_some());
        let pq_config = config.pq_config();
        let pq = match &pq_config {
            Some(pq) => Some(Box::new(
                PqDetector::new(pq, measures, rate, nominal, start_unix_ns, 0)
                    .map_err(|e| EngineError::BadPqConfig(e.to_string()))?,
            )),
            None => None,
        };
        let mut flicker = Vec::new();
        if let Some(settings) = pq_config.as_ref().map(|pq| &pq.flicker) {
            // Below its rate a flickermeter cannot weight 8.8 Hz: such a
            // stream runs without one (its `pst` stay empty), not refused.
            if settings.enabled && rate >= super::flicker::MIN_RATE_HZ {
                let meter_config = settings.config(rate, nominal, config.udin_v());
                for (phase, channel) in map.voltage.iter().enumerate() {
                    let Some(channel) = *channel else { continue };
                    let meter = FlickerMeter::new(meter_config.clone())
                        .map_err(|e| EngineError::BadPqConfig(e.to_string()))?;
                    flicker.push((phase as u8, channel, meter));
                }
            }
        }
        let assembler = WindowAssembler::new(rate, nominal, config.window_cycles(), 0.0);
        // The longest valid window; with the window waiting on the PQ
        // detector and a block in flight it grows once, by `reserve_for`.
        let buffer_capacity = assembler.max_window_samples();
        Ok(WaveformEngine {
            measures,
            rate,
            clock,
            reference: map.reference(),
            detector: ZeroCrossingDetector::new(rate, nominal, config.min_reference_peak_v),
            assembler,
            ten_seconds: TenSecondTracker::new(clock, nominal),
            cycles: config
                .emit_cycle_frequency
                .then(|| CycleTracker::new(clock, nominal)),
            calculator: WindowCalculator::new(
                measures,
                rate,
                nominal,
                config.harmonic_order(),
                config.keep_harmonic_subgroups,
            ),
            buffer: (0..measures.channel_count())
                .map(|_| Vec::with_capacity(buffer_capacity))
                .collect(),
            buffer_start: 0,
            next_index: None,
            crossings: Vec::new(),
            spans: Vec::new(),
            frequencies: Vec::new(),
            metrics: WindowMetrics::default(),
            energy: EnergyCounters::new(present),
            pq,
            flicker,
            screen: SampleScreen::new(measures, rate, config.sample_limits()),
        })
    }

    /// Invalid sample values met so far (see [`SampleScreen`]).
    pub fn invalid_sample_values(&self) -> u64 {
        self.screen.total_values()
    }

    pub fn energy(&self) -> &EnergyCounters {
        &self.energy
    }

    /// Continues from saved counters (same meter after a restart).
    pub fn restore_energy(&mut self, counters: EnergyCounters) {
        self.energy = counters;
    }

    /// Consumes the next block; `sink` sees every window it completes.
    pub fn push_block(
        &mut self,
        block: &SampleBlock,
        sink: &mut dyn FnMut(EngineOutput<'_>),
    ) -> Result<(), EngineError> {
        check_block(block, self.measures, self.rate)?;
        match self.next_index {
            None => {
                let flags = if block.gap_before > 0 {
                    WindowFlags::GAP
                } else {
                    WindowFlags::NONE
                };
                // Data starts at its first sample's instant, not at the lower
                // edge of its cell: no window may start before it. Only a
                // stream resumed mid-way without loss (a restarted process)
                // continues from the cell edge where the last window ended.
                let first = block.first_index as f64;
                let resumed = block.first_index > 0 && block.gap_before == 0;
                let start = if resumed { first - 0.5 } else { first };
                self.assembler.restart(start, flags);
                self.buffer_start = block.first_index;
                if let Some(pq) = &mut self.pq {
                    // Nothing is open yet: this only moves the start.
                    let start = block.first_index;
                    pq.on_gap(start as f64 - 0.5, start, &mut pq_sink(sink));
                }
            }
            Some(expected) if block.first_index < expected => {
                return Err(EngineError::OutOfOrder {
                    expected,
                    got: block.first_index,
                });
            }
            Some(expected) if block.first_index > expected || block.gap_before > 0 => {
                self.assembler.on_gap(
                    expected as f64 - 0.5,
                    block.first_index as f64,
                    &mut self.spans,
                );
                self.ten_seconds.on_gap();
                if let Some(cycles) = &mut self.cycles {
                    cycles.on_gap();
                }
                if let Some(pq) = &mut self.pq {
                    let data_end = expected as f64 - 0.5;
                    pq.on_gap(data_end, block.first_index, &mut pq_sink(sink));
                }
                for (_, _, meter) in &mut self.flicker {
                    meter.gap();
                }
                self.screen.end_run();
                self.emit_spans(sink);
                self.detector.reset();
                for channel in &mut self.buffer {
                    channel.clear();
                }
                self.buffer_start = block.first_index;
            }
            Some(_) => {}
        }
        let end = block.first_index + block.len() as u64;
        self.next_index = Some(end);
        // From here on every stage sees valid samples only.
        let screened = self.screen.screen(block);
        let channels: &[Vec<f32>] = if screened {
            self.screen.clean()
        } else {
            &block.channels
        };
        // Before the windows of this block: a `Pst` closes before the
        // 10-min aggregate it belongs to.
        if !self.flicker.is_empty() {
            let first_ns = self.clock.time_ns(block.first_index as f64);
            for (phase, channel, meter) in &mut self.flicker {
                let phase = *phase;
                meter.push(&channels[*channel], first_ns, &mut |output| {
                    sink(EngineOutput::Flicker(FlickerValue { phase, output }));
                });
            }
        }
        reserve_for(&mut self.buffer, block.len());
        for (buffer, channel) in self.buffer.iter_mut().zip(channels) {
            buffer.extend_from_slice(channel);
        }
        self.crossings.clear();
        if let Some(reference) = self.reference {
            self.detector
                .process(block.first_index, &channels[reference], &mut self.crossings);
        }
        for &crossing in &self.crossings {
            self.assembler.advance_to(crossing, &mut self.spans);
            self.ten_seconds
                .on_crossing(crossing, &mut self.frequencies);
            if let Some(cycle) = self.cycles.as_mut().and_then(|c| c.on_crossing(crossing)) {
                sink(EngineOutput::Cycle(cycle));
            }
            self.assembler.on_crossing(crossing, &mut self.spans);
        }
        // Crossings before `horizon` are all known (the filter lags by its delay).
        let horizon = end as f64 - 2.0 - self.detector.delay_samples();
        if let Some(pq) = &mut self.pq {
            let mut slices: [&[f32]; 6] = [&[]; 6];
            for (slot, channel) in slices.iter_mut().zip(channels) {
                *slot = channel;
            }
            let channels = &slices[..channels.len().min(6)];
            pq.push(channels, &self.crossings, horizon, &mut pq_sink(sink));
        }
        self.assembler.advance_to(horizon, &mut self.spans);
        self.emit_spans(sink);
        self.trim_buffer();
        Ok(())
    }

    /// End of the stream: emits the partial window and the open 10-s value.
    pub fn finish(&mut self, sink: &mut dyn FnMut(EngineOutput<'_>)) {
        if let Some(end) = self.next_index {
            self.assembler.finish(end as f64 - 0.5, &mut self.spans);
            self.ten_seconds.finish(&mut self.frequencies);
            if let Some(pq) = &mut self.pq {
                pq.finish(end as f64 - 0.5, &mut pq_sink(sink));
            }
            for (phase, _, meter) in &mut self.flicker {
                let phase = *phase;
                meter.finish(&mut |output| {
                    sink(EngineOutput::Flicker(FlickerValue { phase, output }));
                });
            }
            self.screen.end_run();
            self.emit_spans(sink);
            self.trim_buffer();
        }
    }

    fn emit_spans(&mut self, sink: &mut dyn FnMut(EngineOutput<'_>)) {
        for frequency in self.frequencies.drain(..) {
            sink(EngineOutput::TenSecondFrequency(frequency));
        }
        let mut slices: [&[f32]; 6] = [&[]; 6];
        for (slot, channel) in slices.iter_mut().zip(&self.buffer) {
            *slot = channel;
        }
        let channels = &slices[..self.buffer.len().min(6)];
        let offset = self.buffer_start as f64;
        let ready = match &self.pq {
            Some(pq) => {
                let known = pq.known_until();
                self.spans.partition_point(|s| s.end <= known)
            }
            None => self.spans.len(),
        };
        for span in self.spans.drain(..ready) {
            self.calculator
                .compute(channels, offset, &span, &mut self.metrics);
            let m = &mut self.metrics;
            // After `compute`: the flag must not change how the window is computed.
            if let Some(pq) = &mut self.pq {
                if pq.overlaps_event(span.start, span.end) {
                    m.flags |= WindowFlags::PQ_EVENT;
                }
            }
            // Samples with weight in the window: centres in (start − ½, end + ½).
            let first_touched = (span.start + 0.5).floor().max(0.0) as u64;
            let last_touched = ((span.end + 0.5).ceil() - 1.0).max(0.0) as u64;
            if self.screen.holds_invalid(first_touched, last_touched) {
                // Computed from stand-in values: flagged, and no energy.
                m.flags |= WindowFlags::INVALID_SAMPLES;
                for phase in m.phases.iter_mut().flatten() {
                    phase.energy_wh = 0.0;
                }
                m.energy_total_wh = 0.0;
            }
            self.screen.forget_before(last_touched);
            m.start_unix_ns = self.clock.time_ns(span.start);
            m.end_unix_ns = self.clock.time_ns(span.end);
            let first = span.start.ceil().max(0.0) as u64;
            m.first_sample = first;
            m.sample_count = (span.end.ceil().max(0.0) as u64).saturating_sub(first);
            self.energy.add_window(m);
            sink(EngineOutput::Window(m));
        }
        for mut run in self.screen.take_closed() {
            run.start_unix_ns = self.clock.time_ns(run.first_sample as f64);
            run.end_unix_ns = self.clock.time_ns(run.last_sample as f64);
            sink(EngineOutput::InvalidSamples(run));
        }
    }

    /// Drops samples no later window needs, once they are at least as many
    /// as those kept: dropping moves every kept sample to the front, and
    /// doing it after each block moved the open window's samples (up to a
    /// whole window) once per block.
    fn trim_buffer(&mut self) {
        let start = self.assembler.current_start();
        // Windows waiting for the PQ detector still need their samples.
        let start = self.spans.first().map_or(start, |s| s.start.min(start));
        let keep_from = (start + 0.5).floor().max(0.0) as u64;
        let len = self.buffer.first().map_or(0, Vec::len);
        let drop = (keep_from.saturating_sub(self.buffer_start) as usize).min(len);
        if drop > 0 && drop >= len - drop {
            for channel in &mut self.buffer {
                channel.drain(..drop);
            }
            self.buffer_start += drop as u64;
        }
    }
}

/// Grows the buffer, when `incoming` samples would not fit, to what it
/// then holds plus a quarter instead of letting `extend` double it: a
/// `Vec` keeps the capacity it reached for the meter's whole stream,
/// and doubling held about twice the samples a window needs (50 engines
/// fed 320–680-sample blocks: 225 kB each before, 152 kB after, with the
/// shared harmonic analyzer).
fn reserve_for(buffer: &mut [Vec<f32>], incoming: usize) {
    for channel in buffer {
        let need = channel.len() + incoming;
        if need > channel.capacity() {
            channel.reserve_exact(need + need / 4 - channel.len());
        }
    }
}

/// Hands the PQ detector's outputs on as engine outputs.
fn pq_sink<'s>(sink: &'s mut dyn FnMut(EngineOutput<'_>)) -> impl FnMut(PqOutput<'_>) + 's {
    move |output| match output {
        PqOutput::Event(event) => sink(EngineOutput::PqEvent(event)),
        PqOutput::HalfCycle(value) => sink(EngineOutput::HalfCycle(value)),
    }
}

/// One device's engine, whatever its layout.
#[derive(Debug)]
pub enum DeviceEngine {
    Waveform(Box<WaveformEngine>),
    Latch(Box<LatchEngine>),
    /// A waveform meter's first second, until its Udin and frequency are known.
    Inferring(Box<InferringEngine>),
}

impl DeviceEngine {
    /// The right engine for `measures`.
    pub fn new(
        config: &EngineConfig,
        measures: Measures,
        rate: u32,
        start_unix_ns: i64,
    ) -> Result<Self, EngineError> {
        if measures.is_latch() {
            Ok(DeviceEngine::Latch(Box::new(LatchEngine::new(
                measures,
                rate,
                start_unix_ns,
            )?)))
        } else {
            Ok(DeviceEngine::Waveform(Box::new(WaveformEngine::new(
                config,
                measures,
                rate,
                start_unix_ns,
            )?)))
        }
    }

    /// [`new`](Self::new), except that a waveform meter whose Udin or
    /// nominal frequency `config` does not give gets them inferred from its
    /// first second (see [`InferringEngine`]); a pipeline's meters use this.
    pub fn inferring(
        config: &EngineConfig,
        measures: Measures,
        rate: u32,
        start_unix_ns: i64,
    ) -> Result<Self, EngineError> {
        if measures.is_latch() || !config.infers_nominal() {
            return Self::new(config, measures, rate, start_unix_ns);
        }
        Ok(DeviceEngine::Inferring(Box::new(InferringEngine::new(
            config,
            measures,
            rate,
            start_unix_ns,
        )?)))
    }

    /// An engine for the stream `block` belongs to.
    pub fn for_block(config: &EngineConfig, block: &SampleBlock) -> Result<Self, EngineError> {
        Self::new(config, block.measures, block.rate, block.start_unix_ns)
    }

    pub fn push_block(
        &mut self,
        block: &SampleBlock,
        sink: &mut dyn FnMut(EngineOutput<'_>),
    ) -> Result<(), EngineError> {
        match self {
            DeviceEngine::Waveform(engine) => engine.push_block(block, sink),
            DeviceEngine::Latch(engine) => {
                engine.push_block(block, &mut |w: &LatchWindow| sink(EngineOutput::Latch(w)))
            }
            DeviceEngine::Inferring(pending) => {
                if pending.hold(block)? {
                    self.start_inferred(sink)?;
                }
                Ok(())
            }
        }
    }

    /// An inferring engine becomes a waveform engine (from what it holds).
    fn start_inferred(
        &mut self,
        sink: &mut dyn FnMut(EngineOutput<'_>),
    ) -> Result<(), EngineError> {
        let DeviceEngine::Inferring(pending) = self else {
            return Ok(());
        };
        let (engine, refused) = pending.start(sink)?;
        *self = DeviceEngine::Waveform(engine);
        refused.map_or(Ok(()), Err)
    }

    pub fn finish(&mut self, sink: &mut dyn FnMut(EngineOutput<'_>)) {
        if let Err(error) = self.start_inferred(sink) {
            // The stream ends here: nothing is left to refuse.
            tracing::warn!("engine refused a held block: {error}");
        }
        match self {
            DeviceEngine::Waveform(engine) => engine.finish(sink),
            DeviceEngine::Latch(engine) => {
                engine.finish(&mut |w: &LatchWindow| sink(EngineOutput::Latch(w)))
            }
            DeviceEngine::Inferring(_) => {}
        }
    }

    pub fn energy(&self) -> &EnergyCounters {
        match self {
            DeviceEngine::Waveform(engine) => engine.energy(),
            DeviceEngine::Latch(engine) => engine.energy(),
            DeviceEngine::Inferring(pending) => pending.energy(),
        }
    }

    pub fn restore_energy(&mut self, counters: EnergyCounters) {
        match self {
            DeviceEngine::Waveform(engine) => engine.restore_energy(counters),
            DeviceEngine::Latch(engine) => engine.restore_energy(counters),
            DeviceEngine::Inferring(pending) => pending.restore_energy(counters),
        }
    }

    /// Convenience: every output of one block, owned (allocates).
    pub fn process(&mut self, block: &SampleBlock) -> Result<Vec<OwnedOutput>, EngineError> {
        let mut out = Vec::new();
        self.push_block(block, &mut |o| out.push(o.to_owned_output()))?;
        Ok(out)
    }
}
