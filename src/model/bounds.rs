//! Ranges of config numbers: durations (seconds or milliseconds) and counts
//! or sizes. A value is checked once, with an error naming its key, and
//! converted through the same range everywhere, so a value from a file can
//! never reach `Duration::from_secs_f64` (which panics on NaN, negatives
//! and overflow) or an unbounded allocation.

use std::fmt;
use std::time::Duration;

use anyhow::bail;

use crate::model::number::compact_number as number;

pub const MINUTE: f64 = 60.0;
pub const HOUR: f64 = 3600.0;
pub const DAY: f64 = 86_400.0;
pub const YEAR: f64 = 365.0 * DAY;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

/// The durations a key may take, in seconds, both ends included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub min_s: f64,
    pub max_s: f64,
}

impl Span {
    pub const fn new(min_s: f64, max_s: f64) -> Self {
        Span { min_s, max_s }
    }

    /// `value` seconds as a Duration, or an error naming `key`.
    pub fn check_s(&self, key: &str, value: f64) -> anyhow::Result<Duration> {
        if value.is_nan() {
            bail!("{key}: NaN is not a number of seconds ({self})");
        }
        if !(self.min_s..=self.max_s).contains(&value) {
            bail!("{key}: {} s is out of range ({self})", number(value));
        }
        Ok(self.duration_s(value))
    }

    /// `value` milliseconds as a Duration, or an error naming `key`.
    pub fn check_ms(&self, key: &str, value: u64) -> anyhow::Result<Duration> {
        let seconds = value as f64 / 1000.0;
        if !(self.min_s..=self.max_s).contains(&seconds) {
            bail!("{key}: {value} ms is out of range ({self})");
        }
        Ok(self.duration_s(seconds))
    }

    /// Whole seconds as a Duration, or an error naming `key`.
    pub fn check_whole_s(&self, key: &str, value: u64) -> anyhow::Result<Duration> {
        let seconds = value as f64;
        if !(self.min_s..=self.max_s).contains(&seconds) {
            bail!("{key}: {value} s is out of range ({self})");
        }
        Ok(self.duration_s(seconds))
    }

    /// A checked value as a Duration; an unchecked one is clamped into the
    /// range (NaN to its lower end) rather than panicking.
    pub fn duration_s(&self, value: f64) -> Duration {
        let clamped = if value.is_nan() {
            self.min_s
        } else {
            value.clamp(self.min_s, self.max_s)
        };
        Duration::try_from_secs_f64(clamped).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ..= {}", seconds(self.min_s), seconds(self.max_s))
    }
}

/// The counts or sizes a key may take, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub min: u64,
    pub max: u64,
    /// What is counted, e.g. `rows`; `bytes` prints the ends in KiB/MiB/….
    pub unit: &'static str,
}

impl Count {
    pub const fn new(min: u64, max: u64, unit: &'static str) -> Self {
        Count { min, max, unit }
    }

    /// `value`, or an error naming `key`.
    pub fn check(&self, key: &str, value: u64) -> anyhow::Result<u64> {
        if !(self.min..=self.max).contains(&value) {
            bail!("{key}: {} is out of range ({self})", self.counted(value));
        }
        Ok(value)
    }

    /// A `usize` field (every `usize` fits in `u64` on supported targets).
    pub fn check_usize(&self, key: &str, value: usize) -> anyhow::Result<usize> {
        let wide = u64::try_from(value).unwrap_or(u64::MAX);
        self.check(key, wide)?;
        Ok(value)
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unit == "bytes" {
            write!(f, "{} ..= {}", bytes(self.min), bytes(self.max))
        } else {
            write!(f, "{} ..= {}", self.min, self.counted(self.max))
        }
    }
}

impl Count {
    fn counted(&self, n: u64) -> String {
        if self.unit.is_empty() {
            n.to_string()
        } else {
            format!("{n} {}", self.unit)
        }
    }
}

/// The values a float key of some unit may take (a frequency, a voltage),
/// both ends included; NaN and infinities never.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub min: f64,
    pub max: f64,
    /// `Hz`, `V`, `A`.
    pub unit: &'static str,
}

impl Level {
    pub const fn new(min: f64, max: f64, unit: &'static str) -> Self {
        Level { min, max, unit }
    }

    /// `value`, or an error naming `key` (a pipeline key or a CLI flag).
    pub fn check(&self, key: &str, value: f64) -> anyhow::Result<f64> {
        if value.is_nan() {
            bail!("{key}: NaN is not a number of {} ({self})", self.unit);
        }
        if !(self.min..=self.max).contains(&value) {
            bail!(
                "{key}: {} {} is out of range ({self})",
                number(value),
                self.unit
            );
        }
        Ok(value)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ..= {} {}",
            number(self.min),
            number(self.max),
            self.unit
        )
    }
}

/// A range end in the largest whole unit: `0.1 s`, `1 h`, `1 day`.
fn seconds(value: f64) -> String {
    for (unit, size) in [("year", YEAR), ("day", DAY), ("h", HOUR), ("min", MINUTE)] {
        if value >= size && (value / size).fract() == 0.0 {
            let n = value / size;
            let plural = if n != 1.0 && matches!(unit, "year" | "day") {
                "s"
            } else {
                ""
            };
            return format!("{n} {unit}{plural}");
        }
    }
    format!("{} s", number(value))
}

fn bytes(value: u64) -> String {
    for (unit, size) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if value >= size && value.is_multiple_of(size) {
            return format!("{} {unit}", value / size);
        }
    }
    format!("{value} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAN: Span = Span::new(0.1, DAY);

    #[test]
    fn seconds_in_range_become_durations() {
        assert_eq!(SPAN.check_s("k", 5.0).unwrap(), Duration::from_secs(5));
        assert_eq!(SPAN.check_s("k", 0.1).unwrap(), Duration::from_millis(100));
        assert_eq!(SPAN.check_ms("k", 250).unwrap(), Duration::from_millis(250));
        assert_eq!(
            SPAN.check_whole_s("k", 60).unwrap(),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn errors_name_the_key_the_value_and_the_range() {
        let error = SPAN
            .check_s("aggregation.packet_interval_s", 1e20)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "aggregation.packet_interval_s: 1e20 s is out of range (0.1 s ..= 1 day)"
        );
        for bad in [f64::NAN, -1.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, 1e-9] {
            let error = SPAN.check_s("a.b", bad).unwrap_err().to_string();
            assert!(error.starts_with("a.b: "), "{error}");
        }
        let error = SPAN.check_ms("x.timeout_ms", 0).unwrap_err().to_string();
        assert_eq!(
            error,
            "x.timeout_ms: 0 ms is out of range (0.1 s ..= 1 day)"
        );
        let size = Count::new(KIB, TIB, "bytes");
        let error = size.check("s.max_file_bytes", 0).unwrap_err().to_string();
        assert_eq!(
            error,
            "s.max_file_bytes: 0 bytes is out of range (1 KiB ..= 1 TiB)"
        );
        let rows = Count::new(1, 1 << 20, "rows");
        assert_eq!(
            rows.check_usize("r", 0).unwrap_err().to_string(),
            "r: 0 rows is out of range (1 ..= 1048576 rows)"
        );
    }

    #[test]
    fn unchecked_values_are_clamped_not_panicking() {
        assert_eq!(SPAN.duration_s(f64::NAN), Duration::from_millis(100));
        assert_eq!(SPAN.duration_s(1e20), Duration::from_secs(86_400));
        assert_eq!(SPAN.duration_s(-5.0), Duration::from_millis(100));
    }

    #[test]
    fn levels_refuse_nan_infinities_and_the_absurd() {
        let hz = Level::new(1.0, 1000.0, "Hz");
        assert_eq!(hz.check("--nominal-hz", 50.0).unwrap(), 50.0);
        assert_eq!(
            hz.check("--nominal-hz", 1e20).unwrap_err().to_string(),
            "--nominal-hz: 1e20 Hz is out of range (1 ..= 1000 Hz)"
        );
        for bad in [
            f64::NAN,
            f64::INFINITY,
            -0.0,
            0.0,
            1e-300,
            1e-9,
            1e10,
            1e308,
        ] {
            let error = hz.check("k", bad).unwrap_err().to_string();
            assert!(
                error.starts_with("k: ") && error.contains("1 ..= 1000 Hz"),
                "{error}"
            );
        }
    }

    #[test]
    fn range_ends_read_in_whole_units() {
        assert_eq!(Span::new(0.0, HOUR).to_string(), "0 s ..= 1 h");
        assert_eq!(Span::new(0.01, 2.0 * DAY).to_string(), "0.01 s ..= 2 days");
        assert_eq!(Span::new(1.0, YEAR).to_string(), "1 s ..= 1 year");
    }
}
