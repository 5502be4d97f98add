//! Latency distributions (hdrhistogram, microseconds): recorded from many
//! threads, read as quantiles by `/metrics` and the load benchmark.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest latency kept apart from the rest, µs (an hour); longer ones saturate.
const MAX_MICROS: u64 = 3_600_000_000;

/// The quantiles reported for a latency.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

#[derive(Debug)]
pub struct LatencyRecorder {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder {
            // Three significant digits over 1 µs .. 1 h: fixed size, no allocation per record.
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, MAX_MICROS, 3)
                    .expect("1 µs .. 1 h at three digits is a valid histogram"),
            ),
        }
    }
}

/// A latency distribution at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySnapshot {
    pub count: u64,
    /// Seconds at each of [`QUANTILES`].
    pub quantiles_s: [f64; 4],
    pub max_s: f64,
    pub sum_s: f64,
}

impl LatencyRecorder {
    pub fn record(&self, latency: Duration) {
        self.record_many(latency, 1);
    }

    pub fn record_many(&self, latency: Duration, count: u64) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        histogram.saturating_record_n(micros, count);
    }

    /// Forgets what was recorded (a benchmark's warm-up).
    pub fn reset(&self) {
        self.histogram
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        let seconds = |micros: u64| micros as f64 / 1e6;
        LatencySnapshot {
            count: histogram.len(),
            quantiles_s: QUANTILES.map(|q| seconds(histogram.value_at_quantile(q))),
            max_s: seconds(histogram.max()),
            sum_s: histogram.mean() * histogram.len() as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let recorder = LatencyRecorder::default();
        // 1..=1000 ms, once each: the p50 is 500 ms, the p99 990 ms (±0.1 % for 3 digits).
        for ms in 1..=1000u64 {
            recorder.record(Duration::from_millis(ms));
        }
        let snapshot = recorder.snapshot();
        assert_eq!(snapshot.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 1e-3;
        assert!(close(snapshot.quantiles_s[0], 0.5), "{snapshot:?}");
        assert!(close(snapshot.quantiles_s[2], 0.99), "{snapshot:?}");
        assert!(close(snapshot.max_s, 1.0), "{snapshot:?}");
        assert!(close(snapshot.sum_s, 500.5), "{snapshot:?}");
    }
}
