//! Telemetry time stamps: every `time` form rtl_433 writes (local
//! `2024-05-01 12:00:00`, ISO with or without zone, Unix seconds with or
//! without fraction, relative `@0.070726s` when decoding a file), and the
//! canonical `YYYY-MM-DD HH:mm:ss.SSSS` of the MPPT dataset.

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, Offset, TimeZone, Utc};

/// Which zone a time without one is in (rtl_433 writes local time unless
/// told `-M time:utc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The machine's local zone.
    Local,
    Fixed(FixedOffset),
}

impl Zone {
    /// `local`, `UTC`/`Z`, or an offset like `+07:00` / `-0330`.
    pub fn parse(text: &str) -> Result<Zone, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(Zone::Fixed(Utc.fix()));
        }
        parse_offset(t).map(Zone::Fixed).ok_or_else(|| {
            format!("time zone {t:?} is not `local`, `UTC` or an offset like +07:00")
        })
    }

    fn to_utc_ns(self, naive: &NaiveDateTime) -> Option<i64> {
        match self {
            Zone::Local => Local
                .from_local_datetime(naive)
                .earliest()
                .and_then(|t| t.timestamp_nanos_opt()),
            Zone::Fixed(offset) => offset
                .from_local_datetime(naive)
                .single()
                .and_then(|t| t.timestamp_nanos_opt()),
        }
    }
}

/// `+07:00`, `+0700`, `-03:30`, `+07` as an offset.
pub fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits.get(0..2)?.parse().ok()?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    if minutes >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// An offset as the MPPT dataset writes it: `+07:00`.
pub fn offset_string(offset: FixedOffset) -> String {
    let secs = offset.local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.abs();
    format!("{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// The canonical storage form `YYYY-MM-DD HH:mm:ss.SSSS` (UTC, 4 decimals,
/// truncated like the spec's examples: `.032` → `.0320`).
pub fn canonical_utc(ns: i64) -> String {
    let time = DateTime::<Utc>::from_timestamp_nanos(ns);
    let tenths_of_ms = ns.rem_euclid(1_000_000_000) / 100_000;
    format!("{}.{tenths_of_ms:04}", time.format("%Y-%m-%d %H:%M:%S"))
}

/// How the times of one input are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeContext {
    /// Zone of times written without one.
    pub zone: Zone,
    /// What `@<seconds>s` is relative to (the start of the decoded file), ns.
    pub relative_base_ns: i64,
}

impl Default for TimeContext {
    fn default() -> Self {
        TimeContext {
            zone: Zone::Local,
            relative_base_ns: 0,
        }
    }
}

/// Unix seconds written as decimal text, exactly (no float rounding).
pub fn unix_seconds_text(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let mut nanos: i64 = 0;
    for (k, digit) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(digit - b'0') * 10i64.pow(8 - k as u32);
    }
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// An rtl_433 `time` value (string or number) as ns since the epoch.
pub fn parse_time(value: &serde_json::Value, ctx: &TimeContext) -> Result<i64, String> {
    match value {
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && (0.0..1e11).contains(s))
            .map(|s| (s * 1e9).round() as i64)
            .ok_or_else(|| format!("time {n} is not Unix seconds")),
        serde_json::Value::String(s) => parse_time_text(s, ctx),
        other => Err(format!("time {other} is neither text nor a number")),
    }
}

fn parse_time_text(text: &str, ctx: &TimeContext) -> Result<i64, String> {
    let t = text.trim();
    if let Some(relative) = t.strip_prefix('@') {
        let seconds = relative.strip_suffix('s').unwrap_or(relative);
        return unix_seconds_text(seconds)
            .and_then(|ns| ctx.relative_base_ns.checked_add(ns))
            .ok_or_else(|| format!("relative time {t:?} is not `@<seconds>s`"));
    }
    if let Some(ns) = unix_seconds_text(t) {
        return Ok(ns);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return time
            .timestamp_nanos_opt()
            .ok_or_else(|| format!("time {t:?} is out of range"));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(time) = DateTime::parse_from_str(t, format) {
            return time
                .timestamp_nanos_opt()
                .ok_or_else(|| format!("time {t:?} is out of range"));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return ctx.zone.to_utc_ns(&naive).ok_or_else(|| {
                format!("time {t:?} does not exist in the zone or is out of range")
            });
        }
    }
    Err(format!(
        "time {t:?} is none of: local `2024-05-01 12:00:00`, ISO, Unix seconds, `@<seconds>s`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc() -> TimeContext {
        TimeContext {
            zone: Zone::Fixed(Utc.fix()),
            relative_base_ns: 1_000_000_000_000_000_000,
        }
    }

    #[test]
    fn every_rtl433_form() {
        let noon = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z
        let ctx = utc();
        assert_eq!(parse_time(&json!("2024-05-01 12:00:00"), &ctx), Ok(noon));
        assert_eq!(parse_time(&json!("2024-05-01T12:00:00"), &ctx), Ok(noon));
        assert_eq!(
            parse_time(&json!("2024-05-01T14:00:00+02:00"), &ctx),
            Ok(noon)
        );
        assert_eq!(
            parse_time(&json!("2024-05-01T14:00:00+0200"), &ctx),
            Ok(noon)
        );
        assert_eq!(
            parse_time(&json!("2024-05-01T12:00:00.250000"), &ctx),
            Ok(noon + 250_000_000)
        );
        assert_eq!(parse_time(&json!("1714564800"), &ctx), Ok(noon));
        assert_eq!(
            parse_time(&json!("1714564800.123456"), &ctx),
            Ok(noon + 123_456_000)
        );
        assert_eq!(parse_time(&json!(1714564800), &ctx), Ok(noon));
        assert_eq!(
            parse_time(&json!("@0.070726s"), &ctx),
            Ok(ctx.relative_base_ns + 70_726_000)
        );
        let plus7 = TimeContext {
            zone: Zone::parse("+07:00").unwrap_or(Zone::Local),
            ..ctx
        };
        assert_eq!(parse_time(&json!("2024-05-01 19:00:00"), &plus7), Ok(noon));
        assert!(parse_time(&json!("yesterday"), &ctx).is_err());
        assert!(parse_time(&json!(true), &ctx).is_err());
    }

    #[test]
    fn canonical_form_and_offsets() {
        // 2019-02-09T08:00:06.032Z
        let ns = 1_549_699_206_032_000_000;
        assert_eq!(canonical_utc(ns), "2019-02-09 08:00:06.0320");
        let offset = parse_offset("+0700").unwrap_or(Utc.fix());
        assert_eq!(offset_string(offset), "+07:00");
        assert_eq!(
            parse_offset("-03:30").map(offset_string).as_deref(),
            Some("-03:30")
        );
        assert!(parse_offset("0700").is_none());
    }
}
