//! The wait between retries of something that keeps failing (an output
//! being rebuilt, a meter being dialed, a stream being consumed): doubling
//! from a floor up to a ceiling, back to the floor once it works.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits from `min`, doubling, never beyond `max` (`max` below `min` counts as `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait before the next try; the one after is twice as long.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// After a success: the next failure waits the floor again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn waits_double_up_to_the_ceiling_and_start_over_after_a_success() {
        let mut backoff = Backoff::new(ms(200), ms(1000));
        let waits: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            waits,
            [ms(200), ms(400), ms(800), ms(1000), ms(1000), ms(1000)]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(200));
        assert_eq!(backoff.next_delay(), ms(400));
    }

    #[test]
    fn a_huge_ceiling_does_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::MAX);
        for _ in 0..200 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }
}
