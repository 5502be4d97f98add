//! The partition values of a dataset: the UTC day of a row and a device
//! name as `date=` and `device=` folder names. The Parquet output writes
//! them and the report reads them back, so both take them from here.

pub const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;
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
}
