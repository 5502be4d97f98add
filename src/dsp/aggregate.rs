//! Aggregation of basic windows (IEC 61000-4-30): 150/180-cycle intervals
//! (15 windows, restarting at every 10-min tick), clock-aligned intervals
//! (10 min, or any length such as the packet interval).
//!
//! RMS quantities aggregate as the root of the mean of squares, powers as
//! means, PF as ΣP / ΣS, energy as sums. Every window counts equally (IEC);
//! windows with invalid samples are counted as flagged but their values are
//! left out, other flagged windows are included and counted.
//!
//! With a declared voltage Udin, each phase also gets the under- and
//! overdeviation of IEC 61000-4-30 §5.12 from its 10/12-cycle RMS values:
//! `U_under = (Udin − sqrt(mean(min(U_i, Udin)²))) / Udin` and
//! `U_over = (sqrt(mean(max(U_i, Udin)²)) − Udin) / Udin`, in percent (both
//! ≥ 0: a window above Udin adds nothing to the underdeviation and vice versa).

use crate::model::aggregate::{Aggregate, PhaseAggregate, Stat};
use crate::model::energy::EnergyFlow;
use crate::model::window::{WindowFlags, WindowMetrics};

/// Ten minutes, ns.
pub const TEN_MINUTES_NS: i64 = 600_000_000_000;
/// Two hours (the `Plt` interval), ns.
pub const TWO_HOURS_NS: i64 = 12 * TEN_MINUTES_NS;
/// Basic windows per 150/180-cycle interval.
pub const WINDOWS_PER_SHORT_INTERVAL: u32 = 15;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Running {
    sum: f64,
    min: f64,
    max: f64,
    count: u32,
}

impl Running {
    fn add(&mut self, x: f64, stored: f64) {
        if !x.is_finite() {
            return;
        }
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.sum += stored;
        self.count += 1;
    }

    fn mean(&self) -> Option<Stat> {
        (self.count > 0).then(|| Stat {
            value: self.sum / f64::from(self.count),
            min: self.min,
            max: self.max,
        })
    }

    fn rms(&self) -> Option<Stat> {
        (self.count > 0).then(|| Stat {
            value: (self.sum / f64::from(self.count)).sqrt(),
            min: self.min,
            max: self.max,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PhaseRunning {
    v: Running,
    i: Running,
    p: Running,
    q1: Running,
    s: Running,
    thd_v: Running,
    thd_i: Running,
    /// THD of clean windows only: a fragment before the first zero crossing
    /// or after a gap is not cycle-synchronous and its spectrum leaks, so
    /// when an interval has clean windows, only those give its THD.
    thd_v_clean: Running,
    thd_i_clean: Running,
    /// Window RMS voltages clipped to at most / at least Udin.
    v_under: Running,
    v_over: Running,
    energy: EnergyFlow,
}

/// Accumulates windows; [`finish`](Self::finish) gives the aggregate and resets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateAccumulator {
    /// Udin, V: enables the under/over deviation; kept across resets.
    declared_voltage_v: Option<f64>,
    start: Option<i64>,
    end: i64,
    windows: u32,
    flagged: u32,
    pq_flagged: u32,
    phases: [Option<PhaseRunning>; 3],
    p: Running,
    q1: Running,
    s: Running,
    frequency: Running,
    energy: EnergyFlow,
}

/// Udin if it can be divided by.
fn usable_udin(volts: f64) -> Option<f64> {
    (volts.is_finite() && volts > 0.0).then_some(volts)
}

impl AggregateAccumulator {
    /// An accumulator that also reports the under/over deviation against
    /// `udin_v` (ignored unless finite and > 0).
    pub fn with_declared_voltage(udin_v: f64) -> Self {
        AggregateAccumulator {
            declared_voltage_v: usable_udin(udin_v),
            ..AggregateAccumulator::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.windows == 0
    }

    pub fn windows(&self) -> u32 {
        self.windows
    }

    pub fn push(&mut self, w: &WindowMetrics) {
        self.start.get_or_insert(w.start_unix_ns);
        self.end = self.end.max(w.end_unix_ns);
        self.windows += 1;
        if !w.flags.is_clean() {
            self.flagged += 1;
        }
        if w.flags.contains(WindowFlags::PQ_EVENT) {
            self.pq_flagged += 1;
        }
        if w.flags.contains(WindowFlags::INVALID_SAMPLES) {
            return;
        }
        let mut total_wh = 0.0;
        for (acc, phase) in self.phases.iter_mut().zip(&w.phases) {
            let Some(m) = phase else { continue };
            let acc = acc.get_or_insert_with(PhaseRunning::default);
            acc.v.add(m.v_rms_v, m.v_rms_v * m.v_rms_v);
            if let Some(udin) = self.declared_voltage_v {
                let (under, over) = (m.v_rms_v.min(udin), m.v_rms_v.max(udin));
                acc.v_under.add(under, under * under);
                acc.v_over.add(over, over * over);
            }
            acc.i.add(m.i_rms_a, m.i_rms_a * m.i_rms_a);
            acc.p.add(m.p_w, m.p_w);
            acc.q1.add(m.q1_var, m.q1_var);
            acc.s.add(m.s_va, m.s_va);
            let clean = w.flags.is_clean();
            if let Some(t) = m.thd_v_pct {
                acc.thd_v.add(t, t * t);
                if clean {
                    acc.thd_v_clean.add(t, t * t);
                }
            }
            if let Some(t) = m.thd_i_pct {
                acc.thd_i.add(t, t * t);
                if clean {
                    acc.thd_i_clean.add(t, t * t);
                }
            }
            acc.energy.add(m.energy_wh);
            total_wh += m.energy_wh;
        }
        self.energy.add(total_wh);
        self.p.add(w.p_total_w, w.p_total_w);
        self.q1.add(w.q1_total_var, w.q1_total_var);
        self.s.add(w.s_total_va, w.s_total_va);
        if let Some(f) = w.frequency_hz {
            self.frequency.add(f, f);
        }
    }

    /// The aggregate over `[start, end)` (given, or the windows' own span), then resets.
    pub fn finish(&mut self, interval: Option<(i64, i64)>) -> Aggregate {
        let (start, end) = interval.unwrap_or((self.start.unwrap_or(0), self.end));
        let ratio = |p: &Running, s: &Running| (s.sum > 0.0).then(|| p.sum / s.sum);
        let udin = self.declared_voltage_v;
        // Percent of Udin by which the clipped RMS lies below / above it.
        let deviation = |clipped: &Running, sign: f64| {
            let udin = udin?;
            let rms = clipped.rms()?.value;
            Some((sign * (udin - rms)).max(0.0) / udin * 100.0)
        };
        let phases = self.phases.map(|acc| {
            acc.map(|a| PhaseAggregate {
                v_rms_v: a.v.rms().unwrap_or_default(),
                i_rms_a: a.i.rms().unwrap_or_default(),
                p_w: a.p.mean().unwrap_or_default(),
                q1_var: a.q1.mean().unwrap_or_default(),
                s_va: a.s.mean().unwrap_or_default(),
                pf: ratio(&a.p, &a.s),
                thd_v_pct: a.thd_v_clean.rms().or(a.thd_v.rms()).map(|s| s.value),
                thd_i_pct: a.thd_i_clean.rms().or(a.thd_i.rms()).map(|s| s.value),
                v_under_pct: deviation(&a.v_under, 1.0),
                v_over_pct: deviation(&a.v_over, -1.0),
                energy: a.energy,
            })
        });
        let aggregate = Aggregate {
            start_unix_ns: start,
            end_unix_ns: end,
            windows: self.windows,
            flagged_windows: self.flagged,
            pq_flagged_windows: self.pq_flagged,
            phases,
            p_total_w: self.p.mean().unwrap_or_default(),
            q1_total_var: self.q1.mean().unwrap_or_default(),
            s_total_va: self.s.mean().unwrap_or_default(),
            pf_total: ratio(&self.p, &self.s),
            energy_total: self.energy,
            frequency_hz: self.frequency.mean(),
            ..Aggregate::default()
        };
        *self = AggregateAccumulator {
            declared_voltage_v: udin,
            ..AggregateAccumulator::default()
        };
        aggregate
    }
}

/// Clock-aligned intervals of any length (10 min, the packet interval, ...):
/// a window belongs to the interval holding its start time.
#[derive(Debug, Clone)]
pub struct ClockAggregator {
    interval_ns: i64,
    current: Option<i64>,
    acc: AggregateAccumulator,
}

impl ClockAggregator {
    /// `interval_ns` is clamped to at least 1 ns.
    pub fn new(interval_ns: i64) -> Self {
        ClockAggregator {
            interval_ns: interval_ns.max(1),
            current: None,
            acc: AggregateAccumulator::default(),
        }
    }

    pub fn ten_minutes() -> Self {
        Self::new(TEN_MINUTES_NS)
    }

    /// Clock-aligned 2 h, the interval of flicker `Plt`.
    pub fn two_hours() -> Self {
        Self::new(TWO_HOURS_NS)
    }

    /// Also reports the under/over deviation against Udin = `udin_v`.
    pub fn with_declared_voltage(mut self, udin_v: f64) -> Self {
        self.acc.declared_voltage_v = usable_udin(udin_v);
        self
    }

    /// Udin from here on (a meter's inferred one); `None`: no deviation.
    pub fn set_declared_voltage(&mut self, udin_v: Option<f64>) {
        self.acc.declared_voltage_v = udin_v.and_then(usable_udin);
    }

    /// Adds a window; returns the previous interval when this one starts a new one.
    pub fn push(&mut self, w: &WindowMetrics) -> Option<Aggregate> {
        let slot = w.start_unix_ns.div_euclid(self.interval_ns);
        let done = match self.current {
            Some(current) if current != slot => Some(self.finish_slot(current)),
            _ => None,
        };
        self.current = Some(slot);
        self.acc.push(w);
        done
    }

    /// The interval in progress, if it holds any window.
    pub fn flush(&mut self) -> Option<Aggregate> {
        let current = self.current.take()?;
        (!self.acc.is_empty()).then(|| self.finish_slot(current))
    }

    fn finish_slot(&mut self, slot: i64) -> Aggregate {
        let start = slot.saturating_mul(self.interval_ns);
        self.acc
            .finish(Some((start, start.saturating_add(self.interval_ns))))
    }
}

/// 150/180-cycle intervals: 15 basic windows, restarting at every 10-min tick
/// (the interval cut by a tick is emitted short).
#[derive(Debug, Clone, Default)]
pub struct CycleAggregator {
    tick: Option<i64>,
    acc: AggregateAccumulator,
}

impl CycleAggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also reports the under/over deviation against Udin = `udin_v`.
    pub fn with_declared_voltage(mut self, udin_v: f64) -> Self {
        self.acc.declared_voltage_v = usable_udin(udin_v);
        self
    }

    /// Udin from here on (a meter's inferred one); `None`: no deviation.
    pub fn set_declared_voltage(&mut self, udin_v: Option<f64>) {
        self.acc.declared_voltage_v = udin_v.and_then(usable_udin);
    }

    /// Adds a window; returns an aggregate when 15 windows are in, or when
    /// this window starts a new 10-min interval (then the short one before it).
    pub fn push(&mut self, w: &WindowMetrics) -> Option<Aggregate> {
        let tick = w.start_unix_ns.div_euclid(TEN_MINUTES_NS);
        let mut done = None;
        if self.tick.is_some_and(|t| t != tick) && !self.acc.is_empty() {
            done = Some(self.acc.finish(None));
        }
        self.tick = Some(tick);
        self.acc.push(w);
        if self.acc.windows() >= WINDOWS_PER_SHORT_INTERVAL {
            // A tick and a full interval at once cannot happen: the
            // tick emptied the accumulator just before this window.
            return done.or_else(|| Some(self.acc.finish(None)));
        }
        done
    }

    pub fn flush(&mut self) -> Option<Aggregate> {
        (!self.acc.is_empty()).then(|| self.acc.finish(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::window::PhaseMetrics;

    fn window(thd_i_pct: f64, flags: WindowFlags) -> WindowMetrics {
        WindowMetrics {
            flags,
            phases: [
                Some(PhaseMetrics {
                    v_rms_v: 230.0,
                    i_rms_a: 10.0,
                    thd_v_pct: Some(thd_i_pct / 10.0),
                    thd_i_pct: Some(thd_i_pct),
                    ..PhaseMetrics::default()
                }),
                None,
                None,
            ],
            ..WindowMetrics::default()
        }
    }

    #[test]
    fn thd_of_an_interval_comes_from_its_clean_windows_when_it_has_any() {
        let mut acc = AggregateAccumulator::default();
        acc.push(&window(110.0, WindowFlags::RESYNC));
        acc.push(&window(20.0, WindowFlags::NONE));
        acc.push(&window(30.0, WindowFlags::NONE));
        let aggregate = acc.finish(None);
        let phase = aggregate.phases[0].unwrap();
        // RMS of 20 and 30; the leaking fragment is left out.
        let expected = ((20.0f64.powi(2) + 30.0f64.powi(2)) / 2.0).sqrt();
        assert!((phase.thd_i_pct.unwrap() - expected).abs() < 1e-12);
        assert_eq!(aggregate.flagged_windows, 1);
        // Only flagged windows: their THD is all there is.
        acc.push(&window(110.0, WindowFlags::RESYNC));
        let phase = acc.finish(None).phases[0].unwrap();
        assert!((phase.thd_i_pct.unwrap() - 110.0).abs() < 1e-12);
    }

    fn at_voltage(v_rms_v: f64, flags: WindowFlags) -> WindowMetrics {
        let mut w = window(10.0, flags);
        if let Some(phase) = w.phases[0].as_mut() {
            phase.v_rms_v = v_rms_v;
        }
        w
    }

    #[test]
    fn under_and_over_deviation_against_udin() {
        // Udin 230 V; windows 220, 240, 230, 200 V. By hand:
        // under: clipped 220, 230, 230, 200 -> sqrt(194 200 / 4) = 220.340 645 V
        //        -> (230 - 220.340 645) / 230 = 4.199 719 %;
        // over:  clipped 230, 240, 230, 230 -> sqrt(216 300 / 4) = 232.540 319 V
        //        -> (232.540 319 - 230) / 230 = 1.104 487 %.
        let mut acc = AggregateAccumulator::with_declared_voltage(230.0);
        for v in [220.0, 240.0, 230.0, 200.0] {
            acc.push(&at_voltage(v, WindowFlags::NONE));
        }
        // A window with invalid samples is left out, like its RMS.
        acc.push(&at_voltage(100.0, WindowFlags::INVALID_SAMPLES));
        let phase = acc.finish(None).phases[0].unwrap();
        assert!((phase.v_under_pct.unwrap() - 4.199_719).abs() < 1e-6);
        assert!((phase.v_over_pct.unwrap() - 1.104_487).abs() < 1e-6);
        // Udin survives the reset; all windows at Udin deviate by nothing.
        acc.push(&at_voltage(230.0, WindowFlags::NONE));
        let phase = acc.finish(None).phases[0].unwrap();
        assert_eq!(
            (phase.v_under_pct, phase.v_over_pct),
            (Some(0.0), Some(0.0))
        );
        // Without Udin there is nothing to deviate from.
        let mut plain = ClockAggregator::new(1_000);
        plain.push(&at_voltage(220.0, WindowFlags::NONE));
        let phase = plain.flush().unwrap().phases[0].unwrap();
        assert_eq!((phase.v_under_pct, phase.v_over_pct), (None, None));
        let mut cycles = CycleAggregator::new().with_declared_voltage(230.0);
        cycles.push(&at_voltage(253.0, WindowFlags::GAP));
        let phase = cycles.flush().unwrap().phases[0].unwrap();
        assert!((phase.v_over_pct.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(phase.v_under_pct, Some(0.0));
    }
}
