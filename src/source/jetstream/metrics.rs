//! What a writer node measures about itself, for the runner's `/metrics`
//! and `/healthz`: what it took from the stream, what it refused, and how
//! far behind it is. Its outputs' health is the runner's.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::model::metric::Metric;
use crate::source::component::SourceMetrics;

use super::WriterCounters;

/// A writer's counters, labelled with its name.
pub struct WriterMetrics {
    pub name: String,
    pub counters: Arc<WriterCounters>,
}

impl SourceMetrics for WriterMetrics {
    fn metrics(&self) -> Vec<Metric> {
        let c = &self.counters;
        let metrics = vec![
            Metric::counter(
                "meterflow_writer_messages_total",
                "record messages taken into the writer's log",
                c.messages.load(Relaxed),
            ),
            Metric::counter(
                "meterflow_writer_records_total",
                "records taken",
                c.records.load(Relaxed),
            ),
            Metric::counter(
                "meterflow_writer_duplicate_messages_total",
                "redelivered messages the log already had",
                c.duplicate_messages.load(Relaxed),
            ),
            Metric::counter(
                "meterflow_writer_duplicate_records_total",
                "records a node published twice, dropped",
                c.duplicate_records.load(Relaxed),
            ),
            Metric::counter(
                "meterflow_writer_rejected_messages_total",
                "messages that were not meterflow record batches",
                c.rejected.load(Relaxed),
            ),
            Metric::gauge(
                "meterflow_writer_pending_messages",
                "messages of this writer's share still in the stream",
                c.pending.load(Relaxed) as f64,
            ),
            Metric::gauge(
                "meterflow_writer_stream_seq",
                "stream sequence of the last message taken",
                c.stream_seq.load(Relaxed) as f64,
            ),
            Metric::summary(
                "meterflow_writer_window_age_seconds",
                "window end (data time) to the window taken into this writer's log",
                c.window_age.snapshot(),
            ),
        ];
        metrics
            .into_iter()
            .map(|metric| metric.with("writer", self.name.clone()))
            .collect()
    }

    fn status(&self) -> String {
        let pending = self.counters.pending.load(Relaxed);
        format!("pending messages: {pending}")
    }
}
