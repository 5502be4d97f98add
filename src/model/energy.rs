//! Cumulative imported and exported energy per phase and in total, as state
//! that serialises, so counters survive restarts and reconnects.
//!
//! Each window adds P × its measured duration; a gap has no duration, so its
//! energy is never invented. The total nets the phases per window before
//! splitting into import and export (what a bidirectional meter registers).

use serde::{Deserialize, Serialize};

use super::window::{WindowFlags, WindowMetrics};

/// Energy one way and the other, Wh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyFlow {
    /// Energy with P > 0, Wh.
    pub import_wh: f64,
    /// Energy with P < 0, as a positive number, Wh.
    pub export_wh: f64,
}

impl EnergyFlow {
    /// Adds signed energy: positive imports, negative exports.
    pub fn add(&mut self, wh: f64) {
        if wh >= 0.0 {
            self.import_wh += wh;
        } else {
            self.export_wh -= wh;
        }
    }

    /// Import minus export, Wh.
    pub fn net_wh(&self) -> f64 {
        self.import_wh - self.export_wh
    }
}

/// A device's energy registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyCounters {
    /// L1, L2, L3; `None` for phases the device does not carry.
    pub phases: [Option<EnergyFlow>; 3],
    /// Per-window net of the phases, split by sign.
    pub total: EnergyFlow,
    /// Seconds of signal that went into the counters.
    pub measured_s: f64,
    /// Windows left out because they held invalid samples.
    pub skipped_windows: u64,
}

impl EnergyCounters {
    /// Zeroed counters for the phases present (`true` = carried).
    pub fn new(phases_present: [bool; 3]) -> Self {
        EnergyCounters {
            phases: phases_present.map(|on| on.then(EnergyFlow::default)),
            ..EnergyCounters::default()
        }
    }

    /// Adds one waveform window's energy.
    pub fn add_window(&mut self, window: &WindowMetrics) {
        if window.flags.contains(WindowFlags::INVALID_SAMPLES) {
            self.skipped_windows += 1;
            return;
        }
        let mut total = 0.0;
        for (counter, phase) in self.phases.iter_mut().zip(&window.phases) {
            if let Some(phase) = phase {
                counter
                    .get_or_insert_with(EnergyFlow::default)
                    .add(phase.energy_wh);
                total += phase.energy_wh;
            }
        }
        self.total.add(total);
        self.measured_s += window.duration_s;
    }

    /// Adds energies computed elsewhere (latch windows): per phase Wh, and seconds.
    pub fn add_energies(&mut self, per_phase_wh: [Option<f64>; 3], duration_s: f64) {
        let mut total = 0.0;
        for (counter, wh) in self.phases.iter_mut().zip(per_phase_wh) {
            if let Some(wh) = wh {
                counter.get_or_insert_with(EnergyFlow::default).add(wh);
                total += wh;
            }
        }
        self.total.add(total);
        self.measured_s += duration_s;
    }

    /// JSON form of the state, for checkpoints.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Restores state written by [`to_json`](Self::to_json).
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_split_and_state_round_trips() {
        let mut c = EnergyCounters::new([true, false, false]);
        c.add_energies([Some(2.0), None, None], 1.0);
        c.add_energies([Some(-0.5), None, None], 1.0);
        let l1 = c.phases[0].unwrap_or_default();
        assert_eq!((l1.import_wh, l1.export_wh), (2.0, 0.5));
        assert_eq!(c.phases[1], None);
        assert_eq!(c.total.net_wh(), 1.5);
        let json = c.to_json().unwrap_or_default();
        assert_eq!(EnergyCounters::from_json(&json).ok(), Some(c));
    }
}
