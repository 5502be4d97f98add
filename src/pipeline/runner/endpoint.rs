//! The HTTP side of a running pipeline on `service.metrics_listen`
//! (loopback by default): `/metrics` (Prometheus text format 0.0.4) and
//! `/healthz`, and when the run keeps a live view, the page at `/` and its
//! read-only JSON API under `/api`. With `service.http_token_file`, every
//! route but `/healthz` (a liveness probe) asks for the token.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
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
    access: Access,
}

/// Who may read the routes.
#[derive(Clone, Default)]
pub struct Access {
    /// The bearer token every route but `/healthz` requires; `None`: open.
    pub token: Option<String>,
}

/// Equal strings, in a time that does not depend on where they differ.
fn same_token(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// Lets a request through with the token as `Authorization: Bearer`, or
/// for the page itself as `/?token=` (a browser cannot add the header to
/// a link; the page then sends it with every request of its own).
async fn require_token(State(endpoint): State<Endpoint>, request: Request, next: Next) -> Response {
    let Some(token) = endpoint.access.token.as_deref() else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| same_token(given.trim(), token));
    let page_query = request.uri().path() == "/"
        && request.uri().query().is_some_and(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("token="))
                .any(|given| same_token(given, token))
        });
    if bearer || page_query {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this endpoint needs the token of service.http_token_file (Authorization: Bearer <token>)\n",
        )
            .into_response()
    }
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
    access: Access,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let endpoint = Endpoint {
        view,
        shutdown: shutdown.clone(),
        access,
    };
    let guarded = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/meters", get(meters))
        .route("/api/meters/{name}", get(meter))
        .route("/api/meters/{name}/waveform", get(waveform))
        .route("/api/stream", get(stream))
        .route_layer(middleware::from_fn_with_state(
            endpoint.clone(),
            require_token,
        ));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .with_state(endpoint);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
