//! Builds Generic Sensor packets from per-interval readings, following the
//! choices of `shared/specs/betterfleet-mapping.md`: who is the gateway, how
//! ids are made, which keys every sensor carries, how packets are split.
//!
//! The input ([`SensorInterval`]) is neutral on purpose: whatever produces the
//! interval aggregates (the dsp engine, other telemetry) maps itself onto it,
//! so this file does not depend on how the numbers were computed.

use std::collections::{BTreeMap, HashSet};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::identity::name_uuid;

use super::model::{Measurand, Packet, Sensor};
use crate::model::{keys, KeyedValue, MeasurandValue, SensorInterval, SensorReadings};

/// Default for [`PacketConfig::max_sensors_per_packet`].
pub const DEFAULT_MAX_SENSORS_PER_PACKET: usize = 100;

/// This machine's host name (lossy UTF-8), the gateway's serial number and
/// the seed of its default id.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// A passthrough key as the mapping wants it: each word title-cased
/// (first letter upper case, the rest lower case), separators kept as they
/// are: `inverter_temperature` → `Inverter_Temperature`, `battery ok` →
/// `Battery Ok`. Any character that is not alphanumeric separates words.
pub fn title_case_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut at_word_start = true;
    for c in raw.chars() {
        if c.is_alphanumeric() {
            if at_word_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            at_word_start = false;
        } else {
            out.push(c);
            at_word_start = true;
        }
    }
    out
}

/// Packet settings from the pipeline config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketConfig {
    /// The gateway's UUID; when absent, the UUIDv5 of the host name.
    #[serde(default)]
    pub device_id: Option<Uuid>,
    /// Meter name → sensor UUID, for ids that were registered elsewhere.
    /// Meters not listed get the UUIDv5 of their name.
    #[serde(default)]
    pub sensor_ids: BTreeMap<String, Uuid>,
    /// `MANUFACTURER` for sensors whose input does not name one; when both
    /// are absent the measurand is omitted.
    #[serde(default)]
    pub sensor_manufacturer: Option<String>,
    /// Above this many sensors an interval is split over several packets
    /// (absent or 0 in a config file: [`DEFAULT_MAX_SENSORS_PER_PACKET`]).
    #[serde(default)]
    pub max_sensors_per_packet: Option<usize>,
}

/// The gateway fields every packet of this pipeline carries.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayIdentity {
    pub device_id: Uuid,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub firmware: Option<String>,
}

impl GatewayIdentity {
    /// The mapping's gateway: the project, the binary, the host, the version.
    pub fn for_host(device_id: Option<Uuid>, host: &str) -> Self {
        Self {
            device_id: device_id.unwrap_or_else(|| name_uuid(host)),
            manufacturer: Some(env!("CARGO_PKG_NAME").to_owned()),
            model: Some(env!("CARGO_PKG_NAME").to_owned()),
            serial_number: Some(host.to_owned()),
            firmware: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }
    }
}

/// Turns the sensors of one interval into one or more packets.
#[derive(Clone, Debug)]
pub struct PacketBuilder {
    gateway: GatewayIdentity,
    sensor_ids: BTreeMap<String, Uuid>,
    sensor_manufacturer: Option<String>,
    max_sensors_per_packet: usize,
}

impl PacketBuilder {
    /// A builder for this host.
    pub fn new(config: &PacketConfig) -> Result<Self> {
        Self::with_gateway(
            config,
            GatewayIdentity::for_host(config.device_id, &host_name()),
        )
    }

    /// A builder with an explicit gateway (tests, or a pipeline that names
    /// its gateway itself).
    pub fn with_gateway(config: &PacketConfig, gateway: GatewayIdentity) -> Result<Self> {
        let max_sensors_per_packet = match config.max_sensors_per_packet {
            None | Some(0) => DEFAULT_MAX_SENSORS_PER_PACKET,
            Some(n) => n,
        };
        ensure!(
            max_sensors_per_packet <= 100_000,
            "packet config: max_sensors_per_packet = {max_sensors_per_packet} is implausibly large"
        );
        Ok(Self {
            gateway,
            sensor_ids: config.sensor_ids.clone(),
            sensor_manufacturer: config.sensor_manufacturer.clone(),
            max_sensors_per_packet,
        })
    }

    pub fn gateway(&self) -> &GatewayIdentity {
        &self.gateway
    }

    pub fn max_sensors_per_packet(&self) -> usize {
        self.max_sensors_per_packet
    }

    /// The sensor id of a meter: configured, else UUIDv5 of its name.
    pub fn sensor_id(&self, meter_name: &str) -> Uuid {
        self.sensor_ids
            .get(meter_name)
            .copied()
            .unwrap_or_else(|| name_uuid(meter_name))
    }

    /// Packets for one interval stamped `timestamp_ms` (the pipeline uses
    /// the interval's end, so a packet rebuilt after a restart keeps its
    /// identity). No sensors → no packets; more than the limit → several
    /// packets with the same gateway fields, part k stamped `timestamp_ms + k`.
    pub fn build(&self, sensors: &[SensorInterval], timestamp_ms: i64) -> Vec<Packet> {
        self.packets(
            sensors.iter().map(|s| self.sensor(s)).collect(),
            timestamp_ms,
        )
    }

    /// [`Self::build`] stamped with the current wall-clock time.
    pub fn build_now(&self, sensors: &[SensorInterval]) -> Vec<Packet> {
        self.build(sensors, chrono::Utc::now().timestamp_millis())
    }

    /// One sensor object: the 16 circuit keys, identity, then passthrough.
    pub fn sensor(&self, input: &SensorInterval) -> Sensor {
        let ts = input.interval_end_ms;
        let mut measurands = Vec::with_capacity(20 + input.passthrough.len());
        for (key, value) in keys::CIRCUIT.iter().zip(input.circuit.values()) {
            measurands.push(Measurand::new(*key, MeasurandValue::number(value), ts));
        }
        self.push_identity(
            &mut measurands,
            input.info.manufacturer.as_ref(),
            Some(&input.info.model),
            &input.meter_name,
            Some(&input.info.firmware),
            ts,
        );
        let passthrough = input
            .passthrough
            .iter()
            .map(|(raw, value)| (raw.as_str(), MeasurandValue::from_json(value.clone()), ts));
        push_passthrough(&mut measurands, passthrough, &input.meter_name);
        Sensor {
            sensor_id: self.sensor_id(&input.meter_name),
            measurands,
        }
    }

    /// One sensor object from a device's keyed readings: standard keys where
    /// they map, identity, then the rest title-cased. Only what the device
    /// reported is sent (a low-rate sensor is no circuit of 16 quantities);
    /// per key, the latest value wins.
    pub fn sensor_from_readings(&self, input: &SensorReadings) -> Sensor {
        let mut latest: Vec<&KeyedValue> = Vec::with_capacity(input.values.len());
        for value in &input.values {
            match latest
                .iter_mut()
                .find(|v| v.standard == value.standard && v.key == value.key)
            {
                Some(slot) if slot.timestamp_ms <= value.timestamp_ms => *slot = value,
                Some(_) => {}
                None => latest.push(value),
            }
        }
        let newest = latest.iter().map(|v| v.timestamp_ms).max().unwrap_or(0);
        let mut measurands = Vec::with_capacity(latest.len() + 4);
        for value in latest.iter().filter(|v| v.standard.is_some()) {
            if let Some(key) = value.standard {
                measurands.push(Measurand::new(key, value.value.clone(), value.timestamp_ms));
            }
        }
        self.push_identity(
            &mut measurands,
            input.manufacturer.as_ref(),
            input.model.as_ref(),
            &input.name,
            None,
            newest,
        );
        let passthrough = latest
            .iter()
            .filter(|v| v.standard.is_none())
            .map(|v| (v.key.as_str(), v.value.clone(), v.timestamp_ms));
        push_passthrough(&mut measurands, passthrough, &input.name);
        Sensor {
            sensor_id: self.sensor_id(&input.name),
            measurands,
        }
    }

    /// Packets of ready sensor objects, split at the sensor limit; part k
    /// of the split is stamped `timestamp_ms + k`, so every packet of one
    /// call has its own (device id, timestamp) identity.
    pub fn packets(&self, sensors: Vec<Sensor>, timestamp_ms: i64) -> Vec<Packet> {
        let mut packets = Vec::new();
        let mut sensors = sensors.into_iter().peekable();
        while sensors.peek().is_some() {
            packets.push(Packet {
                device_id: self.gateway.device_id,
                timestamp: timestamp_ms.saturating_add(packets.len() as i64),
                manufacturer: self.gateway.manufacturer.clone(),
                model: self.gateway.model.clone(),
                serial_number: self.gateway.serial_number.clone(),
                firmware: self.gateway.firmware.clone(),
                sensors: sensors.by_ref().take(self.max_sensors_per_packet).collect(),
            });
        }
        packets
    }

    /// `MANUFACTURER` (the input's, else the config's, else omitted),
    /// `MODEL`, `SERIAL_NUMBER`, `FIRMWARE` (each when known).
    fn push_identity(
        &self,
        measurands: &mut Vec<Measurand>,
        manufacturer: Option<&String>,
        model: Option<&String>,
        serial: &str,
        firmware: Option<&String>,
        ts: i64,
    ) {
        let manufacturer = manufacturer.or(self.sensor_manufacturer.as_ref());
        let text = |key: &str, value: &str| {
            Measurand::new(key, MeasurandValue::Text(value.to_owned()), ts)
        };
        if let Some(m) = manufacturer {
            measurands.push(text(keys::MANUFACTURER, m));
        }
        if let Some(m) = model {
            measurands.push(text(keys::MODEL, m));
        }
        measurands.push(text(keys::SERIAL_NUMBER, serial));
        if let Some(f) = firmware {
            measurands.push(text(keys::FIRMWARE, f));
        }
    }
}

/// Appends passthrough values under title-cased keys that collide with
/// nothing already in `measurands`.
fn push_passthrough<'a>(
    measurands: &mut Vec<Measurand>,
    values: impl Iterator<Item = (&'a str, MeasurandValue, i64)>,
    sensor: &str,
) {
    let mut used: HashSet<String> = measurands.iter().map(|m| m.key.clone()).collect();
    for (raw, value, ts) in values {
        let Some(key) = passthrough_key(raw, &used) else {
            tracing::warn!(%sensor, key = %raw, "passthrough reading with an empty key skipped");
            continue;
        };
        used.insert(key.clone());
        measurands.push(Measurand::new(key, value, ts));
    }
}

/// The key a passthrough reading is sent under: title-cased; a standard key
/// (impossible after title-casing unless every word is one letter) gets a
/// `Passthrough_` prefix, and a key already used in this sensor gets `_2`,
/// `_3`… so no reading overwrites another. `None` for an empty key.
fn passthrough_key(raw: &str, used: &HashSet<String>) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return None;
    }
    let mut key = title_case_key(trimmed);
    if keys::is_standard(&key) {
        key = format!("Passthrough_{key}");
    }
    if !used.contains(&key) {
        return Some(key);
    }
    (2u32..)
        .map(|n| format!("{key}_{n}"))
        .find(|candidate| !used.contains(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_case_keeps_separators() {
        assert_eq!(
            title_case_key("inverter_temperature"),
            "Inverter_Temperature"
        );
        assert_eq!(title_case_key("battery ok"), "Battery Ok");
        assert_eq!(title_case_key("CURRENT"), "Current");
        assert_eq!(title_case_key("a-b.c"), "A-B.C");
    }

    #[test]
    fn passthrough_never_takes_a_standard_or_used_key() {
        let mut used = HashSet::new();
        used.insert("Battery_Ok".to_owned());
        assert_eq!(
            passthrough_key("battery_OK", &used).as_deref(),
            Some("Battery_Ok_2")
        );
        assert_eq!(passthrough_key("  ", &used), None);
        assert_eq!(passthrough_key("soc", &used).as_deref(), Some("Soc"));
    }
}
