//! What the running outputs measure about themselves, read from outside
//! their threads (`/metrics`, benchmarks) through each runner's slot: an
//! output rebuilt after a failure shows its new metrics, one that is down
//! shows none.

use std::sync::Arc;

use crate::model::latency::LatencySnapshot;
use crate::model::metric::Metric;
use crate::sink::output::OutputMetrics;

use super::runner::MetricsSlot;

/// Every output's metrics slot, by output name.
#[derive(Clone, Default)]
pub struct OutputViews {
    slots: Vec<(&'static str, MetricsSlot)>,
}

impl OutputViews {
    pub(super) fn new(slots: Vec<(&'static str, MetricsSlot)>) -> Self {
        OutputViews { slots }
    }

    fn current(&self) -> impl Iterator<Item = (&'static str, Arc<dyn OutputMetrics>)> + '_ {
        self.slots.iter().filter_map(|(name, slot)| {
            let metrics = slot.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
            Some((*name, metrics))
        })
    }

    /// The metrics of every output that is up.
    pub fn metrics(&self) -> Vec<Metric> {
        self.current()
            .flat_map(|(_, metrics)| metrics.metrics())
            .collect()
    }

    /// The latency output `name` measures, while it is up.
    pub fn latency(&self, name: &str) -> Option<LatencySnapshot> {
        self.current()
            .find(|(output, _)| *output == name)
            .and_then(|(_, metrics)| metrics.latency())
    }

    /// Forgets every output's latencies so far (a benchmark's warm-up).
    pub fn reset_latencies(&self) {
        self.current()
            .for_each(|(_, metrics)| metrics.reset_latency());
    }
}
