//! Settings of the power-quality detector (`[dsp.pq]`): thresholds in
//! percent of the declared input voltage, per `shared/specs/power-quality.md`.

use serde::{Deserialize, Serialize};

use crate::dsp::flicker::FlickerSettings;

/// Udin when neither `[dsp] declared_voltage_v` nor `udin_v` is given, V.
pub const DEFAULT_UDIN_V: f64 = 230.0;

/// Dip, swell, interruption and RVC settings; defaults are the typical values
/// of IEC 61000-4-30.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PqConfig {
    /// Run power quality (events, flicker); on by default.
    pub enabled: bool,
    /// Old name of `[dsp] declared_voltage_v` (Udin), still accepted; when
    /// both are given they must agree.
    pub udin_v: Option<f64>,
    /// A dip starts below this, % of Udin.
    pub dip_threshold_pct: f64,
    /// A swell starts above this, % of Udin.
    pub swell_threshold_pct: f64,
    /// An interruption starts when all channels are below this, % of Udin.
    pub interruption_threshold_pct: f64,
    /// Dip, swell and interruption hysteresis, % of Udin.
    pub hysteresis_pct: f64,
    /// RVC threshold (distance from the 1-s mean), % of Udin.
    pub rvc_threshold_pct: f64,
    /// RVC hysteresis, % of Udin: a steady state needs every value within
    /// threshold − hysteresis of the mean.
    pub rvc_hysteresis_pct: f64,
    /// Also hand out every `Urms(1/2)` value (the opt-in `half_cycle` table).
    pub keep_half_cycle: bool,
    /// `[dsp.pq.flicker]`: the IEC 61000-4-15 flickermeter per voltage channel.
    pub flicker: FlickerSettings,
}

impl Default for PqConfig {
    fn default() -> Self {
        PqConfig {
            enabled: true,
            udin_v: None,
            dip_threshold_pct: 90.0,
            swell_threshold_pct: 110.0,
            interruption_threshold_pct: 5.0,
            hysteresis_pct: 2.0,
            rvc_threshold_pct: 3.0,
            rvc_hysteresis_pct: 1.5,
            keep_half_cycle: false,
            flicker: FlickerSettings::default(),
        }
    }
}

/// A `[dsp.pq]` value that makes detection meaningless.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("dsp.pq.{key} = {}: must be {rule}", crate::model::number::compact_number(*.value))]
pub struct PqConfigError {
    pub key: &'static str,
    pub value: f64,
    pub rule: &'static str,
}

impl PqConfig {
    /// Refuses thresholds that overlap or cannot be met.
    pub fn validate(&self) -> Result<(), PqConfigError> {
        let fail = |key, value, rule| Err(PqConfigError { key, value, rule });
        let finite = [
            ("udin_v", self.udin()),
            ("dip_threshold_pct", self.dip_threshold_pct),
            ("swell_threshold_pct", self.swell_threshold_pct),
            (
                "interruption_threshold_pct",
                self.interruption_threshold_pct,
            ),
            ("hysteresis_pct", self.hysteresis_pct),
            ("rvc_threshold_pct", self.rvc_threshold_pct),
            ("rvc_hysteresis_pct", self.rvc_hysteresis_pct),
        ];
        for (key, value) in finite {
            if !value.is_finite() {
                return fail(key, value, "a finite number");
            }
        }
        if self.udin() <= 0.0 {
            return fail("udin_v", self.udin(), "> 0");
        }
        let settling = self.flicker.settling_s;
        if !(settling.is_finite() && settling >= 0.0) {
            return fail("flicker.settling_s", settling, "a finite number >= 0");
        }
        if self.interruption_threshold_pct <= 0.0 {
            return fail(
                "interruption_threshold_pct",
                self.interruption_threshold_pct,
                "> 0",
            );
        }
        if self.dip_threshold_pct <= self.interruption_threshold_pct {
            return fail(
                "dip_threshold_pct",
                self.dip_threshold_pct,
                "above interruption_threshold_pct",
            );
        }
        if self.dip_threshold_pct >= 100.0 {
            return fail("dip_threshold_pct", self.dip_threshold_pct, "< 100");
        }
        if self.swell_threshold_pct <= 100.0 {
            return fail("swell_threshold_pct", self.swell_threshold_pct, "> 100");
        }
        if self.hysteresis_pct < 0.0 {
            return fail("hysteresis_pct", self.hysteresis_pct, ">= 0");
        }
        if self.dip_threshold_pct + self.hysteresis_pct >= self.swell_threshold_pct
            || self.swell_threshold_pct - self.hysteresis_pct <= self.dip_threshold_pct
        {
            return fail(
                "hysteresis_pct",
                self.hysteresis_pct,
                "smaller than the gap between dip and swell thresholds",
            );
        }
        if self.rvc_threshold_pct <= 0.0 {
            return fail("rvc_threshold_pct", self.rvc_threshold_pct, "> 0");
        }
        if !(0.0..self.rvc_threshold_pct).contains(&self.rvc_hysteresis_pct) {
            return fail(
                "rvc_hysteresis_pct",
                self.rvc_hysteresis_pct,
                ">= 0 and below rvc_threshold_pct",
            );
        }
        Ok(())
    }

    /// Udin, V: the engine fills `udin_v` from `[dsp] declared_voltage_v`
    /// before the detector sees it.
    pub fn udin(&self) -> f64 {
        self.udin_v.unwrap_or(DEFAULT_UDIN_V)
    }

    /// `pct` percent of Udin, V.
    pub fn volts(&self, pct: f64) -> f64 {
        self.udin() * pct / 100.0
    }

    /// `volts` in percent of Udin.
    pub fn pct_udin(&self, volts: f64) -> f64 {
        volts / self.udin() * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(PqConfig::default().validate(), Ok(()));
        let bad = PqConfig {
            dip_threshold_pct: 4.0,
            ..PqConfig::default()
        };
        let error = bad.validate().err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("dsp.pq.dip_threshold_pct = 4: must be above interruption_threshold_pct")
        );
        let bad = PqConfig {
            rvc_hysteresis_pct: 3.0,
            ..PqConfig::default()
        };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("rvc_hysteresis_pct"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<PqConfig, _> = toml::from_str("udin_v = 120\ndip_treshold_pct = 85\n");
        assert!(parsed.is_err());
        let parsed: Result<PqConfig, _> = toml::from_str("udin_v = 120\n");
        assert_eq!(parsed.map(|c| c.udin()).ok(), Some(120.0));
    }
}
