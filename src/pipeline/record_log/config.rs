//! Where the record log lives and how much it may hold.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Longest flush interval accepted: the log's promise is that kill -9 loses
/// at most one interval of results, so minutes would break it.
const MAX_FLUSH_INTERVAL_S: f64 = 10.0;
/// Shortest flush interval accepted; below it fsync would run back to back.
const MIN_FLUSH_INTERVAL_S: f64 = 0.001;
/// Bounds that catch typos (a missing unit) rather than real limits.
const MIN_SEGMENT_BYTES: u64 = 1024;
const MAX_SEGMENT_BYTES: u64 = 1 << 40;
const MIN_BUFFER_BYTES: u64 = 4096;

/// `[record_log]`: the local write-ahead log between the engine and the outputs.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RecordLogConfig {
    /// Folder of the segments, acks and snapshot (created when missing); empty: `<service.state_dir>/record-log`.
    pub dir: PathBuf,
    /// Seconds between fsyncs: what kill -9 may lose at most.
    pub flush_interval_s: f64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Cap on all segments on disk plus the unflushed buffer.
    pub max_bytes: u64,
    /// Cap on appended but not yet durable bytes (what a failing disk may hold back).
    pub max_buffer_bytes: u64,
    /// How new segments store entries: `zstd` compresses each flush's
    /// entries together (records repeat their field names and most of
    /// their values), `none` writes them as they are.
    pub compression: LogCompression,
}

/// How a segment stores its entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogCompression {
    #[default]
    Zstd,
    None,
}

impl Default for RecordLogConfig {
    fn default() -> Self {
        RecordLogConfig {
            dir: PathBuf::new(),
            flush_interval_s: 0.5,
            segment_bytes: 64 << 20,
            max_bytes: 4 << 30,
            max_buffer_bytes: 64 << 20,
            compression: LogCompression::Zstd,
        }
    }
}

impl RecordLogConfig {
    /// Defaults with another folder (tests, tools).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        RecordLogConfig {
            dir: dir.into(),
            ..RecordLogConfig::default()
        }
    }

    /// Checks ranges, so a bad file fails at load with the key's name
    /// instead of a panic later (`Duration::from_secs_f64` on 1e20).
    pub fn validate(&self) -> anyhow::Result<()> {
        let interval = self.flush_interval_s;
        if !(interval.is_finite()
            && (MIN_FLUSH_INTERVAL_S..=MAX_FLUSH_INTERVAL_S).contains(&interval))
        {
            anyhow::bail!(
                "record_log.flush_interval_s must be between {MIN_FLUSH_INTERVAL_S} and \
                 {MAX_FLUSH_INTERVAL_S} s, got {}",
                crate::model::number::compact_number(interval)
            );
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            anyhow::bail!(
                "record_log.segment_bytes must be between {MIN_SEGMENT_BYTES} and \
                 {MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            );
        }
        if self.max_buffer_bytes < MIN_BUFFER_BYTES {
            anyhow::bail!(
                "record_log.max_buffer_bytes must be at least {MIN_BUFFER_BYTES}, got {}",
                self.max_buffer_bytes
            );
        }
        if self.max_bytes < self.segment_bytes || self.max_bytes < self.max_buffer_bytes {
            anyhow::bail!(
                "record_log.max_bytes ({}) must be at least segment_bytes ({}) and \
                 max_buffer_bytes ({})",
                self.max_bytes,
                self.segment_bytes,
                self.max_buffer_bytes
            );
        }
        Ok(())
    }

    /// The flush interval; `validate` has checked it, a bad value gives the default.
    pub fn flush_interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.flush_interval_s).unwrap_or(Duration::from_millis(500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_flush_within_a_second() {
        let config = RecordLogConfig::in_dir("state/record-log");
        config.validate().unwrap();
        assert!(config.flush_interval() <= Duration::from_secs(1));
        assert_eq!(config.flush_interval(), Duration::from_millis(500));
    }

    #[test]
    fn toml_keys_parse_and_unknown_keys_are_refused() {
        let config: RecordLogConfig = toml::from_str(
            "dir = \"/var/lib/mf\"\nflush_interval_s = 0.25\nsegment_bytes = 1048576\n",
        )
        .unwrap();
        assert_eq!(config.dir, PathBuf::from("/var/lib/mf"));
        assert_eq!(config.flush_interval(), Duration::from_millis(250));
        assert_eq!(config.segment_bytes, 1 << 20);
        assert_eq!(config.max_bytes, 4 << 30);
        assert!(toml::from_str::<RecordLogConfig>("flush_interval = 1.0").is_err());
    }

    #[test]
    fn absurd_values_are_rejected_with_the_key_name() {
        for interval in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e20, 11.0] {
            let config = RecordLogConfig {
                flush_interval_s: interval,
                ..RecordLogConfig::default()
            };
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("flush_interval_s"), "{interval}: {error}");
        }
        let zero_segment = RecordLogConfig {
            segment_bytes: 0,
            ..RecordLogConfig::default()
        };
        assert!(zero_segment.validate().is_err());
        let small_cap = RecordLogConfig {
            max_bytes: 1 << 20,
            ..RecordLogConfig::default()
        };
        assert!(small_cap.validate().is_err());
        let tiny_buffer = RecordLogConfig {
            max_buffer_bytes: 0,
            ..RecordLogConfig::default()
        };
        assert!(tiny_buffer.validate().is_err());
    }
}
