//! Measurand values and the BetterFleet standard keys: the vocabulary that
//! telemetry adapters and packet outputs share.

use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// A measurand's value. Numbers are SI units; a number that is NaN or
/// infinite is written as `null`, because the contract has no encoding for
/// it and consumers must read it as "unavailable".
#[derive(Clone, Debug, PartialEq)]
pub enum MeasurandValue {
    /// Unavailable or invalid.
    Null,
    Number(f64),
    /// Textual data: identity or status.
    Text(String),
    /// Anything else a passthrough reading carries (booleans, lists,
    /// objects), forwarded unchanged.
    Json(serde_json::Value),
}

impl MeasurandValue {
    /// A number, or `Null` when absent or not finite.
    pub fn number(value: Option<f64>) -> Self {
        match value {
            Some(v) if v.is_finite() => Self::Number(v),
            _ => Self::Null,
        }
    }

    /// Maps a JSON value onto the closest variant (non-finite numbers cannot
    /// exist in `serde_json::Value`, so nothing needs filtering here).
    pub fn from_json(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::String(s) => Self::Text(s),
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(v) if v.is_finite() && n.is_f64() => Self::Number(v),
                _ => Self::Json(serde_json::Value::Number(n)),
            },
            other => Self::Json(other),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(v) => Some(*v),
            Self::Json(serde_json::Value::Number(n)) => n.as_f64(),
            _ => None,
        }
    }
}

impl Serialize for MeasurandValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(v) if v.is_finite() => serializer.serialize_f64(*v),
            Self::Number(_) | Self::Null => serializer.serialize_none(),
            Self::Text(s) => serializer.serialize_str(s),
            Self::Json(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MeasurandValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Self::from_json)
    }
}

/// The standard measurand keys of the contract. Key matching is exact and
/// case-sensitive.
pub mod keys {
    pub const CURRENT: &str = "CURRENT";
    pub const FREQUENCY: &str = "FREQUENCY";
    pub const VOLTAGE: &str = "VOLTAGE";
    pub const LINE_VOLTAGE: &str = "LINE_VOLTAGE";
    pub const TOTAL_POWER_LOAD: &str = "TOTAL_POWER_LOAD";
    pub const TOTAL_REACTIVE_POWER: &str = "TOTAL_REACTIVE_POWER";
    pub const TOTAL_APPARENT_POWER: &str = "TOTAL_APPARENT_POWER";
    pub const TOTAL_POWER_FACTOR: &str = "TOTAL_POWER_FACTOR";
    pub const PHASE_1N_VOLTAGE_THD: &str = "PHASE_1N_VOLTAGE_THD";
    pub const PHASE_2N_VOLTAGE_THD: &str = "PHASE_2N_VOLTAGE_THD";
    pub const PHASE_3N_VOLTAGE_THD: &str = "PHASE_3N_VOLTAGE_THD";
    pub const PHASE_1_CURRENT_THD: &str = "PHASE_1_CURRENT_THD";
    pub const PHASE_2_CURRENT_THD: &str = "PHASE_2_CURRENT_THD";
    pub const PHASE_3_CURRENT_THD: &str = "PHASE_3_CURRENT_THD";
    pub const ACTIVE_ENERGY_EXPORTED: &str = "ACTIVE_ENERGY_EXPORTED";
    pub const ACTIVE_ENERGY_IMPORTED: &str = "ACTIVE_ENERGY_IMPORTED";
    pub const MANUFACTURER: &str = "MANUFACTURER";
    pub const MODEL: &str = "MODEL";
    pub const SERIAL_NUMBER: &str = "SERIAL_NUMBER";
    pub const FIRMWARE: &str = "FIRMWARE";

    /// The "Update Circuit Measurands" function block, in the contract's
    /// order: every sensor carries all of them.
    pub const CIRCUIT: [&str; 16] = [
        CURRENT,
        FREQUENCY,
        VOLTAGE,
        LINE_VOLTAGE,
        TOTAL_POWER_LOAD,
        TOTAL_REACTIVE_POWER,
        TOTAL_APPARENT_POWER,
        TOTAL_POWER_FACTOR,
        PHASE_1N_VOLTAGE_THD,
        PHASE_2N_VOLTAGE_THD,
        PHASE_3N_VOLTAGE_THD,
        PHASE_1_CURRENT_THD,
        PHASE_2_CURRENT_THD,
        PHASE_3_CURRENT_THD,
        ACTIVE_ENERGY_EXPORTED,
        ACTIVE_ENERGY_IMPORTED,
    ];

    /// Every standard key of the contract, so passthrough keys can be kept
    /// apart from them.
    pub const STANDARD: [&str; 33] = [
        CURRENT,
        FREQUENCY,
        VOLTAGE,
        LINE_VOLTAGE,
        TOTAL_POWER_LOAD,
        TOTAL_REACTIVE_POWER,
        TOTAL_APPARENT_POWER,
        TOTAL_POWER_FACTOR,
        PHASE_1N_VOLTAGE_THD,
        PHASE_2N_VOLTAGE_THD,
        PHASE_3N_VOLTAGE_THD,
        PHASE_1_CURRENT_THD,
        PHASE_2_CURRENT_THD,
        PHASE_3_CURRENT_THD,
        ACTIVE_ENERGY_EXPORTED,
        ACTIVE_ENERGY_IMPORTED,
        "ESTOPPED",
        "ESTOP_CONTACT",
        "DIGITAL_INPUTS",
        "UPS_STATE",
        "UPS_DESCRIPTION",
        MANUFACTURER,
        MODEL,
        SERIAL_NUMBER,
        FIRMWARE,
        "AVAILABLE_CHARGING_CAPACITY",
        "FAIL_SAFE_CAPACITY",
        "HEARTBEAT_STATUS",
        "SOC",
        "DEVICE_POWER_STATE",
        "BESS_OPERATIONAL_MODE",
        "LIMIT_PEAK_SHAVING",
        "LIMIT_DER_EXPORT",
    ];

    /// Whether `key` is one of the contract's standard keys.
    pub fn is_standard(key: &str) -> bool {
        STANDARD.contains(&key)
    }
}
