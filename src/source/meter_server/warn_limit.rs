//! Rate limit for a warning that can repeat without end (a burst of refused
//! peers, a meter that cannot be reached with a short backoff): the first
//! few of each interval are logged, the rest only counted, and the next one
//! logged after the interval says how many were left out (or, when the
//! burst has stopped, a periodic [`WarnLimit::overdue`] does). Counters in
//! `/metrics` keep the full count either way.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do with one occurrence of the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarnVerdict {
    /// Log it; `left_out` occurrences of the interval before were not logged
    /// (say so in one line when above 0).
    Log { left_out: u64 },
    /// Count it only.
    Quiet,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    logged: u32,
    left_out: u64,
}

/// Lets `first` occurrences per `every` through. Shared by reference; the
/// lock is held for a few instructions.
#[derive(Debug)]
pub struct WarnLimit {
    first: u32,
    every: Duration,
    window: Mutex<Window>,
}

impl Default for WarnLimit {
    fn default() -> Self {
        Self::standard()
    }
}

impl WarnLimit {
    /// Peers refused and dials failed: five lines, then a summary every 10 s.
    pub fn standard() -> Self {
        Self::new(5, Duration::from_secs(10))
    }

    pub fn new(first: u32, every: Duration) -> Self {
        WarnLimit {
            first,
            every,
            window: Mutex::new(Window::default()),
        }
    }

    /// The verdict for an occurrence now.
    pub fn check(&self) -> WarnVerdict {
        self.check_at(Instant::now())
    }

    /// Occurrences left out of an interval that is over, taken (so a burst
    /// that stopped is still summarised once); `None` when there are none.
    pub fn overdue(&self) -> Option<u64> {
        self.overdue_at(Instant::now())
    }

    pub fn overdue_at(&self, now: Instant) -> Option<u64> {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let over = window
            .start
            .is_some_and(|start| now.saturating_duration_since(start) >= self.every);
        (over && window.left_out > 0).then(|| std::mem::take(&mut window.left_out))
    }

    /// The verdict for an occurrence at `now` (not before earlier calls' `now`).
    pub fn check_at(&self, now: Instant) -> WarnVerdict {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let expired = window
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.every);
        if expired {
            let left_out = std::mem::take(&mut window.left_out);
            window.start = Some(now);
            window.logged = 1;
            return WarnVerdict::Log { left_out };
        }
        if window.logged < self.first {
            window.logged += 1;
            WarnVerdict::Log { left_out: 0 }
        } else {
            window.left_out += 1;
            WarnVerdict::Quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_few_per_interval_pass_and_the_next_one_counts_the_rest() {
        let limit = WarnLimit::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 600 in the first second: 3 logged, 597 counted.
        let verdicts: Vec<WarnVerdict> = (0..600).map(|k| limit.check_at(at(k))).collect();
        let logged = verdicts
            .iter()
            .filter(|v| matches!(v, WarnVerdict::Log { .. }))
            .count();
        assert_eq!(logged, 3);
        assert_eq!(verdicts[2], WarnVerdict::Log { left_out: 0 });
        assert_eq!(verdicts[3], WarnVerdict::Quiet);
        // Still inside the interval: quiet.
        assert_eq!(limit.check_at(at(9_999)), WarnVerdict::Quiet);
        // The first after it reports the 598 left out, once.
        assert_eq!(
            limit.check_at(at(10_000)),
            WarnVerdict::Log { left_out: 598 }
        );
        assert_eq!(limit.check_at(at(10_001)), WarnVerdict::Log { left_out: 0 });
    }

    #[test]
    fn a_burst_that_stops_is_summarised_once_after_its_interval() {
        let limit = WarnLimit::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for k in 0..50 {
            limit.check_at(at(k));
        }
        // Inside the interval nothing is due; after it, the 48 once.
        assert_eq!(limit.overdue_at(at(9_000)), None);
        assert_eq!(limit.overdue_at(at(10_000)), Some(48));
        assert_eq!(limit.overdue_at(at(20_000)), None);
        // The next occurrence has nothing left to report.
        assert_eq!(limit.check_at(at(20_001)), WarnVerdict::Log { left_out: 0 });
    }

    #[test]
    fn a_slow_repeat_is_always_logged() {
        let limit = WarnLimit::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        for k in 0..20 {
            let now = t0 + Duration::from_secs(k);
            assert_eq!(limit.check_at(now), WarnVerdict::Log { left_out: 0 });
        }
    }
}
