//! Cycle timing for `Urms(1/2)`: the reference's zero crossings, extended at
//! the last measured period (nominal at the start) while they are missing,
//! so half-cycle values keep coming through an interruption.
//!
//! Decisions depend only on the crossing positions and on how far crossings
//! are known (the horizon), never on how the stream was cut into blocks.

/// Crossings closer than this × the period to the previous one are spurious.
const MIN_SPACING: f64 = 0.5;
/// Without a crossing for this × the period, one is extrapolated.
const MAX_SPACING: f64 = 1.5;

/// One cycle boundary: a positive-going crossing, real or extrapolated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    pub position: f64,
    pub extrapolated: bool,
}

/// Turns crossings and the known horizon into a gapless series of [`Tick`]s.
#[derive(Debug, Clone)]
pub struct CycleClock {
    nominal: f64,
    /// Last measured period (real to real crossing), samples.
    period: f64,
    last: Option<Tick>,
    /// Where timing may start when no crossing has come yet.
    origin: f64,
}

impl CycleClock {
    pub fn new(rate: u32, nominal_hz: f64, origin: f64) -> Self {
        let nominal = f64::from(rate.max(1)) / nominal_hz;
        CycleClock {
            nominal,
            period: nominal,
            last: None,
            origin,
        }
    }

    /// Nominal period, samples.
    pub fn nominal_period(&self) -> f64 {
        self.nominal
    }

    /// Starts afresh at `origin` (after a gap): no tick before it.
    pub fn restart(&mut self, origin: f64) {
        self.last = None;
        self.origin = origin;
    }

    /// Every crossing before `horizon` has been reported: extrapolate the
    /// ticks that are overdue.
    pub fn advance_to(&mut self, horizon: f64, out: &mut impl FnMut(Tick)) {
        let reach = MAX_SPACING * self.period;
        if self.last.is_none() && horizon - self.origin > reach {
            let tick = Tick {
                position: self.origin,
                extrapolated: true,
            };
            self.last = Some(tick);
            out(tick);
        }
        while let Some(last) = self.last {
            if horizon - last.position <= reach {
                break;
            }
            let tick = Tick {
                position: last.position + self.period,
                extrapolated: true,
            };
            self.last = Some(tick);
            out(tick);
        }
    }

    /// A real crossing found at `position`, with the raw signal's own
    /// crossing near it if there is one (`refined`); call in increasing order.
    /// Coming out of extrapolated timing, a crossing without a raw one is
    /// the filter's transient after the voltage returned, and is left out.
    pub fn on_crossing(&mut self, position: f64, refined: Option<f64>, out: &mut impl FnMut(Tick)) {
        if position < self.origin {
            return;
        }
        self.advance_to(position, out);
        if refined.is_none() && self.last.is_none_or(|last| last.extrapolated) {
            return;
        }
        let position = refined.unwrap_or(position);
        if let Some(last) = self.last {
            let spacing = position - last.position;
            if spacing < MIN_SPACING * self.period {
                return;
            }
            if !last.extrapolated && (0.8 * self.nominal..=1.25 * self.nominal).contains(&spacing) {
                self.period = spacing;
            }
        }
        let tick = Tick {
            position,
            extrapolated: false,
        };
        self.last = Some(tick);
        out(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(crossings: &[f64], horizons: &[f64]) -> Vec<Tick> {
        let mut clock = CycleClock::new(8000, 50.0, 0.0);
        let mut ticks = Vec::new();
        let mut next = 0;
        for &h in horizons {
            while next < crossings.len() && crossings[next] < h {
                let c = crossings[next];
                clock.on_crossing(c, Some(c), &mut |t| ticks.push(t));
                next += 1;
            }
            clock.advance_to(h, &mut |t| ticks.push(t));
        }
        ticks
    }

    #[test]
    fn missing_crossings_are_extrapolated_at_the_last_period() {
        // Period 161 samples, crossings stop after 1000 and return at 2100.
        let mut crossings: Vec<f64> = (0..7).map(|k| 30.0 + 161.0 * f64::from(k)).collect();
        crossings.push(2100.0);
        crossings.push(2261.0);
        let ticks = run(&crossings, &[500.0, 1700.0, 2400.0]);
        let positions: Vec<f64> = ticks.iter().map(|t| t.position).collect();
        let mut expected: Vec<f64> = (0..13).map(|k| 30.0 + 161.0 * f64::from(k)).collect();
        expected.push(2100.0);
        expected.push(2261.0);
        assert_eq!(positions, expected);
        assert!(ticks[7].extrapolated && ticks[12].extrapolated && !ticks[13].extrapolated);
        // Any horizon schedule gives the same ticks.
        let steps: Vec<f64> = (1..=60).map(|k| 40.0 * f64::from(k)).collect();
        assert_eq!(run(&crossings, &steps), ticks);
    }

    #[test]
    fn no_crossing_at_all_ticks_from_the_origin_at_nominal() {
        let ticks = run(&[], &[1000.0]);
        let positions: Vec<f64> = ticks.iter().map(|t| t.position).collect();
        assert_eq!(positions, vec![0.0, 160.0, 320.0, 480.0, 640.0, 800.0]);
    }
}
