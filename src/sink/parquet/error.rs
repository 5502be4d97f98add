//! Why a Parquet dataset could not be written; every variant names the file
//! or folder involved, so an operator can act on the message alone.

use std::path::PathBuf;

/// Errors of the Parquet sink.
#[derive(Debug, thiserror::Error)]
pub enum ParquetSinkError {
    /// A file-system operation failed (create a folder, open, rename, list...).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet encoder refused a batch or could not finish a file.
    #[error("cannot write Parquet file {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A record batch could not be built from rows (a bug, not bad input).
    #[error("cannot build a record batch for table {table}: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The configuration cannot work (e.g. a zero row-group size).
    #[error("invalid Parquet sink configuration: {0}")]
    Config(String),
}

impl ParquetSinkError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ParquetSinkError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = ParquetSinkError> = std::result::Result<T, E>;
