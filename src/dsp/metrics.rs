//! Per-window metrics: time-domain sums (RMS, P, line-to-line) with
//! fractional weights at the window ends, plus the spectral part
//! (fundamental phasors, Q1, DPF, THD) and totals.
//!
//! The window [a, b) rarely starts or ends on a sample: sample n stands for
//! [n - 0.5, n + 0.5) and is weighted by its overlap with the window, so the
//! means integrate exactly the window's time and consecutive windows share
//! every sample's weight. That keeps RMS within a few ppm even when a window
//! boundary lands mid-sample on a current that is far from zero.

use std::cell::RefCell;

use rustfft::num_complex::Complex;

use super::harmonics::{ChannelSpectrum, HarmonicAnalyzer};
use super::sums::{difference_sum, pair_sums};
use super::window::WindowSpan;
use crate::model::window::{PhaseMetrics, Unbalance, WindowFlags, WindowMetrics};
use crate::wire::layout::{Measures, Quantity};

/// Which channels hold which phase's voltage and current.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelMap {
    pub voltage: [Option<usize>; 3],
    pub current: [Option<usize>; 3],
}

impl ChannelMap {
    /// Channel indices of a waveform layout.
    pub fn of(measures: Measures) -> Self {
        let mut map = ChannelMap::default();
        for (index, channel) in measures.channels().iter().enumerate() {
            let k = channel.phase.index();
            match channel.quantity {
                Quantity::Voltage => map.voltage[k] = Some(index),
                Quantity::Current => map.current[k] = Some(index),
                _ => {}
            }
        }
        map
    }

    /// Phases with both voltage and current: (phase, v channel, i channel).
    pub fn pairs(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..3).filter_map(|k| Some((k, self.voltage[k]?, self.current[k]?)))
    }

    /// The zero-crossing reference: V L1, else the first voltage present.
    pub fn reference(&self) -> Option<usize> {
        self.voltage.iter().flatten().next().copied()
    }

    fn three_voltages(&self) -> Option<[usize; 3]> {
        Some([self.voltage[0]?, self.voltage[1]?, self.voltage[2]?])
    }
}

/// Weighted sums of one window (weights = overlap in samples).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeDomainSums {
    /// Per phase Σw·v², Σw·i², Σw·v·i.
    pub phases: [[f64; 3]; 3],
    /// Σw·(v_a − v_b)² for L1-L2, L2-L3, L3-L1.
    pub line_to_line: [f64; 3],
    /// Σw = b − a.
    pub weight: f64,
    /// Non-finite samples met (counted as 0).
    pub invalid_samples: u64,
}

/// Sample n's overlap with [a, b).
fn weight(n: usize, a: f64, b: f64) -> f64 {
    let centre = n as f64;
    ((centre + 0.5).min(b) - (centre - 0.5).max(a)).max(0.0)
}

/// The window's samples: edge samples weighted, the full ones in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRange {
    /// First sample touching the window.
    pub first: usize,
    /// Last sample touching the window (inclusive).
    pub last: usize,
    /// Window start, sample units relative to the slices.
    pub start: f64,
    /// Window end, sample units relative to the slices.
    pub end: f64,
}

impl SampleRange {
    /// Range of [start, end) relative to slices whose sample 0 sits at 0;
    /// `None` if the window is empty or does not fit in `len` samples.
    pub fn new(start: f64, end: f64, len: usize) -> Option<Self> {
        let non_empty = matches!(end.partial_cmp(&start), Some(std::cmp::Ordering::Greater));
        if !non_empty || start < -0.5 {
            return None;
        }
        let first = (start + 0.5).floor() as usize;
        let last = ((end + 0.5).ceil() as usize).checked_sub(1)?;
        (last < len && first <= last).then_some(SampleRange {
            first,
            last,
            start,
            end,
        })
    }

    /// Samples owned by the window (centre inside [start, end)).
    pub fn owned(&self) -> std::ops::Range<usize> {
        let from = self.start.ceil().max(0.0) as usize;
        let to = (self.end.ceil().max(0.0) as usize).max(from);
        from..to
    }

    /// The DFT input: from the first owned sample, round(end − start)
    /// samples, so the DFT length is within half a sample of the window's
    /// true length (whole cycles) and harmonics stay centred on their bins.
    pub fn dft(&self) -> std::ops::Range<usize> {
        let from = self.start.ceil().max(0.0) as usize;
        let len = (self.end - self.start).round().max(0.0) as usize;
        from..(from + len).min(self.last + 1).max(from)
    }
}

fn clean(x: f32) -> f64 {
    if x.is_finite() {
        f64::from(x)
    } else {
        0.0
    }
}

/// Weighted time-domain sums of a window over per-channel slices.
pub fn time_domain_sums(
    channels: &[&[f32]],
    map: &ChannelMap,
    range: SampleRange,
) -> TimeDomainSums {
    let mut sums = TimeDomainSums {
        weight: range.end - range.start,
        ..TimeDomainSums::default()
    };
    let inner = (range.first + 1)..range.last;
    let edges = [range.first, range.last];
    let edge_count = if range.first == range.last { 1 } else { 2 };
    let get = |c: usize, n: usize| channels.get(c).and_then(|s| s.get(n)).copied();
    for (k, v, i) in map.pairs() {
        let (vs, is) = (channels[v], channels[i]);
        let mut s = if inner.start < inner.end {
            pair_sums(&vs[inner.clone()], &is[inner.clone()])
        } else {
            [0.0; 3]
        };
        for &n in &edges[..edge_count] {
            let w = weight(n, range.start, range.end);
            let (x, y) = (
                clean(get(v, n).unwrap_or(0.0)),
                clean(get(i, n).unwrap_or(0.0)),
            );
            s[0] += w * x * x;
            s[1] += w * y * y;
            s[2] += w * x * y;
        }
        sums.phases[k] = s;
    }
    if let Some(volts) = map.three_voltages() {
        for (slot, (a, b)) in [(0, 1), (1, 2), (2, 0)].into_iter().enumerate() {
            let (xa, xb) = (channels[volts[a]], channels[volts[b]]);
            let mut s = if inner.start < inner.end {
                difference_sum(&xa[inner.clone()], &xb[inner.clone()])
            } else {
                0.0
            };
            for &n in &edges[..edge_count] {
                let w = weight(n, range.start, range.end);
                let d =
                    clean(get(volts[a], n).unwrap_or(0.0)) - clean(get(volts[b], n).unwrap_or(0.0));
                s += w * d * d;
            }
            sums.line_to_line[slot] = s;
        }
    }
    let all_finite = sums.phases.iter().flatten().all(|x| x.is_finite())
        && sums.line_to_line.iter().all(|x| x.is_finite());
    if !all_finite {
        return sanitized_sums(channels, map, range);
    }
    sums
}

/// Slow path for windows with NaN/inf samples: counts them, sums them as 0.
fn sanitized_sums(channels: &[&[f32]], map: &ChannelMap, range: SampleRange) -> TimeDomainSums {
    let mut sums = TimeDomainSums {
        weight: range.end - range.start,
        ..TimeDomainSums::default()
    };
    for n in range.first..=range.last {
        let w = weight(n, range.start, range.end);
        let value = |c: usize| {
            channels
                .get(c)
                .and_then(|s| s.get(n))
                .copied()
                .unwrap_or(0.0)
        };
        for channel in channels {
            if channel.get(n).is_some_and(|x| !x.is_finite()) {
                sums.invalid_samples += 1;
            }
        }
        for (k, v, i) in map.pairs() {
            let (x, y) = (clean(value(v)), clean(value(i)));
            sums.phases[k][0] += w * x * x;
            sums.phases[k][1] += w * y * y;
            sums.phases[k][2] += w * x * y;
        }
        if let Some(volts) = map.three_voltages() {
            for (slot, (a, b)) in [(0, 1), (1, 2), (2, 0)].into_iter().enumerate() {
                let d = clean(value(volts[a])) - clean(value(volts[b]));
                sums.line_to_line[slot] += w * d * d;
            }
        }
    }
    sums
}

/// Angle in (−180, 180], degrees.
fn normalize_deg(deg: f64) -> f64 {
    let a = deg.rem_euclid(360.0);
    if a > 180.0 {
        a - 360.0
    } else {
        a
    }
}

/// Computes [`WindowMetrics`] for one device layout, reusing its buffers.
#[derive(Debug)]
pub struct WindowCalculator {
    map: ChannelMap,
    channel_count: usize,
    max_order: u32,
    keep_subgroups: bool,
    nominal_hz: f64,
    rate: f64,
    spectra: Vec<ChannelSpectrum>,
}

thread_local! {
    /// One analyzer per thread, shared by every engine the thread runs: its
    /// FFT plans and buffers are scratch, and one per engine cost each meter
    /// about 40 kB (heaptrack), 40 MB in a sink of 1000 meters.
    static ANALYZER: RefCell<HarmonicAnalyzer> = RefCell::new(HarmonicAnalyzer::new());
}

impl WindowCalculator {
    pub fn new(
        measures: Measures,
        rate: u32,
        nominal_hz: f64,
        max_order: u32,
        keep_subgroups: bool,
    ) -> Self {
        let channel_count = measures.channel_count();
        WindowCalculator {
            map: ChannelMap::of(measures),
            channel_count,
            max_order,
            keep_subgroups,
            nominal_hz,
            rate: f64::from(rate.max(1)),
            spectra: vec![ChannelSpectrum::default(); channel_count],
        }
    }

    pub fn channel_map(&self) -> &ChannelMap {
        &self.map
    }

    /// Time-domain part only (benchmarks, diagnostics).
    pub fn time_domain(&self, channels: &[&[f32]], range: SampleRange) -> TimeDomainSums {
        time_domain_sums(channels, &self.map, range)
    }

    /// Spectral part only: fills the per-channel spectra, returns H used.
    /// `synchronised`: the window spans exactly `cycles` whole cycles.
    pub fn spectra(
        &mut self,
        channels: &[&[f32]],
        range: SampleRange,
        cycles: u32,
        synchronised: bool,
    ) -> u32 {
        let window_samples = synchronised.then_some(range.end - range.start);
        let owned = range.dft();
        ANALYZER.with_borrow_mut(|analyzer| {
            let mut used = 0;
            for (_, v, i) in self.map.pairs() {
                let (mut sv, mut si) = (
                    std::mem::take(&mut self.spectra[v]),
                    std::mem::take(&mut self.spectra[i]),
                );
                used = analyzer.analyze_pair(
                    &channels[v][owned.clone()],
                    &channels[i][owned.clone()],
                    cycles,
                    window_samples,
                    self.max_order,
                    self.keep_subgroups,
                    &mut sv,
                    &mut si,
                );
                self.spectra[v] = sv;
                self.spectra[i] = si;
            }
            used
        })
    }

    /// Cycles the DFT treats as the window's fundamental period count.
    fn dft_cycles(&self, span: &WindowSpan, owned_len: usize) -> u32 {
        if span.cycles > 0 && span.flags.is_clean() {
            span.cycles
        } else {
            // Unsynchronised: nominal cycles in the window's length.
            ((owned_len as f64 * self.nominal_hz / self.rate).round() as u32).max(1)
        }
    }

    /// All metrics of `span`; `channels` start at sample position `offset`.
    /// Leaves timing fields to the caller.
    pub fn compute(
        &mut self,
        channels: &[&[f32]],
        offset: f64,
        span: &WindowSpan,
        out: &mut WindowMetrics,
    ) {
        out.flags = span.flags;
        out.cycles = span.cycles;
        out.frequency_hz = span.frequency_hz(self.rate);
        out.phases = [None; 3];
        out.line_to_line_v = [None; 3];
        out.unbalance = None;
        out.harmonic_orders = 0;
        out.p_total_w = 0.0;
        out.q1_total_var = 0.0;
        out.s_total_va = 0.0;
        out.pf_total = None;
        out.energy_total_wh = 0.0;
        let len = channels.first().map_or(0, |c| c.len());
        let Some(range) = SampleRange::new(span.start - offset, span.end - offset, len) else {
            out.duration_s = 0.0;
            out.harmonic_subgroups.clear();
            out.interharmonic_subgroups.clear();
            return;
        };
        let owned_len = range.dft().len();
        let sums = self.time_domain(channels, range);
        let cycles = self.dft_cycles(span, owned_len);
        let synchronised = span.cycles > 0 && span.flags.is_clean();
        out.harmonic_orders = self.spectra(channels, range, cycles, synchronised);
        if sums.invalid_samples > 0 {
            out.flags |= WindowFlags::INVALID_SAMPLES;
        }
        let weight = sums.weight;
        out.duration_s = weight / self.rate;
        let count_energy = !out.flags.contains(WindowFlags::INVALID_SAMPLES);
        let reference = self.reference_angle();
        for (k, v, i) in self.map.pairs() {
            let [vv, ii, vi] = sums.phases[k];
            let v_rms = (vv / weight).max(0.0).sqrt();
            let i_rms = (ii / weight).max(0.0).sqrt();
            let p = vi / weight;
            let s = v_rms * i_rms;
            let (fv, fi) = (self.spectra[v].fundamental, self.spectra[i].fundamental);
            let (v1, i1) = (fv.norm(), fi.norm());
            let has_fundamental = v1 > 0.0 && i1 > 0.0 && out.harmonic_orders > 0;
            let theta = if has_fundamental {
                fv.arg() - fi.arg()
            } else {
                0.0
            };
            let energy = if count_energy {
                p * out.duration_s / 3600.0
            } else {
                0.0
            };
            let phase = PhaseMetrics {
                v_rms_v: v_rms,
                i_rms_a: i_rms,
                p_w: p,
                s_va: s,
                n_var: (s * s - p * p).max(0.0).sqrt(),
                v1_rms_v: v1,
                i1_rms_a: i1,
                angle_deg: normalize_deg(theta.to_degrees()),
                v1_angle_deg: normalize_deg((fv.arg() - reference).to_degrees()),
                i1_angle_deg: normalize_deg((fi.arg() - reference).to_degrees()),
                q1_var: v1 * i1 * theta.sin(),
                pf: (s > 0.0).then(|| p / s),
                dpf: has_fundamental.then(|| theta.cos()),
                thd_v_pct: self.spectra[v].thd_pct,
                thd_i_pct: self.spectra[i].thd_pct,
                energy_wh: energy,
            };
            out.p_total_w += phase.p_w;
            out.q1_total_var += phase.q1_var;
            out.s_total_va += phase.s_va;
            out.energy_total_wh += energy;
            out.phases[k] = Some(phase);
        }
        out.pf_total = (out.s_total_va > 0.0).then(|| out.p_total_w / out.s_total_va);
        if let Some(volts) = self.map.three_voltages() {
            for (slot, dd) in sums.line_to_line.iter().enumerate() {
                out.line_to_line_v[slot] = Some((dd / weight).max(0.0).sqrt());
            }
            if out.harmonic_orders > 0 {
                out.unbalance = unbalance(volts.map(|c| self.spectra[c].fundamental));
            }
        }
        let kept = if self.keep_subgroups {
            self.channel_count
        } else {
            0
        };
        out.harmonic_subgroups.resize_with(kept, Vec::new);
        out.interharmonic_subgroups.resize_with(kept, Vec::new);
        for (dst, src) in out.harmonic_subgroups.iter_mut().zip(&self.spectra) {
            dst.clear();
            dst.extend_from_slice(&src.subgroups);
        }
        for (dst, src) in out.interharmonic_subgroups.iter_mut().zip(&self.spectra) {
            dst.clear();
            dst.extend_from_slice(&src.interharmonics);
        }
    }
}

impl WindowCalculator {
    /// Angle of the window's reference phasor, rad: the first voltage (L1,
    /// L2, L3 order) with at least a tenth of the largest fundamental, so a
    /// disconnected L1 tap does not make its noise the reference.
    /// Allocation-free: it runs for every window.
    fn reference_angle(&self) -> f64 {
        let volts = || {
            self.map
                .voltage
                .iter()
                .flatten()
                .map(|&c| self.spectra[c].fundamental)
        };
        let largest = volts().map(|v| v.norm()).fold(0.0, f64::max);
        volts()
            .find(|v| largest > 0.0 && v.norm() >= 0.1 * largest)
            .map_or(0.0, |v| v.arg())
    }
}

/// u2 and u0 from the three fundamental voltage phasors.
fn unbalance(v: [Complex<f64>; 3]) -> Option<Unbalance> {
    let a = Complex::from_polar(1.0, 120f64.to_radians());
    let a2 = a * a;
    let positive = (v[0] + a * v[1] + a2 * v[2]) / 3.0;
    let negative = (v[0] + a2 * v[1] + a * v[2]) / 3.0;
    let zero = (v[0] + v[1] + v[2]) / 3.0;
    let pos = positive.norm();
    (pos > 0.0).then(|| Unbalance {
        u2: negative.norm() / pos,
        u0: zero.norm() / pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_weights_cover_the_window() {
        let range = SampleRange::new(2.3, 7.8, 20).unwrap_or_else(|| panic!("range"));
        assert_eq!((range.first, range.last), (2, 8));
        let total: f64 = (range.first..=range.last)
            .map(|n| weight(n, 2.3, 7.8))
            .sum();
        assert!((total - 5.5).abs() < 1e-12);
        assert_eq!(range.owned(), 3..8);
        assert!(SampleRange::new(2.0, 2.0, 20).is_none());
        assert!(SampleRange::new(2.0, 30.0, 20).is_none());
    }

    #[test]
    fn nan_samples_are_counted_not_propagated() {
        let v = [1.0f32, f32::NAN, 1.0, 1.0];
        let i = [1.0f32; 4];
        let map = ChannelMap::of(Measures::SinglePhase);
        let range = SampleRange::new(-0.5, 3.5, 4).unwrap_or_else(|| panic!("range"));
        let sums = time_domain_sums(&[&v, &i], &map, range);
        assert_eq!(sums.invalid_samples, 1);
        assert_eq!(sums.phases[0], [3.0, 4.0, 3.0]);
    }
}
