//! What a running pipeline shows on `/metrics` and `/healthz`, whatever its
//! source: the source's own metrics, the engine's queues and latency, the
//! outputs' health and metrics, the record bus and the record log.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::model::latency::LatencySnapshot;
use crate::pipeline::prometheus::{counter, gauge, header, label, sample, summary, write_metrics};
use crate::pipeline::record_log::RecordLog;
use crate::pipeline::topology::{HealthBoard, OutputViews, RecordBus};
use crate::pipeline::workers::{WorkerContext, WorkerPool};
use crate::sink::live::LiveBoard;
use crate::sink::packet::PacketOutput;
use crate::source::component::SourceMetrics;

/// A view of a running pipeline that does not keep its parts alive.
#[derive(Clone)]
pub struct RunView {
    pub(super) health: Arc<HealthBoard>,
    pub(super) bus: Weak<RecordBus>,
    pub(super) log: Option<Weak<RecordLog>>,
    pub(super) outputs: OutputViews,
    pub(super) engine: Option<(Weak<WorkerPool>, Weak<WorkerContext>)>,
    pub(super) source: Option<Arc<dyn SourceMetrics>>,
    pub(super) started: Instant,
    pub(super) stopping: CancellationToken,
    /// The live view's board (`/`, `/api`), when the run serves one.
    pub(super) live: Option<Arc<LiveBoard>>,
}

/// How `/healthz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    Stopping,
    /// Why: failing outputs, a record log that cannot write, a failing source.
    Failing(Vec<String>),
}

impl RunView {
    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The live view's board, when the run serves one.
    pub fn live(&self) -> Option<&LiveBoard> {
        self.live.as_deref()
    }

    /// From the arrival of a window's last chunk to its rows handed to the outputs.
    pub fn window_latency(&self) -> LatencySnapshot {
        self.engine
            .as_ref()
            .and_then(|(_, context)| context.upgrade())
            .map(|context| context.window_latency.snapshot())
            .unwrap_or_default()
    }

    /// From an interval's last reading to its packet handed to delivery.
    pub fn packet_latency(&self) -> LatencySnapshot {
        self.outputs.latency(PacketOutput::NAME).unwrap_or_default()
    }

    /// Forgets the latencies recorded so far (a benchmark's warm-up).
    pub fn reset_latencies(&self) {
        if let Some(context) = self.engine.as_ref().and_then(|(_, c)| c.upgrade()) {
            context.window_latency.reset();
        }
        self.outputs.reset_latencies();
    }

    /// Jobs waiting in each window worker's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.engine
            .as_ref()
            .and_then(|(pool, _)| pool.upgrade())
            .map(|pool| pool.queue_depths())
            .unwrap_or_default()
    }

    pub fn health(&self) -> Health {
        let mut problems = self.health.failures();
        if let Some(log) = self.log.as_ref().and_then(Weak::upgrade) {
            if let Some(error) = log.last_error() {
                problems.push(format!("record log: {error}"));
            }
        }
        if let Some(source) = &self.source {
            problems.extend(source.problems());
        }
        if !problems.is_empty() {
            Health::Failing(problems)
        } else if self.stopping.is_cancelled() {
            Health::Stopping
        } else {
            Health::Ok
        }
    }

    /// The `/healthz` body: the state word, any problems, the source's status.
    pub fn health_text(&self) -> (bool, String) {
        let status = self
            .source
            .as_ref()
            .map_or_else(String::new, |source| format!("{}\n", source.status()));
        match self.health() {
            Health::Ok => (true, format!("ok\n{status}")),
            Health::Stopping => (false, format!("stopping\n{status}")),
            Health::Failing(problems) => {
                (false, format!("failing\n{}\n{status}", problems.join("\n")))
            }
        }
    }

    /// The Prometheus text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        gauge(&mut out, "meterflow_up", "1 while the pipeline runs", "", 1);
        gauge(
            &mut out,
            "meterflow_uptime_seconds",
            "seconds since the pipeline started",
            "",
            self.started.elapsed().as_secs_f64(),
        );
        if let Some(source) = &self.source {
            write_metrics(&mut out, &source.metrics());
        }
        if self.engine.is_some() {
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
            summary(
                &mut out,
                "meterflow_window_latency_seconds",
                "from a window's last chunk arriving to its rows handed to the sinks",
                &self.window_latency(),
            );
        }
        self.render_outputs(&mut out);
        write_metrics(&mut out, &self.outputs.metrics());
        out
    }

    /// Output health, the record bus and the record log.
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
        let Some(log) = self.log.as_ref().and_then(Weak::upgrade) else {
            return;
        };
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
