//! Digital flickermeter (IEC 61000-4-15 Ed. 2) per voltage channel, per
//! `shared/specs/power-quality.md`: `Pinst`, `Pst` per clock-aligned 10 min,
//! `Plt` per clock-aligned 2 h, on 50 and 60 Hz grids for the 230 V and the
//! 120 V lamp.
//!
//! The input-rate work is one multiply-add per sample (`decimator`: squaring
//! and a boxcar to ~800 Hz); the filters run at the decimated rate
//! (`chain`, `weighting`), the statistics on `Pinst` (`classifier`), and
//! [`FlickerMeter`] does time, intervals, gaps and settling.

mod book;
mod chain;
mod classifier;
mod decimator;
pub mod iir;
mod meter;
mod output;
pub mod weighting;

use serde::{Deserialize, Serialize};

pub use book::FlickerBook;
pub use classifier::{Classifier, CLASSES};
pub use meter::{FlickerMeter, MIN_RATE_HZ};
pub use output::{FlickerOutput, FlickerValue, SeverityValue};

/// Reference lamp of the weighting filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Lamp {
    #[serde(rename = "230V")]
    V230,
    #[serde(rename = "120V")]
    V120,
}

impl Lamp {
    /// The lamp IEC 61000-4-15 weights a supply of nominal `udin_v` with:
    /// the 120 V lamp on the 100-127 V nominals, the 230 V lamp elsewhere.
    pub fn for_nominal(udin_v: f64) -> Lamp {
        if (100.0..=127.0).contains(&udin_v) {
            Lamp::V120
        } else {
            Lamp::V230
        }
    }

    /// The lamp's voltage, V (the `flicker_lamp_v` column).
    pub fn volts(self) -> u16 {
        match self {
            Lamp::V230 => 230,
            Lamp::V120 => 120,
        }
    }

    /// The lamp's name as the pipeline file spells it (`230V`, `120V`).
    pub fn as_str(self) -> &'static str {
        match self {
            Lamp::V230 => "230V",
            Lamp::V120 => "120V",
        }
    }
}

/// Settling time the spec asks for after a start, a gap or an interruption, s.
pub const DEFAULT_SETTLING_S: f64 = 60.0;

/// One channel's flickermeter.
#[derive(Debug, Clone, PartialEq)]
pub struct FlickerConfig {
    /// Input sampling rate, Hz.
    pub rate_hz: u32,
    /// 50 or 60: picks the 35 or 42 Hz low-pass.
    pub nominal_frequency_hz: f64,
    pub lamp: Lamp,
    /// Declared voltage (Udin), V: below 10 % of it the voltage counts as absent.
    pub nominal_voltage_v: f64,
    /// Also hand out `Pinst` (100 values per second).
    pub keep_pinst: bool,
    /// Values this long after a start, gap or return of the voltage are
    /// flagged [`FlickerFlags::SETTLING`], s.
    pub settling_s: f64,
}

impl FlickerConfig {
    /// Defaults for everything but the stream's own facts.
    pub fn new(
        rate_hz: u32,
        nominal_frequency_hz: f64,
        lamp: Lamp,
        nominal_voltage_v: f64,
    ) -> Self {
        FlickerConfig {
            rate_hz,
            nominal_frequency_hz,
            lamp,
            nominal_voltage_v,
            keep_pinst: false,
            settling_s: DEFAULT_SETTLING_S,
        }
    }
}

/// Why a flickermeter configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlickerError {
    #[error("flicker needs a sampling rate of at least {min} Hz, got {got}")]
    RateTooLow { min: u32, got: u32 },
    #[error("invalid flicker configuration: {0}")]
    BadConfig(&'static str),
}

/// The `[dsp.pq.flicker]` table of a pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FlickerSettings {
    /// Run a flickermeter on every voltage channel (with `[dsp.pq]` on) of
    /// streams sampled at 400 Hz or more.
    pub enabled: bool,
    /// Reference lamp: `"230V"` or `"120V"`; unset, the one of the meter's
    /// Udin (declared or inferred): 120 V for 100-127 V, else 230 V.
    pub lamp: Option<Lamp>,
    /// Also emit `Pinst` (100 per second per channel; the opt-in `pinst` table).
    pub keep_pinst: bool,
    /// Settling time after a start, a gap or an interruption, s.
    pub settling_s: f64,
}

impl Default for FlickerSettings {
    fn default() -> Self {
        FlickerSettings {
            enabled: true,
            lamp: None,
            keep_pinst: false,
            settling_s: DEFAULT_SETTLING_S,
        }
    }
}

impl FlickerSettings {
    /// The meter configuration for one stream (of Udin `nominal_voltage_v`).
    pub fn config(
        &self,
        rate_hz: u32,
        nominal_frequency_hz: f64,
        nominal_voltage_v: f64,
    ) -> FlickerConfig {
        FlickerConfig {
            keep_pinst: self.keep_pinst,
            settling_s: self.settling_s,
            ..FlickerConfig::new(
                rate_hz,
                nominal_frequency_hz,
                self.lamp_for(nominal_voltage_v),
                nominal_voltage_v,
            )
        }
    }
}

impl FlickerSettings {
    /// The lamp a stream of Udin `udin_v` is weighted with: `lamp` when
    /// configured, else the nominal's (see [`Lamp::for_nominal`]).
    pub fn lamp_for(&self, udin_v: f64) -> Lamp {
        self.lamp.unwrap_or_else(|| Lamp::for_nominal(udin_v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lamp_follows_the_nominal_unless_configured() {
        let default = FlickerSettings::default();
        for (udin, lamp) in [
            (100.0, Lamp::V120),
            (110.0, Lamp::V120),
            (115.0, Lamp::V120),
            (120.0, Lamp::V120),
            (127.0, Lamp::V120),
            (200.0, Lamp::V230),
            (208.0, Lamp::V230),
            (230.0, Lamp::V230),
            (240.0, Lamp::V230),
            (277.0, Lamp::V230),
            (347.0, Lamp::V230),
        ] {
            assert_eq!(default.config(8000, 60.0, udin).lamp, lamp, "{udin} V");
        }
        for lamp in [Lamp::V230, Lamp::V120] {
            let configured = FlickerSettings {
                lamp: Some(lamp),
                ..FlickerSettings::default()
            };
            for udin in [120.0, 230.0] {
                assert_eq!(configured.config(8000, 50.0, udin).lamp, lamp, "{udin} V");
            }
        }
    }
}
