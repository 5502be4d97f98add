//! What the stream sink measures about itself, for the runner's `/metrics`
//! and `/healthz`: connections, peers dropped by reason, per-meter transport
//! counters and, in cluster mode, the meter leases.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::model::metric::Metric;
use crate::pipeline::cluster::LeaseBook;
use crate::pipeline::sources::SourceMetrics;

use super::registry::{DropReason, MeterCounters, Registry};

/// Name, help, value and type of a per-meter metric.
type PerMeterMetric = (&'static str, &'static str, fn(&MeterCounters) -> u64, bool);

/// The sink's parts that `/metrics` reads.
#[derive(Clone)]
pub struct SinkMetrics {
    pub registry: Arc<Registry>,
    /// Cluster mode: the meter leases.
    pub leases: Option<Arc<LeaseBook>>,
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
        |m| m.samples.load(Relaxed),
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
        |m| m.windows.load(Relaxed),
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
            metrics.extend(lease_metrics(leases));
        }
        metrics
    }

    fn status(&self) -> String {
        let streaming = self.registry.server.streaming.load(Relaxed);
        format!("meters streaming: {streaming}")
    }
}

/// Cluster mode: the leases this node holds, takes, is refused and loses.
fn lease_metrics(leases: &LeaseBook) -> Vec<Metric> {
    let c = &leases.counters;
    let node = leases.node().to_string();
    vec![
        Metric::gauge(
            "meterflow_cluster_leases_held",
            "meter leases this node holds",
            leases.held() as f64,
        ),
        Metric::counter(
            "meterflow_cluster_leases_acquired_total",
            "meter leases taken",
            c.acquired.load(Relaxed),
        ),
        Metric::counter(
            "meterflow_cluster_leases_refused_total",
            "meters refused: another node holds their lease",
            c.refused.load(Relaxed),
        ),
        Metric::counter(
            "meterflow_cluster_leases_lost_total",
            "leases found taken by another node on renewal",
            c.lost.load(Relaxed),
        ),
        Metric::counter(
            "meterflow_cluster_lease_errors_total",
            "lease operations NATS did not answer",
            c.errors.load(Relaxed),
        ),
    ]
    .into_iter()
    .map(|metric| metric.with("node", node.clone()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::prometheus::write_metrics;

    #[test]
    fn the_text_format_has_help_type_and_samples() {
        let registry = Arc::new(Registry::default());
        let claim = registry.claim("smartmeter001").unwrap();
        claim.counters.frames.fetch_add(7, Relaxed);
        registry.dropped(DropReason::NoInfoLine);
        let sink = SinkMetrics {
            registry: Arc::clone(&registry),
            leases: None,
        };
        let mut text = String::new();
        write_metrics(&mut text, &sink.metrics());
        assert!(text.contains("# TYPE meterflow_meter_frames_total counter\n"));
        assert!(text.contains("meterflow_meter_frames_total{meter=\"smartmeter001\"} 7\n"));
        assert!(text.contains("meterflow_peers_dropped_total{reason=\"no_info_line\"} 1\n"));
        assert!(text.contains("meterflow_connections_streaming 1\n"));
        assert_eq!(sink.status(), "meters streaming: 1");
        // Every sample line is `name{labels} value` with a number for value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
