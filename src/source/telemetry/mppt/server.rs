//! `POST /devices/dataset/mppt`: a missing or unknown API key → 401, a
//! malformed body → 400 naming the field at fault, 200 once kept (in the record log, on disk).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::body::parse_body;
use crate::model::TelemetryBatch;
use crate::source::telemetry::http::{header_text, queued, rejected};
use crate::source::telemetry::reading::IngestCounts;
use crate::source::telemetry::{submit_and_wait, BatchSender};

pub const PATH: &str = "/devices/dataset/mppt";

/// What the endpoint needs.
pub struct MpptServer {
    /// API key → sender id (the `sender` column).
    pub api_keys: BTreeMap<String, String>,
    /// The header carrying the key.
    pub api_key_header: String,
    pub batches: BatchSender,
    pub counts: Arc<IngestCounts>,
}

/// The router of the endpoint.
pub fn router(server: MpptServer) -> Router {
    Router::new()
        .route(PATH, post(post_dataset))
        .with_state(Arc::new(server))
}

async fn post_dataset(
    State(server): State<Arc<MpptServer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = header_text(&headers, &server.api_key_header) else {
        let reason = format!("missing API key header {}", server.api_key_header);
        server.counts.reject(super::SOURCE, PATH, &reason);
        return rejected(StatusCode::UNAUTHORIZED, &reason);
    };
    let Some(sender) = server.api_keys.get(key) else {
        let reason = "unknown API key";
        server.counts.reject(super::SOURCE, PATH, &reason);
        return rejected(StatusCode::UNAUTHORIZED, reason);
    };
    let processed_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let records = match parse_body(&body, sender, processed_ns) {
        Ok(records) => records,
        Err(reason) => {
            server.counts.reject(super::SOURCE, PATH, &reason);
            return rejected(StatusCode::BAD_REQUEST, &reason);
        }
    };
    let items = records.len();
    let readings = records.iter().map(|r| super::readings(r).len()).sum();
    if let Err(reason) = submit_and_wait(&server.batches, TelemetryBatch::Mppt(records)).await {
        return rejected(StatusCode::SERVICE_UNAVAILABLE, reason);
    }
    server.counts.accept(readings);
    queued(items)
}
