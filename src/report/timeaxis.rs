//! Time on the charts: the zone labels are shown in, tick positions on
//! round local times, and `--from`/`--to` read in that zone.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::error::{ReportError, Result};

const NS: i64 = 1_000_000_000;

const MS: i64 = 1_000_000;

/// Tick steps tried, ms: the first giving at most `max_ticks` ticks wins.
const STEPS_MS: [i64; 27] = [
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
    2_592_000_000,
];

/// A time zone by IANA name (`UTC`, `Europe/Vienna`).
pub fn parse_zone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        ReportError::Options(format!(
            "unknown time zone {name:?} (use an IANA name such as UTC or Europe/Vienna)"
        ))
    })
}

/// `--from`/`--to`: RFC 3339 (`2026-12-01T08:00:00Z`), Unix seconds, or a
/// local `YYYY-MM-DD[ HH:MM[:SS]]` in `zone`; ns since the epoch.
pub fn parse_time(text: &str, zone: Tz) -> Result<i64> {
    let text = text.trim();
    let bad = || {
        ReportError::Options(format!(
            "time {text:?} is neither RFC 3339, Unix seconds, nor YYYY-MM-DD[ HH:MM[:SS]]"
        ))
    };
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds.abs() < 1e11 {
            return Ok((seconds * 1e9).round() as i64);
        }
    }
    let utc = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.with_timezone(&Utc)
    } else {
        let naive = [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(bad)?;
        zone.from_local_datetime(&naive)
            .earliest()
            .ok_or_else(bad)?
            .with_timezone(&Utc)
    };
    utc.timestamp_nanos_opt().ok_or_else(bad)
}

/// A point in time in `zone`, or `None` beyond chrono's range.
fn local(t_ns: i64, zone: Tz) -> Option<DateTime<Tz>> {
    Some(DateTime::from_timestamp_nanos(t_ns).with_timezone(&zone))
}

/// `t_ns` formatted in `zone` with a chrono format string.
pub fn format_time(t_ns: i64, zone: Tz, format: &str) -> String {
    local(t_ns, zone).map_or_else(String::new, |t| t.format(format).to_string())
}

/// Ticks of a time axis: positions (ns) and how their labels are written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    pub at_ns: Vec<i64>,
    pub step_ms: i64,
    pub format: &'static str,
}

/// At most `max_ticks` ticks on round local times within `[from, to]`.
pub fn ticks(from: i64, to: i64, zone: Tz, max_ticks: usize) -> Ticks {
    let span_ms = ((to - from) / MS).max(1);
    let max_ticks = max_ticks.max(2) as i64;
    let step_ms = STEPS_MS
        .iter()
        .copied()
        .find(|s| span_ms / s < max_ticks)
        .unwrap_or(STEPS_MS[STEPS_MS.len() - 1]);
    // The zone's offset at the start aligns ticks to local round times.
    let offset_ns = local(from, zone).map_or(0, |t| {
        i64::from(chrono::Offset::fix(t.offset()).local_minus_utc()) * NS
    });
    let step_ns = step_ms * MS;
    let first = ((from + offset_ns).div_euclid(step_ns) + 1) * step_ns - offset_ns;
    let first = if first - step_ns >= from {
        first - step_ns
    } else {
        first
    };
    let mut at_ns = Vec::new();
    let mut t = first;
    while t <= to && at_ns.len() < 64 {
        at_ns.push(t);
        t += step_ns;
    }
    let format = match step_ms {
        s if s < 1_000 => "%H:%M:%S%.3f",
        s if s < 60_000 => "%H:%M:%S",
        s if s < 86_400_000 => "%H:%M",
        _ => "%m-%d",
    };
    Ticks {
        at_ns,
        step_ms,
        format,
    }
}

/// The x-axis description: zone and the start date, e.g. `Europe/Vienna, from 2026-12-01 08:00`.
pub fn axis_description(from: i64, zone: Tz) -> String {
    format!(
        "time ({}), from {}",
        zone.name(),
        format_time(from, zone, "%Y-%m-%d %H:%M:%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_parse_in_their_zone() {
        let vienna = parse_zone("Europe/Vienna").unwrap();
        // 2026-12-01 08:00 in Vienna (CET, UTC+1) is 07:00Z.
        let t = parse_time("2026-12-01 08:00", vienna).unwrap();
        assert_eq!(
            t,
            parse_time("2026-12-01T07:00:00Z", chrono_tz::UTC).unwrap()
        );
        assert_eq!(
            parse_time("1700000000", vienna).unwrap(),
            1_700_000_000 * NS
        );
        assert!(parse_time("yesterday", vienna).is_err());
        assert!(parse_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn ticks_sit_on_round_local_times() {
        let vienna = parse_zone("Europe/Vienna").unwrap();
        let from = parse_time("2026-12-01T06:10:00Z", chrono_tz::UTC).unwrap();
        let to = from + 86_400 * NS;
        let ticks = ticks(from, to, vienna, 10);
        assert_eq!(ticks.step_ms, 10_800_000);
        // First tick at 09:00 Vienna (08:00Z), every 3 h after.
        assert_eq!(format_time(ticks.at_ns[0], vienna, "%H:%M"), "09:00");
        assert!(ticks.at_ns.windows(2).all(|w| w[1] - w[0] == 10_800 * NS));
        assert!(ticks.at_ns.iter().all(|&t| t >= from && t <= to));
        assert_eq!(ticks.at_ns.len(), 8);
    }
}
