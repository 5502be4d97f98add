//! Raw AirLink CBOR: a resource map (`/eout`, `/ein`, `/batt`, `/temp`,
//! `/pu`) or the 8-element advertisement array. Decoded with ciborium; a
//! truncated item or a value of the wrong type is an error naming it.

use ciborium::Value as Cbor;

use super::fields::{resource_readings, ADVERTISEMENT, RESOURCES};
use super::SOURCE;
use crate::model::{Reading, Value};

fn decode(bytes: &[u8], what: &str) -> Result<Cbor, String> {
    let mut rest = bytes;
    let value: Cbor = ciborium::from_reader(&mut rest)
        .map_err(|e| format!("{what}: not a complete CBOR item: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{what}: {} bytes after the CBOR item", rest.len()));
    }
    Ok(value)
}

/// A scalar CBOR value as a reading value; containers and tags are errors.
fn scalar(value: &Cbor, at: &str) -> Result<Option<Value>, String> {
    Ok(Some(match value {
        Cbor::Integer(i) => Value::Number(i128::from(*i) as f64),
        Cbor::Float(f) => Value::Number(*f),
        Cbor::Text(t) => Value::Text(t.clone()),
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Bytes(b) => Value::Text(b.iter().map(|x| format!("{x:02x}")).collect()),
        Cbor::Null => return Ok(None),
        other => {
            return Err(format!(
                "{at}: expected a number, text or flag, got {}",
                kind(other)
            ))
        }
    }))
}

fn kind(value: &Cbor) -> &'static str {
    match value {
        Cbor::Integer(_) => "an integer",
        Cbor::Float(_) => "a float",
        Cbor::Text(_) => "text",
        Cbor::Bytes(_) => "bytes",
        Cbor::Bool(_) => "a flag",
        Cbor::Null => "null",
        Cbor::Tag(..) => "a tagged item",
        Cbor::Array(_) => "an array",
        Cbor::Map(_) => "a map",
        _ => "an unknown item",
    }
}

/// One resource map (`resource` as `eout` or `/eout`) of `device`;
/// `time_ns` is used when the map has no `ts`.
pub fn decode_resource(
    resource: &str,
    bytes: &[u8],
    device: &str,
    time_ns: i64,
) -> Result<Vec<Reading>, String> {
    let resource = resource.trim_start_matches('/');
    if !RESOURCES.contains(&resource) || resource == "advt" {
        return Err(format!(
            "/{resource}: not a resource map this decoder knows"
        ));
    }
    let at = format!("/{resource}");
    let Cbor::Map(entries) = decode(bytes, &at)? else {
        return Err(format!("{at}: expected a CBOR map"));
    };
    let mut properties = Vec::with_capacity(entries.len());
    for (key, value) in &entries {
        let Cbor::Text(key) = key else {
            return Err(format!(
                "{at}: property names must be text, got {}",
                kind(key)
            ));
        };
        if let Some(value) = scalar(value, &format!("{at}.{key}"))? {
            properties.push((key.clone(), value));
        }
    }
    resource_readings(resource, &properties, device, time_ns)
}

/// The advertisement `[rv, ft, did, gts, pst, fv, cr, pu]` of the device
/// with `mac` (from the BLE header), received at `time_ns`.
pub fn decode_advertisement(bytes: &[u8], mac: &str, time_ns: i64) -> Result<Vec<Reading>, String> {
    let Cbor::Array(items) = decode(bytes, "/advt")? else {
        return Err("/advt: expected a CBOR array of 8".into());
    };
    if items.len() != ADVERTISEMENT.len() {
        return Err(format!("/advt: expected 8 elements, got {}", items.len()));
    }
    let device = mac.to_uppercase();
    let mut out = Vec::new();
    for (name, item) in ADVERTISEMENT.iter().zip(&items) {
        if let Some(value) = scalar(item, &format!("/advt.{name}"))? {
            out.push(Reading::new(
                SOURCE,
                &device,
                time_ns,
                format!("advt_{name}"),
                value,
            ));
        }
    }
    Ok(out)
}
