//! Power metrics: cycle-synchronous windows, RMS, P/Q1/S, PF, frequency,
//! THD, energy and aggregation, per `shared/specs/power-metrics.md`
//! (IEC 61000-4-30 windows, IEC 61000-4-7 subgroups, IEEE 1459 powers).
//!
//! One device's [`SampleBlock`](crate::wire::SampleBlock)s go into a
//! [`DeviceEngine`] in order; it finds zero crossings, cuts windows, computes
//! [`WindowMetrics`](crate::model::WindowMetrics) and keeps energy counters;
//! [`aggregate`] folds windows into intervals. What it produces are `model`
//! types, so outputs read them without knowing the engine.
//! Unless `[dsp.pq] enabled = false` the engine also runs [`pq`]: half-cycle
//! RMS, dips, swells, interruptions and RVCs, and flags windows that overlap
//! them. A meter whose Udin or nominal frequency is not given gets them
//! inferred from its first second ([`nominal`], [`inferring`]).

pub mod aggregate;
mod complex_ops;
pub mod engine;
pub mod flicker;
pub mod frequency;
pub mod harmonics;
pub mod inferring;
pub mod latch;
pub mod metrics;
pub mod nominal;
pub mod pq;
pub mod sample_screen;
mod sums;
pub mod window;
pub mod wiring;
pub mod zero_crossing;

use serde::{Deserialize, Serialize};

pub use aggregate::{AggregateAccumulator, ClockAggregator, CycleAggregator};
pub use engine::{DeviceEngine, EngineError, EngineOutput, OwnedOutput, WaveformEngine};
pub use frequency::{CycleFrequency, TenSecondFrequency};
pub use latch::LatchEngine;
pub use sample_screen::{InvalidSamples, SampleLimits};

/// Highest harmonic order the engine computes (IEC 61557-12).
pub const MAX_HARMONIC_ORDER: u32 = 50;

/// Nominal frequencies the engine accepts, Hz, both ends included: its
/// crossing filter, windows and RVC buffers grow with rate / nominal.
pub const NOMINAL_FREQUENCY_HZ: (f64, f64) = (1.0, 1000.0);
/// Udin values the engine accepts, V, both ends included.
pub const DECLARED_VOLTAGE_V: (f64, f64) = (1.0, 1_000_000.0);
/// Sample limits (`max_sample_voltage_v`, `max_sample_current_a`) the
/// engine accepts, in V or A, both ends included.
pub const SAMPLE_LIMIT: (f64, f64) = (0.001, 1_000_000.0);

fn within((min, max): (f64, f64), value: f64) -> bool {
    (min..=max).contains(&value)
}

/// Settings shared by every device of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Nominal grid frequency, Hz: 50 or 60. Absent: inferred per meter
    /// (50 or 60 Hz) from its first second.
    pub nominal_frequency_hz: Option<f64>,
    /// Cycles per basic window; `None` = 10 at 50 Hz, 12 at 60 Hz (~200 ms).
    pub cycles_per_window: Option<u32>,
    /// Highest harmonic order in THD, 2..=[`MAX_HARMONIC_ORDER`] (IEC 61000-4-7: 40).
    pub max_harmonic_order: u32,
    /// Also report the subgroup magnitudes G_1..G_H of every channel.
    pub keep_harmonic_subgroups: bool,
    /// Also emit every cycle's frequency ([`EngineOutput::Cycle`]); their
    /// order relative to windows is not defined.
    pub emit_cycle_frequency: bool,
    /// Below this filtered fundamental peak, V, the reference voltage is
    /// treated as absent: no zero crossings, fixed flagged windows.
    pub min_reference_peak_v: f64,
    /// Udin: the declared phase-to-neutral supply voltage, V (IEC 61000-4-30);
    /// power-quality thresholds and the under/over deviation are percent of
    /// it. Absent: `[dsp.pq] udin_v` (its old name), else inferred per meter
    /// from its first second as the nearest standard nominal within ±10 %.
    pub declared_voltage_v: Option<f64>,
    /// Largest magnitude of an instantaneous voltage sample, V. A sample
    /// beyond it (or NaN, inf) is invalid: the engine uses the channel's
    /// last valid value instead, flags the window that holds it, leaves
    /// that window out of the energy registers and reports it as an
    /// `invalid_samples` event. A 230/400 V meter's inputs stay far below.
    pub max_sample_voltage_v: f64,
    /// Largest magnitude of an instantaneous current sample, A (the wire's
    /// mA already converted); beyond it a sample is invalid, as for voltage.
    pub max_sample_current_a: f64,
    /// `[dsp.pq]`: half-cycle RMS and dip/swell/interruption/RVC detection,
    /// PQ-flagged windows; on unless `enabled = false` (`None`: off).
    pub pq: Option<pq::PqConfig>,
}

/// Default of `max_sample_voltage_v`, V.
pub const DEFAULT_MAX_SAMPLE_VOLTAGE_V: f64 = 1000.0;
/// The nominal frequency where none is given or inferred, Hz.
pub const DEFAULT_NOMINAL_FREQUENCY_HZ: f64 = 50.0;
/// Default of `max_sample_current_a`, A.
pub const DEFAULT_MAX_SAMPLE_CURRENT_A: f64 = 1000.0;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            nominal_frequency_hz: None,
            cycles_per_window: None,
            max_harmonic_order: 40,
            keep_harmonic_subgroups: false,
            emit_cycle_frequency: false,
            min_reference_peak_v: 10.0,
            declared_voltage_v: None,
            max_sample_voltage_v: DEFAULT_MAX_SAMPLE_VOLTAGE_V,
            max_sample_current_a: DEFAULT_MAX_SAMPLE_CURRENT_A,
            pq: Some(pq::PqConfig::default()),
        }
    }
}

impl EngineConfig {
    /// Preset for 60 Hz grids (12-cycle windows).
    pub fn nominal_60hz() -> Self {
        EngineConfig {
            nominal_frequency_hz: Some(60.0),
            ..EngineConfig::default()
        }
    }

    /// Cycles per basic window: explicit, or 200 ms worth of nominal cycles.
    pub fn window_cycles(&self) -> u32 {
        self.cycles_per_window
            .unwrap_or_else(|| (self.nominal_hz() / 5.0).round().max(1.0) as u32)
            .max(1)
    }

    /// H actually requested, clamped to 2..=[`MAX_HARMONIC_ORDER`].
    pub fn harmonic_order(&self) -> u32 {
        self.max_harmonic_order.clamp(2, MAX_HARMONIC_ORDER)
    }

    /// Refuses settings that make windows meaningless.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !within(NOMINAL_FREQUENCY_HZ, self.nominal_hz()) {
            return Err(EngineError::BadConfig(
                "nominal_frequency_hz must be within 1 ..= 1000 Hz",
            ));
        }
        if !(self.min_reference_peak_v.is_finite() && self.min_reference_peak_v >= 0.0) {
            return Err(EngineError::BadConfig("min_reference_peak_v must be >= 0"));
        }
        let limits = [self.max_sample_voltage_v, self.max_sample_current_a];
        if !limits.iter().all(|&x| within(SAMPLE_LIMIT, x)) {
            return Err(EngineError::BadConfig(
                "max_sample_voltage_v and max_sample_current_a must be within 0.001 ..= 1e6",
            ));
        }
        if let Some(pq) = &self.pq {
            // Names `dsp.pq.udin_v` when that is the bad one.
            pq.validate()
                .map_err(|e| EngineError::BadPqConfig(e.to_string()))?;
        }
        if !within(DECLARED_VOLTAGE_V, self.udin_v()) {
            return Err(EngineError::BadConfig(
                "declared_voltage_v must be within 1 ..= 1e6 V",
            ));
        }
        if let Some(pq) = &self.pq {
            if let (Some(old), Some(new)) = (pq.udin_v, self.declared_voltage_v) {
                if old != new {
                    return Err(EngineError::BadPqConfig(format!(
                        "dsp.pq.udin_v = {old} differs from dsp.declared_voltage_v = {new}: \
                         udin_v is the old name of declared_voltage_v, keep one"
                    )));
                }
            }
            self.pq_config()
                .unwrap_or_default()
                .validate()
                .map_err(|e| EngineError::BadPqConfig(e.to_string()))?;
        }
        Ok(())
    }

    /// The physical range samples are screened against.
    pub fn sample_limits(&self) -> SampleLimits {
        SampleLimits {
            voltage_v: self.max_sample_voltage_v,
            current_a: self.max_sample_current_a,
        }
    }

    /// The nominal frequency, Hz: given, else 50 Hz (what an engine built
    /// without inference uses).
    pub fn nominal_hz(&self) -> f64 {
        self.nominal_frequency_hz
            .unwrap_or(DEFAULT_NOMINAL_FREQUENCY_HZ)
    }

    /// Udin as given: `declared_voltage_v`, else `[dsp.pq] udin_v`.
    pub fn declared_udin_v(&self) -> Option<f64> {
        self.declared_voltage_v
            .or(self.pq.as_ref().and_then(|pq| pq.udin_v))
    }

    /// Udin, V: given, else 230 V (what an engine built without inference uses).
    pub fn udin_v(&self) -> f64 {
        self.declared_udin_v().unwrap_or(pq::DEFAULT_UDIN_V)
    }

    /// Whether a pipeline's meters infer Udin or the nominal frequency.
    pub fn infers_nominal(&self) -> bool {
        self.declared_udin_v().is_none() || self.nominal_frequency_hz.is_none()
    }

    /// This configuration with what `inference` found filled in. Without a
    /// Udin or a frequency (neither given nor inferred) power quality is off:
    /// its thresholds would be percent of a guess.
    pub fn with_inferred(&self, inference: &nominal::NominalInference) -> EngineConfig {
        let frequency = self.nominal_frequency_hz.or(inference.frequency_hz);
        let udin = self.declared_udin_v().or(inference.udin_v);
        let mut config = self.clone();
        config.nominal_frequency_hz = Some(frequency.unwrap_or(DEFAULT_NOMINAL_FREQUENCY_HZ));
        config.declared_voltage_v = udin;
        if udin.is_none() || frequency.is_none() {
            config.pq = None;
        }
        config
    }

    /// `[dsp.pq]` with its Udin resolved, as the detector uses it; `None`
    /// when power quality is off.
    pub fn pq_config(&self) -> Option<pq::PqConfig> {
        self.pq
            .as_ref()
            .filter(|pq| pq.enabled)
            .map(|pq| pq::PqConfig {
                udin_v: Some(self.udin_v()),
                ..pq.clone()
            })
    }
}
