//! A Parquet file whose row groups encode their columns in parallel, then
//! append the finished column chunks in schema order. The raw archive's row
//! groups hold megabytes of samples per column, and one thread compressing
//! them all was the archive's bottleneck.
//!
//! Flat primitive columns (samples, times, indices, ids) go to Parquet's
//! typed column writers straight from the Arrow arrays' value slices: the
//! Arrow path builds an index per row and gathers every value through it
//! (a tenth of the archive's encoding time). Other columns (the strings)
//! take the Arrow path, their leaf levels computed a slice of rows at a
//! time so those index vectors stay small enough to be reused from the
//! thread's heap instead of fresh pages for every batch.
//!
//! A column that holds one value on every row of a row group (the raw
//! archive's device, ids, rate and stream start) is encoded once per value
//! and row count, and its chunk reused for the next row groups: those
//! columns, more bytes per row before compression than the samples, were
//! a large share of the archive's encoding time for almost no output.
//!
//! The columns run on a pool of their own: a batch run's file readers hold
//! rayon's global pool for the whole run (blocked on the pipeline), so
//! column jobs queued there would wait behind them.

use std::fs::File;
use std::io::BufWriter;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::{
    get_column_writer, ColumnCloseResult, ColumnWriter, ColumnWriterImpl,
};
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;
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

/// Write buffer of the file: appending a typed chunk copies it through an
/// 8 KiB stack buffer, which without this made one `write` call per 8 KiB.
const FILE_BUFFER_BYTES: usize = 1 << 20;

/// Writes record batches as [`ArrowWriter`] does (same schema, metadata,
/// row-group and page cuts: the same bytes), one column per rayon task; a
/// column of one value in a row group as `ArrowWriter` writes that row
/// group handed over in one batch (its pages cut at other rows).
/// Flat schemas only (one Parquet leaf per field).
pub struct ParallelArrowWriter {
    file: SerializedFileWriter<BufWriter<File>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// Per field: its Parquet column when it takes the typed path (None:
    /// the Arrow path).
    typed: Vec<Option<ColumnDescPtr>>,
    /// Per field: its Parquet column when a chunk of one repeated value may
    /// be reused (see [`ConstantRun`]).
    constant: Vec<Option<ColumnDescPtr>>,
    /// Per column, the last chunk encoded from one repeated value.
    constant_chunks: Vec<Option<ConstantChunk>>,
    /// Column writers of the row group being filled (None between row groups).
    columns: Option<Vec<ChunkEncoder>>,
    /// Per column, the page buffer of its last appended typed chunk, for the
    /// next row group's:
    /// fresh megabytes per column and row group cost more in page faults
    /// than their encoding.
    spare_buffers: Vec<Vec<u8>>,
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
        // Both are Arrow-writer features the typed path does not reproduce.
        let typed_allowed = properties.content_defined_chunking().is_none()
            && !properties.write_row_group_number_distinct_values();
        let file = BufWriter::with_capacity(FILE_BUFFER_BYTES, file);
        let (file, factory) = ArrowWriter::try_new(file, schema.clone(), Some(properties))?
            .into_serialized_writer()?;
        let descr = file.schema_descr();
        if descr.num_columns() != schema.fields().len() {
            return Err(ParquetError::General(format!(
                "the parallel writer takes flat schemas: {} fields make {} Parquet columns",
                schema.fields().len(),
                descr.num_columns()
            )));
        }
        let typed = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let column = descr.column(i);
                let flat = column.max_def_level() == 0 && column.max_rep_level() == 0;
                (typed_allowed && flat && takes_typed_path(field.data_type())).then_some(column)
            })
            .collect::<Vec<_>>();
        let properties = file.properties();
        let constant = schema
            .fields()
            .iter()
            .zip(&typed)
            .enumerate()
            .map(|(i, (field, typed))| {
                let column = descr.column(i);
                // A column given an encoding is one whose values vary.
                let eligible = typed_allowed
                    && column.max_def_level() == 0
                    && column.max_rep_level() == 0
                    && properties.encoding(column.path()).is_none()
                    && match field.data_type() {
                        DataType::Utf8 => true,
                        DataType::Float32 | DataType::Float64 => false,
                        _ => typed.is_some(),
                    };
                eligible.then_some(column)
            })
            .collect::<Vec<_>>();
        let columns = typed.len();
        Ok(ParallelArrowWriter {
            file,
            factory,
            schema,
            typed,
            constant,
            constant_chunks: (0..columns).map(|_| None).collect(),
            columns: None,
            spare_buffers: vec![Vec::new(); columns],
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

    /// Column writers for the next row group: typed where the field allows.
    fn column_writers(&mut self) -> Result<Vec<ChunkEncoder>> {
        let arrow = self
            .factory
            .create_column_writers(self.file.flushed_row_groups().len())?;
        let properties = self.file.properties();
        Ok(arrow
            .into_iter()
            .zip(self.typed.iter().zip(&mut self.spare_buffers))
            .zip(&self.constant)
            .map(|((writer, (typed, spare)), constant)| {
                let encoder = match typed {
                    Some(column) => {
                        let buffer = std::mem::take(spare);
                        ColumnEncoder::typed(column.clone(), properties.clone(), buffer)
                    }
                    None => ColumnEncoder::Arrow(writer),
                };
                ChunkEncoder {
                    constant: constant.clone().map(ConstantRun::new),
                    encoder,
                }
            })
            .collect())
    }

    fn write_rows(&mut self, rows: &RecordBatch) -> Result<()> {
        if self.columns.is_none() {
            self.columns = Some(self.column_writers()?);
        }
        let Some(columns) = &mut self.columns else {
            return Ok(());
        };
        let fields = self.schema.fields();
        let leaf_rows = self.leaf_rows;
        on_encode_pool(|| {
            columns
                .par_iter_mut()
                .zip(fields.par_iter().zip(rows.columns()))
                .try_for_each(|(writer, (field, column))| writer.write(field, column, leaf_rows))
        })?;
        self.buffered_rows += rows.num_rows();
        Ok(())
    }

    /// Ends the row group being filled (if any): closes its columns in
    /// parallel and appends them to the file in schema order.
    pub fn flush(&mut self) -> Result<()> {
        let Some(columns) = self.columns.take() else {
            return Ok(());
        };
        self.buffered_rows = 0;
        let properties = self.file.properties();
        let leaf_rows = self.leaf_rows;
        let chunks: Vec<ClosedChunk> = on_encode_pool(|| {
            columns
                .into_par_iter()
                .zip(self.constant_chunks.par_iter_mut())
                .map(|(column, cached)| column.close(cached, properties, leaf_rows))
                .collect::<Result<_>>()
        })?;
        let mut group = self.file.next_row_group()?;
        for (chunk, spare) in chunks.into_iter().zip(&mut self.spare_buffers) {
            match chunk {
                ClosedChunk::Arrow(chunk) => chunk.append_to_row_group(&mut group)?,
                ClosedChunk::Typed(bytes, close) => {
                    group.append_column(&bytes, close)?;
                    // Unshared once appended; a shared one is simply dropped.
                    if let Ok(buffer) = bytes.try_into_mut() {
                        *spare = Vec::from(buffer);
                        spare.clear();
                    }
                }
            }
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
            columns.iter().map(ChunkEncoder::estimated_bytes).sum()
        })
    }

    pub fn flushed_row_groups(&self) -> &[RowGroupMetaData] {
        self.file.flushed_row_groups()
    }
}

/// Whether columns of `data_type` take the typed path: each of these maps
/// onto its Parquet physical type value for value, as [`ArrowWriter`] maps
/// it (unsigned 64-bit by reinterpretation).
fn takes_typed_path(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float32
            | DataType::Int32
            | DataType::Float64
            | DataType::Int64
            | DataType::UInt64
            | DataType::Timestamp(_, _)
    )
}

/// One column of the row group being filled: while every value so far is
/// the first one (`constant`), the arrays are only held; the first other
/// value hands them to `encoder`.
struct ChunkEncoder {
    constant: Option<ConstantRun>,
    encoder: ColumnEncoder,
}

impl ChunkEncoder {
    fn write(&mut self, field: &Field, column: &ArrayRef, leaf_rows: usize) -> Result<()> {
        if let Some(run) = &mut self.constant {
            if run.accepts(column) {
                run.push(column);
                return Ok(());
            }
            if let Some(run) = self.constant.take() {
                for held in &run.arrays {
                    self.encoder.write(field, held, leaf_rows)?;
                }
            }
        }
        self.encoder.write(field, column, leaf_rows)
    }

    /// A held constant run adds nothing: it compresses to a few bytes a page.
    fn estimated_bytes(&self) -> usize {
        self.encoder.estimated_bytes()
    }

    /// The finished chunk; a constant run takes `cached` when that holds
    /// its value on as many rows, else it is encoded and replaces `cached`.
    fn close(
        self,
        cached: &mut Option<ConstantChunk>,
        properties: &WriterPropertiesPtr,
        leaf_rows: usize,
    ) -> Result<ClosedChunk> {
        let Some(run) = self.constant else {
            return self.encoder.close();
        };
        let Some(value) = run.arrays.first().map(|a| a.slice(0, 1)) else {
            return self.encoder.close();
        };
        let rows = run.rows();
        if let Some(hit) = cached
            .as_ref()
            .filter(|c| c.rows == rows && all_equal(&c.value, &value))
        {
            return Ok(ClosedChunk::Typed(hit.bytes.clone(), hit.close.clone()));
        }
        let (bytes, close) = encode_repeated(&run.column, properties, &value, rows, leaf_rows)?;
        *cached = Some(ConstantChunk {
            value,
            rows,
            bytes: bytes.clone(),
            close: close.clone(),
        });
        Ok(ClosedChunk::Typed(bytes, close))
    }
}

/// The arrays of a column whose every value so far equals the first
/// array's first, held as handed over (slices of one array cost nothing).
struct ConstantRun {
    column: ColumnDescPtr,
    arrays: Vec<ArrayRef>,
    /// Index in `arrays` of the longest one.
    longest: usize,
}

impl ConstantRun {
    fn new(column: ColumnDescPtr) -> Self {
        ConstantRun {
            column,
            arrays: Vec::new(),
            longest: 0,
        }
    }

    fn rows(&self) -> usize {
        self.arrays.iter().map(|a| a.len()).sum()
    }

    /// Whether every value of `column` is the run's value: at once for a
    /// start of the longest array held (its buffers, checked, cannot change
    /// while held), else value by value.
    fn accepts(&self, column: &ArrayRef) -> bool {
        if column.is_empty() {
            return true;
        }
        let (Some(first), Some(longest)) = (self.arrays.first(), self.arrays.get(self.longest))
        else {
            return all_equal(column, column);
        };
        let prefix = column.len() <= longest.len()
            && longest
                .slice(0, column.len())
                .to_data()
                .ptr_eq(&column.to_data());
        prefix || all_equal(column, first)
    }

    fn push(&mut self, column: &ArrayRef) {
        if column.is_empty() {
            return;
        }
        if self
            .arrays
            .get(self.longest)
            .is_none_or(|a| a.len() < column.len())
        {
            self.longest = self.arrays.len();
        }
        self.arrays.push(column.clone());
    }
}

/// A chunk of one value repeated, for the next row group of as many rows.
struct ConstantChunk {
    /// The value, as a one-row array.
    value: ArrayRef,
    rows: usize,
    bytes: Bytes,
    close: ColumnCloseResult,
}

/// A chunk of `column` holding `value` (one row) on `rows` rows, written
/// by a typed writer in slices of `leaf_rows` (whole mini-batches): the
/// pages [`ArrowWriter`] cuts for a row group handed over as one batch.
fn encode_repeated(
    column: &ColumnDescPtr,
    properties: &WriterPropertiesPtr,
    value: &ArrayRef,
    rows: usize,
    leaf_rows: usize,
) -> Result<(Bytes, ColumnCloseResult)> {
    let pages = ChunkPages::new(Vec::new());
    let mut writer = get_column_writer(column.clone(), properties.clone(), Box::new(pages.clone()));
    let block = leaf_rows.min(rows).max(1);
    let mismatch = || {
        ParquetError::General(format!(
            "column {:?}: Arrow type {} does not match its Parquet column",
            column.name(),
            value.data_type()
        ))
    };
    match &mut writer {
        ColumnWriter::ByteArrayColumnWriter(w) => {
            let value = value.as_string_opt::<i32>().ok_or_else(mismatch)?.value(0);
            let values = vec![ByteArray::from(value.as_bytes().to_vec()); block];
            write_repeated(w, &values, rows)?;
        }
        ColumnWriter::Int32ColumnWriter(w) => {
            let value = value
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(mismatch)?
                .value(0);
            write_repeated(w, &vec![value; block], rows)?;
        }
        ColumnWriter::Int64ColumnWriter(w) => {
            let value = *int64_values(value)
                .and_then(|v| v.first())
                .ok_or_else(mismatch)?;
            write_repeated(w, &vec![value; block], rows)?;
        }
        _ => return Err(mismatch()),
    }
    let close = writer.close()?;
    Ok((pages.take()?, close))
}

/// `rows` values of `values` (all one value) in slices of its length.
fn write_repeated<T: parquet::data_type::DataType>(
    writer: &mut ColumnWriterImpl<'_, T>,
    values: &[T::T],
    rows: usize,
) -> Result<()> {
    let mut left = rows;
    while left > 0 {
        let len = left.min(values.len());
        writer.write_batch(&values[..len], None, None)?;
        left -= len;
    }
    Ok(())
}

/// Whether every value of `column` equals the first of `reference` (same
/// type; strings and the integer types the typed path takes).
fn all_equal(column: &ArrayRef, reference: &ArrayRef) -> bool {
    if reference.is_empty() || column.logical_null_count() > 0 {
        return false;
    }
    if let (Some(values), Some(first)) = (
        column.as_string_opt::<i32>(),
        reference.as_string_opt::<i32>(),
    ) {
        return all_strings_equal(values, first.value(0).as_bytes());
    }
    if let (Some(values), Some(first)) = (
        column.as_primitive_opt::<Int32Type>(),
        reference.as_primitive_opt::<Int32Type>(),
    ) {
        let first = first.value(0);
        return values.values().iter().all(|&v| v == first);
    }
    match (int64_values(column), int64_values(reference)) {
        (Some(values), Some(first)) => {
            let first = first[0];
            values.iter().all(|&v| v == first)
        }
        _ => false,
    }
}

/// Whether every string of `values` is `first`: offsets a step of its
/// length apart, and the bytes it repeated (compared a block at a time,
/// not a call per row).
fn all_strings_equal(values: &arrow::array::StringArray, first: &[u8]) -> bool {
    let offsets = values.value_offsets();
    let (Some(&start), Some(&end)) = (offsets.first(), offsets.last()) else {
        return true;
    };
    let step = first.len() as i64;
    let regular = offsets
        .iter()
        .enumerate()
        .all(|(i, &o)| i64::from(o) - i64::from(start) == i as i64 * step);
    if !regular || first.is_empty() {
        return regular;
    }
    let Some(bytes) = values.value_data().get(start as usize..end as usize) else {
        return false;
    };
    let pattern = first.repeat(4096 / first.len() + 1);
    bytes
        .chunks(pattern.len())
        .all(|chunk| chunk == &pattern[..chunk.len()])
}

/// The values of a 64-bit integer or timestamp column as Parquet's INT64
/// stores them (unsigned ones reinterpreted).
fn int64_values(column: &ArrayRef) -> Option<&[i64]> {
    Some(match column.data_type() {
        DataType::Int64 => column.as_primitive::<Int64Type>().values(),
        DataType::UInt64 => column
            .as_primitive::<UInt64Type>()
            .values()
            .inner()
            .typed_data::<i64>(),
        DataType::Timestamp(TimeUnit::Second, _) => {
            column.as_primitive::<TimestampSecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            column.as_primitive::<TimestampMillisecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            column.as_primitive::<TimestampMicrosecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            column.as_primitive::<TimestampNanosecondType>().values()
        }
        _ => return None,
    })
}

/// One column of the row group being filled.
enum ColumnEncoder {
    /// A typed writer fed from the array's values, its pages serialised
    /// into `pages`; `rows`: values handed to it so far.
    Typed {
        writer: ColumnWriter<'static>,
        pages: ChunkPages,
        rows: u64,
        width: usize,
    },
    /// Arrow's writer, from the array's leaf levels.
    Arrow(ArrowColumnWriter),
}

/// A closed column chunk, ready to be appended to its row group.
enum ClosedChunk {
    Typed(Bytes, ColumnCloseResult),
    Arrow(ArrowColumnChunk),
}

impl ColumnEncoder {
    /// `buffer`: empty, its capacity reused for the pages.
    fn typed(
        column: ColumnDescPtr,
        properties: WriterPropertiesPtr,
        buffer: Vec<u8>,
    ) -> ColumnEncoder {
        let pages = ChunkPages::new(buffer);
        let width = match column.physical_type() {
            parquet::basic::Type::INT32 | parquet::basic::Type::FLOAT => 4,
            _ => 8,
        };
        ColumnEncoder::Typed {
            writer: get_column_writer(column, properties, Box::new(pages.clone())),
            pages,
            rows: 0,
            width,
        }
    }

    fn write(&mut self, field: &Field, column: &ArrayRef, leaf_rows: usize) -> Result<()> {
        match self {
            ColumnEncoder::Typed { writer, rows, .. } => {
                if column.logical_null_count() > 0 {
                    return Err(ParquetError::General(format!(
                        "column {:?} is not nullable but holds nulls",
                        field.name()
                    )));
                }
                write_values(writer, field, column)?;
                *rows += column.len() as u64;
                Ok(())
            }
            ColumnEncoder::Arrow(writer) => {
                let total = column.len();
                let mut start = 0;
                while start < total {
                    let len = leaf_rows.min(total - start);
                    for leaf in compute_leaves(field, &column.slice(start, len))? {
                        writer.write(&leaf)?;
                    }
                    start += len;
                }
                Ok(())
            }
        }
    }

    /// Anticipated encoded size: the pages cut so far, and the values
    /// waiting for the next page at their plain width.
    fn estimated_bytes(&self) -> usize {
        match self {
            ColumnEncoder::Typed {
                writer,
                pages,
                rows,
                width,
            } => {
                let waiting = rows.saturating_sub(rows_in_pages(writer));
                pages.len() + waiting as usize * width
            }
            ColumnEncoder::Arrow(writer) => writer.get_estimated_total_bytes(),
        }
    }

    fn close(self) -> Result<ClosedChunk> {
        match self {
            ColumnEncoder::Typed { writer, pages, .. } => {
                let close = writer.close()?;
                Ok(ClosedChunk::Typed(pages.take()?, close))
            }
            ColumnEncoder::Arrow(writer) => writer.close().map(ClosedChunk::Arrow),
        }
    }
}

/// Rows `writer` has cut into pages.
fn rows_in_pages(writer: &ColumnWriter<'_>) -> u64 {
    match writer {
        ColumnWriter::BoolColumnWriter(w) => w.get_total_rows_written(),
        ColumnWriter::Int32ColumnWriter(w) => w.get_total_rows_written(),
        ColumnWriter::Int64ColumnWriter(w) => w.get_total_rows_written(),
        ColumnWriter::Int96ColumnWriter(w) => w.get_total_rows_written(),
        ColumnWriter::FloatColumnWriter(w) => w.get_total_rows_written(),
        ColumnWriter::DoubleColumnWriter(w) => w.get_total_rows_written(),
        ColumnWriter::ByteArrayColumnWriter(w) => w.get_total_rows_written(),
        ColumnWriter::FixedLenByteArrayColumnWriter(w) => w.get_total_rows_written(),
    }
}

/// Hands `column`'s values to its typed writer as one slice (the writer
/// cuts it into mini-batches and pages as it would the Arrow path's).
fn write_values(writer: &mut ColumnWriter<'_>, field: &Field, column: &ArrayRef) -> Result<()> {
    let written = match (writer, column.data_type()) {
        (ColumnWriter::FloatColumnWriter(w), DataType::Float32) => {
            w.write_batch(column.as_primitive::<Float32Type>().values(), None, None)
        }
        (ColumnWriter::DoubleColumnWriter(w), DataType::Float64) => {
            w.write_batch(column.as_primitive::<Float64Type>().values(), None, None)
        }
        (ColumnWriter::Int32ColumnWriter(w), DataType::Int32) => {
            w.write_batch(column.as_primitive::<Int32Type>().values(), None, None)
        }
        (ColumnWriter::Int64ColumnWriter(w), data_type) => match int64_values(column) {
            Some(values) => w.write_batch(values, None, None),
            None => return Err(mismatch(field, data_type)),
        },
        (_, other) => return Err(mismatch(field, other)),
    }?;
    if written != column.len() {
        return Err(ParquetError::General(format!(
            "column {:?}: {written} of {} values written",
            field.name(),
            column.len()
        )));
    }
    Ok(())
}

fn mismatch(field: &Field, data_type: &DataType) -> ParquetError {
    ParquetError::General(format!(
        "column {:?}: Arrow type {data_type} does not match its Parquet column",
        field.name()
    ))
}

/// One column chunk's pages, serialised into memory as the file writer
/// would write them (offsets counted from the chunk's start), for
/// [`parquet::file::writer::SerializedRowGroupWriter::append_column`].
/// Shared: the column writer owns one handle, [`ColumnEncoder`] the other.
#[derive(Clone)]
struct ChunkPages(Arc<Mutex<TrackedWrite<Vec<u8>>>>);

impl ChunkPages {
    fn new(buffer: Vec<u8>) -> Self {
        ChunkPages(Arc::new(Mutex::new(TrackedWrite::new(buffer))))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, TrackedWrite<Vec<u8>>>> {
        self.0
            .lock()
            .map_err(|_| ParquetError::General("a column encoder panicked".to_string()))
    }

    /// Bytes of the pages so far (0 when the lock is unavailable: an estimate).
    fn len(&self) -> usize {
        self.lock().map_or(0, |pages| pages.bytes_written())
    }

    /// The serialised pages, leaving this empty.
    fn take(&self) -> Result<Bytes> {
        let mut pages = self.lock()?;
        let taken = std::mem::replace(&mut *pages, TrackedWrite::new(Vec::new()));
        Ok(Bytes::from(taken.into_inner()?))
    }
}

impl PageWriter for ChunkPages {
    fn write_page(&mut self, page: CompressedPage) -> Result<PageWriteSpec> {
        let mut pages = self.lock()?;
        SerializedPageWriter::new(&mut *pages).write_page(page)
    }

    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
