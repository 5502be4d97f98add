//! The gateway's Thingsboard telemetry: `{"ts": ms, "values":
//! {"<resource>_<key>": value, …}}` (or an array of them). The device is
//! `advt_mac` when the values carry it, else the one the caller names (the
//! access token of the request, or the file's configured device).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::fields::{resource_readings, RESOURCES};
use super::SOURCE;
use crate::model::{Reading, Value};

/// Readings of one Thingsboard body.
pub fn parse(body: &[u8], device: Option<&str>, now_ns: i64) -> Result<Vec<Reading>, String> {
    let root: Json = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match &root {
        Json::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.extend(parse_one(item, device, now_ns).map_err(|e| format!("[{i}]{e}"))?);
            }
            Ok(out)
        }
        _ => parse_one(&root, device, now_ns),
    }
}

fn parse_one(item: &Json, device: Option<&str>, now_ns: i64) -> Result<Vec<Reading>, String> {
    let Some(object) = item.as_object() else {
        return Err(": expected {\"ts\": ms, \"values\": {…}}".into());
    };
    let time_ns = match object.get("ts") {
        None => now_ns,
        Some(ts) => ts
            .as_i64()
            .filter(|ms| *ms >= 0)
            .and_then(|ms| ms.checked_mul(1_000_000))
            .ok_or_else(|| format!(".ts: expected ms since the epoch, got {ts}"))?,
    };
    let values = match object.get("values") {
        Some(Json::Object(values)) => values,
        Some(other) => return Err(format!(".values: expected an object, got {other}")),
        // Thingsboard also takes the values object alone.
        None if !object.contains_key("ts") => object,
        None => return Err(".values: is missing".into()),
    };
    let mac = match values.get("advt_mac") {
        Some(Json::String(mac)) => Some(mac.to_uppercase()),
        Some(other) => return Err(format!(".values.advt_mac: expected text, got {other}")),
        None => None,
    };
    let Some(device) = mac.as_deref().or(device) else {
        return Err(": no device: the values carry no advt_mac and none is configured".into());
    };
    let mut by_resource: BTreeMap<&str, Vec<(String, Value)>> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, value) in values {
        if name == "advt_mac" {
            continue;
        }
        let value = match value {
            Json::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Value::Text(s.clone()),
            Json::Bool(b) => Value::Bool(*b),
            Json::Null => continue,
            other => return Err(format!(".values.{name}: expected a scalar, got {other}")),
        };
        match name.split_once('_') {
            Some((resource, key)) if RESOURCES.contains(&resource) && resource != "advt" => {
                by_resource
                    .entry(resource)
                    .or_default()
                    .push((key.to_owned(), value));
            }
            _ => out.push(Reading::new(SOURCE, device, time_ns, name.clone(), value)),
        }
    }
    for (resource, properties) in by_resource {
        out.extend(
            resource_readings(resource, &properties, device, time_ns)
                .map_err(|e| format!(".values: {e}"))?,
        );
    }
    Ok(out)
}

/// `POST /api/v1/{token}/telemetry`, Thingsboard's device API: the access
/// token names the device (config: token → device name); an unknown token
/// → 401, a malformed body → 400 with the reason, 200 once queued.
pub mod server {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::Response;
    use axum::routing::post;
    use axum::Router;

    use crate::model::TelemetryBatch;
    use crate::source::telemetry::http::{queued, rejected};
    use crate::source::telemetry::reading::IngestCounts;
    use crate::source::telemetry::{submit_and_wait, BatchSender};

    pub const PATH: &str = "/api/v1/{token}/telemetry";

    pub struct ThingsboardServer {
        /// Access token → device name.
        pub access_tokens: BTreeMap<String, String>,
        pub batches: BatchSender,
        pub counts: Arc<IngestCounts>,
    }

    pub fn router(server: ThingsboardServer) -> Router {
        Router::new()
            .route(PATH, post(post_telemetry))
            .with_state(Arc::new(server))
    }

    async fn post_telemetry(
        State(server): State<Arc<ThingsboardServer>>,
        Path(token): Path<String>,
        body: Bytes,
    ) -> Response {
        let source = super::SOURCE;
        let Some(device) = server.access_tokens.get(&token) else {
            server
                .counts
                .reject(source, "telemetry", &"unknown access token");
            return rejected(StatusCode::UNAUTHORIZED, "unknown access token");
        };
        let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let readings = match super::parse(&body, Some(device), now_ns) {
            Ok(readings) => readings,
            Err(reason) => {
                let reason = format!("body{reason}");
                server.counts.reject(source, "telemetry", &reason);
                return rejected(StatusCode::BAD_REQUEST, &reason);
            }
        };
        let n = readings.len();
        if let Err(reason) =
            submit_and_wait(&server.batches, TelemetryBatch::Readings(readings)).await
        {
            return rejected(StatusCode::SERVICE_UNAVAILABLE, reason);
        }
        server.counts.accept(n);
        queued(n)
    }
}
