//! Why a report could not be made; every variant names the file or folder
//! involved, so the message alone says what to fix.

use std::path::PathBuf;

/// Errors of `meterflow report`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file-system operation failed (list a folder, open, write...).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file of the dataset could not be read.
    #[error("cannot read Parquet file {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A column could not be decoded as the report needs it.
    #[error("cannot read column {column} of {}: {source}", path.display())]
    Arrow {
        path: PathBuf,
        column: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The dataset path names nothing.
    #[error("{} does not exist (name a Parquet root such as out/parquet, or the run folder holding it)", path.display())]
    Missing { path: PathBuf },
    /// The dataset path is a file, not a folder.
    #[error("{} is a file; a dataset is a folder (a Parquet root such as out/parquet, or the run folder holding it)", path.display())]
    NotAFolder { path: PathBuf },
    /// The folder holds no table the report can plot.
    #[error("{} holds no meterflow dataset (no windows, latch or aggregates table)", path.display())]
    NotADataset { path: PathBuf },
    /// `--device` named devices the dataset does not have.
    #[error("no device {names} in {} (it has: {available})", path.display())]
    UnknownDevice {
        names: String,
        path: PathBuf,
        available: String,
    },
    /// Bad options (an empty time range, an unknown time zone...).
    #[error("{0}")]
    Options(String),
    /// plotters could not draw a chart (a bug, not bad input).
    #[error("cannot draw chart {chart}: {message}")]
    Chart { chart: String, message: String },
    /// An SVG chart could not be turned into a PNG.
    #[error("cannot render chart {chart} as PNG: {message}")]
    Png { chart: String, message: String },
}

impl ReportError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ReportError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;
