//! Start times as configs and flags give them: RFC 3339, or Unix seconds.

use anyhow::Context;

/// Parses a start time: RFC 3339, or Unix seconds with an optional fraction.
pub fn parse_start(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if (0.0..1e11).contains(&seconds) {
            return Ok((seconds * 1e9).round() as i64);
        }
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("start time {text:?} is neither RFC 3339 (2024-05-01T12:00:00Z) nor Unix seconds")
    })?;
    time.timestamp_nanos_opt()
        .with_context(|| format!("start time {text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times() {
        assert_eq!(
            parse_start("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_start("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_start("yesterday").is_err());
    }
}
