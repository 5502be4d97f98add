//! `/metrics` (Prometheus text format 0.0.4) and `/healthz` of the running
//! sink, on their own loopback port by default.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::model::latency::LatencySnapshot;
use crate::pipeline::prometheus::{
    counter, gauge, header, label, sample, summary, write_metrics, CONTENT_TYPE,
};
use crate::pipeline::record_log::RecordLog;
use crate::pipeline::topology::{HealthBoard, OutputViews, RecordBus};
use crate::sink::packet::PacketOutput;

use super::registry::{DropReason, MeterCounters, Registry};
use super::workers::{WorkerContext, WorkerPool};
use crate::pipeline::cluster::LeaseBook;

/// Name, help, value and type of a per-meter metric.
type PerMeterMetric = (
    &'static str,
    &'static str,
    fn(&MeterCounters) -> u64,
    &'static str,
);

/// A view of the running sink that does not keep its parts alive.
#[derive(Clone)]
pub struct SinkObserver {
    pub registry: Arc<Registry>,
    pub(super) workers: Weak<WorkerPool>,
    pub(super) worker_context: Weak<WorkerContext>,
    pub(super) health: Arc<HealthBoard>,
    pub(super) bus: Weak<RecordBus>,
    pub(super) log: Option<Weak<RecordLog>>,
    pub(super) outputs: OutputViews,
    pub(super) started: Instant,
    pub(super) stopping: CancellationToken,
    /// Cluster mode: the meter leases.
    pub(super) leases: Option<Arc<LeaseBook>>,
}

impl SinkObserver {
    pub fn window_latency(&self) -> LatencySnapshot {
        self.worker_context
            .upgrade()
            .map(|c| c.window_latency.snapshot())
            .unwrap_or_default()
    }

    pub fn packet_latency(&self) -> LatencySnapshot {
        self.outputs.latency(PacketOutput::NAME).unwrap_or_default()
    }

    /// Why the sink is unhealthy: failing outputs, a record log that cannot write.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.health.failures();
        if let Some(log) = self.log.as_ref().and_then(Weak::upgrade) {
            if let Some(error) = log.last_error() {
                problems.push(format!("record log: {error}"));
            }
        }
        problems
    }

    /// When the sink started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Forgets the latencies recorded so far (a benchmark's warm-up).
    pub fn reset_latencies(&self) {
        if let Some(context) = self.worker_context.upgrade() {
            context.window_latency.reset();
        }
        self.outputs.reset_latencies();
    }

    /// Jobs waiting per worker.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.workers
            .upgrade()
            .map(|w| w.queue_depths())
            .unwrap_or_default()
    }

    /// The Prometheus text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let server = &self.registry.server;
        gauge(&mut out, "meterflow_up", "1 while the sink runs", "", 1);
        gauge(
            &mut out,
            "meterflow_uptime_seconds",
            "seconds since the sink started",
            "",
            self.started.elapsed().as_secs_f64(),
        );
        counter(
            &mut out,
            "meterflow_connections_accepted_total",
            "TCP connections accepted",
            "",
            server.accepted.load(Relaxed),
        );
        gauge(
            &mut out,
            "meterflow_connections_pending",
            "connections that have not sent their info line yet",
            "",
            server.pending.load(Relaxed),
        );
        gauge(
            &mut out,
            "meterflow_connections_streaming",
            "meters streaming now",
            "",
            server.streaming.load(Relaxed),
        );
        header(
            &mut out,
            "meterflow_peers_dropped_total",
            "peers dropped, by reason",
            "counter",
        );
        for reason in DropReason::ALL {
            sample(
                &mut out,
                "meterflow_peers_dropped_total",
                &label("reason", reason.label()),
                server.dropped(reason),
            );
        }
        let meters = self.registry.meters();
        let per_meter: [PerMeterMetric; 11] = [
            (
                "meterflow_meter_connected",
                "1 while the meter streams",
                |m| m.connected.load(Relaxed),
                "gauge",
            ),
            (
                "meterflow_meter_connections_total",
                "sampling connections",
                |m| m.connections.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_frames_total",
                "data frames received",
                |m| m.frames.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_bytes_total",
                "sample payload bytes received",
                |m| m.bytes.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_samples_total",
                "samples into the engine",
                |m| m.samples.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_gaps_total",
                "packet_num jumps",
                |m| m.gaps.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_lost_chunks_total",
                "chunks lost in packet_num jumps",
                |m| m.lost_chunks.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_resyncs_total",
                "garbage skipped to the next frame",
                |m| m.resyncs.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_bad_lengths_total",
                "chunks whose length is not whole samples",
                |m| m.bad_lengths.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_warnings_total",
                "warnings and errors the meter logged",
                |m| m.meter_warnings.load(Relaxed),
                "counter",
            ),
            (
                "meterflow_meter_windows_total",
                "windows computed",
                |m| m.windows.load(Relaxed),
                "counter",
            ),
        ];
        for (name, help, value, kind) in per_meter {
            header(&mut out, name, help, kind);
            for (meter, counters) in &meters {
                sample(&mut out, name, &label("meter", meter), value(counters));
            }
        }
        header(
            &mut out,
            "meterflow_worker_queue_depth",
            "batches waiting per window worker",
            "gauge",
        );
        for (worker, depth) in self.queue_depths().iter().enumerate() {
            sample(
                &mut out,
                "meterflow_worker_queue_depth",
                &label("worker", &worker.to_string()),
                *depth,
            );
        }
        self.render_outputs(&mut out);
        self.render_leases(&mut out);
        write_metrics(&mut out, &self.outputs.metrics());
        summary(
            &mut out,
            "meterflow_window_latency_seconds",
            "from a window's last chunk arriving to its rows handed to the sinks",
            &self.window_latency(),
        );
        out
    }
}

impl SinkObserver {
    /// Cluster mode: the meter leases.
    fn render_leases(&self, out: &mut String) {
        let Some(leases) = &self.leases else {
            return;
        };
        let node = label("node", leases.node());
        gauge(
            out,
            "meterflow_cluster_leases_held",
            "meter leases this node holds",
            &node,
            leases.held(),
        );
        let c = &leases.counters;
        counter(
            out,
            "meterflow_cluster_leases_acquired_total",
            "meter leases taken",
            &node,
            c.acquired.load(Relaxed),
        );
        counter(
            out,
            "meterflow_cluster_leases_refused_total",
            "meters refused: another node holds their lease",
            &node,
            c.refused.load(Relaxed),
        );
        counter(
            out,
            "meterflow_cluster_leases_lost_total",
            "leases found taken by another node on renewal",
            &node,
            c.lost.load(Relaxed),
        );
        counter(
            out,
            "meterflow_cluster_lease_errors_total",
            "lease operations NATS did not answer",
            &node,
            c.errors.load(Relaxed),
        );
    }

    /// Output health, the record log and the bus.
    fn render_outputs(&self, out: &mut String) {
        let outputs = self.health.snapshot();
        header(
            out,
            "meterflow_output_errors_total",
            "failures of an output (each followed by a backoff and a retry)",
            "counter",
        );
        for (name, health) in &outputs {
            sample(
                out,
                "meterflow_output_errors_total",
                &label("output", name),
                health.errors,
            );
        }
        header(
            out,
            "meterflow_output_up",
            "1 while the output works, 0 while it fails",
            "gauge",
        );
        for (name, health) in &outputs {
            let up = u8::from(health.failing.is_none());
            sample(out, "meterflow_output_up", &label("output", name), up);
        }
        header(
            out,
            "meterflow_output_durable_seq",
            "record log seq through which the output made everything durable",
            "gauge",
        );
        for (name, health) in &outputs {
            sample(
                out,
                "meterflow_output_durable_seq",
                &label("output", name),
                health.durable_seq,
            );
        }
        if let Some(bus) = self.bus.upgrade() {
            let c = &bus.counters;
            counter(
                out,
                "meterflow_records_total",
                "records handed to the outputs",
                "",
                c.records.load(Relaxed),
            );
            counter(
                out,
                "meterflow_record_log_full_waits_total",
                "times the engine waited because the record log was full (backpressure)",
                "",
                c.log_full_waits.load(Relaxed),
            );
            counter(
                out,
                "meterflow_records_refused_total",
                "records the record log refused for good (too large, closed)",
                "",
                c.refused.load(Relaxed),
            );
            counter(
                out,
                "meterflow_lost_result_spans_total",
                "spans of results lost in an unclean stop, one per meter (see the events table)",
                "",
                c.lost_result_spans.load(Relaxed),
            );
        }
        if let Some(log) = self.log.as_ref().and_then(Weak::upgrade) {
            let stats = log.stats();
            gauge(
                out,
                "meterflow_record_log_bytes",
                "bytes of record log segments on disk",
                "",
                stats.bytes_on_disk,
            );
            gauge(
                out,
                "meterflow_record_log_buffered_bytes",
                "bytes appended but not yet durable",
                "",
                stats.buffered_bytes,
            );
            counter(
                out,
                "meterflow_record_log_flush_errors_total",
                "failed fsyncs of the record log",
                "",
                stats.flush_errors,
            );
            counter(
                out,
                "meterflow_record_log_overflows_total",
                "appends refused because the record log was full",
                "",
                stats.overflows,
            );
            gauge(
                out,
                "meterflow_record_log_healthy",
                "1 while the record log writes",
                "",
                u8::from(stats.healthy),
            );
            header(
                out,
                "meterflow_record_log_lag",
                "records not yet acknowledged by an output",
                "gauge",
            );
            for consumer in &stats.consumers {
                sample(
                    out,
                    "meterflow_record_log_lag",
                    &label("output", &consumer.name),
                    consumer.lag,
                );
            }
        }
    }
}

async fn metrics(State(observer): State<SinkObserver>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], observer.render())
}

async fn healthz(State(observer): State<SinkObserver>) -> impl IntoResponse {
    let streaming = observer.registry.server.streaming.load(Relaxed);
    let problems = observer.problems();
    if !problems.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "failing\n{}\nmeters streaming: {streaming}\n",
                problems.join("\n")
            ),
        )
    } else if observer.stopping.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stopping\nmeters streaming: {streaming}\n"),
        )
    } else {
        (
            StatusCode::OK,
            format!("ok\nmeters streaming: {streaming}\n"),
        )
    }
}

/// Serves `/metrics` and `/healthz` until `shutdown` fires.
pub async fn serve_metrics(
    listener: TcpListener,
    observer: SinkObserver,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(observer);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_help_type_and_samples() {
        let registry = Arc::new(Registry::default());
        let claim = registry.claim("smartmeter001").unwrap();
        claim.counters.frames.fetch_add(7, Relaxed);
        registry.dropped(DropReason::NoInfoLine);
        let observer = SinkObserver {
            registry: Arc::clone(&registry),
            workers: Weak::new(),
            worker_context: Weak::new(),
            health: Arc::default(),
            bus: Weak::new(),
            log: None,
            outputs: OutputViews::default(),
            started: Instant::now(),
            stopping: CancellationToken::new(),
            leases: None,
        };
        let text = observer.render();
        assert!(text.contains("# TYPE meterflow_meter_frames_total counter\n"));
        assert!(text.contains("meterflow_meter_frames_total{meter=\"smartmeter001\"} 7\n"));
        assert!(text.contains("meterflow_peers_dropped_total{reason=\"no_info_line\"} 1\n"));
        assert!(text.contains("meterflow_connections_streaming 1\n"));
        assert!(text.contains("meterflow_window_latency_seconds_count 0\n"));
        // Every sample line is `name{labels} value` with a number for value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
