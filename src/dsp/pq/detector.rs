//! The streaming power-quality detector of one device: reference crossings
//! and voltage samples in, `Urms(1/2)` values and events out.
//!
//! It does not find crossings itself: the engine (or [`PqStream`](super::PqStream))
//! runs the one [`ZeroCrossingDetector`](crate::dsp::zero_crossing::ZeroCrossingDetector)
//! and hands over the crossings of each block with the horizon before which
//! all of them are known. Allocation-free once its buffers have grown.

use std::collections::VecDeque;

use super::cycle_clock::{CycleClock, Tick};
use super::half_cycle::{CycleValue, HalfCycleCalculator};
use super::rvc::RvcDetector;
use super::voltage_events::{RawEvent, ThresholdDetector};
use super::{PqConfig, PqConfigError};
use crate::dsp::frequency::SampleClock;
use crate::dsp::metrics::ChannelMap;
use crate::model::pq_event::{HalfCycleRms, PhaseSet, PqEvent, PqEventFlags, PqEventKind};
use crate::wire::layout::Measures;

/// Closed events remembered for window flagging: windows lag the detector
/// by about one window plus two cycles, far fewer events than this (each
/// lasts at least half a cycle) fit in that time.
const MAX_REMEMBERED: usize = 64;

/// What the detector hands out; borrowed values are reused for the next one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PqOutput<'a> {
    Event(&'a PqEvent),
    /// Only with `keep_half_cycle`.
    HalfCycle(&'a HalfCycleRms),
}

/// Why a detector could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PqError {
    #[error(transparent)]
    Config(#[from] PqConfigError),
    #[error("measures {0} has no voltage channel")]
    NoVoltage(Measures),
    #[error("sampling rate {0} Hz is out of range (1 ..= 1000000 Hz)")]
    RateOutOfRange(u32),
    #[error("nominal frequency {0} Hz is out of range (1 ..= 1000 Hz)")]
    NominalOutOfRange(f64),
}

/// Refuses a nominal frequency the buffers sized by it cannot take.
pub(crate) fn check_nominal(nominal_hz: f64) -> Result<(), PqError> {
    let (min, max) = crate::dsp::NOMINAL_FREQUENCY_HZ;
    if (min..=max).contains(&nominal_hz) {
        Ok(())
    } else {
        Err(PqError::NominalOutOfRange(nominal_hz))
    }
}

/// Everything that reacts to one `Urms(1/2)` value.
#[derive(Debug, Clone)]
struct Machines {
    config: PqConfig,
    clock: SampleClock,
    dip: ThresholdDetector,
    swell: ThresholdDetector,
    interruption: ThresholdDetector,
    rvc: RvcDetector,
    /// The next value is the first after the start or a gap.
    first: bool,
    /// Closed dip/swell/interruption spans not yet passed by windows.
    closed: VecDeque<(f64, f64)>,
    event: PqEvent,
    half_cycle: HalfCycleRms,
}

impl Machines {
    fn on_value(&mut self, value: &CycleValue, sink: &mut dyn FnMut(PqOutput<'_>)) {
        if self.config.keep_half_cycle {
            self.half_cycle = HalfCycleRms {
                start_unix_ns: self.clock.time_ns(value.start),
                end_unix_ns: self.clock.time_ns(value.end),
                v_rms_v: value.rms.map(|v| (!v.is_nan()).then_some(v)),
                extrapolated: value.extrapolated,
            };
            sink(PqOutput::HalfCycle(&self.half_cycle));
        }
        let first = std::mem::replace(&mut self.first, false);
        let closed = [
            self.interruption.step(value, first),
            self.dip.step(value, first),
            self.swell.step(value, first),
        ];
        let disturbed = self.dip.is_open() || self.swell.is_open();
        let rvc = self.rvc.step(value, disturbed);
        for raw in closed.into_iter().chain([rvc]).flatten() {
            self.emit(&raw, sink);
        }
    }

    /// Closes whatever is open at `end` with `flags`.
    fn close_all(&mut self, end: f64, flags: PqEventFlags, sink: &mut dyn FnMut(PqOutput<'_>)) {
        let closed = [
            self.interruption.close(end, flags),
            self.dip.close(end, flags),
            self.swell.close(end, flags),
            self.rvc.close(end, flags),
        ];
        for raw in closed.into_iter().flatten() {
            self.emit(&raw, sink);
        }
        self.first = true;
    }

    fn emit(&mut self, raw: &RawEvent, sink: &mut dyn FnMut(PqOutput<'_>)) {
        if raw.kind != PqEventKind::Rvc {
            if self.closed.len() == MAX_REMEMBERED {
                self.closed.pop_front();
            }
            self.closed.push_back((raw.start, raw.end));
        }
        let start_unix_ns = self.clock.time_ns(raw.start);
        let end_unix_ns = self.clock.time_ns(raw.end);
        let pct = |v: f64| self.config.pct_udin(v);
        self.event = PqEvent {
            kind: raw.kind,
            start_unix_ns,
            end_unix_ns,
            duration_s: (end_unix_ns - start_unix_ns) as f64 * 1e-9,
            extreme_v: raw.extreme_v,
            extreme_pct_udin: pct(raw.extreme_v),
            delta_u_max_v: raw.delta_u_max_v,
            delta_u_max_pct_udin: raw.delta_u_max_v.map(pct),
            delta_u_ss_v: raw.delta_u_ss_v,
            delta_u_ss_pct_udin: raw.delta_u_ss_v.map(pct),
            phases: raw.phases,
            flags: raw.flags,
        };
        sink(PqOutput::Event(&self.event));
    }

    /// A dip, swell or interruption overlaps `[start, end)` (positions).
    fn overlaps(&self, start: f64, end: f64) -> bool {
        let open = [
            self.dip.open_since(),
            self.swell.open_since(),
            self.interruption.open_since(),
        ];
        open.into_iter().flatten().any(|since| since < end)
            || self.closed.iter().any(|&(s, e)| s < end && e > start)
    }
}

/// Half-cycle RMS and dip/swell/interruption/RVC detection for one device.
#[derive(Debug, Clone)]
pub struct PqDetector {
    voltage: [Option<usize>; 3],
    /// Phase of the reference voltage (the first present).
    reference: usize,
    cycle_clock: CycleClock,
    calculator: HalfCycleCalculator,
    machines: Machines,
    ticks: Vec<Tick>,
}

impl PqDetector {
    /// A detector for a `measures` stream at `rate` whose sample 0 is at
    /// `start_unix_ns`, starting with sample `first_index`.
    pub fn new(
        config: &PqConfig,
        measures: Measures,
        rate: u32,
        nominal_hz: f64,
        start_unix_ns: i64,
        first_index: u64,
    ) -> Result<Self, PqError> {
        config.validate()?;
        if !crate::wire::samples::rate_in_range(rate) {
            return Err(PqError::RateOutOfRange(rate));
        }
        check_nominal(nominal_hz)?;
        let voltage = ChannelMap::of(measures).voltage;
        if voltage.iter().all(Option::is_none) {
            return Err(PqError::NoVoltage(measures));
        }
        let present = voltage.map(|v| v.is_some());
        Ok(PqDetector {
            voltage,
            reference: present.iter().position(|&p| p).unwrap_or(0),
            cycle_clock: CycleClock::new(rate, nominal_hz, first_index as f64),
            calculator: HalfCycleCalculator::new(present, first_index),
            machines: Machines {
                config: config.clone(),
                clock: SampleClock {
                    start_unix_ns,
                    rate,
                },
                dip: ThresholdDetector::dip(config),
                swell: ThresholdDetector::swell(config),
                interruption: ThresholdDetector::interruption(config),
                rvc: RvcDetector::new(config, present, nominal_hz)?,
                first: true,
                closed: VecDeque::with_capacity(MAX_REMEMBERED),
                event: empty_event(),
                half_cycle: HalfCycleRms {
                    start_unix_ns: 0,
                    end_unix_ns: 0,
                    v_rms_v: [None; 3],
                    extrapolated: false,
                },
            },
            ticks: Vec::new(),
        })
    }

    pub fn config(&self) -> &PqConfig {
        &self.machines.config
    }

    /// The next block's samples (all channels, layout order, following the
    /// previous block without a gap), the reference crossings found in it
    /// (ascending positions) and the horizon before which every crossing is
    /// known. Blocks may be cut anywhere: the output does not depend on it.
    pub fn push(
        &mut self,
        channels: &[&[f32]],
        crossings: &[f64],
        horizon: f64,
        sink: &mut dyn FnMut(PqOutput<'_>),
    ) {
        let empty: &[f32] = &[];
        let voltages = self
            .voltage
            .map(|v| v.and_then(|c| channels.get(c).copied()).unwrap_or(empty));
        self.calculator.append(&voltages);
        self.ticks.clear();
        let ticks = &mut self.ticks;
        let reach = self.cycle_clock.nominal_period() / 8.0;
        for &crossing in crossings {
            let refined = self
                .calculator
                .raw_crossing(self.reference, crossing, reach);
            self.cycle_clock
                .on_crossing(crossing, refined, &mut |t| ticks.push(t));
        }
        self.cycle_clock.advance_to(horizon, &mut |t| ticks.push(t));
        for &tick in &self.ticks {
            let machines = &mut self.machines;
            self.calculator
                .on_tick(tick, &mut |value| machines.on_value(value, sink));
        }
    }

    /// Samples stop at position `data_end` and resume with sample `resume`:
    /// open events close there, flagged [`PqEventFlags::GAP`].
    pub fn on_gap(&mut self, data_end: f64, resume: u64, sink: &mut dyn FnMut(PqOutput<'_>)) {
        self.machines.close_all(data_end, PqEventFlags::GAP, sink);
        self.restart(resume);
    }

    /// End of the stream (or disconnect) at position `data_end`: open events
    /// close there, flagged [`PqEventFlags::OPEN_AT_END`].
    pub fn finish(&mut self, data_end: f64, sink: &mut dyn FnMut(PqOutput<'_>)) {
        self.machines
            .close_all(data_end, PqEventFlags::OPEN_AT_END, sink);
        self.restart(data_end.ceil().max(0.0) as u64);
    }

    fn restart(&mut self, first_index: u64) {
        self.calculator.restart(first_index);
        self.cycle_clock.restart(first_index as f64);
    }

    /// Every event touching a position before this is known (it is at most
    /// about two cycles behind the horizon).
    pub fn known_until(&self) -> f64 {
        self.calculator.known_until()
    }

    /// A dip, swell or interruption overlaps positions `[start, end)`; exact
    /// once `end <= known_until()`. Spans ending before `start` are
    /// forgotten, so ask in increasing order.
    pub fn overlaps_event(&mut self, start: f64, end: f64) -> bool {
        while self
            .machines
            .closed
            .front()
            .is_some_and(|&(_, e)| e <= start)
        {
            self.machines.closed.pop_front();
        }
        self.machines.overlaps(start, end)
    }
}

fn empty_event() -> PqEvent {
    PqEvent {
        kind: PqEventKind::Dip,
        start_unix_ns: 0,
        end_unix_ns: 0,
        duration_s: 0.0,
        extreme_v: 0.0,
        extreme_pct_udin: 0.0,
        delta_u_max_v: None,
        delta_u_max_pct_udin: None,
        delta_u_ss_v: None,
        delta_u_ss_pct_udin: None,
        phases: PhaseSet::NONE,
        flags: PqEventFlags::NONE,
    }
}
