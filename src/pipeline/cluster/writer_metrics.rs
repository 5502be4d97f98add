//! A writer's `/metrics` and `/healthz` (on `service.metrics_listen`): what
//! it took from the stream, what it refused, how far behind it is, and the
//! health of its source and outputs.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pipeline::prometheus::{counter, gauge, label, summary, CONTENT_TYPE};
use crate::pipeline::topology::HealthBoard;

use super::writer::WriterCounters;

#[derive(Clone)]
struct WriterView {
    name: String,
    counters: Arc<WriterCounters>,
    health: Arc<HealthBoard>,
}

fn render(view: &WriterView) -> String {
    let mut out = String::with_capacity(2048);
    let c = &view.counters;
    let writer = label("writer", &view.name);
    gauge(&mut out, "meterflow_up", "1 while the writer runs", "", 1);
    counter(
        &mut out,
        "meterflow_writer_messages_total",
        "record messages taken into the writer's log",
        &writer,
        c.messages.load(Relaxed),
    );
    counter(
        &mut out,
        "meterflow_writer_records_total",
        "records taken",
        &writer,
        c.records.load(Relaxed),
    );
    counter(
        &mut out,
        "meterflow_writer_duplicate_messages_total",
        "redelivered messages the log already had",
        &writer,
        c.duplicate_messages.load(Relaxed),
    );
    counter(
        &mut out,
        "meterflow_writer_duplicate_records_total",
        "records a node published twice, dropped",
        &writer,
        c.duplicate_records.load(Relaxed),
    );
    counter(
        &mut out,
        "meterflow_writer_rejected_messages_total",
        "messages that were not meterflow record batches",
        &writer,
        c.rejected.load(Relaxed),
    );
    gauge(
        &mut out,
        "meterflow_writer_pending_messages",
        "messages of this writer's share still in the stream",
        &writer,
        c.pending.load(Relaxed),
    );
    gauge(
        &mut out,
        "meterflow_writer_stream_seq",
        "stream sequence of the last message taken",
        &writer,
        c.stream_seq.load(Relaxed),
    );
    summary(
        &mut out,
        "meterflow_writer_window_age_seconds",
        "window end (data time) to the window taken into this writer's log",
        &c.window_age.snapshot(),
    );
    for (name, health) in view.health.snapshot() {
        let labels = format!("{writer},{}", label("output", name));
        gauge(
            &mut out,
            "meterflow_output_up",
            "1 while the output works, 0 while it fails",
            &labels,
            u8::from(health.failing.is_none()),
        );
        counter(
            &mut out,
            "meterflow_output_errors_total",
            "failures of an output",
            &labels,
            health.errors,
        );
    }
    out
}

async fn metrics(State(view): State<WriterView>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&view))
}

async fn healthz(State(view): State<WriterView>) -> impl IntoResponse {
    let failures = view.health.failures();
    let pending = view.counters.pending.load(Relaxed);
    if failures.is_empty() {
        (StatusCode::OK, format!("ok\npending messages: {pending}\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "failing\n{}\npending messages: {pending}\n",
                failures.join("\n")
            ),
        )
    }
}

/// Serves until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    name: String,
    counters: Arc<WriterCounters>,
    health: Arc<HealthBoard>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(WriterView {
            name,
            counters,
            health,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
