//! What a sensor reported over one packet interval: the input of a
//! BetterFleet packet, built by meters and telemetry alike.

use serde::{Deserialize, Serialize};

use super::measurand::MeasurandValue;
use crate::wire::message::InfoAnswer;

/// A meter's identity, sent as the identity measurands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorInfo {
    /// `MODEL`: the info line's `type`, e.g. "smartmeter".
    pub model: String,
    /// `FIRMWARE`: the info line's `version`.
    pub firmware: String,
    /// `MANUFACTURER`, when known; else the config's, else omitted.
    pub manufacturer: Option<String>,
}

/// The 16 "Update Circuit Measurands" of one meter for one interval, SI
/// units. `None` (or a non-finite value) means the stream cannot give the
/// quantity and is written as `null`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CircuitReading {
    /// Sum of the phase RMS currents, A.
    pub current_a: Option<f64>,
    pub frequency_hz: Option<f64>,
    /// Mean phase-to-neutral RMS voltage, V.
    pub voltage_v: Option<f64>,
    /// Mean line-to-line RMS voltage, V.
    pub line_voltage_v: Option<f64>,
    pub total_power_w: Option<f64>,
    pub total_reactive_var: Option<f64>,
    pub total_apparent_va: Option<f64>,
    pub total_power_factor: Option<f64>,
    /// Phase 1..3 to neutral voltage THD, percent.
    pub thd_v_pct: [Option<f64>; 3],
    /// Phase 1..3 current THD, percent.
    pub thd_i_pct: [Option<f64>; 3],
    /// Cumulative, Wh.
    pub energy_imported_wh: Option<f64>,
    /// Cumulative, Wh.
    pub energy_exported_wh: Option<f64>,
}

/// What one meter reported in one interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorInterval {
    /// The meter's name from its info line: `SERIAL_NUMBER` and the seed of
    /// its sensor id.
    pub meter_name: String,
    pub info: SensorInfo,
    /// End of the interval on the meter's own time base, ms since the epoch.
    pub interval_end_ms: i64,
    pub circuit: CircuitReading,
    /// Other readings under the source's own keys; they are title-cased.
    #[serde(with = "super::intern::json_pairs")]
    pub passthrough: Vec<(String, serde_json::Value)>,
}

/// One keyed value of a device that is not a meter (telemetry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyedValue {
    /// The source's own key, title-cased when it is sent as passthrough.
    pub key: String,
    /// The standard key it maps to, if any (then `key` is not sent).
    #[serde(deserialize_with = "super::intern::option_static_str")]
    pub standard: Option<super::intern::StaticStr>,
    pub value: MeasurandValue,
    /// When the value was measured, ms since the epoch.
    pub timestamp_ms: i64,
}

/// What one non-meter device reported for one packet interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorReadings {
    /// Device identity: `SERIAL_NUMBER` and the seed of its sensor id.
    pub name: String,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub values: Vec<KeyedValue>,
}
/// A telemetry device's readings of one packet interval, for packets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalReadings {
    /// End of the packet interval, ms since the epoch.
    pub interval_end_ms: i64,
    pub readings: SensorReadings,
}

impl SensorInfo {
    pub fn from_info_answer(info: &InfoAnswer) -> Self {
        Self {
            model: info.device_type.clone(),
            firmware: info.version.clone(),
            manufacturer: None,
        }
    }
}

impl CircuitReading {
    /// The values in the order of [`keys::CIRCUIT`].
    pub fn values(&self) -> [Option<f64>; 16] {
        [
            self.current_a,
            self.frequency_hz,
            self.voltage_v,
            self.line_voltage_v,
            self.total_power_w,
            self.total_reactive_var,
            self.total_apparent_va,
            self.total_power_factor,
            self.thd_v_pct[0],
            self.thd_v_pct[1],
            self.thd_v_pct[2],
            self.thd_i_pct[0],
            self.thd_i_pct[1],
            self.thd_i_pct[2],
            self.energy_exported_wh,
            self.energy_imported_wh,
        ]
    }
}
