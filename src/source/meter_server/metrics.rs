//! What the stream sink measures about itself, for the runner's `/metrics`
//! and `/healthz`: connections, peers dropped by reason, per-meter transport
//! counters and, in cluster mode, the meter leases.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::model::metric::Metric;
use crate::source::component::SourceMetrics;

use super::leases::MeterLeases;

use super::registry::{DropReason, MeterCounters, Registry};

/// Name, help, value and type of a per-meter metric.
type PerMeterMetric = (&'static str, &'static str, fn(&MeterCounters) -> u64, bool);

/// The sink's parts that `/metrics` reads.
#[derive(Clone)]
pub struct SinkMetrics {
    pub registry: Arc<Registry>,
    /// Cluster mode: the meter leases.
    pub leases: Option<Arc<dyn MeterLeases>>,
}

const PER_METER: [PerMeterMetric; 11] = [
    (
        "meterflow_meter_connected",
        "1 while the meter streams",
        |m| m.connected.load(Relaxed),
        false,
    ),
    (
        "meterflow_meter_connections_total",
        "sampling connections",
        |m| m.connections.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_frames_total",
        "data frames received",
        |m| m.frames.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_bytes_total",
        "sample payload bytes received",
        |m| m.bytes.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_samples_total",
        "samples into the engine",
        |m| m.engine.samples.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_gaps_total",
        "packet_num jumps",
        |m| m.gaps.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_lost_chunks_total",
        "chunks lost in packet_num jumps",
        |m| m.lost_chunks.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_resyncs_total",
        "garbage skipped to the next frame",
        |m| m.resyncs.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_bad_lengths_total",
        "chunks whose length is not whole samples",
        |m| m.bad_lengths.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_warnings_total",
        "warnings and errors the meter logged",
        |m| m.meter_warnings.load(Relaxed),
        true,
    ),
    (
        "meterflow_meter_windows_total",
        "windows computed",
        |m| m.engine.windows.load(Relaxed),
        true,
    ),
];

impl SourceMetrics for SinkMetrics {
    fn metrics(&self) -> Vec<Metric> {
        let server = &self.registry.server;
        let mut metrics = vec![
            Metric::counter(
                "meterflow_connections_accepted_total",
                "TCP connections accepted",
                server.accepted.load(Relaxed),
            ),
            Metric::gauge(
                "meterflow_connections_pending",
                "connections that have not sent their info line yet",
                server.pending.load(Relaxed) as f64,
            ),
            Metric::gauge(
                "meterflow_connections_streaming",
                "meters streaming now",
                server.streaming.load(Relaxed) as f64,
            ),
        ];
        metrics.extend(DropReason::ALL.iter().map(|reason| {
            Metric::counter(
                "meterflow_peers_dropped_total",
                "peers dropped, by reason",
                server.dropped(*reason),
            )
            .with("reason", reason.label())
        }));
        let meters = self.registry.meters();
        for (name, help, value, is_counter) in PER_METER {
            for (meter, counters) in &meters {
                let metric = if is_counter {
                    Metric::counter(name, help, value(counters))
                } else {
                    Metric::gauge(name, help, value(counters) as f64)
                };
                metrics.push(metric.with("meter", meter));
            }
        }
        if let Some(leases) = &self.leases {
            metrics.extend(leases.metrics());
        }
        metrics
    }

    fn status(&self) -> String {
        let streaming = self.registry.server.streaming.load(Relaxed);
        format!("meters streaming: {streaming}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::metric::MetricValue;

    fn value(metrics: &[Metric], name: &str, label: Option<(&str, &str)>) -> Option<MetricValue> {
        metrics
            .iter()
            .find(|m| {
                m.name == name
                    && label.is_none_or(|(k, v)| {
                        m.labels.iter().any(|(key, val)| *key == k && val == v)
                    })
            })
            .map(|m| m.value.clone())
    }

    #[test]
    fn per_meter_counters_and_drops_are_metrics() {
        let registry = Arc::new(Registry::default());
        let claim = registry.claim("smartmeter001").unwrap();
        claim.counters.frames.fetch_add(7, Relaxed);
        claim.counters.engine.samples.fetch_add(8000, Relaxed);
        registry.dropped(DropReason::NoInfoLine);
        let sink = SinkMetrics {
            registry: Arc::clone(&registry),
            leases: None,
        };
        let metrics = sink.metrics();
        let meter = Some(("meter", "smartmeter001"));
        assert_eq!(
            value(&metrics, "meterflow_meter_frames_total", meter),
            Some(MetricValue::Counter(7))
        );
        assert_eq!(
            value(&metrics, "meterflow_meter_samples_total", meter),
            Some(MetricValue::Counter(8000))
        );
        assert_eq!(
            value(
                &metrics,
                "meterflow_peers_dropped_total",
                Some(("reason", "no_info_line"))
            ),
            Some(MetricValue::Counter(1))
        );
        assert_eq!(
            value(&metrics, "meterflow_connections_streaming", None),
            Some(MetricValue::Gauge(1.0))
        );
        assert_eq!(sink.status(), "meters streaming: 1");
    }
}
