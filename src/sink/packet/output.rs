//! Packet delivery as an [`Output`]: meter intervals from the record log
//! become packets once the interval is `lag` old. What it acks has been
//! delivered or is in a target's spool, so a crash never loses a packet;
//! one rebuilt after a restart carries the identity it had before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::latency::LatencySnapshot;
use crate::model::metric::Metric;
use crate::model::run_report::OutputSummary;
use crate::model::Record;
use crate::sink::output::{Output, OutputMetrics};

use super::build::PacketConfig;
use super::collector::PacketCollector;
use super::deliver::DeliveryConfig;

/// How long closing waits for targets that are down before leaving their
/// packets in the spool for the next run.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the lanes to deliver before the packets sent are
/// spooled so that they can be acknowledged.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// The `packets` output.
pub struct PacketOutput {
    collector: Arc<PacketCollector>,
    /// Where each target sends, as the summary names it.
    places: Vec<(String, String)>,
    runtime: tokio::runtime::Handle,
    /// An interval is built this long after it ended (wall clock).
    lag: Duration,
    last_seq: u64,
    /// Lowest seq in packets sent but maybe only in memory, and since when.
    unsettled: Option<(u64, Instant)>,
}

impl PacketOutput {
    pub const NAME: &'static str = "packets";

    /// Starts delivery; call inside a tokio runtime (the lanes run on it).
    pub fn start(
        build: &PacketConfig,
        targets: &DeliveryConfig,
        lag: Duration,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("packet delivery needs a tokio runtime"))?;
        let collector = Arc::new(PacketCollector::start(build, targets)?);
        Ok(PacketOutput {
            collector,
            places: targets.places(),
            runtime,
            lag,
            last_seq: 0,
            unsettled: None,
        })
    }

    pub fn collector(&self) -> &PacketCollector {
        &self.collector
    }
}

impl Output for PacketOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        self.last_seq = seq;
        match record {
            Record::Sensor(interval) => self.collector.add_from(seq, interval.clone()),
            Record::Readings(interval) => self.collector.add_readings_from(
                seq,
                interval.interval_end_ms,
                interval.readings.clone(),
            ),
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<u64> {
        let deliverer = self.collector.deliverer();
        if let Some((_, since)) = self.unsettled {
            if deliverer.settled() {
                self.unsettled = None;
            } else if since.elapsed() >= SETTLE_WAIT {
                deliverer.persist()?;
                self.unsettled = None;
            }
        }
        let lag_ms = i64::try_from(self.lag.as_millis()).unwrap_or(i64::MAX);
        let due = chrono::Utc::now().timestamp_millis().saturating_sub(lag_ms);
        let (_, sent_min) = self.collector.flush_before(due)?;
        if let Some(seq) = sent_min {
            let since = self.unsettled.map_or_else(Instant::now, |(_, t)| t);
            let lowest = self.unsettled.map_or(seq, |(s, _)| s.min(seq));
            self.unsettled = Some((lowest, since));
        }
        let held = [
            self.collector.pending_min_seq(),
            self.unsettled.map(|(s, _)| s),
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(held.map_or(self.last_seq, |seq| seq.saturating_sub(1)))
    }

    fn flush_interval(&self) -> Duration {
        Duration::from_millis(250)
    }

    fn degraded(&self) -> Option<String> {
        let waiting: Vec<String> = self
            .collector
            .targets()
            .into_iter()
            .filter(|t| t.spooled > 0)
            .map(|t| format!("{} has {} packets spooled", t.target, t.spooled))
            .collect();
        (!waiting.is_empty()).then(|| waiting.join(", "))
    }

    fn close(self: Box<Self>) -> anyhow::Result<OutputSummary> {
        let PacketOutput {
            collector,
            places,
            runtime,
            ..
        } = *self;
        // A metrics scrape may hold the collector for a moment.
        let mut collector = collector;
        let collector = loop {
            match Arc::try_unwrap(collector) {
                Ok(collector) => break collector,
                Err(shared) => {
                    collector = shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        let (built, spooled, targets) = runtime.block_on(collector.close(DRAIN_TIMEOUT))?;
        let mut summary = OutputSummary::new(Self::NAME);
        summary
            .lines
            .push(format!("packets: {built} built, {spooled} spooled"));
        summary.totals.insert("built".into(), built);
        summary.totals.insert("spooled".into(), spooled);
        for target in &targets {
            let place = places
                .iter()
                .find(|(name, _)| *name == target.target)
                .map_or(target.target.as_str(), |(_, place)| place.as_str());
            summary
                .lines
                .push(format!("  packets to {place}: {target}"));
            summary
                .totals
                .insert(format!("delivered.{}", target.target), target.delivered);
        }
        Ok(summary)
    }

    fn metrics(&self) -> Option<Arc<dyn OutputMetrics>> {
        Some(Arc::clone(&self.collector) as Arc<dyn OutputMetrics>)
    }
}

impl OutputMetrics for PacketCollector {
    fn metrics(&self) -> Vec<Metric> {
        let mut metrics = vec![
            Metric::counter(
                "meterflow_packets_built_total",
                "BetterFleet packets built",
                self.built(),
            ),
            Metric::gauge(
                "meterflow_packets_spooled",
                "packets waiting in the spool for a target",
                self.spooled() as f64,
            ),
        ];
        let targets = self.targets();
        metrics.extend(targets.iter().map(|target| {
            Metric::counter(
                "meterflow_packets_delivered_total",
                "packets a target accepted",
                target.delivered,
            )
            .with("target", &target.target)
        }));
        metrics.extend(targets.iter().map(|target| {
            Metric::counter(
                "meterflow_packets_overflowed_total",
                "packets dropped because a target's spool was at its byte cap",
                target.overflowed,
            )
            .with("target", &target.target)
        }));
        metrics.push(Metric::summary(
            "meterflow_packet_latency_seconds",
            "from an interval's last reading to its packet handed to delivery",
            self.latency.snapshot(),
        ));
        metrics
    }

    fn latency(&self) -> Option<LatencySnapshot> {
        Some(self.latency.snapshot())
    }

    fn reset_latency(&self) {
        self.latency.reset();
    }
}
