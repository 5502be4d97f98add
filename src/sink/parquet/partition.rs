//! Hive-style partition paths: `<out>/<table>/device=<name>/date=<YYYY-MM-DD>/part-<seq>.parquet`
//! (`<out>/<table>/date=<YYYY-MM-DD>/…` for files shared by devices; the
//! partition values from [`crate::model::partition`]), and the next
//! free file number of a partition, so a restarted writer continues the
//! sequence instead of overwriting files.

use std::path::{Path, PathBuf};

use super::error::{ParquetSinkError, Result};
use crate::model::partition::{date_string, encode_partition_value};

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
