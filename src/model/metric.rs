//! Metrics as values: what a component (an output, a source) measures about
//! itself, named and typed as Prometheus expects, without knowing the text
//! format. The runner renders them on `/metrics`; components never import it.

use super::latency::LatencySnapshot;

/// A measured value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// Only goes up (a `_total`).
    Counter(u64),
    Gauge(f64),
    /// A latency distribution: quantiles, sum and count.
    Summary(LatencySnapshot),
}

/// One sample of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    /// Label names and values (values are escaped when rendered).
    pub labels: Vec<(&'static str, String)>,
    pub value: MetricValue,
}

impl Metric {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Metric {
            name,
            help,
            labels: Vec::new(),
            value: MetricValue::Counter(value),
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Self {
        Metric {
            name,
            help,
            labels: Vec::new(),
            value: MetricValue::Gauge(value),
        }
    }

    pub fn summary(name: &'static str, help: &'static str, value: LatencySnapshot) -> Self {
        Metric {
            name,
            help,
            labels: Vec::new(),
            value: MetricValue::Summary(value),
        }
    }

    /// The same metric with one more label.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((key, value.into()));
        self
    }
}
