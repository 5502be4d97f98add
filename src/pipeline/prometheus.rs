//! The Prometheus text format (0.0.4), both ways: the one writer every
//! process's `/metrics` renders with (`# HELP`/`# TYPE` lines, samples,
//! escaped label values), and the small reader the local-cluster
//! supervisor and the benchmarks sum a node's samples with.

use std::fmt::{Display, Write};

use crate::model::latency::{LatencySnapshot, QUANTILES};
use crate::model::metric::{Metric, MetricValue};

/// The `Content-Type` of a `/metrics` answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `# HELP` and `# TYPE` lines of a metric.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line; `labels` as [`label`] and [`labels`] build them.
pub fn sample(out: &mut String, name: &str, labels: &str, value: impl Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

pub fn gauge(out: &mut String, name: &str, help: &str, labels: &str, value: impl Display) {
    header(out, name, help, "gauge");
    sample(out, name, labels, value);
}

pub fn counter(out: &mut String, name: &str, help: &str, labels: &str, value: impl Display) {
    header(out, name, help, "counter");
    sample(out, name, labels, value);
}

/// A latency summary: its quantiles, `_sum` and `_count`.
pub fn summary(out: &mut String, name: &str, help: &str, latency: &LatencySnapshot) {
    header(out, name, help, "summary");
    for (q, value) in QUANTILES.iter().zip(latency.quantiles_s) {
        sample(out, name, &label("quantile", &q.to_string()), value);
    }
    sample(out, &format!("{name}_sum"), "", latency.sum_s);
    sample(out, &format!("{name}_count"), "", latency.count);
}

/// Components' metrics: one `# HELP`/`# TYPE` per name (samples of one
/// name are gathered, in the order names first appear), then the samples.
pub fn write_metrics(out: &mut String, metrics: &[Metric]) {
    let mut names: Vec<&str> = Vec::new();
    for metric in metrics {
        if !names.contains(&metric.name) {
            names.push(metric.name);
        }
    }
    for name in names {
        let mut samples = metrics.iter().filter(|m| m.name == name).peekable();
        let Some(first) = samples.peek() else {
            continue;
        };
        let kind = match first.value {
            MetricValue::Counter(_) => "counter",
            MetricValue::Gauge(_) => "gauge",
            MetricValue::Summary(_) => "summary",
        };
        header(out, name, first.help, kind);
        for metric in samples {
            let labels: Vec<String> = metric.labels.iter().map(|(k, v)| label(k, v)).collect();
            let labels = labels.join(",");
            match &metric.value {
                MetricValue::Counter(value) => sample(out, name, &labels, value),
                MetricValue::Gauge(value) => sample(out, name, &labels, value),
                MetricValue::Summary(latency) => {
                    for (q, value) in QUANTILES.iter().zip(latency.quantiles_s) {
                        let quantile = label("quantile", &q.to_string());
                        let labels = match labels.as_str() {
                            "" => quantile,
                            other => format!("{other},{quantile}"),
                        };
                        sample(out, name, &labels, value);
                    }
                    sample(out, &format!("{name}_sum"), &labels, latency.sum_s);
                    sample(out, &format!("{name}_count"), &labels, latency.count);
                }
            }
        }
    }
}

/// `key="value"`, the value escaped.
pub fn label(key: &str, value: &str) -> String {
    format!("{key}=\"{}\"", escape_label(value))
}

/// Label values escape `\`, `"` and newlines (the exposition format's rule).
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Sum of the samples of metric `name` in a text body: every label set,
/// and only that name (`m` does not take `m_total`). A sample's name may
/// include a label set to pick one, e.g. `m{quantile="0.5"}`.
pub fn metric_sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("writer", "w\"1"), "writer=\"w\\\"1\"");
    }

    #[test]
    fn a_counter_and_a_summary_render_as_the_format_says() {
        let mut out = String::new();
        counter(&mut out, "m_total", "things", &label("a", "x"), 3);
        gauge(&mut out, "g", "level", "", 1.5);
        assert_eq!(
            out,
            "# HELP m_total things\n# TYPE m_total counter\nm_total{a=\"x\"} 3\n\
             # HELP g level\n# TYPE g gauge\ng 1.5\n"
        );
        let latency = LatencySnapshot {
            quantiles_s: [0.1, 0.2, 0.3, 0.4],
            max_s: 0.5,
            sum_s: 2.5,
            count: 10,
        };
        let mut out = String::new();
        summary(&mut out, "lat", "latency", &latency);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "# TYPE lat summary");
        assert_eq!(lines.len(), 2 + QUANTILES.len() + 2);
        assert_eq!(lines[lines.len() - 2], "lat_sum 2.5");
        assert_eq!(lines[lines.len() - 1], "lat_count 10");
        // The reader gives back what the writer wrote: the quantile samples sum.
        assert!((metric_sum(&out, "lat") - 1.0).abs() < 1e-12);
        assert_eq!(metric_sum(&out, "lat_count"), 10.0);
    }

    #[test]
    fn metrics_of_one_name_share_one_header_whatever_their_order() {
        let metrics = [
            Metric::counter("m_total", "things", 3).with("target", "a"),
            Metric::gauge("g", "level", 0.5),
            Metric::counter("m_total", "things", 4).with("target", "b\"q"),
        ];
        let mut out = String::new();
        write_metrics(&mut out, &metrics);
        assert_eq!(
            out,
            "# HELP m_total things\n# TYPE m_total counter\nm_total{target=\"a\"} 3\n\
             m_total{target=\"b\\\"q\"} 4\n# HELP g level\n# TYPE g gauge\ng 0.5\n"
        );
    }

    #[test]
    fn metric_sums_match_the_name_exactly() {
        let body = "# HELP x\nmeterflow_up 1\nmeterflow_up_total 5\nm{a=\"1\"} 2\nm{a=\"2\"} 3.5\n";
        assert_eq!(metric_sum(body, "meterflow_up"), 1.0);
        assert_eq!(metric_sum(body, "m"), 5.5);
        assert_eq!(metric_sum(body, "m{a=\"2\"}"), 3.5);
        assert_eq!(metric_sum(body, "absent"), 0.0);
    }
}
