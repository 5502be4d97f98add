//! IEC 61000-4-30 10-s frequency: whole cycles inside each 10-s clock
//! interval divided by their total duration; the cycle that straddles a
//! boundary belongs to neither interval.

use serde::{Deserialize, Serialize};

/// Length of the clock interval, ns.
pub const TEN_SECONDS_NS: i64 = 10_000_000_000;

/// One 10-s frequency value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TenSecondFrequency {
    /// Start of the clock interval, ns since the epoch (a multiple of 10 s).
    pub interval_start_unix_ns: i64,
    pub frequency_hz: f64,
    /// Whole cycles that went into the value.
    pub cycles: u32,
    /// Some cycles of the interval are missing (stream start, gap, no sync).
    pub incomplete: bool,
}

/// Converts sample positions to time: sample n is at `start + n / rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleClock {
    pub start_unix_ns: i64,
    pub rate: u32,
}

impl SampleClock {
    /// Time of a (fractional) sample position, ns since the epoch.
    pub fn time_ns(&self, position: f64) -> i64 {
        let rate = i128::from(self.rate.max(1));
        let whole = position.floor();
        let fraction = position - whole;
        let whole_ns = (whole as i128) * 1_000_000_000 / rate;
        let fraction_ns = (fraction * 1e9 / rate as f64).round() as i128;
        let total = i128::from(self.start_unix_ns) + whole_ns + fraction_ns;
        total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// Frequency of one cycle (crossing to crossing).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CycleFrequency {
    /// The cycle's starting crossing, ns since the epoch.
    pub start_unix_ns: i64,
    /// The cycle's ending crossing, ns since the epoch.
    pub end_unix_ns: i64,
    pub frequency_hz: f64,
}

/// Turns consecutive crossings into per-cycle frequencies.
#[derive(Debug, Clone)]
pub struct CycleTracker {
    clock: SampleClock,
    min_period: f64,
    max_period: f64,
    last: Option<f64>,
}

impl CycleTracker {
    /// Cycles of 0.8..1.25 × the nominal period count (as for windows).
    pub fn new(clock: SampleClock, nominal_hz: f64) -> Self {
        let period = f64::from(clock.rate.max(1)) / nominal_hz;
        CycleTracker {
            clock,
            min_period: period / 1.25,
            max_period: period / 0.8,
            last: None,
        }
    }

    /// A crossing at `position`: the cycle it closes, if valid.
    pub fn on_crossing(&mut self, position: f64) -> Option<CycleFrequency> {
        let Some(last) = self.last else {
            self.last = Some(position);
            return None;
        };
        let period = position - last;
        if period < self.min_period {
            return None; // spurious crossing, as the window assembler sees it
        }
        self.last = Some(position);
        (period <= self.max_period).then(|| CycleFrequency {
            start_unix_ns: self.clock.time_ns(last),
            end_unix_ns: self.clock.time_ns(position),
            frequency_hz: f64::from(self.clock.rate) / period,
        })
    }

    /// Samples were lost: no cycle spans the gap.
    pub fn on_gap(&mut self) {
        self.last = None;
    }
}

/// Accumulates crossings into 10-s values.
#[derive(Debug, Clone)]
pub struct TenSecondTracker {
    clock: SampleClock,
    min_period: f64,
    max_period: f64,
    last: Option<f64>,
    interval: Option<i64>,
    cycles: u32,
    cycle_samples: f64,
    incomplete: bool,
}

impl TenSecondTracker {
    pub fn new(clock: SampleClock, nominal_hz: f64) -> Self {
        let period = f64::from(clock.rate.max(1)) / nominal_hz;
        TenSecondTracker {
            clock,
            min_period: period / 1.25,
            max_period: period / 0.8,
            last: None,
            interval: None,
            cycles: 0,
            cycle_samples: 0.0,
            incomplete: true,
        }
    }

    /// A crossing at sample `position`; may complete the previous interval.
    pub fn on_crossing(&mut self, position: f64, out: &mut Vec<TenSecondFrequency>) {
        let interval = self.clock.time_ns(position).div_euclid(TEN_SECONDS_NS);
        if self.interval != Some(interval) {
            let had_previous = self.last.is_some() && self.interval.is_some();
            self.emit(out);
            self.interval = Some(interval);
            self.incomplete = !had_previous;
            self.last = Some(position);
            return;
        }
        if let Some(last) = self.last {
            let period = position - last;
            if period < self.min_period {
                return; // spurious: the window assembler ignores it too
            }
            if period <= self.max_period {
                self.cycles += 1;
                self.cycle_samples += period;
            } else {
                self.incomplete = true;
            }
        }
        self.last = Some(position);
    }

    /// Samples were lost: no cycle may span the gap.
    pub fn on_gap(&mut self) {
        self.last = None;
        self.incomplete = true;
    }

    /// Emits the interval in progress (end of stream).
    pub fn finish(&mut self, out: &mut Vec<TenSecondFrequency>) {
        self.incomplete = true;
        self.emit(out);
        self.interval = None;
        self.last = None;
    }

    fn emit(&mut self, out: &mut Vec<TenSecondFrequency>) {
        if let Some(interval) = self.interval {
            if self.cycles > 0 && self.cycle_samples > 0.0 {
                out.push(TenSecondFrequency {
                    interval_start_unix_ns: interval * TEN_SECONDS_NS,
                    frequency_hz: f64::from(self.cycles) * f64::from(self.clock.rate)
                        / self.cycle_samples,
                    cycles: self.cycles,
                    incomplete: self.incomplete,
                });
            }
        }
        self.cycles = 0;
        self.cycle_samples = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_matches_sample_block_time() {
        let clock = SampleClock {
            start_unix_ns: 1_000,
            rate: 8000,
        };
        assert_eq!(clock.time_ns(1.0), 1_000 + 125_000);
        assert_eq!(clock.time_ns(-0.5), 1_000 - 62_500);
        assert_eq!(clock.time_ns(8000.5), 1_000 + 1_000_062_500);
    }

    #[test]
    fn straddling_cycle_is_left_out() {
        let clock = SampleClock {
            start_unix_ns: 0,
            rate: 1000,
        };
        let mut t = TenSecondTracker::new(clock, 50.0);
        let mut out = Vec::new();
        // 20-sample cycles, crossings at 5, 25, ...; boundary at 10000.
        let mut c = 5.0;
        while c < 25_000.0 {
            t.on_crossing(c, &mut out);
            c += 20.0;
        }
        assert_eq!(out.len(), 2);
        assert!(out[0].incomplete);
        assert_eq!(out[1].cycles, 499);
        assert!(!out[1].incomplete);
        assert!((out[1].frequency_hz - 50.0).abs() < 1e-9);
    }
}
