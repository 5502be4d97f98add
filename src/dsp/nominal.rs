//! Udin and the nominal frequency of a meter that was not told them, from
//! its first second: the nearest standard nominal voltage within ±10 % of
//! what it measures, and 50 or 60 Hz, whichever carries the fundamental.
//!
//! The span is cut into 100-ms chunks (5 cycles at 50 Hz, 6 at 60 Hz, so
//! each chunk holds whole cycles of both candidates and their projections
//! do not leak into each other). The voltage is the median of every
//! chunk's RMS on every voltage channel: a dip, a dead phase or an
//! interruption covering less than half of them does not move it.

use std::f64::consts::TAU;

use super::metrics::ChannelMap;
use crate::wire::layout::Measures;
use crate::wire::SampleBlock;

/// Standard nominal phase-to-neutral (or single-phase) voltages, V.
pub const STANDARD_NOMINALS_V: [f64; 12] = [
    100.0, 110.0, 115.0, 120.0, 127.0, 200.0, 208.0, 220.0, 230.0, 240.0, 277.0, 347.0,
];
/// How far the measured voltage may lie from a nominal, fraction of it.
pub const NOMINAL_TOLERANCE: f64 = 0.10;
/// The candidate grid frequencies, Hz.
pub const CANDIDATE_FREQUENCIES_HZ: [f64; 2] = [50.0, 60.0];
/// Data the inference looks at, s.
pub const INFERENCE_SPAN_S: f64 = 1.0;
/// One chunk, s: whole cycles of 50 and 60 Hz.
const CHUNK_S: f64 = 0.1;
/// The winning candidate's fundamental must carry at least this share of
/// the reference's RMS, and this many times the other candidate's.
const MIN_FUNDAMENTAL_SHARE: f64 = 0.5;
const MIN_WINNER_RATIO: f64 = 2.0;

/// The nearest standard nominal within ±10 % of `measured_v`.
pub fn nearest_standard_nominal(measured_v: f64) -> Option<f64> {
    STANDARD_NOMINALS_V
        .iter()
        .copied()
        .map(|nominal| (nominal, (measured_v - nominal).abs() / nominal))
        .filter(|&(_, deviation)| deviation <= NOMINAL_TOLERANCE)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(nominal, _)| nominal)
}

/// What a meter's first second said; what was asked for is inferred, the
/// rest was given in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NominalInference {
    /// First sample looked at, ns since the epoch.
    pub start_unix_ns: i64,
    /// Data looked at (complete chunks), s.
    pub span_s: f64,
    /// Median chunk RMS over the voltage channels, V.
    pub measured_v: Option<f64>,
    /// Whether Udin was to be inferred (no `declared_voltage_v`).
    pub infer_udin: bool,
    /// The nearest standard nominal within ±10 % of `measured_v`.
    pub udin_v: Option<f64>,
    /// Whether the frequency was to be inferred (no `nominal_frequency_hz`).
    pub infer_frequency: bool,
    /// 50 or 60 Hz, when one clearly carries the fundamental.
    pub frequency_hz: Option<f64>,
}

impl NominalInference {
    /// Whether power quality can run on what was inferred.
    pub fn complete(&self) -> bool {
        (!self.infer_udin || self.udin_v.is_some())
            && (!self.infer_frequency || self.frequency_hz.is_some())
    }

    /// The `events` row's message: what was inferred, or why not.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        let measured = match self.measured_v {
            Some(v) => format!("median RMS {v:.1} V"),
            None => "no complete 100-ms chunk of voltage".to_string(),
        };
        let over = format!("over the first {:.1} s", self.span_s);
        if self.infer_udin {
            parts.push(match self.udin_v {
                Some(udin) => format!(
                    "Udin {udin} V inferred ({measured} {over}, nearest standard nominal within ±10 %)"
                ),
                None => format!(
                    "no Udin inferred: {measured} {over} is not within ±10 % of a standard nominal \
                     (100, 110, 115, 120, 127, 200, 208, 220, 230, 240, 277, 347 V)"
                ),
            });
        }
        if self.infer_frequency {
            parts.push(match self.frequency_hz {
                Some(hz) => format!("nominal frequency {hz} Hz inferred"),
                None => format!(
                    "no nominal frequency inferred (neither 50 nor 60 Hz carries the voltage's \
                     fundamental {over}); windows use 50 Hz"
                ),
            });
        }
        if !self.complete() {
            parts.push(
                "no power-quality events or flicker for this meter: set [dsp] declared_voltage_v \
                 and nominal_frequency_hz"
                    .to_string(),
            );
        }
        parts.join("; ")
    }
}

/// Fundamental projections of one chunk of the reference channel.
#[derive(Debug, Clone, Copy, Default)]
struct Projection {
    /// Σ v·cos ωt and Σ v·sin ωt per candidate.
    sums: [(f64, f64); 2],
}

/// Folds a meter's first blocks into a [`NominalInference`].
#[derive(Debug, Clone)]
pub struct NominalEstimator {
    voltage: Vec<usize>,
    reference: Option<usize>,
    rate: f64,
    chunk_len: u64,
    start_unix_ns: i64,
    infer_udin: bool,
    infer_frequency: bool,
    /// The chunk in progress: its index, samples seen, Σv² per voltage channel.
    chunk: Option<(u64, u64)>,
    squares: Vec<f64>,
    projection: Projection,
    /// Per complete chunk: RMS per voltage channel.
    chunk_rms: Vec<f64>,
    complete_chunks: u64,
    /// Per complete chunk: (fundamental RMS per candidate, reference RMS).
    fundamentals: [f64; 2],
    reference_rms: f64,
}

impl NominalEstimator {
    pub fn new(
        measures: Measures,
        rate: u32,
        start_unix_ns: i64,
        infer_udin: bool,
        infer_frequency: bool,
    ) -> Self {
        let map = ChannelMap::of(measures);
        let voltage: Vec<usize> = map.voltage.iter().flatten().copied().collect();
        NominalEstimator {
            squares: vec![0.0; voltage.len()],
            voltage,
            reference: map.reference(),
            rate: f64::from(rate),
            chunk_len: ((f64::from(rate) * CHUNK_S).round() as u64).max(1),
            start_unix_ns,
            infer_udin,
            infer_frequency,
            chunk: None,
            projection: Projection::default(),
            chunk_rms: Vec::new(),
            complete_chunks: 0,
            fundamentals: [0.0; 2],
            reference_rms: 0.0,
        }
    }

    /// Adds one block (already checked against the layout).
    /// Samples after the inference span are left out, so the outcome does
    /// not depend on how the stream was cut into blocks.
    pub fn push(&mut self, block: &SampleBlock) {
        if self.chunk.is_none() && self.complete_chunks == 0 && !block.is_empty() {
            self.start_unix_ns = block.time_of(block.first_index);
        }
        for offset in 0..block.len() {
            let index = block.first_index + offset as u64;
            let chunk = index / self.chunk_len;
            match self.chunk {
                Some((current, _)) if current == chunk => {}
                _ => {
                    self.close_chunk();
                    if self.chunks_enough() {
                        return;
                    }
                    self.chunk = Some((chunk, 0));
                }
            }
            for (slot, &channel) in self.voltage.iter().enumerate() {
                let v = f64::from(block.channels[channel][offset]);
                if v.is_finite() {
                    self.squares[slot] += v * v;
                }
            }
            if let Some(reference) = self.reference {
                let v = f64::from(block.channels[reference][offset]);
                let t = index as f64 / self.rate;
                if v.is_finite() {
                    for (sum, hz) in self
                        .projection
                        .sums
                        .iter_mut()
                        .zip(CANDIDATE_FREQUENCIES_HZ)
                    {
                        let (sin, cos) = (TAU * hz * t).sin_cos();
                        sum.0 += v * cos;
                        sum.1 += v * sin;
                    }
                }
            }
            if let Some((_, seen)) = &mut self.chunk {
                *seen += 1;
            }
        }
    }

    /// Data seen in complete chunks, s (including the chunk in progress if
    /// it is complete).
    pub fn span_s(&self) -> f64 {
        let in_progress = matches!(self.chunk, Some((_, seen)) if seen == self.chunk_len);
        (self.complete_chunks + u64::from(in_progress)) as f64 * self.chunk_len as f64 / self.rate
    }

    /// Whether the inference span is covered.
    pub fn enough(&self) -> bool {
        self.span_s() >= INFERENCE_SPAN_S - 0.5 / self.rate
    }

    /// Whether the complete chunks already cover the span.
    fn chunks_enough(&self) -> bool {
        self.complete_chunks as f64 * self.chunk_len as f64 / self.rate
            >= INFERENCE_SPAN_S - 0.5 / self.rate
    }

    fn close_chunk(&mut self) {
        let Some((_, seen)) = self.chunk.take() else {
            return;
        };
        let squares = std::mem::replace(&mut self.squares, vec![0.0; self.voltage.len()]);
        let projection = std::mem::take(&mut self.projection);
        // A chunk cut by a gap or the stream's edges holds no whole cycles.
        if seen != self.chunk_len {
            return;
        }
        let n = seen as f64;
        for sum in &squares {
            self.chunk_rms.push((sum / n).sqrt());
        }
        if let Some(slot) = self
            .reference
            .and_then(|r| self.voltage.iter().position(|&c| c == r))
        {
            self.reference_rms += (squares[slot] / n).sqrt();
            for (total, (c, s)) in self.fundamentals.iter_mut().zip(projection.sums) {
                // Amplitude 2|X|/n, RMS amplitude/√2.
                *total += 2.0 * c.hypot(s) / n / std::f64::consts::SQRT_2;
            }
        }
        self.complete_chunks += 1;
    }

    /// The inference from everything pushed.
    pub fn conclude(mut self) -> NominalInference {
        self.close_chunk();
        let mut rms: Vec<f64> = self.chunk_rms.clone();
        rms.sort_by(f64::total_cmp);
        let measured_v = (!rms.is_empty()).then(|| {
            let mid = rms.len() / 2;
            if rms.len() % 2 == 1 {
                rms[mid]
            } else {
                (rms[mid - 1] + rms[mid]) / 2.0
            }
        });
        let [f50, f60] = self.fundamentals;
        let (winner, loser, hz) = if f60 > f50 {
            (f60, f50, CANDIDATE_FREQUENCIES_HZ[1])
        } else {
            (f50, f60, CANDIDATE_FREQUENCIES_HZ[0])
        };
        let clear = self.reference_rms > 0.0
            && winner >= MIN_FUNDAMENTAL_SHARE * self.reference_rms
            && winner >= MIN_WINNER_RATIO * loser;
        NominalInference {
            start_unix_ns: self.start_unix_ns,
            span_s: self.complete_chunks as f64 * self.chunk_len as f64 / self.rate,
            measured_v,
            infer_udin: self.infer_udin,
            udin_v: measured_v.and_then(nearest_standard_nominal),
            infer_frequency: self.infer_frequency,
            frequency_hz: clear.then_some(hz),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_nominal_within_ten_percent() {
        assert_eq!(nearest_standard_nominal(119.0), Some(120.0));
        assert_eq!(nearest_standard_nominal(232.0), Some(230.0));
        // 90 V is exactly 10 % under 100 V; 89 V is not within reach.
        assert_eq!(nearest_standard_nominal(90.0), Some(100.0));
        assert_eq!(nearest_standard_nominal(89.0), None);
        // 400 V is 15 % over 347 V.
        assert_eq!(nearest_standard_nominal(400.0), None);
        assert_eq!(nearest_standard_nominal(0.0), None);
    }

    fn sine_block(
        rate: u32,
        seconds: f64,
        hz: f64,
        rms: f64,
        dip: Option<(f64, f64)>,
    ) -> SampleBlock {
        let n = (f64::from(rate) * seconds) as usize;
        let v: Vec<f32> = (0..n)
            .map(|k| {
                let t = k as f64 / f64::from(rate);
                let level = match dip {
                    Some((from, to)) if (from..to).contains(&t) => 0.3,
                    _ => 1.0,
                };
                (level * rms * std::f64::consts::SQRT_2 * (TAU * hz * t + 0.4).sin()) as f32
            })
            .collect();
        let i = vec![0.0f32; n];
        SampleBlock {
            channels: vec![v, i],
            ..SampleBlock::new(Measures::SinglePhase, rate, 0)
        }
    }

    #[test]
    fn infers_udin_and_frequency_despite_a_dip() {
        // 121 V at 59.8 Hz with a 300-ms dip to 30 %: 120 V, 60 Hz.
        let block = sine_block(4000, 1.0, 59.8, 121.0, Some((0.2, 0.5)));
        let mut estimator = NominalEstimator::new(Measures::SinglePhase, 4000, 0, true, true);
        estimator.push(&block);
        assert!(estimator.enough());
        let inference = estimator.conclude();
        assert_eq!(inference.udin_v, Some(120.0));
        assert_eq!(inference.frequency_hz, Some(60.0));
        let measured = inference.measured_v.unwrap_or(f64::NAN);
        // Whole-cycle chunks of a steady sine: RMS within 0.5 % (0.2 Hz off nominal).
        assert!((measured - 121.0).abs() < 0.005 * 121.0, "{measured}");
        assert!(inference.complete());
    }

    #[test]
    fn no_udin_for_a_400_volt_meter() {
        let block = sine_block(4000, 1.0, 50.0, 400.0, None);
        let mut estimator = NominalEstimator::new(Measures::SinglePhase, 4000, 0, true, true);
        estimator.push(&block);
        let inference = estimator.conclude();
        assert_eq!(inference.udin_v, None);
        assert_eq!(inference.frequency_hz, Some(50.0));
        assert!(!inference.complete());
        assert!(
            inference.message().contains("no Udin inferred"),
            "{}",
            inference.message()
        );
    }

    #[test]
    fn the_outcome_does_not_depend_on_block_sizes() {
        // 1.8 s in one block, or in 333-sample blocks: only the first second counts.
        let whole = sine_block(4000, 1.8, 50.0, 229.0, Some((1.2, 1.6)));
        let mut one = NominalEstimator::new(Measures::SinglePhase, 4000, 0, true, true);
        one.push(&whole);
        let mut many = NominalEstimator::new(Measures::SinglePhase, 4000, 0, true, true);
        for start in (0..whole.len()).step_by(333) {
            let end = (start + 333).min(whole.len());
            let part = SampleBlock {
                first_index: start as u64,
                channels: whole
                    .channels
                    .iter()
                    .map(|c| c[start..end].to_vec())
                    .collect(),
                ..whole.clone()
            };
            many.push(&part);
        }
        let (one, many) = (one.conclude(), many.conclude());
        assert_eq!(one, many);
        assert_eq!(one.span_s, 1.0);
        assert_eq!(one.udin_v, Some(230.0));
    }
}
