//! Parquet datasets: the `windows`, `latch`, `aggregates`, `harmonics`,
//! `raw`, `events`, `pq_events`, `half_cycle` and `pinst` tables of meters and the `readings` table of other
//! telemetry, Hive-partitioned as
//! `<out>/<table>/device=<name>/date=<YYYY-MM-DD>/part-<seq>.parquet` (or,
//! with `layout = "shared_files"`, `<out>/<table>/date=<YYYY-MM-DD>/` with
//! every device's rows of a span in one file), so pyarrow, DuckDB and
//! polars read the folder as one dataset; and the
//! MPPT `tel_mppt` dataset under `<out>/tel_mppt/date=<YYYY-MM-DD>/`.
//!
//! Rows go through a [`DatasetWriter`] (the [`ParquetOutput`] runs one on
//! its output thread). Files appear only when finished (temp name, then rename), rotate by data
//! time and size, and carry the schema version, meterflow version, source,
//! pipeline and, for THD, H and the grouping in their metadata.

pub mod aggregates;
pub mod commit;
pub mod config;
pub mod dataset;
pub mod durable;
pub mod error;
pub mod events;
pub mod half_cycle;
pub mod harmonics;
mod held_rows;
pub mod latch;
pub mod output;
pub mod parallel_writer;
pub mod partition;
pub mod pinst;
pub mod pq_events;
pub mod raw;
pub mod readings;
pub mod schema;
pub mod tel_mppt;
pub mod telemetry;
pub mod telemetry_output;
pub mod windows;
pub mod writer;

pub use config::{DatasetInfo, FileLayout, ParquetConfig, TableSelection};
pub use dataset::{DatasetSummary, DatasetWriter};
pub use error::ParquetSinkError;
pub use harmonics::HarmonicRow;
pub use output::ParquetOutput;
pub use schema::{is_portable_type, SCHEMA_VERSION};
pub use telemetry::TelemetryDataset;
