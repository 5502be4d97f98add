//! Parquet datasets: the `windows`, `latch`, `aggregates`, `harmonics`,
//! `raw` and `events` tables, Hive-partitioned as
//! `<out>/<table>/device=<name>/date=<YYYY-MM-DD>/part-<seq>.parquet`, so
//! pyarrow, DuckDB and polars read the folder as one dataset.
//!
//! Rows go through a [`ParquetSink`] (writer thread behind a bounded
//! channel) or a [`DatasetWriter`] (same thing, on the caller's thread).
//! Files appear only when finished (temp name, then rename), rotate by data
//! time and size, and carry the schema version, meterflow version, source,
//! pipeline and, for THD, H and the grouping in their metadata.

pub mod aggregates;
pub mod config;
pub mod dataset;
pub mod error;
pub mod events;
pub mod harmonics;
pub mod latch;
pub mod partition;
pub mod raw;
pub mod schema;
pub mod sink;
pub mod windows;
pub mod writer;

use std::sync::Arc;

use crate::wire::Measures;

pub use aggregates::{AggregateRow, IntervalKind};
pub use config::{DatasetInfo, ParquetConfig, TableSelection};
pub use dataset::{DatasetSummary, DatasetWriter};
pub use error::ParquetSinkError;
pub use events::{EventKind, EventRow};
pub use harmonics::HarmonicRow;
pub use latch::LatchRow;
pub use schema::{is_portable_type, SCHEMA_VERSION};
pub use sink::ParquetSink;
pub use windows::WindowRow;

/// Who a row belongs to: the name (also the `device=` partition), the
/// pipeline's numeric id, and the layout (which phases exist).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceInfo {
    pub name: Arc<str>,
    pub id: u64,
    pub measures: Measures,
}

impl DeviceInfo {
    pub fn new(name: impl Into<Arc<str>>, id: u64, measures: Measures) -> Self {
        DeviceInfo {
            name: name.into(),
            id,
            measures,
        }
    }
}
