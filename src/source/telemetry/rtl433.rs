//! rtl_433 JSON objects → readings. Keys are mapped by their `<Type>_<Unit>`
//! suffix into SI; a small per-model table handles decoders that break the
//! convention (`power0` raw counters, `power_factor_VA`, CurrentCost's
//! per-clamp powers). Unknown keys pass through unchanged.

use serde_json::{Map, Value as Json};

use super::time::{parse_time, TimeContext};
use crate::model::{keys, Reading, Value};

pub const SOURCE: &str = "rtl_433";

/// Fields that identify or frame a message rather than measure something.
const FRAME_KEYS: [&str; 5] = ["time", "model", "id", "channel", "subtype"];

/// Unit suffix → (key suffix, SI unit, factor, offset): the reading is
/// `<stem>_<key suffix>`, SI value = raw × factor + offset.
#[rustfmt::skip]
const SUFFIXES: [(&str, &str, &str, f64, f64); 16] = [
    ("_W", "W", "W", 1.0, 0.0),
    ("_kW", "W", "W", 1e3, 0.0),
    ("_A", "A", "A", 1.0, 0.0),
    ("_mA", "A", "A", 1e-3, 0.0),
    ("_V", "V", "V", 1.0, 0.0),
    ("_mV", "V", "V", 1e-3, 0.0),
    ("_Hz", "Hz", "Hz", 1.0, 0.0),
    ("_kWh", "Wh", "Wh", 1e3, 0.0),
    ("_Wh", "Wh", "Wh", 1.0, 0.0),
    ("_C", "C", "°C", 1.0, 0.0),
    ("_F", "C", "°C", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    ("_hPa", "Pa", "Pa", 100.0, 0.0),
    ("_kPa", "Pa", "Pa", 1e3, 0.0),
    ("_psi", "Pa", "Pa", 6_894.757_293_168, 0.0),
    ("_m_s", "m_s", "m/s", 1.0, 0.0),
    ("_km_h", "m_s", "m/s", 1.0 / 3.6, 0.0),
];

/// Which standard key a `<stem>_<SI unit>` reading maps to.
fn standard_for(stem: &str, unit: &str) -> Option<&'static str> {
    match (stem, unit) {
        ("power", "W") => Some(keys::TOTAL_POWER_LOAD),
        ("current", "A") => Some(keys::CURRENT),
        ("voltage", "V") => Some(keys::VOLTAGE),
        ("frequency", "Hz") => Some(keys::FREQUENCY),
        ("energy", "Wh") => Some(keys::ACTIVE_ENERGY_IMPORTED),
        ("power_factor", "") => Some(keys::TOTAL_POWER_FACTOR),
        _ => None,
    }
}

/// A key of one model that does not follow `<Type>_<Unit>`.
struct OddKey {
    model: &'static str,
    raw: &'static str,
    /// Normalised key, SI unit (if any), standard key (if any).
    key: &'static str,
    unit: Option<&'static str>,
    standard: Option<&'static str>,
}

const ODD_KEYS: [OddKey; 2] = [
    // A raw pulse counter, not a power: no unit is known for it.
    OddKey {
        model: "CurrentCost-Counter",
        raw: "power0",
        key: "counter0",
        unit: None,
        standard: None,
    },
    // A power factor despite its suffix.
    OddKey {
        model: "Revolt-NC5462",
        raw: "power_factor_VA",
        key: "power_factor",
        unit: None,
        standard: Some(keys::TOTAL_POWER_FACTOR),
    },
];

/// Models whose `power<n>_W` are clamps of one installation: their sum is
/// the total load.
const SUMMED_POWER_MODELS: [&str; 1] = ["CurrentCost-TX"];

/// The device identity: `model`, then `_id<id>`, `_ch<channel>`,
/// `_sub<subtype>` where present (`Revolt-NC5462_id545`).
pub fn identity(object: &Map<String, Json>) -> Result<(String, String), String> {
    let model = match object.get("model") {
        Some(Json::String(m)) if !m.trim().is_empty() => m.trim().to_owned(),
        Some(_) => return Err("`model` is not a non-empty string".into()),
        None => return Err("`model` is missing".into()),
    };
    let mut name = model.clone();
    for (field, tag) in [("id", "id"), ("channel", "ch"), ("subtype", "sub")] {
        match object.get(field) {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => name.push_str(&format!("_{tag}{}", s.trim())),
            Some(Json::Number(n)) => name.push_str(&format!("_{tag}{n}")),
            Some(other) => return Err(format!("`{field}` is {other}, not a number or text")),
        }
    }
    Ok((name, model))
}

/// The readings of one rtl_433 message.
pub fn readings(object: &Map<String, Json>, ctx: &TimeContext) -> Result<Vec<Reading>, String> {
    let (device, model) = identity(object)?;
    let time_ns = match object.get("time") {
        Some(t) => parse_time(t, ctx).map_err(|e| format!("`time`: {e}"))?,
        None => return Err("`time` is missing".into()),
    };
    let base = |key: &str, value: Value| {
        Reading::new(SOURCE, &device, time_ns, key, value).with_model(Some(model.clone()))
    };
    let mut out = Vec::new();
    let mut summed_power: Option<f64> = None;
    for (raw, value) in object {
        if FRAME_KEYS.contains(&raw.as_str()) {
            continue;
        }
        if let Some(odd) = ODD_KEYS.iter().find(|o| o.model == model && o.raw == raw) {
            let number = value
                .as_f64()
                .ok_or_else(|| format!("`{raw}` is {value}, not a number"))?;
            let mut reading = base(odd.key, Value::Number(number));
            reading.unit = odd.unit;
            reading.standard = odd.standard;
            out.push(reading);
            continue;
        }
        if raw == "battery_ok" {
            let level = value
                .as_f64()
                .ok_or_else(|| format!("`battery_ok` is {value}, not a number"))?;
            out.push(base("battery_ok", Value::Number(level)));
            continue;
        }
        let suffix = SUFFIXES
            .iter()
            .find(|(s, ..)| raw.len() > s.len() && raw.ends_with(s));
        match (suffix, value) {
            (Some((suffix, key_suffix, unit, factor, offset)), Json::Number(n)) => {
                let stem = &raw[..raw.len() - suffix.len()];
                let si = n.as_f64().unwrap_or(f64::NAN) * factor + offset;
                let mut reading =
                    base(&format!("{stem}_{key_suffix}"), Value::Number(si)).with_unit(unit);
                reading.standard = standard_for(stem, unit);
                if SUMMED_POWER_MODELS.contains(&model.as_str())
                    && *unit == "W"
                    && stem
                        .strip_prefix("power")
                        .is_some_and(|n| n.parse::<u8>().is_ok())
                {
                    summed_power = Some(summed_power.unwrap_or(0.0) + si);
                }
                out.push(reading);
            }
            (Some(_), other) if !other.is_null() => {
                return Err(format!("`{raw}` is {other}, not a number"));
            }
            _ => {
                if let Some(reading) = passthrough(raw, value).map(|v| base(raw, v)) {
                    let mut reading = reading;
                    reading.standard = standard_for(raw, "");
                    out.push(reading);
                }
            }
        }
    }
    if let Some(total) = summed_power {
        out.push(
            base("power_W", Value::Number(total))
                .with_unit("W")
                .with_standard(keys::TOTAL_POWER_LOAD),
        );
    }
    Ok(out)
}

/// A field without a known unit, as it is; `null`, lists and objects carry
/// no reading.
fn passthrough(raw: &str, value: &Json) -> Option<Value> {
    match value {
        Json::Number(n) => n.as_f64().map(Value::Number),
        Json::String(s) => Some(Value::Text(s.clone())),
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::Null | Json::Array(_) | Json::Object(_) => {
            tracing::debug!(key = raw, "rtl_433 field without a scalar value skipped");
            None
        }
    }
}

/// One JSON line → readings; errors say what is wrong with the line.
pub fn parse_line(line: &str, ctx: &TimeContext) -> Result<Vec<Reading>, String> {
    match serde_json::from_str::<Json>(line) {
        Ok(Json::Object(object)) => readings(&object, ctx),
        Ok(other) => Err(format!(
            "not a JSON object: {}",
            truncate(&other.to_string())
        )),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str, key: &str) -> Option<Reading> {
        let ctx = TimeContext::default();
        parse_line(line, &ctx)
            .ok()
            .and_then(|rs| rs.into_iter().find(|r| r.key == key))
    }

    #[test]
    fn suffixes_become_si() {
        let line = r#"{"time":"1714564800","model":"W","id":"a b","temperature_F":212,
            "wind_avg_km_h":36,"pressure_hPa":1013.25,"battery_ok":1,"humidity":45,"current_mA":250}"#;
        let close = |r: Option<Reading>, v: f64, unit: &str| {
            let r = r.unwrap_or_else(|| Reading::new(SOURCE, "", 0, "", Value::Bool(false)));
            assert_eq!(r.unit, Some(unit).filter(|u| !u.is_empty()), "{}", r.key);
            let got = r.value.as_f64().unwrap_or(f64::NAN);
            assert!(
                (got - v).abs() < 1e-9 * v.abs().max(1.0),
                "{}: {got} != {v}",
                r.key
            );
        };
        close(one(line, "temperature_C"), 100.0, "°C");
        close(one(line, "wind_avg_m_s"), 10.0, "m/s");
        close(one(line, "pressure_Pa"), 101_325.0, "Pa");
        close(one(line, "current_A"), 0.25, "A");
        close(one(line, "battery_ok"), 1.0, "");
        close(one(line, "humidity"), 45.0, "");
        assert_eq!(
            one(line, "current_A").and_then(|r| r.standard),
            Some(keys::CURRENT)
        );
        assert_eq!(
            one(line, "humidity").map(|r| r.device).as_deref(),
            Some("W_ida b")
        );
    }
}
