//! Dips, swells and interruptions on `Urms(1/2)` with the polyphase rules
//! of IEC 61000-4-30 §5.4: a dip (swell) starts when one channel crosses
//! its threshold and ends when all are back past threshold + hysteresis; an
//! interruption starts when all channels are below its threshold and ends
//! when any is back above threshold + hysteresis.

use super::half_cycle::CycleValue;
use super::PqConfig;
use crate::model::pq_event::{PhaseSet, PqEventFlags, PqEventKind};

/// An event found, positions in sample units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawEvent {
    pub kind: PqEventKind,
    pub start: f64,
    pub end: f64,
    pub extreme_v: f64,
    pub delta_u_max_v: Option<f64>,
    pub delta_u_ss_v: Option<f64>,
    pub phases: PhaseSet,
    pub flags: PqEventFlags,
}

/// An event in progress.
#[derive(Debug, Clone, Copy)]
struct Open {
    start: f64,
    extreme: f64,
    phases: PhaseSet,
    flags: PqEventFlags,
}

/// Which way a channel has to cross.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// Any channel below `threshold`; ends when all are >= `threshold + hysteresis`.
    Below,
    /// Any channel above `threshold`; ends when all are <= `threshold - hysteresis`.
    Above,
    /// All channels below `threshold`; ends when any is >= `threshold + hysteresis`.
    AllBelow,
}

/// One kind's state machine.
#[derive(Debug, Clone)]
pub struct ThresholdDetector {
    kind: PqEventKind,
    rule: Rule,
    threshold: f64,
    hysteresis: f64,
    open: Option<Open>,
}

impl ThresholdDetector {
    pub fn dip(config: &PqConfig) -> Self {
        Self::with(
            PqEventKind::Dip,
            Rule::Below,
            config.dip_threshold_pct,
            config,
        )
    }

    pub fn swell(config: &PqConfig) -> Self {
        Self::with(
            PqEventKind::Swell,
            Rule::Above,
            config.swell_threshold_pct,
            config,
        )
    }

    pub fn interruption(config: &PqConfig) -> Self {
        Self::with(
            PqEventKind::Interruption,
            Rule::AllBelow,
            config.interruption_threshold_pct,
            config,
        )
    }

    fn with(kind: PqEventKind, rule: Rule, threshold_pct: f64, config: &PqConfig) -> Self {
        ThresholdDetector {
            kind,
            rule,
            threshold: config.volts(threshold_pct),
            hysteresis: config.volts(config.hysteresis_pct),
            open: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Start of the event in progress, if any.
    pub fn open_since(&self) -> Option<f64> {
        self.open.map(|o| o.start)
    }

    /// The next value; `first` marks the first value after a start or gap.
    /// Returns the event it closes.
    pub fn step(&mut self, value: &CycleValue, first: bool) -> Option<RawEvent> {
        let mut crossed = PhaseSet::NONE;
        let mut all_crossed = true;
        let mut any_cleared = false;
        let mut all_cleared = true;
        let mut channels = 0;
        let mut extreme = match self.rule {
            Rule::Above => f64::NEG_INFINITY,
            Rule::Below | Rule::AllBelow => f64::INFINITY,
        };
        for (k, &u) in value.rms.iter().enumerate() {
            if u.is_nan() {
                continue;
            }
            channels += 1;
            let (is_crossed, is_cleared) = match self.rule {
                Rule::Below | Rule::AllBelow => {
                    extreme = extreme.min(u);
                    (u < self.threshold, u >= self.threshold + self.hysteresis)
                }
                Rule::Above => {
                    extreme = extreme.max(u);
                    (u > self.threshold, u <= self.threshold - self.hysteresis)
                }
            };
            if is_crossed {
                crossed |= PhaseSet::of(k);
            }
            all_crossed &= is_crossed;
            any_cleared |= is_cleared;
            all_cleared &= is_cleared;
        }
        if channels == 0 {
            return None;
        }
        let extrapolated = if value.extrapolated {
            PqEventFlags::EXTRAPOLATED_TIMING
        } else {
            PqEventFlags::NONE
        };
        match &mut self.open {
            None => {
                let starts = match self.rule {
                    Rule::Below | Rule::Above => !crossed.is_empty(),
                    Rule::AllBelow => all_crossed,
                };
                if starts {
                    let mut flags = extrapolated;
                    if first {
                        flags |= PqEventFlags::OPEN_AT_START;
                    }
                    self.open = Some(Open {
                        start: value.start,
                        extreme,
                        phases: crossed,
                        flags,
                    });
                }
                None
            }
            Some(open) => {
                let ends = match self.rule {
                    Rule::Below | Rule::Above => all_cleared,
                    Rule::AllBelow => any_cleared,
                };
                if ends {
                    let event = self.close(value.start, PqEventFlags::NONE);
                    return event;
                }
                open.extreme = match self.rule {
                    Rule::Above => open.extreme.max(extreme),
                    Rule::Below | Rule::AllBelow => open.extreme.min(extreme),
                };
                open.phases |= crossed;
                open.flags |= extrapolated;
                None
            }
        }
    }

    /// Closes the event in progress at `end` with `flags` (gap, stream end).
    pub fn close(&mut self, end: f64, flags: PqEventFlags) -> Option<RawEvent> {
        let open = self.open.take()?;
        Some(RawEvent {
            kind: self.kind,
            start: open.start,
            end: end.max(open.start),
            extreme_v: open.extreme,
            delta_u_max_v: None,
            delta_u_ss_v: None,
            phases: open.phases,
            flags: open.flags | flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(start: f64, rms: [f64; 3]) -> CycleValue {
        CycleValue {
            start,
            end: start + 160.0,
            rms,
            extrapolated: false,
        }
    }

    #[test]
    fn dip_ends_only_when_every_phase_is_back_above_threshold_plus_hysteresis() {
        let mut dip = ThresholdDetector::dip(&PqConfig::default());
        assert_eq!(dip.step(&value(0.0, [230.0; 3]), true), None);
        assert_eq!(dip.step(&value(80.0, [200.0, 230.0, 230.0]), false), None);
        // L1 recovers to 91 % (inside the hysteresis), L3 dips: still one dip.
        assert_eq!(dip.step(&value(160.0, [209.3, 230.0, 150.0]), false), None);
        assert_eq!(dip.step(&value(240.0, [230.0, 230.0, 210.0]), false), None);
        let event = dip.step(&value(320.0, [230.0, 230.0, 211.6]), false);
        let event = event.map(|e| (e.start, e.end, e.extreme_v, e.phases.bits()));
        assert_eq!(event, Some((80.0, 320.0, 150.0, 0b101)));
    }

    #[test]
    fn interruption_needs_every_phase_down_and_ends_with_any_up() {
        let mut cut = ThresholdDetector::interruption(&PqConfig::default());
        assert_eq!(cut.step(&value(0.0, [1.0, 1.0, 100.0]), false), None);
        assert!(!cut.is_open());
        assert_eq!(cut.step(&value(80.0, [1.0, 2.0, 3.0]), false), None);
        assert!(cut.is_open());
        // 7 % of 230 V = 16.1 V is threshold + hysteresis.
        assert_eq!(cut.step(&value(160.0, [0.5, 16.0, 0.0]), false), None);
        let event = cut.step(&value(240.0, [0.0, 16.2, 0.0]), false);
        assert_eq!(
            event.map(|e| (e.start, e.end, e.extreme_v)),
            Some((80.0, 240.0, 0.0))
        );
    }
}
