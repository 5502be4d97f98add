//! `/metrics` (Prometheus text format 0.0.4) and `/healthz` of a running
//! pipeline, on `service.metrics_listen` (loopback by default).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pipeline::prometheus::CONTENT_TYPE;

use super::view::RunView;

async fn metrics(State(view): State<RunView>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], view.render())
}

async fn healthz(State(view): State<RunView>) -> impl IntoResponse {
    let (ok, body) = view.health_text();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

/// Serves `/metrics` and `/healthz` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    view: RunView,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(view);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
