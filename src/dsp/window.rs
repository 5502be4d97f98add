//! Cuts the sample stream into basic windows: N whole cycles between zero
//! crossings when the reference voltage has them, fixed 200 ms windows
//! (flagged) when it has not, and flagged partial windows around gaps and
//! changes of synchronisation.
//!
//! Positions are in sample units: sample n sits at n and stands for the
//! interval [n - 0.5, n + 0.5), so consecutive windows [a, b) share their
//! boundary and every sample's weight sums to one over the windows. Data
//! starts at its first sample's instant (the stream's, or the first after a
//! gap), so that sample's cell is cut to [n, n + 0.5): a window never starts
//! before the data does (at midnight it would land in the previous day);
//! the engine sets this start (`restart`, `on_gap`). The
//! decisions depend only on crossing positions and on how far crossings are
//! known (the horizon), never on how the stream was cut into blocks.

use crate::model::window::WindowFlags;

/// One window to compute, in sample positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSpan {
    /// Start position (a zero crossing when synchronised).
    pub start: f64,
    /// End position, exclusive.
    pub end: f64,
    /// Whole cycles between `start` and the last crossing inside.
    pub cycles: u32,
    /// Samples spanned by those whole cycles (0 without cycles).
    pub cycle_samples: f64,
    pub flags: WindowFlags,
}

impl WindowSpan {
    /// Frequency over the window's whole cycles, Hz.
    pub fn frequency_hz(&self, rate: f64) -> Option<f64> {
        (self.cycles > 0 && self.cycle_samples > 0.0)
            .then(|| f64::from(self.cycles) * rate / self.cycle_samples)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// No synchronisation: fixed windows from `start`.
    Unsynced { start: f64, flags: WindowFlags },
    /// Window started at crossing `start`; `cycles` whole cycles up to `last`.
    Synced {
        start: f64,
        last: f64,
        cycles: u32,
        flags: WindowFlags,
    },
}

/// Turns crossings and the known horizon into [`WindowSpan`]s.
#[derive(Debug, Clone)]
pub struct WindowAssembler {
    cycles_per_window: u32,
    fixed_samples: f64,
    min_period: f64,
    max_period: f64,
    state: State,
}

impl WindowAssembler {
    /// Cycles of 0.8..1.25 × the nominal period count as valid.
    pub fn new(rate: u32, nominal_hz: f64, cycles_per_window: u32, start: f64) -> Self {
        let rate_f = f64::from(rate.max(1));
        let period = rate_f / nominal_hz;
        WindowAssembler {
            cycles_per_window: cycles_per_window.max(1),
            fixed_samples: (rate_f / 5.0).max(1.0),
            min_period: period / 1.25,
            max_period: period / 0.8,
            state: State::Unsynced {
                start,
                flags: WindowFlags::NONE,
            },
        }
    }

    /// Samples in the longest synchronised window (every cycle at the
    /// longest period still counted as valid).
    pub fn max_window_samples(&self) -> usize {
        (f64::from(self.cycles_per_window) * self.max_period).ceil() as usize
    }

    /// Where the window in progress starts: no later window needs earlier samples.
    pub fn current_start(&self) -> f64 {
        match self.state {
            State::Unsynced { start, .. } | State::Synced { start, .. } => start,
        }
    }

    /// Starts afresh, unsynchronised, at `start`; `flags` go on the first window.
    pub fn restart(&mut self, start: f64, flags: WindowFlags) {
        self.state = State::Unsynced { start, flags };
    }

    /// Every crossing before `horizon` has been reported: emit what that settles.
    pub fn advance_to(&mut self, horizon: f64, spans: &mut Vec<WindowSpan>) {
        if let State::Synced {
            start,
            last,
            cycles,
            flags,
        } = self.state
        {
            if horizon - last <= self.max_period {
                return;
            }
            // Synchronisation lost: close the whole cycles we have.
            self.state = if cycles > 0 {
                spans.push(WindowSpan {
                    start,
                    end: last,
                    cycles,
                    cycle_samples: last - start,
                    flags: flags | WindowFlags::RESYNC,
                });
                State::Unsynced {
                    start: last,
                    flags: WindowFlags::NONE,
                }
            } else {
                State::Unsynced { start, flags }
            };
        }
        if let State::Unsynced { start, flags } = &mut self.state {
            while *start + self.fixed_samples <= horizon {
                let end = *start + self.fixed_samples;
                spans.push(WindowSpan {
                    start: *start,
                    end,
                    cycles: 0,
                    cycle_samples: 0.0,
                    flags: *flags | WindowFlags::NO_ZERO_CROSSING,
                });
                *start = end;
                *flags = WindowFlags::NONE;
            }
        }
    }

    /// A crossing at `position`; call [`advance_to`](Self::advance_to)
    /// with the same position first.
    pub fn on_crossing(&mut self, position: f64, spans: &mut Vec<WindowSpan>) {
        match self.state {
            State::Unsynced { start, flags } => {
                if position <= start {
                    return;
                }
                spans.push(WindowSpan {
                    start,
                    end: position,
                    cycles: 0,
                    cycle_samples: 0.0,
                    flags: flags | WindowFlags::RESYNC,
                });
                self.state = State::Synced {
                    start: position,
                    last: position,
                    cycles: 0,
                    flags: WindowFlags::NONE,
                };
            }
            State::Synced {
                start,
                last,
                cycles,
                flags,
            } => {
                if position - last < self.min_period {
                    return; // spurious crossing: keep the cycle going
                }
                let cycles = cycles + 1;
                if cycles == self.cycles_per_window {
                    spans.push(WindowSpan {
                        start,
                        end: position,
                        cycles,
                        cycle_samples: position - start,
                        flags,
                    });
                    self.state = State::Synced {
                        start: position,
                        last: position,
                        cycles: 0,
                        flags: WindowFlags::NONE,
                    };
                } else {
                    self.state = State::Synced {
                        start,
                        last: position,
                        cycles,
                        flags,
                    };
                }
            }
        }
    }

    /// Data stops at `data_end` and resumes at `resume`: the window in
    /// progress ends at the gap, the next one starts after it, both flagged.
    pub fn on_gap(&mut self, data_end: f64, resume: f64, spans: &mut Vec<WindowSpan>) {
        self.close(data_end, WindowFlags::GAP, spans);
        self.restart(resume, WindowFlags::GAP);
    }

    /// End of the stream at `data_end`: the partial window is flagged truncated.
    pub fn finish(&mut self, data_end: f64, spans: &mut Vec<WindowSpan>) {
        self.close(data_end, WindowFlags::TRUNCATED, spans);
        self.restart(data_end, WindowFlags::NONE);
    }

    fn close(&mut self, data_end: f64, extra: WindowFlags, spans: &mut Vec<WindowSpan>) {
        let span = match self.state {
            State::Unsynced { start, flags } => WindowSpan {
                start,
                end: data_end,
                cycles: 0,
                cycle_samples: 0.0,
                flags: flags | extra | WindowFlags::NO_ZERO_CROSSING,
            },
            State::Synced {
                start,
                last,
                cycles,
                flags,
            } => WindowSpan {
                start,
                end: data_end,
                cycles,
                cycle_samples: last - start,
                flags: flags | extra,
            },
        };
        if span.end > span.start {
            spans.push(span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_cycle_windows_from_crossings() {
        let mut asm = WindowAssembler::new(8000, 50.0, 10, -0.5);
        let mut spans = Vec::new();
        for k in 0..25 {
            let c = 100.0 + 160.0 * f64::from(k);
            asm.advance_to(c, &mut spans);
            asm.on_crossing(c, &mut spans);
        }
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[0].flags, WindowFlags::RESYNC);
        assert_eq!(
            (spans[1].start, spans[1].end, spans[1].cycles),
            (100.0, 1700.0, 10)
        );
        assert!(spans[1].flags.is_clean());
        assert_eq!(spans[1].frequency_hz(8000.0), Some(50.0));
    }

    #[test]
    fn no_crossings_give_fixed_flagged_windows() {
        let mut asm = WindowAssembler::new(8000, 50.0, 10, -0.5);
        let mut spans = Vec::new();
        asm.advance_to(5000.0, &mut spans);
        assert_eq!(spans.len(), 3);
        assert!(spans
            .iter()
            .all(|s| s.flags == WindowFlags::NO_ZERO_CROSSING));
        assert_eq!(spans[2].end, 4799.5);
        // Calling in steps gives the same windows.
        let mut asm2 = WindowAssembler::new(8000, 50.0, 10, -0.5);
        let mut spans2 = Vec::new();
        for h in (0..=5000).step_by(333) {
            asm2.advance_to(f64::from(h), &mut spans2);
        }
        asm2.advance_to(5000.0, &mut spans2);
        assert_eq!(spans, spans2);
    }

    #[test]
    fn gap_closes_and_flags() {
        let mut asm = WindowAssembler::new(8000, 50.0, 10, -0.5);
        let mut spans = Vec::new();
        asm.on_crossing(10.0, &mut spans);
        asm.on_gap(300.5, 400.5, &mut spans);
        assert_eq!(spans.len(), 2);
        assert!(spans[1].flags.contains(WindowFlags::GAP));
        assert_eq!(asm.current_start(), 400.5);
    }
}
