//! Latch layouts: the meter already averaged. `p,q` streams give P and Q
//! per phase, aggregated as means; `v,i_RMS` streams give RMS values,
//! aggregated as root mean square. No waveform, so no crossings, no THD:
//! fixed 200 ms windows (at least one sample) counted from the stream start.

use super::engine::EngineError;
use super::frequency::SampleClock;
use crate::model::energy::EnergyCounters;
use crate::model::latch::{LatchPhase, LatchWindow};
use crate::model::window::WindowFlags;
use crate::wire::layout::{Measures, Quantity};
use crate::wire::SampleBlock;

/// Per-device engine for `p,q` and `v,i_RMS` streams.
#[derive(Debug, Clone)]
pub struct LatchEngine {
    measures: Measures,
    rate: u32,
    clock: SampleClock,
    window_samples: u64,
    next_index: Option<u64>,
    first: u64,
    count: u64,
    flags: WindowFlags,
    /// Per channel: Σ value (powers) or Σ value² (RMS), over valid values.
    sums: Vec<f64>,
    valid: Vec<u64>,
    window: LatchWindow,
    energy: EnergyCounters,
}

impl LatchEngine {
    pub fn new(measures: Measures, rate: u32, start_unix_ns: i64) -> Result<Self, EngineError> {
        if !measures.is_latch() {
            return Err(EngineError::NotLatch(measures));
        }
        if !crate::wire::samples::rate_in_range(rate) {
            return Err(EngineError::RateOutOfRange(rate));
        }
        let channels = measures.channel_count();
        let mut present = [false; 3];
        for c in measures.channels() {
            present[c.phase.index()] = true;
        }
        Ok(LatchEngine {
            measures,
            rate,
            clock: SampleClock {
                start_unix_ns,
                rate,
            },
            window_samples: ((f64::from(rate) / 5.0).round() as u64).max(1),
            next_index: None,
            first: 0,
            count: 0,
            flags: WindowFlags::NONE,
            sums: vec![0.0; channels],
            valid: vec![0; channels],
            window: LatchWindow::default(),
            energy: if measures == Measures::PowerLatch {
                EnergyCounters::new(present)
            } else {
                EnergyCounters::new([false; 3])
            },
        })
    }

    pub fn energy(&self) -> &EnergyCounters {
        &self.energy
    }

    pub fn restore_energy(&mut self, counters: EnergyCounters) {
        self.energy = counters;
    }

    /// Consumes one block (in order); `sink` sees each completed window.
    pub fn push_block(
        &mut self,
        block: &SampleBlock,
        sink: &mut dyn FnMut(&LatchWindow),
    ) -> Result<(), EngineError> {
        check_block(block, self.measures, self.rate)?;
        match self.next_index {
            None => {
                self.first = block.first_index;
                self.flags = if block.gap_before > 0 {
                    WindowFlags::GAP
                } else {
                    WindowFlags::NONE
                };
            }
            Some(expected) if block.first_index < expected => {
                return Err(EngineError::OutOfOrder {
                    expected,
                    got: block.first_index,
                })
            }
            Some(expected) if block.first_index > expected || block.gap_before > 0 => {
                self.flags |= WindowFlags::GAP;
                self.emit(sink);
                self.first = block.first_index;
                self.flags = WindowFlags::GAP;
            }
            Some(_) => {}
        }
        self.next_index = Some(block.first_index + block.len() as u64);
        let squares = self.measures == Measures::RmsLatch;
        for n in 0..block.len() {
            for (c, channel) in block.channels.iter().enumerate() {
                let x = channel.get(n).copied().unwrap_or(f32::NAN);
                if x.is_finite() {
                    let x = f64::from(x);
                    self.sums[c] += if squares { x * x } else { x };
                    self.valid[c] += 1;
                } else {
                    self.flags |= WindowFlags::INVALID_SAMPLES;
                }
            }
            self.count += 1;
            if self.count == self.window_samples {
                self.emit(sink);
                self.flags = WindowFlags::NONE;
            }
        }
        Ok(())
    }

    /// Emits the partial window at the end of the stream.
    pub fn finish(&mut self, sink: &mut dyn FnMut(&LatchWindow)) {
        self.flags |= WindowFlags::TRUNCATED;
        self.emit(sink);
        self.flags = WindowFlags::NONE;
    }

    fn emit(&mut self, sink: &mut dyn FnMut(&LatchWindow)) {
        if self.count == 0 {
            return;
        }
        let duration_s = self.count as f64 / f64::from(self.rate);
        let w = &mut self.window;
        w.first_sample = self.first;
        w.sample_count = self.count;
        // Reading n holds from its own instant until the next: the window
        // starts at its first reading, never before the stream does.
        w.start_unix_ns = self.clock.time_ns(self.first as f64);
        w.end_unix_ns = self.clock.time_ns((self.first + self.count) as f64);
        w.duration_s = duration_s;
        w.flags = self.flags;
        w.phases = [None; 3];
        for (c, channel) in self.measures.channels().iter().enumerate() {
            let value = (self.valid[c] > 0).then(|| {
                let mean = self.sums[c] / self.valid[c] as f64;
                match channel.quantity {
                    Quantity::VoltageRms | Quantity::CurrentRms => mean.max(0.0).sqrt(),
                    _ => mean,
                }
            });
            let phase = w.phases[channel.phase.index()].get_or_insert_with(LatchPhase::default);
            match channel.quantity {
                Quantity::ActivePower => {
                    phase.p_w = value;
                    phase.energy_wh = value.map(|p| p * duration_s / 3600.0);
                }
                Quantity::ReactivePower => phase.q_var = value,
                Quantity::VoltageRms => phase.v_rms_v = value,
                Quantity::CurrentRms => phase.i_rms_a = value,
                Quantity::Voltage | Quantity::Current => {}
            }
            self.sums[c] = 0.0;
            self.valid[c] = 0;
        }
        if self.measures == Measures::PowerLatch {
            if w.flags.contains(WindowFlags::INVALID_SAMPLES) {
                self.energy.skipped_windows += 1;
            } else {
                let energies = w.phases.map(|p| p.and_then(|p| p.energy_wh));
                self.energy.add_energies(energies, duration_s);
            }
        }
        sink(w);
        self.first += self.count;
        self.count = 0;
    }
}

/// Refuses blocks that do not belong to this engine.
pub(crate) fn check_block(
    block: &SampleBlock,
    measures: Measures,
    rate: u32,
) -> Result<(), EngineError> {
    if block.measures != measures || block.rate != rate {
        return Err(EngineError::LayoutChanged);
    }
    let len = block.len();
    if block.channels.len() != measures.channel_count()
        || block.channels.iter().any(|c| c.len() != len)
    {
        return Err(EngineError::RaggedBlock);
    }
    Ok(())
}
