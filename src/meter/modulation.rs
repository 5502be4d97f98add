//! RMS modulation of the virtual meter's voltage, for flicker: the
//! IEC 61000-4-15 test signals u(t) = (1 + ΔV/V / 2 · w(t)) · u₀(t) with
//! w = sin(2π·fm·t) (sinusoidal) or its sign (rectangular, two changes per
//! period: "changes per minute" = 120 · fm), per phase, optionally between
//! a start and an end time.
//!
//! The factor is a pure function of the sample time, so chunking and seeks
//! stay bit-exact; [`SignalConfig::voltage_envelope_at`] is its analytic
//! truth (the factor on the phase's whole voltage, harmonics included).

use serde::{Deserialize, Serialize};

use super::signal::{frac, sin_cos_cycles, SignalConfig, SignalError};
use crate::wire::layout::{Measures, Quantity};

/// Waveform of the modulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModulationShape {
    Rectangular,
    Sinusoidal,
}

/// One RMS modulation of the voltage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VoltageModulation {
    pub shape: ModulationShape,
    /// Modulation frequency, Hz (rectangular: changes per minute / 120).
    pub frequency_hz: f64,
    /// ΔV/V peak to peak, percent of the unmodulated voltage.
    pub delta_v_pct: f64,
    /// Which of L1, L2, L3 it applies to.
    #[serde(default = "all_phases")]
    pub phases: [bool; 3],
    /// Starts here (modulation phase 0, rising), s since sample 0.
    #[serde(default)]
    pub start_s: f64,
    /// Ends here (exclusive), s since sample 0; none: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_s: Option<f64>,
}

fn all_phases() -> [bool; 3] {
    [true; 3]
}

impl VoltageModulation {
    /// Factor on the voltage at `t_s` (1 outside the active span).
    pub fn factor_at(&self, t_s: f64) -> f64 {
        if t_s < self.start_s || self.end_s.is_some_and(|end| t_s >= end) {
            return 1.0;
        }
        let u = frac(self.frequency_hz * (t_s - self.start_s));
        let w = match self.shape {
            ModulationShape::Rectangular => {
                if u < 0.5 {
                    1.0
                } else {
                    -1.0
                }
            }
            ModulationShape::Sinusoidal => sin_cos_cycles(u).0,
        };
        1.0 + self.delta_v_pct / 200.0 * w
    }

    fn validate(&self) -> Result<(), SignalError> {
        let bad = |field, requirement, value| SignalError::BadValue {
            field,
            requirement,
            value,
        };
        let f = self.frequency_hz;
        if !(f.is_finite() && f > 0.0) {
            return Err(bad("modulation frequency_hz", "> 0", f));
        }
        let d = self.delta_v_pct;
        if !(d.is_finite() && (0.0..200.0).contains(&d)) {
            return Err(bad("modulation delta_v_pct", "in [0, 200)", d));
        }
        if !(self.start_s.is_finite() && self.start_s >= 0.0) {
            return Err(bad("modulation start_s", ">= 0", self.start_s));
        }
        if let Some(end) = self.end_s {
            if !(end.is_finite() && end >= self.start_s) {
                return Err(bad("modulation end_s", ">= start_s", end));
            }
        }
        Ok(())
    }
}

/// Checks every modulation of a signal config.
pub(super) fn check_modulations(list: &[VoltageModulation]) -> Result<(), SignalError> {
    list.iter().try_for_each(VoltageModulation::validate)
}

impl SignalConfig {
    /// Analytic truth: the factor on phase `phase` (0 = L1)'s voltage at `t_s`.
    pub fn voltage_envelope_at(&self, phase: usize, t_s: f64) -> f64 {
        self.voltage_modulations
            .iter()
            .filter(|m| m.phases.get(phase).copied().unwrap_or(false))
            .map(|m| m.factor_at(t_s))
            .product()
    }
}

/// The generator's side: which channels carry a modulated voltage.
#[derive(Debug, Clone)]
pub(super) struct Modulator {
    config: SignalConfig,
    /// Per channel: the phase of a voltage-like channel.
    channels: Vec<Option<usize>>,
    rate_f: f64,
}

impl Modulator {
    /// `None` when nothing is modulated (the generator then skips it).
    pub(super) fn new(config: &SignalConfig, measures: Measures, rate: u32) -> Option<Modulator> {
        if config.voltage_modulations.is_empty() {
            return None;
        }
        let channels = measures
            .channels()
            .iter()
            .map(|c| {
                matches!(c.quantity, Quantity::Voltage | Quantity::VoltageRms)
                    .then(|| c.phase.index())
            })
            .collect();
        Some(Modulator {
            config: config.clone(),
            channels,
            rate_f: f64::from(rate.max(1)),
        })
    }

    /// Scales sample `n`'s voltage values (one per channel) in place.
    pub(super) fn apply(&self, values: &mut [f64], n: u64) {
        let t = n as f64 / self.rate_f;
        let mut factors = [None; 3];
        for (v, channel) in values.iter_mut().zip(&self.channels) {
            if let Some(k) = *channel {
                *v *= *factors[k].get_or_insert_with(|| self.config.voltage_envelope_at(k, t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::signal::SignalGenerator;

    fn modulated() -> SignalConfig {
        SignalConfig {
            voltage_modulations: vec![
                VoltageModulation {
                    shape: ModulationShape::Rectangular,
                    frequency_hz: 2.0,
                    delta_v_pct: 10.0,
                    phases: [true, false, false],
                    start_s: 0.25,
                    end_s: Some(1.25),
                },
                VoltageModulation {
                    shape: ModulationShape::Sinusoidal,
                    frequency_hz: 8.8,
                    delta_v_pct: 2.0,
                    phases: [false, true, false],
                    start_s: 0.0,
                    end_s: None,
                },
            ],
            ..SignalConfig::default()
        }
    }

    #[test]
    fn envelope_follows_the_definition() {
        let c = modulated();
        assert_eq!(c.voltage_envelope_at(0, 0.1), 1.0);
        assert_eq!(c.voltage_envelope_at(0, 0.3), 1.05);
        assert_eq!(c.voltage_envelope_at(0, 0.55), 0.95);
        assert_eq!(c.voltage_envelope_at(0, 1.3), 1.0);
        let t: f64 = 0.01;
        let want = 1.0 + 0.01 * (std::f64::consts::TAU * 8.8 * t).sin();
        assert!((c.voltage_envelope_at(1, t) - want).abs() < 1e-15);
        assert_eq!(c.voltage_envelope_at(2, 0.3), 1.0);
    }

    #[test]
    fn generator_scales_only_the_modulated_voltages() {
        let rate = 8000;
        let plain = SignalConfig::default();
        let c = modulated();
        let mut a = SignalGenerator::new(plain, Measures::ThreePhase, rate).expect("valid");
        let mut b = SignalGenerator::new(c.clone(), Measures::ThreePhase, rate).expect("valid");
        let mut xa = vec![0.0f32; 6 * 12_000];
        let mut xb = xa.clone();
        a.fill(&mut xa);
        b.fill(&mut xb);
        for (n, (fa, fb)) in xa.chunks_exact(6).zip(xb.chunks_exact(6)).enumerate() {
            let t = n as f64 / f64::from(rate);
            for (k, (va, vb)) in fa.iter().zip(fb).enumerate() {
                // Channels: v1 i1 v2 i2 v3 i3.
                let factor = if k % 2 == 0 {
                    c.voltage_envelope_at(k / 2, t)
                } else {
                    1.0
                };
                let want = f64::from(*va) * factor;
                assert!(
                    (f64::from(*vb) - want).abs() <= 1e-6 * 330.0 + 1e-9 * want.abs(),
                    "sample {n} channel {k}"
                );
            }
        }
    }

    #[test]
    fn serde_defaults_and_refusals() {
        let m: VoltageModulation = serde_json::from_str(
            r#"{"shape":"rectangular","frequency_hz":0.325,"delta_v_pct":0.894}"#,
        )
        .expect("minimal modulation parses");
        assert_eq!(m.phases, [true; 3]);
        assert_eq!((m.start_s, m.end_s), (0.0, None));
        assert!(serde_json::from_str::<VoltageModulation>(
            r#"{"shape":"rectangular","frequency_hz":1,"delta_v_pct":1,"depth":1}"#
        )
        .is_err());
        let bad = SignalConfig {
            voltage_modulations: vec![VoltageModulation {
                frequency_hz: 0.0,
                ..m
            }],
            ..SignalConfig::default()
        };
        assert!(bad.validate().is_err());
        // Unmodulated configs serialise as before (no new key).
        let json = serde_json::to_string(&SignalConfig::default()).expect("serialises");
        assert!(!json.contains("voltage_modulations"));
    }
}
