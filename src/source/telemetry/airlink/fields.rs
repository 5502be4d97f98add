//! The AirLink resource properties and their units (mV, cA, dW, dWh,
//! minutes, ½ °C), shared by the CBOR and the Thingsboard decoders so both
//! give the same SI readings.

use super::SOURCE;
use crate::model::{keys, Reading, Value};

const NS_PER_MINUTE: i64 = 60_000_000_000;

/// How a property becomes a reading.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// SI = raw × scale.
    Scaled(f64),
    /// Accumulated over a window: (start-minutes-ago key, period-minutes key).
    Window(&'static str, &'static str, f64),
    /// An enumeration shown as text.
    Enum(&'static [&'static str]),
    /// 0/1 as false/true.
    Flag,
    /// Time series bookkeeping, not a measurement.
    Skip,
}

/// (resource, key, reading key, SI unit, standard key, conversion).
type Property = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Kind,
);

const CHARGING: &[&str] = &["no-data", "fast-charge", "slow-charge", "discharging"];
const V: Option<&str> = Some("V");
const A: Option<&str> = Some("A");
const W: Option<&str> = Some("W");
const WH: Option<&str> = Some("Wh");
const C: Option<&str> = Some("°C");
const PCT: Option<&str> = Some("%");

#[rustfmt::skip]
const PROPERTIES: [Property; 29] = [
    ("eout", "vo", "output_voltage_V", V, Some(keys::VOLTAGE), Kind::Scaled(1e-3)),
    ("eout", "ao", "output_current_A", A, Some(keys::CURRENT), Kind::Scaled(1e-2)),
    ("eout", "aol", "output_current_limit_A", A, None, Kind::Scaled(1e-2)),
    ("eout", "po", "output_power_W", W, Some(keys::TOTAL_POWER_LOAD), Kind::Scaled(0.1)),
    ("eout", "eo", "output_energy_Wh", WH, None, Kind::Window("eos", "eop", 0.1)),
    ("eout", "eos", "", None, None, Kind::Skip),
    ("eout", "eop", "", None, None, Kind::Skip),
    ("ein", "vi", "input_voltage_V", V, None, Kind::Scaled(1e-3)),
    ("ein", "ai", "input_current_A", A, None, Kind::Scaled(1e-2)),
    ("ein", "pi", "input_power_W", W, None, Kind::Scaled(0.1)),
    ("ein", "eg", "input_energy_Wh", WH, None, Kind::Window("egs", "egp", 0.1)),
    ("ein", "egs", "", None, None, Kind::Skip),
    ("ein", "egp", "", None, None, Kind::Skip),
    ("ein", "st", "input_source_type", None, None, Kind::Scaled(1.0)),
    ("batt", "vb", "battery_voltage_V", V, None, Kind::Scaled(1e-3)),
    ("batt", "ib", "battery_current_A", A, None, Kind::Scaled(1e-3)),
    ("batt", "cp", "battery_charge_pct", PCT, Some("SOC"), Kind::Scaled(1.0)),
    ("batt", "cs", "battery_charging", None, None, Kind::Enum(CHARGING)),
    ("batt", "th", "battery_alert_threshold_pct", PCT, None, Kind::Scaled(1.0)),
    ("batt", "lb", "battery_low", None, None, Kind::Flag),
    ("batt", "cmin", "last_cycle_charge_min_pct", PCT, None, Kind::Scaled(1.0)),
    ("batt", "cmax", "last_cycle_charge_max_pct", PCT, None, Kind::Scaled(1.0)),
    ("batt", "tc", "last_cycle_charge_time_s", Some("s"), None, Kind::Scaled(60.0)),
    ("batt", "qc", "last_cycle_charge_Ah", Some("Ah"), None, Kind::Scaled(1e-3)),
    ("temp", "temp", "temperature_C", C, None, Kind::Scaled(0.5)),
    ("temp", "tmax", "temperature_max_C", C, None, Kind::Scaled(0.5)),
    ("temp", "tmin", "temperature_min_C", C, None, Kind::Scaled(0.5)),
    ("temp", "hlim", "temperature_high_limit_C", C, None, Kind::Scaled(0.5)),
    ("temp", "llim", "temperature_low_limit_C", C, None, Kind::Scaled(0.5)),
];

/// Keys of every resource that are bookkeeping, not measurements.
const BOOKKEEPING: [&str; 5] = ["ts", "thi", "tsh", "rv", "dmy"];

/// The resources the decoders know (`/eout` is `eout` here).
pub const RESOURCES: [&str; 6] = ["eout", "ein", "batt", "temp", "pu", "advt"];

/// One resource's properties → readings at `time_ns` (the resource's `ts`
/// when it has one, else the caller's time). Unknown properties pass
/// through as `<resource>_<key>`.
pub fn resource_readings(
    resource: &str,
    properties: &[(String, Value)],
    device: &str,
    time_ns: i64,
) -> Result<Vec<Reading>, String> {
    let number_of = |key: &str| -> Result<Option<f64>, String> {
        match properties.iter().find(|(k, _)| k == key) {
            None => Ok(None),
            Some((_, Value::Number(v))) => Ok(Some(*v)),
            Some((_, other)) => Err(format!(
                "/{resource}.{key}: expected a number, got {other:?}"
            )),
        }
    };
    let time_ns = match number_of("ts")? {
        Some(ts) if ts.is_finite() && ts >= 0.0 => (ts * 1e9).round() as i64,
        Some(ts) => return Err(format!("/{resource}.ts: {ts} is not Unix seconds")),
        None => time_ns,
    };
    let mut out = Vec::new();
    for (key, value) in properties {
        if BOOKKEEPING.contains(&key.as_str()) {
            continue;
        }
        let at = format!("/{resource}.{key}");
        let Some(&(_, _, name, unit, standard, kind)) =
            PROPERTIES.iter().find(|p| p.0 == resource && p.1 == key)
        else {
            out.push(Reading::new(
                SOURCE,
                device,
                time_ns,
                format!("{resource}_{key}"),
                value.clone(),
            ));
            continue;
        };
        let raw = match (kind, value) {
            (Kind::Skip, _) => continue,
            (_, Value::Number(v)) => *v,
            (_, other) => return Err(format!("{at}: expected a number, got {other:?}")),
        };
        let mut reading = Reading::new(SOURCE, device, time_ns, name, Value::Number(raw));
        reading.unit = unit;
        reading.standard = standard;
        match kind {
            Kind::Scaled(scale) => reading.value = Value::Number(raw * scale),
            Kind::Window(start_key, period_key, scale) => {
                let (Some(ago), Some(period)) = (number_of(start_key)?, number_of(period_key)?)
                else {
                    return Err(format!(
                        "{at}: an energy window needs /{resource}.{start_key} and /{resource}.{period_key}"
                    ));
                };
                let start = time_ns - (ago * NS_PER_MINUTE as f64).round() as i64;
                reading.span_start_ns = Some(start);
                reading.time_ns = start + (period * NS_PER_MINUTE as f64).round() as i64;
                reading.value = Value::Number(raw * scale);
            }
            Kind::Enum(names) => {
                let name = names
                    .get(raw as usize)
                    .filter(|_| raw >= 0.0 && raw.fract() == 0.0)
                    .ok_or_else(|| format!("{at}: {raw} is not one of 0..{}", names.len() - 1))?;
                reading.value = Value::Text((*name).to_owned());
            }
            Kind::Flag => reading.value = Value::Bool(raw != 0.0),
            Kind::Skip => continue,
        }
        out.push(reading);
    }
    Ok(out)
}

/// The advertisement's positions, as the facts page lists them.
pub const ADVERTISEMENT: [&str; 8] = ["rv", "ft", "did", "gts", "pst", "fv", "cr", "pu"];
