//! Rapid voltage changes (IEC 61000-4-30 §5.11) on `Urms(1/2)`.
//!
//! Steady state: the last 100 (50 Hz) / 120 (60 Hz) values of every channel
//! lie within threshold − hysteresis of their mean. From a steady state, a
//! value more than the threshold away from the mean of the values before it
//! starts a candidate; the candidate is an RVC once a new steady state is
//! reached (the window holding only values after its start), and is dropped
//! if a dip or swell starts meanwhile (then it is that, not an RVC).
//!
//! Reported: start = the departing value's start, end = the start of the
//! first value of the new steady window, ΔUmax = the largest |value − mean
//! before| from the start until the new steady state is established, ΔUss =
//! mean of that window − mean before (on the channel where it is largest).

use super::detector::{check_nominal, PqError};
use super::half_cycle::CycleValue;
use super::voltage_events::RawEvent;
use super::PqConfig;
use crate::model::pq_event::{PhaseSet, PqEventFlags, PqEventKind};

#[derive(Debug, Clone, Copy)]
struct Candidate {
    start: f64,
    mean_before: [f64; 3],
    delta_max: f64,
    extreme: f64,
    phases: PhaseSet,
    flags: PqEventFlags,
    /// Values pushed since (and including) the departing one.
    pushed: usize,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// No steady state yet (start, gap, after a dip or swell).
    Unarmed,
    Armed,
    Candidate(Candidate),
}

/// Streaming RVC detection over all voltage channels.
#[derive(Debug, Clone)]
pub struct RvcDetector {
    window: usize,
    threshold: f64,
    band: f64,
    present: [bool; 3],
    /// Last `window` values, oldest at `next` once full.
    values: Vec<[f64; 3]>,
    starts: Vec<f64>,
    next: usize,
    filled: usize,
    /// Values pushed since the start (numbers the queue entries).
    sequence: u64,
    /// Sliding maximum and minimum per channel over the same values.
    max: [Extremes; 3],
    min: [Extremes; 3],
    state: State,
}

/// Sliding extreme of the last `window` values (a monotonic queue): the
/// window's minimum and maximum bound its mean, which decides most values
/// without summing the window; the rest are decided exactly as before.
#[derive(Debug, Clone)]
struct Extremes {
    /// Ring of (sequence number, value), the front being the extreme.
    items: Vec<(u64, f64)>,
    head: usize,
    len: usize,
}

impl Extremes {
    fn new(window: usize) -> Self {
        Extremes {
            items: vec![(0, 0.0); window],
            head: 0,
            len: 0,
        }
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    fn front(&self) -> Option<f64> {
        (self.len > 0).then(|| self.items[self.head].1)
    }

    /// Adds value `seq`, dropping what left the window and what `covers`
    /// (`covers(new, old)`: `new` is at least as extreme as `old`).
    fn push(&mut self, seq: u64, value: f64, covers: impl Fn(f64, f64) -> bool) {
        let capacity = self.items.len();
        let window = capacity as u64;
        while self.len > 0 && self.items[self.head].0 + window <= seq {
            self.head = (self.head + 1) % capacity;
            self.len -= 1;
        }
        while self.len > 0 {
            let back = (self.head + self.len - 1) % capacity;
            if !covers(value, self.items[back].1) {
                break;
            }
            self.len -= 1;
        }
        self.items[(self.head + self.len) % capacity] = (seq, value);
        self.len += 1;
    }
}

/// Far above the rounding error of a window mean (100 values: ~1e-14
/// relative), so a bound decided with it agrees with the exact decision.
fn slack(a: f64, b: f64) -> f64 {
    1e-9 * (a.abs() + b.abs())
}

/// Mean, minimum and maximum of one channel over the window.
#[derive(Debug, Clone, Copy)]
struct Spread {
    mean: f64,
    min: f64,
    max: f64,
}

impl RvcDetector {
    /// `nominal_hz` sets the window: two values per cycle for 1 s.
    /// Refuses a nominal frequency outside the engine's range: the
    /// 1-s window holds 2 × nominal values.
    pub fn new(config: &PqConfig, present: [bool; 3], nominal_hz: f64) -> Result<Self, PqError> {
        check_nominal(nominal_hz)?;
        let window = ((2.0 * nominal_hz).round() as usize).max(2);
        Ok(RvcDetector {
            window,
            threshold: config.volts(config.rvc_threshold_pct),
            band: config.volts(config.rvc_threshold_pct - config.rvc_hysteresis_pct),
            present,
            values: vec![[0.0; 3]; window],
            starts: vec![0.0; window],
            next: 0,
            filled: 0,
            sequence: 0,
            max: std::array::from_fn(|_| Extremes::new(window)),
            min: std::array::from_fn(|_| Extremes::new(window)),
            state: State::Unarmed,
        })
    }

    /// The next value; `disturbed`: a dip or swell is in progress.
    pub fn step(&mut self, value: &CycleValue, disturbed: bool) -> Option<RawEvent> {
        if (0..3).any(|k| self.present[k] && value.rms[k].is_nan()) {
            return None;
        }
        // Armed, most values are plainly near the mean: no candidate.
        let quiet = matches!(self.state, State::Armed) && !self.may_depart(value);
        match &mut self.state {
            State::Unarmed => {}
            State::Armed if disturbed => self.state = State::Unarmed,
            State::Armed if quiet => {}
            State::Armed => {
                let mut candidate = Candidate {
                    start: value.start,
                    mean_before: [0.0; 3],
                    delta_max: 0.0,
                    extreme: f64::NAN,
                    phases: PhaseSet::NONE,
                    flags: PqEventFlags::NONE,
                    pushed: 0,
                };
                for k in self.channels() {
                    candidate.mean_before[k] = self.spread(k).mean;
                }
                if update(&mut candidate, value, self.threshold, self.present) {
                    self.state = State::Candidate(candidate);
                }
            }
            State::Candidate(_) if disturbed => self.state = State::Unarmed,
            State::Candidate(candidate) => {
                update(candidate, value, self.threshold, self.present);
            }
        }
        self.push(value);
        match &mut self.state {
            State::Unarmed => {
                if !disturbed && self.filled == self.window && self.is_steady() {
                    self.state = State::Armed;
                }
                None
            }
            State::Armed => None,
            State::Candidate(candidate) => {
                candidate.pushed += 1;
                let candidate = *candidate;
                if candidate.pushed <= self.window || !self.is_steady() {
                    return None;
                }
                let mut delta_ss: f64 = 0.0;
                for k in self.channels() {
                    let delta = self.spread(k).mean - candidate.mean_before[k];
                    if delta.abs() > delta_ss.abs() {
                        delta_ss = delta;
                    }
                }
                self.state = State::Armed;
                Some(self.event(&candidate, self.starts[self.next], Some(delta_ss)))
            }
        }
    }

    /// Ends detection at `end` (gap, stream end): a candidate in progress is
    /// reported with `flags` and no ΔUss; the next values need a new steady state.
    pub fn close(&mut self, end: f64, flags: PqEventFlags) -> Option<RawEvent> {
        let state = std::mem::replace(&mut self.state, State::Unarmed);
        self.next = 0;
        self.filled = 0;
        for queue in self.max.iter_mut().chain(&mut self.min) {
            queue.clear();
        }
        match state {
            State::Candidate(mut candidate) => {
                candidate.flags |= flags;
                Some(self.event(&candidate, end.max(candidate.start), None))
            }
            State::Unarmed | State::Armed => None,
        }
    }

    fn event(&self, candidate: &Candidate, end: f64, delta_ss: Option<f64>) -> RawEvent {
        RawEvent {
            kind: PqEventKind::Rvc,
            start: candidate.start,
            end,
            extreme_v: candidate.extreme,
            delta_u_max_v: Some(candidate.delta_max),
            delta_u_ss_v: delta_ss,
            phases: candidate.phases,
            flags: candidate.flags,
        }
    }

    fn channels(&self) -> impl Iterator<Item = usize> {
        let present = self.present;
        (0..3).filter(move |&k| present[k])
    }

    fn push(&mut self, value: &CycleValue) {
        self.values[self.next] = value.rms;
        self.starts[self.next] = value.start;
        self.next = (self.next + 1) % self.window;
        self.filled = (self.filled + 1).min(self.window);
        let seq = self.sequence;
        self.sequence += 1;
        for k in 0..3 {
            if self.present[k] {
                let u = value.rms[k];
                self.max[k].push(seq, u, |new, old| new >= old);
                self.min[k].push(seq, u, |new, old| new <= old);
            }
        }
    }

    /// Minimum and maximum of channel `k` over the window.
    fn range(&self, k: usize) -> Option<(f64, f64)> {
        Some((self.min[k].front()?, self.max[k].front()?))
    }

    /// False if no channel of `value` can be more than the threshold from
    /// its window mean (which lies between the window's minimum and maximum).
    fn may_depart(&self, value: &CycleValue) -> bool {
        self.channels().any(|k| {
            let Some((min, max)) = self.range(k) else {
                return true;
            };
            let u = value.rms[k];
            let margin = slack(min, max) + slack(u, 0.0);
            !(u - min + margin <= self.threshold && max - u + margin <= self.threshold)
        })
    }

    fn spread(&self, k: usize) -> Spread {
        let values = &self.values[..self.filled];
        let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            sum += v[k];
            min = min.min(v[k]);
            max = max.max(v[k]);
        }
        Spread {
            mean: sum / values.len().max(1) as f64,
            min,
            max,
        }
    }

    fn is_steady(&self) -> bool {
        self.channels().all(|k| {
            if let Some((min, max)) = self.range(k) {
                // mean − min and max − mean add up to max − min.
                let (width, margin) = (max - min, slack(min, max));
                if width + margin <= self.band {
                    return true;
                }
                if self.band >= 0.0 && width > 2.0 * self.band + margin {
                    return false;
                }
            }
            let s = self.spread(k);
            s.max - s.mean <= self.band && s.mean - s.min <= self.band
        })
    }
}

/// Folds `value` into the candidate; true if some channel departs from its
/// mean before by more than `threshold`.
fn update(
    candidate: &mut Candidate,
    value: &CycleValue,
    threshold: f64,
    present: [bool; 3],
) -> bool {
    let mut departed = false;
    for k in (0..3).filter(|&k| present[k]) {
        let delta = (value.rms[k] - candidate.mean_before[k]).abs();
        if delta > threshold {
            departed = true;
            candidate.phases |= PhaseSet::of(k);
        }
        if delta > candidate.delta_max || candidate.extreme.is_nan() {
            candidate.delta_max = delta;
            candidate.extreme = value.rms[k];
        }
    }
    if value.extrapolated {
        candidate.flags |= PqEventFlags::EXTRAPOLATED_TIMING;
    }
    departed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_decide_as_the_window_mean_does() {
        // A wandering voltage with steps: every shortcut taken by
        // `is_steady` and `may_depart` must agree with the full sums.
        let config = PqConfig::default();
        let mut rvc = RvcDetector::new(&config, [true, true, false], 50.0).unwrap();
        let mut state = 12345u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let (mut level, mut checked) = (230.0, 0);
        for n in 0..20_000 {
            if n % 700 == 0 {
                level = 215.0 + 30.0 * (noise() + 0.5);
            }
            let value = CycleValue {
                start: n as f64 * 80.0,
                end: n as f64 * 80.0 + 160.0,
                rms: [level + 8.0 * noise(), level + 0.05 * noise(), f64::NAN],
                extrapolated: false,
            };
            if rvc.filled > 0 {
                let exact = rvc
                    .channels()
                    .any(|k| (value.rms[k] - rvc.spread(k).mean).abs() > rvc.threshold);
                assert!(rvc.may_depart(&value) || !exact, "value {n}");
                let steady = rvc.channels().all(|k| {
                    let s = rvc.spread(k);
                    s.max - s.mean <= rvc.band && s.mean - s.min <= rvc.band
                });
                assert_eq!(rvc.is_steady(), steady, "value {n}");
                checked += 1;
            }
            rvc.step(&value, false);
            if n % 5000 == 4999 {
                rvc.close(value.end, PqEventFlags::NONE);
            }
        }
        assert!(checked > 19_000);
    }

    fn feed(rvc: &mut RvcDetector, start: &mut f64, volts: f64, count: usize) -> Vec<RawEvent> {
        let mut events = Vec::new();
        for _ in 0..count {
            let value = CycleValue {
                start: *start,
                end: *start + 160.0,
                rms: [volts, f64::NAN, f64::NAN],
                extrapolated: false,
            };
            events.extend(rvc.step(&value, false));
            *start += 80.0;
        }
        events
    }

    #[test]
    fn a_step_within_the_dip_threshold_is_one_rvc() {
        let mut rvc = RvcDetector::new(&PqConfig::default(), [true, false, false], 50.0).unwrap();
        for absurd in [0.0, -50.0, 1e-9, 1e10, 1e20, f64::NAN, f64::INFINITY] {
            assert!(
                RvcDetector::new(&PqConfig::default(), [true, false, false], absurd).is_err(),
                "{absurd}"
            );
        }
        let mut t = 0.0;
        assert!(feed(&mut rvc, &mut t, 230.0, 150).is_empty());
        // 230 → 220 V: 10 V > 3 % of 230 V.
        let events = feed(&mut rvc, &mut t, 220.0, 150);
        assert_eq!(events.len(), 1);
        let e = events[0];
        assert_eq!((e.start, e.end), (150.0 * 80.0, 151.0 * 80.0));
        assert_eq!(e.delta_u_ss_v, Some(-10.0));
        assert_eq!(e.delta_u_max_v, Some(10.0));
        assert_eq!(e.extreme_v, 220.0);
    }
}
