//! The HTTP side of a running pipeline on `service.metrics_listen`
//! (loopback by default): `/metrics` (Prometheus text format 0.0.4) and
//! `/healthz`, and when the run keeps a live view, the page at `/` and its
//! read-only JSON API under `/api`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pipeline::prometheus::CONTENT_TYPE;
use crate::sink::live::PAGE_HTML;

use super::view::RunView;

/// How often `/api/stream` sends the fleet.
const STREAM_EVERY: Duration = Duration::from_secs(1);

/// What every handler reads: the run, and when the endpoint stops (an
/// event stream ends then, or the graceful shutdown would wait for it).
#[derive(Clone)]
struct Endpoint {
    view: RunView,
    shutdown: CancellationToken,
}

async fn metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        endpoint.view.render(),
    )
}

async fn healthz(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    let (ok, body) = endpoint.view.health_text();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

async fn page(State(endpoint): State<Endpoint>) -> Response {
    match endpoint.view.live() {
        Some(_) => Html(PAGE_HTML).into_response(),
        None => no_live_view(),
    }
}

fn no_live_view() -> Response {
    (StatusCode::NOT_FOUND, "this run keeps no live view\n").into_response()
}

fn no_meter(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no meter {name:?} on this node's live view\n"),
    )
        .into_response()
}

async fn meters(State(endpoint): State<Endpoint>) -> Response {
    match endpoint.view.live() {
        Some(board) => Json(board.fleet()).into_response(),
        None => no_live_view(),
    }
}

async fn meter(State(endpoint): State<Endpoint>, Path(name): Path<String>) -> Response {
    let Some(board) = endpoint.view.live() else {
        return no_live_view();
    };
    match board.meter_detail(&name) {
        Some(detail) => Json(detail).into_response(),
        None => no_meter(&name),
    }
}

async fn waveform(State(endpoint): State<Endpoint>, Path(name): Path<String>) -> Response {
    let Some(board) = endpoint.view.live() else {
        return no_live_view();
    };
    match board.waveform(&name) {
        Some(waveform) => Json(waveform).into_response(),
        None => no_meter(&name),
    }
}

/// The fleet as a `fleet` event, now and then every [`STREAM_EVERY`], until
/// the endpoint stops.
async fn stream(State(endpoint): State<Endpoint>) -> Response {
    if endpoint.view.live().is_none() {
        return no_live_view();
    }
    Sse::new(fleet_events(endpoint))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn fleet_events(endpoint: Endpoint) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((endpoint, true), |(endpoint, first)| async move {
        if !first {
            tokio::select! {
                () = endpoint.shutdown.cancelled() => return None,
                () = tokio::time::sleep(STREAM_EVERY) => {}
            }
        }
        let fleet = endpoint.view.live()?.fleet();
        let event = match Event::default().event("fleet").json_data(&fleet) {
            Ok(event) => event,
            Err(error) => Event::default().event("error").data(error.to_string()),
        };
        Some((Ok(event), (endpoint, false)))
    })
}

/// Serves the routes until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    view: RunView,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let endpoint = Endpoint {
        view,
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/meters", get(meters))
        .route("/api/meters/{name}", get(meter))
        .route("/api/meters/{name}/waveform", get(waveform))
        .route("/api/stream", get(stream))
        .with_state(endpoint);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
