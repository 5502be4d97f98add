//! Hive-style partition paths: `<out>/<table>/device=<name>/date=<YYYY-MM-DD>/part-<seq>.parquet`,
//! the UTC date of a row, and the next free file number of a partition, so
//! a restarted writer continues the sequence instead of overwriting files.

use std::path::{Path, PathBuf};

use super::error::{ParquetSinkError, Result};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;
/// Hive's name for a partition whose value is empty or null.
const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Days since 1970-01-01 (UTC) of a timestamp in ns; negative before 1970.
pub fn utc_day(unix_ns: i64) -> i64 {
    unix_ns.div_euclid(NS_PER_DAY)
}

/// `YYYY-MM-DD` of a day number from [`utc_day`].
pub fn date_string(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        // Beyond chrono's range (±262 000 years): still a unique, valid folder name.
        .unwrap_or_else(|| format!("day{day}"))
}

/// A device name as a partition value: percent-encodes everything but
/// `[A-Za-z0-9_-]` and inner dots, so no name can escape its folder
/// (`/`, `..`), hide it (leading `.`) or confuse the `key=value` syntax.
/// pyarrow, DuckDB and Spark decode the same URI escapes.
pub fn encode_partition_value(value: &str) -> String {
    if value.is_empty() {
        return HIVE_DEFAULT_PARTITION.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for (i, byte) in value.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-';
        if plain || (byte == b'.' && i > 0) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The folder of one table, device and UTC day.
pub fn partition_dir(out: &Path, table: &str, device: &str, day: i64) -> PathBuf {
    date_dir(
        &out.join(table)
            .join(format!("device={}", encode_partition_value(device))),
        day,
    )
}

/// The `date=<YYYY-MM-DD>` folder of a UTC day under `parent`.
pub fn date_dir(parent: &Path, day: i64) -> PathBuf {
    parent.join(format!("date={}", date_string(day)))
}

/// Name of finished file number `seq`.
pub fn part_file_name(seq: u64) -> String {
    format!("part-{seq:05}.parquet")
}

/// Name of file number `seq` while it is written: hidden (leading dot) and
/// not ending in `.parquet`, so dataset readers skip it.
pub fn temp_file_name(seq: u64) -> String {
    format!(".part-{seq:05}.parquet.tmp")
}

/// [`temp_file_name`] of one of several writers sharing a dataset.
pub fn owned_temp_file_name(seq: u64, owner: Option<&str>) -> String {
    match owner {
        Some(owner) => format!(".part-{seq:05}.{owner}.parquet.tmp"),
        None => temp_file_name(seq),
    }
}

/// Whether `file_name` is a temporary part file of `owner` (`None`: of a
/// dataset with one writer).
pub fn is_temp_of(file_name: &str, owner: Option<&str>) -> bool {
    let Some(middle) = file_name
        .strip_prefix(".part-")
        .and_then(|rest| rest.strip_suffix(".parquet.tmp"))
    else {
        return false;
    };
    let (digits, tag) = match middle.split_once('.') {
        Some((digits, tag)) => (digits, Some(tag)),
        None => (middle, None),
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && tag == owner
}

/// The number of a finished or in-progress part file, from its name.
pub fn parse_seq(file_name: &str) -> Option<u64> {
    let digits = file_name
        .strip_prefix("part-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .or_else(|| {
            file_name
                .strip_prefix(".part-")
                .and_then(|rest| rest.strip_suffix(".parquet.tmp"))
                .map(|middle| middle.split_once('.').map_or(middle, |(digits, _)| digits))
        })?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// First number after every part file (finished or left over as a temp
/// file by a crash) in `dir`; 0 for a missing or empty folder.
pub fn next_seq(dir: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ParquetSinkError::io("list folder", dir, e)),
    };
    let mut next = 0;
    for entry in entries {
        let entry = entry.map_err(|e| ParquetSinkError::io("list folder", dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_seq) {
            next = next.max(seq.saturating_add(1));
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        // 2023-11-14T22:13:20Z
        let t = 1_700_000_000_000_000_000;
        assert_eq!(date_string(utc_day(t)), "2023-11-14");
        assert_eq!(date_string(utc_day(-1)), "1969-12-31");
        assert_eq!(date_string(0), "1970-01-01");
    }

    #[test]
    fn names_cannot_escape_their_folder() {
        assert_eq!(encode_partition_value("meter-01_a"), "meter-01_a");
        assert_eq!(encode_partition_value("a/b"), "a%2Fb");
        assert_eq!(encode_partition_value(".."), "%2E.");
        assert_eq!(encode_partition_value("x=y z"), "x%3Dy%20z");
        assert_eq!(encode_partition_value(""), HIVE_DEFAULT_PARTITION);
        assert_eq!(encode_partition_value("zähler"), "z%C3%A4hler");
    }

    #[test]
    fn seq_numbers_parse_from_both_forms() {
        assert_eq!(parse_seq(&part_file_name(7)), Some(7));
        assert_eq!(parse_seq(&temp_file_name(123_456)), Some(123_456));
        let owned = owned_temp_file_name(7, Some("writer1"));
        assert_eq!(parse_seq(&owned), Some(7));
        assert!(is_temp_of(&owned, Some("writer1")));
        assert!(!is_temp_of(&owned, Some("writer2")));
        assert!(!is_temp_of(&owned, None));
        assert!(is_temp_of(&temp_file_name(7), None));
        assert!(!is_temp_of("part-00007.parquet", None));
        assert_eq!(parse_seq("part-.parquet"), None);
        assert_eq!(parse_seq("part-1.csv"), None);
        assert_eq!(parse_seq("part-x1.parquet"), None);
    }
}
