//! The body of `POST /devices/dataset/mppt` → one [`MpptRecord`] per data
//! item, the flattened shape of the `tel_mppt` dataset. A body is taken
//! whole or not at all; an error names the field at fault
//! (`datasets[0].data[1].pv.volts[2]: …`).

use chrono::DateTime;
use serde_json::{json, Map, Value as Json};

use crate::model::mppt::{Channel, MpptRecord, MpptStatus, MAX_LOAD, MAX_PV};
use crate::source::telemetry::time::{canonical_utc, offset_string};

impl MpptRecord {
    /// The consumer message (`monitoring.mppt`) exactly as the spec shows it.
    pub fn to_message(&self) -> Json {
        let channel = |c: &Channel| json!({"volts": c.volts, "amps": c.amps, "watts": c.watts});
        json!({
            "mppt_id": self.mppt_id,
            "pv": self.pv.iter().map(channel).collect::<Vec<_>>(),
            "battery": channel(&self.battery),
            "load": self.load.iter().map(channel).collect::<Vec<_>>(),
            "status": serde_json::to_value(&self.status).unwrap_or(Json::Null),
            "sender": self.sender,
            "time_event": canonical_utc(self.time_event_ns),
            "time_zone": self.time_zone,
            "time_processing": canonical_utc(self.time_processing_ns),
        })
    }
}

/// Parses a whole request body; `sender` and `processed_ns` come from the
/// request, not the body.
pub fn parse_body(body: &[u8], sender: &str, processed_ns: i64) -> Result<Vec<MpptRecord>, String> {
    let root: Json = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let root = object(&root, "body")?;
    let datasets = array(field(root, "datasets", "")?, "datasets")?;
    if datasets.is_empty() {
        return Err("datasets: is empty".into());
    }
    let mut records = Vec::new();
    for (d, dataset) in datasets.iter().enumerate() {
        let at = format!("datasets[{d}]");
        let dataset = object(dataset, &at)?;
        let mppt = object(field(dataset, "mppt", &at)?, &format!("{at}.mppt"))?;
        let id_at = format!("{at}.mppt.id");
        let mppt_id = match field(mppt, "id", &format!("{at}.mppt"))? {
            Json::String(id) if !id.trim().is_empty() => id.trim().to_owned(),
            other => return Err(format!("{id_at}: expected a non-empty string, got {other}")),
        };
        let data_at = format!("{at}.data");
        let data = array(field(dataset, "data", &at)?, &data_at)?;
        if data.is_empty() {
            return Err(format!("{data_at}: is empty"));
        }
        for (k, item) in data.iter().enumerate() {
            let at = format!("{data_at}[{k}]");
            records.push(parse_item(
                object(item, &at)?,
                &at,
                &mppt_id,
                sender,
                processed_ns,
            )?);
        }
    }
    Ok(records)
}

fn parse_item(
    item: &Map<String, Json>,
    at: &str,
    mppt_id: &str,
    sender: &str,
    processed_ns: i64,
) -> Result<MpptRecord, String> {
    let time_at = format!("{at}.time_local");
    let time_local = match field(item, "time_local", at)? {
        Json::String(s) => s,
        other => return Err(format!("{time_at}: expected text, got {other}")),
    };
    let time = DateTime::parse_from_str(time_local, "%Y%m%dT%H%M%S%.f%z").map_err(|e| {
        format!("{time_at}: {time_local:?} is not like 20190209T150006.032+0700 ({e})")
    })?;
    let time_event_ns = time
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("{time_at}: {time_local:?} is out of range"))?;
    let pv = channels(item, "pv", at, MAX_PV)?;
    let load = channels(item, "load", at, MAX_LOAD)?;
    let battery_at = format!("{at}.battery");
    let battery = object(field(item, "battery", at)?, &battery_at)?;
    let battery = Channel::new(
        number(
            field(battery, "volts", &battery_at)?,
            &format!("{battery_at}.volts"),
        )?,
        number(
            field(battery, "amps", &battery_at)?,
            &format!("{battery_at}.amps"),
        )?,
    );
    let status_at = format!("{at}.status");
    let status = match field(item, "status", at)? {
        Json::String(s) => MpptStatus::decode(s).map_err(|e| format!("{status_at}: {e}"))?,
        other => {
            return Err(format!(
                "{status_at}: expected 4 hex digits as text, got {other}"
            ))
        }
    };
    Ok(MpptRecord {
        mppt_id: mppt_id.to_owned(),
        pv,
        battery,
        load,
        status,
        sender: sender.to_owned(),
        time_event_ns,
        time_zone: offset_string(*time.offset()),
        time_processing_ns: processed_ns,
    })
}

/// `pv` or `load`: `volts` and `amps` arrays of equal length 1..=max.
fn channels(
    item: &Map<String, Json>,
    name: &str,
    parent: &str,
    max: usize,
) -> Result<Vec<Channel>, String> {
    let at = format!("{parent}.{name}");
    let group = object(field(item, name, parent)?, &at)?;
    let volts = numbers(field(group, "volts", &at)?, &format!("{at}.volts"))?;
    let amps = numbers(field(group, "amps", &at)?, &format!("{at}.amps"))?;
    if volts.is_empty() || volts.len() > max {
        return Err(format!(
            "{at}.volts: expected 1 to {max} values, got {}",
            volts.len()
        ));
    }
    if amps.len() != volts.len() {
        return Err(format!(
            "{at}.amps: {} values for {} volts",
            amps.len(),
            volts.len()
        ));
    }
    Ok(volts
        .into_iter()
        .zip(amps)
        .map(|(v, a)| Channel::new(v, a))
        .collect())
}

fn field<'a>(object: &'a Map<String, Json>, name: &str, at: &str) -> Result<&'a Json, String> {
    let path = if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    };
    object
        .get(name)
        .ok_or_else(|| format!("{path}: is missing"))
}

fn object<'a>(value: &'a Json, at: &str) -> Result<&'a Map<String, Json>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {}", kind(value)))
}

fn array<'a>(value: &'a Json, at: &str) -> Result<&'a Vec<Json>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{at}: expected an array, got {}", kind(value)))
}

fn number(value: &Json, at: &str) -> Result<f64, String> {
    value
        .as_f64()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{at}: expected a number, got {}", kind(value)))
}

fn numbers(value: &Json, at: &str) -> Result<Vec<f64>, String> {
    array(value, at)?
        .iter()
        .enumerate()
        .map(|(i, v)| number(v, &format!("{at}[{i}]")))
        .collect()
}

fn kind(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let body =
            br#"{"datasets":[{"mppt":{"id":"X"},"data":[{"time_local":"20190209T150006.032+0700",
            "pv":{"volts":[48,"a"],"amps":[6,6]},"battery":{"volts":55.1,"amps":0},
            "load":{"volts":[48],"amps":[1.2]},"status":"0801"}]}]}"#;
        let error = parse_body(body, "S", 0).err().unwrap_or_default();
        assert!(
            error.starts_with("datasets[0].data[0].pv.volts[1]:"),
            "{error}"
        );
        let error = parse_body(br#"{"datasets":[]}"#, "S", 0)
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("datasets:"), "{error}");
    }

    #[test]
    fn watts_round_to_four_decimals() {
        assert_eq!(Channel::new(48.0, 1.2).watts, 57.6);
        assert_eq!(Channel::new(12.345_67, 1.0).watts, 12.3457);
    }
}
