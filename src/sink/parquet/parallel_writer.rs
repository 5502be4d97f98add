//! A Parquet file whose row groups encode their columns in parallel, then
//! append the finished column chunks in schema order. The raw archive's row
//! groups hold megabytes of samples per column, and one thread compressing
//! them all was the archive's bottleneck.
//!
//! Each column task also computes its own Arrow leaf levels, a slice of
//! rows at a time: the levels hold a `usize` index per row, and slices keep
//! those small enough to be reused from the thread's heap instead of fresh
//! pages for every batch (page faults were a tenth of the archive's time).
//!
//! The columns run on a pool of their own: a batch run's file readers hold
//! rayon's global pool for the whole run (blocked on the pipeline), so
//! column jobs queued there would wait behind them.

use std::fs::File;
use std::sync::OnceLock;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// The encoding threads, one per CPU, shared by every parallel file; None
/// when they could not be started (columns then go to rayon's global pool).
fn encode_pool() -> Option<&'static ThreadPool> {
    static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        ThreadPoolBuilder::new()
            .thread_name(|n| format!("parquet-encode-{n}"))
            .build()
            .inspect_err(|error| {
                tracing::warn!(%error, "no Parquet encoding threads; using rayon's global pool")
            })
            .ok()
    })
    .as_ref()
}

/// Runs `work` (which uses rayon) on the encoding threads.
fn on_encode_pool<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    match encode_pool() {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Rows whose leaf levels one column task computes at a time, in units of
/// the writer's mini-batch so the column writers see the mini-batches (and
/// cut the pages) [`ArrowWriter`] would.
const LEAF_BATCHES: usize = 8;

/// Writes record batches as [`ArrowWriter`] does (same schema, metadata,
/// row-group and page cuts: the same bytes), one column per rayon task.
/// Flat schemas only (one Parquet leaf per field).
pub struct ParallelArrowWriter {
    file: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// Column writers of the row group being filled (None between row groups).
    columns: Option<Vec<ArrowColumnWriter>>,
    buffered_rows: usize,
    max_rows: usize,
    /// Rows per leaf-level slice.
    leaf_rows: usize,
}

impl ParallelArrowWriter {
    pub fn try_new(file: File, schema: SchemaRef, properties: WriterProperties) -> Result<Self> {
        let max_rows = properties
            .max_row_group_row_count()
            .unwrap_or(usize::MAX)
            .max(1);
        // ArrowWriter converts the schema and embeds it in the footer; its
        // low-level halves then take the row groups.
        let leaf_rows = properties.write_batch_size().max(1) * LEAF_BATCHES;
        let (file, factory) = ArrowWriter::try_new(file, schema.clone(), Some(properties))?
            .into_serialized_writer()?;
        let leaves = file.schema_descr().num_columns();
        if leaves != schema.fields().len() {
            return Err(ParquetError::General(format!(
                "the parallel writer takes flat schemas: {} fields make {leaves} Parquet columns",
                schema.fields().len()
            )));
        }
        Ok(ParallelArrowWriter {
            file,
            factory,
            schema,
            columns: None,
            buffered_rows: 0,
            max_rows,
            leaf_rows,
        })
    }

    /// Encodes `batch`, ending a row group whenever it reaches the
    /// properties' row count.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ParquetError::General(format!(
                "record batch schema {:?} does not match the file's {:?}",
                batch.schema(),
                self.schema
            )));
        }
        let mut start = 0;
        while start < batch.num_rows() {
            let len = (self.max_rows - self.buffered_rows).min(batch.num_rows() - start);
            self.write_rows(&batch.slice(start, len))?;
            start += len;
            if self.buffered_rows >= self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn write_rows(&mut self, rows: &RecordBatch) -> Result<()> {
        let columns = match &mut self.columns {
            Some(columns) => columns,
            None => self.columns.insert(
                self.factory
                    .create_column_writers(self.file.flushed_row_groups().len())?,
            ),
        };
        let fields = self.schema.fields();
        let (leaf_rows, total) = (self.leaf_rows, rows.num_rows());
        on_encode_pool(|| {
            columns
                .par_iter_mut()
                .zip(fields.par_iter().zip(rows.columns()))
                .try_for_each(|(writer, (field, column))| {
                    let mut start = 0;
                    while start < total {
                        let len = leaf_rows.min(total - start);
                        for leaf in compute_leaves(field, &column.slice(start, len))? {
                            writer.write(&leaf)?;
                        }
                        start += len;
                    }
                    Ok::<(), ParquetError>(())
                })
        })?;
        self.buffered_rows += total;
        Ok(())
    }

    /// Ends the row group being filled (if any): closes its columns in
    /// parallel and appends them to the file in schema order.
    pub fn flush(&mut self) -> Result<()> {
        let Some(columns) = self.columns.take() else {
            return Ok(());
        };
        self.buffered_rows = 0;
        let chunks: Vec<ArrowColumnChunk> = on_encode_pool(|| {
            columns
                .into_par_iter()
                .map(ArrowColumnWriter::close)
                .collect::<Result<_>>()
        })?;
        let mut group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        Ok(())
    }

    /// Ends the last row group and writes the footer.
    pub fn finish(&mut self) -> Result<()> {
        self.flush()?;
        self.file.finish()?;
        Ok(())
    }

    /// Bytes in the file so far (row groups not yet flushed excluded).
    pub fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// Anticipated encoded size of the row group being filled.
    pub fn in_progress_size(&self) -> usize {
        self.columns.as_ref().map_or(0, |columns| {
            columns
                .iter()
                .map(ArrowColumnWriter::get_estimated_total_bytes)
                .sum()
        })
    }

    pub fn flushed_row_groups(&self) -> &[RowGroupMetaData] {
        self.file.flushed_row_groups()
    }

    /// The file, e.g. to sync it after [`Self::finish`].
    pub fn inner_mut(&mut self) -> &mut File {
        self.file.inner_mut()
    }
}
