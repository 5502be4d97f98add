//! Shared pieces of the HTTP ingest servers (MPPT datasets, AirLink
//! Thingsboard posts): binding, serving until cancelled, and the JSON
//! answers, so both servers answer the same way.

use std::net::SocketAddr;

use anyhow::Context;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A JSON answer `{"error": reason}` or `{"queued": n}`.
pub fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

pub fn rejected(status: StatusCode, reason: &str) -> Response {
    answer(status, serde_json::json!({ "error": reason }))
}

pub fn queued(items: usize) -> Response {
    answer(StatusCode::OK, serde_json::json!({ "queued": items }))
}

/// A header's value as text, if present and printable.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Binds `listen` (e.g. `127.0.0.1:8080`; port 0 picks a free one).
pub async fn bind(listen: &str, what: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("{what}: binding {listen}"))?;
    let address = listener
        .local_addr()
        .with_context(|| format!("{what}: reading the bound address"))?;
    Ok((listener, address))
}

/// Serves `router` until `cancel` fires; requests in flight finish first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cancel: CancellationToken,
    what: &str,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .with_context(|| format!("{what}: serving"))
}
