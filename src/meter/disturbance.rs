//! Voltage disturbances of the virtual meter: dips, swells, interruptions
//! and lasting RVC steps, per phase, at given times; and their analytic truth.
//!
//! A disturbance scales a phase's whole voltage waveform (fundamental and
//! harmonics) from the first sample at or after `at_s` to the first sample at
//! or after `at_s + duration_s`, so the true RMS during it is exact and its
//! start and end are sample-exact. Currents are left as configured.

use serde::{Deserialize, Serialize};

use super::signal::{first_index_at_or_after, SignalConfig, SignalError};

/// One disturbance; where several cover the same phase and time, the later
/// in the list wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disturbance {
    /// Start, seconds since sample 0.
    pub at_s: f64,
    /// Length, s; left out: lasts to the end of the stream (an RVC step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Phases it applies to, 1..=3; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<u8>,
    /// Voltage during it, % of the undisturbed voltage (0: interruption,
    /// 40: dip to 40 %, 115: swell). Exactly one of `level_pct`, `level_v`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_pct: Option<f64>,
    /// Voltage during it: the total RMS, V.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_v: Option<f64>,
}

impl Disturbance {
    fn applies_to(&self, phase: usize) -> bool {
        self.phases.is_empty() || self.phases.iter().any(|&p| usize::from(p) == phase + 1)
    }

    fn end_s(&self) -> f64 {
        self.duration_s.map_or(f64::INFINITY, |d| self.at_s + d)
    }

    /// Factor on a phase whose undisturbed total RMS is `undisturbed_v`.
    fn scale(&self, undisturbed_v: f64) -> f64 {
        match (self.level_pct, self.level_v) {
            (Some(pct), _) => pct / 100.0,
            (None, Some(v)) if undisturbed_v > 0.0 => v / undisturbed_v,
            _ => 0.0,
        }
    }
}

/// The truth of one disturbance, as generated at a sampling rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DisturbanceTruth {
    /// Time of its first sample, s.
    pub start_s: f64,
    /// Time of the first sample after it, s; `None` for a lasting step.
    pub end_s: Option<f64>,
    /// Phases L1..L3 it applies to.
    pub phases: [bool; 3],
    /// Total RMS per phase right before it, V.
    pub before_v: [f64; 3],
    /// Total RMS per phase during it (where nothing else overlaps), V.
    pub during_v: [f64; 3],
}

/// Refuses disturbances that cannot be generated.
pub fn validate(list: &[Disturbance]) -> Result<(), SignalError> {
    for (index, d) in list.iter().enumerate() {
        let fail = |reason| Err(SignalError::BadDisturbance { index, reason });
        if !(d.at_s.is_finite() && d.at_s >= 0.0) {
            return fail("at_s must be finite and >= 0");
        }
        if d.duration_s.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            return fail("duration_s must be finite and > 0");
        }
        if d.phases.iter().any(|&p| !(1..=3).contains(&p)) {
            return fail("phases must be 1, 2 or 3");
        }
        let (level, key) = match (d.level_pct, d.level_v) {
            (Some(level), None) => (level, "level_pct"),
            (None, Some(level)) => (level, "level_v"),
            _ => return fail("needs exactly one of level_pct and level_v"),
        };
        if !(level.is_finite() && level >= 0.0) {
            return Err(SignalError::BadDisturbance {
                index,
                reason: if key == "level_pct" {
                    "level_pct must be finite and >= 0"
                } else {
                    "level_v must be finite and >= 0"
                },
            });
        }
    }
    Ok(())
}

/// Times at which some phase's voltage factor changes.
pub fn change_times(list: &[Disturbance]) -> impl Iterator<Item = f64> + '_ {
    list.iter()
        .flat_map(|d| [Some(d.at_s), d.duration_s.map(|_| d.end_s())])
        .flatten()
}

/// Per-phase factor on the voltage at `t_s` (1 where nothing is active).
pub fn voltage_scale_at(config: &SignalConfig, t_s: f64) -> [f64; 3] {
    let undisturbed = undisturbed_rms(config);
    let mut scale = [1.0; 3];
    for d in config
        .disturbances
        .iter()
        .filter(|d| d.at_s <= t_s && t_s < d.end_s())
    {
        for (k, s) in scale.iter_mut().enumerate() {
            if d.applies_to(k) {
                *s = d.scale(undisturbed[k]);
            }
        }
    }
    scale
}

/// Undisturbed total RMS per phase, V.
fn undisturbed_rms(config: &SignalConfig) -> [f64; 3] {
    let h2: f64 = config
        .voltage_harmonics
        .iter()
        .map(|h| h.magnitude * h.magnitude)
        .sum();
    config
        .voltage_imbalance
        .map(|g| config.voltage_rms_v * g * (1.0 + h2).sqrt())
}

/// The truth of every disturbance of `config` at `rate` samples/s, in list order.
pub fn truth(config: &SignalConfig, rate: u32) -> Vec<DisturbanceTruth> {
    let rate_f = f64::from(rate.max(1));
    let sample_time = |t_s: f64| first_index_at_or_after(t_s, rate_f) as f64 / rate_f;
    let rms_at = |t_s: f64| config.truth_at(t_s).phases.map(|p| p.v_rms_v);
    config
        .disturbances
        .iter()
        .map(|d| {
            let start_s = sample_time(d.at_s);
            DisturbanceTruth {
                start_s,
                end_s: d.duration_s.map(|_| sample_time(d.end_s())),
                phases: [0, 1, 2].map(|k| d.applies_to(k)),
                before_v: rms_at(start_s - 1.0 / rate_f),
                during_v: rms_at(start_s),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dip(at_s: f64, duration_s: f64, phases: Vec<u8>, level_pct: f64) -> Disturbance {
        Disturbance {
            at_s,
            duration_s: Some(duration_s),
            phases,
            level_pct: Some(level_pct),
            level_v: None,
        }
    }

    #[test]
    fn later_disturbances_win_and_volts_are_total_rms() {
        let config = SignalConfig {
            disturbances: vec![
                dip(1.0, 1.0, vec![], 50.0),
                Disturbance {
                    level_pct: None,
                    level_v: Some(23.0),
                    ..dip(1.5, 0.1, vec![2], 0.0)
                },
            ],
            ..SignalConfig::default()
        };
        assert_eq!(voltage_scale_at(&config, 0.99), [1.0; 3]);
        assert_eq!(voltage_scale_at(&config, 1.0), [0.5; 3]);
        assert_eq!(voltage_scale_at(&config, 1.55), [0.5, 0.1, 0.5]);
        assert_eq!(voltage_scale_at(&config, 2.0), [1.0; 3]);
        let times: Vec<f64> = change_times(&config.disturbances).collect();
        assert_eq!(times.len(), 4);
    }

    #[test]
    fn bad_disturbances_are_refused() {
        let mut d = dip(1.0, 1.0, vec![4], 50.0);
        assert!(validate(std::slice::from_ref(&d)).is_err());
        d.phases = vec![1];
        d.level_v = Some(3.0);
        assert!(validate(std::slice::from_ref(&d)).is_err());
        d.level_v = None;
        assert_eq!(validate(&[d]), Ok(()));
    }
}
