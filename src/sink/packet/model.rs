//! The BetterFleet Generic Sensor packet, exactly as the IoT sensor packet
//! contract spells it (`shared/specs/betterfleet-iot-sensor-packet.md`).
//!
//! The types only describe the wire shape; which values go where is decided
//! in [`super::build`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::measurand::MeasurandValue;

/// One packet: the gateway (this pipeline instance) and the sensors (meters)
/// that reported in one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Packet {
    /// The gateway's UUID.
    pub device_id: Uuid,
    /// When the packet was built, ms since the Unix epoch (UTC).
    pub timestamp: i64,
    /// Gateway identity: always written, `null` when unknown (the contract
    /// allows either omission or null; a fixed shape is easier to consume).
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub firmware: Option<String>,
    pub sensors: Vec<Sensor>,
}

/// One meter's readings for one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    pub sensor_id: Uuid,
    pub measurands: Vec<Measurand>,
}

/// One keyed value with the time it refers to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurand {
    /// A standard key (see [`keys`]) or a title-cased passthrough key.
    pub key: String,
    pub value: MeasurandValue,
    /// End of the interval that produced the value, ms since the Unix epoch.
    pub timestamp: i64,
}

impl Measurand {
    pub fn new(key: impl Into<String>, value: MeasurandValue, timestamp: i64) -> Self {
        Self {
            key: key.into(),
            value,
            timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_serialise_as_null() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let m = Measurand::new("X", MeasurandValue::Number(v), 1);
            let json = serde_json::to_value(&m).unwrap_or_default();
            assert!(json["value"].is_null(), "{v} → {json}");
        }
        assert_eq!(MeasurandValue::number(Some(f64::NAN)), MeasurandValue::Null);
    }
}
