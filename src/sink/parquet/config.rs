//! What the Parquet sink writes and how it cuts files: the user-facing
//! settings (a pipeline file's `[sink.parquet]` section) and the facts about
//! the run that go into every file's metadata.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{ParquetSinkError, Result};

/// Which tables to write. Windows, aggregates and events are cheap; the
/// harmonics table and the raw waveform archive are opt-in because of size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TableSelection {
    /// The `windows` table and, for latch-mode (`p,q`, `v,i_RMS`) streams,
    /// the `latch` table.
    pub windows: bool,
    /// Windows of latch-mode streams (`p,q`, `v,i_RMS`).
    pub latch: bool,
    pub aggregates: bool,
    pub harmonics: bool,
    pub raw: bool,
    pub events: bool,
    /// Dips, swells, interruptions and RVCs (with `[dsp.pq]`).
    pub pq_events: bool,
    /// Every `Urms(1/2)` value; needs `[dsp.pq] keep_half_cycle = true`.
    pub half_cycle: bool,
    /// Every 10-ms flicker `Pinst` slot; needs `[dsp.pq.flicker] keep_pinst = true`.
    pub pinst: bool,
    /// Telemetry readings (rtl_433, MPPT, AirLink) in long format.
    pub readings: bool,
    /// The MPPT `tel_mppt` dataset.
    pub tel_mppt: bool,
}

impl Default for TableSelection {
    fn default() -> Self {
        TableSelection {
            windows: true,
            latch: true,
            aggregates: true,
            harmonics: false,
            raw: false,
            events: true,
            pq_events: true,
            half_cycle: false,
            pinst: false,
            readings: true,
            tel_mppt: true,
        }
    }
}

/// How the metric tables' files are cut among devices.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FileLayout {
    // `<table>/device=<name>/date=<YYYY-MM-DD>/part-<seq>.parquet`: a
    // device's rows in files of their own.
    #[default]
    DeviceFolders,
    // `<table>/date=<YYYY-MM-DD>/part-<seq>.parquet`: one file per span
    // holds every device's rows, grouped by device inside each row group
    // (the `device` column says whose). Many meters then share a few big
    // row groups instead of each keeping files and row groups of its own.
    SharedFiles,
}

/// Settings of a Parquet dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetConfig {
    /// Root folder: `<out>/<table>/device=<name>/date=<YYYY-MM-DD>/part-<seq>.parquet`
    /// (without `device=<name>/` for files shared by devices, see `layout`).
    pub out: PathBuf,
    pub tables: TableSelection,
    /// `device_folders`: each device's rows in files of its own;
    /// `shared_files`: one file per table and span holds every device's
    /// rows, grouped by device in each row group (the metric tables; the
    /// raw archive always has files per device).
    pub layout: FileLayout,
    /// A file covers at most this much data time, aligned to the clock
    /// (3600 = one file per device per hour), s.
    pub max_file_span_s: u64,
    /// A file is closed once its encoded size reaches this, bytes.
    pub max_file_bytes: u64,
    /// Rows per row group for the metric tables (readers prefer ~10^4..10^6).
    /// Rows wait in memory until they make one: each device's apart in
    /// device folders (a sink with many devices wants fewer there, e.g.
    /// 512), every device's together in shared files (e.g. 16384).
    pub row_group_rows: usize,
    /// Rows (samples) per row group in the raw waveform archive.
    pub raw_row_group_rows: usize,
    /// Rows a table takes between checks for files of quiet devices to finish.
    pub batch_rows: usize,
    /// ZSTD level of every column (1 = fast, up to 22) but the raw archive's samples.
    pub zstd_level: i32,
    /// ZSTD level of the raw archive's sample columns: noise in their low
    /// bytes leaves little for higher levels to find (3 saves 0.5 % of the
    /// archive at ~25 % more encoding time than 1).
    pub raw_zstd_level: i32,
    /// fsync each file before its rename, so a finished file survives power loss.
    pub fsync: bool,
    /// Messages queued to the writer thread before senders block (backpressure).
    pub queue_capacity: usize,
    /// A file is finished this long (data time) after its span ended, so
    /// late rows still find it, s.
    pub late_rows_grace_s: f64,
    /// Several writers of a cluster share one dataset: each has its own
    /// commit journal and temporary files (set by `meterflow writer`).
    #[serde(skip)]
    #[schemars(skip)]
    pub commit_owner: Option<String>,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        ParquetConfig {
            out: PathBuf::from("out"),
            tables: TableSelection::default(),
            layout: FileLayout::default(),
            max_file_span_s: 3600,
            max_file_bytes: 256 * 1024 * 1024,
            row_group_rows: 65_536,
            raw_row_group_rows: 1_048_576,
            batch_rows: 4096,
            zstd_level: 3,
            raw_zstd_level: 1,
            fsync: true,
            queue_capacity: 1024,
            late_rows_grace_s: 60.0,
            commit_owner: None,
        }
    }
}

impl ParquetConfig {
    /// Settings writing into `out`, otherwise the defaults.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        ParquetConfig {
            out: out.into(),
            ..ParquetConfig::default()
        }
    }

    /// Refuses settings the encoder would panic on or that make no files.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(ParquetSinkError::Config(what.to_string()));
        if self.out.as_os_str().is_empty() {
            return bad("sink.parquet.out is empty: name a folder");
        }
        if self.max_file_span_s == 0 {
            return bad("sink.parquet.max_file_span_s must be at least 1");
        }
        if !(self.late_rows_grace_s.is_finite()
            && (0.0..=86_400.0).contains(&self.late_rows_grace_s))
        {
            return bad("sink.parquet.late_rows_grace_s must be between 0 and 86400 s");
        }
        if self.max_file_bytes == 0 {
            return bad("sink.parquet.max_file_bytes must be at least 1");
        }
        if self.row_group_rows == 0 || self.raw_row_group_rows == 0 {
            return bad("sink.parquet.row_group_rows and raw_row_group_rows must be at least 1");
        }
        if self.batch_rows == 0 {
            return bad("sink.parquet.batch_rows must be at least 1");
        }
        if parquet::basic::ZstdLevel::try_new(self.zstd_level).is_err() {
            return bad("sink.parquet.zstd_level must be within 1..=22");
        }
        if parquet::basic::ZstdLevel::try_new(self.raw_zstd_level).is_err() {
            return bad("sink.parquet.raw_zstd_level must be within 1..=22");
        }
        if self.queue_capacity == 0 {
            return bad("sink.parquet.queue_capacity must be at least 1");
        }
        Ok(())
    }

    /// `late_rows_grace_s` in ns (validated).
    pub fn late_rows_grace_ns(&self) -> i64 {
        (self.late_rows_grace_s.clamp(0.0, 86_400.0) * 1e9) as i64
    }

    /// `max_file_span_s` in ns, saturating.
    pub fn max_file_span_ns(&self) -> i64 {
        i64::try_from(self.max_file_span_s)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000)
            .max(1)
    }
}

/// Facts about the run recorded in every file's key-value metadata, so a
/// file found alone still says where its numbers came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Where the samples came from, e.g. `stream-server :54322` or a capture path.
    pub source: String,
    /// Name of the pipeline that wrote the dataset.
    pub pipeline: String,
    /// H of the THD values (IEC 61000-4-7 default 40).
    pub thd_max_order: u32,
    /// Nominal grid frequency of the windows, Hz; `None`: inferred per
    /// meter (its `events` row of kind `nominal` says which).
    pub nominal_frequency_hz: Option<f64>,
}

impl Default for DatasetInfo {
    fn default() -> Self {
        DatasetInfo {
            source: String::new(),
            pipeline: String::new(),
            thd_max_order: 40,
            nominal_frequency_hz: Some(50.0),
        }
    }
}
