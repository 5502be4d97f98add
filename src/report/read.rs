//! Reads the columns a report needs from part files, by name: a column a
//! file lacks reads as null (NaN), so older files, other layouts and tables
//! still being designed (`pq_events`) all load the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{ParquetMetaData, ParquetStatisticsPolicy};
use parquet::file::reader::ChunkReader;
use parquet::schema::types::SchemaDescriptor;

use super::error::{ReportError, Result};
use super::pages;
use super::scan::PartFile;

/// Which columns to read and which rows to keep.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The row time (a timestamp column); rows outside `[from, to)` are dropped.
    pub time: String,
    pub from: i64,
    pub to: i64,
    /// Columns read as f64 (numbers and booleans; null is NaN).
    pub numbers: Vec<String>,
    /// Columns read as text (null is "").
    pub texts: Vec<String>,
    /// `List<Float64>` columns.
    pub lists: Vec<String>,
    /// Timestamp columns other than `time`, in ns (null is `i64::MIN`).
    pub times: Vec<String>,
    /// Keep only rows whose column (first) has this text (second).
    pub equals: Option<(String, String)>,
    /// Keep only rows whose `device` column equals this (tables that are not
    /// partitioned by device).
    pub device: Option<String>,
    /// Number columns of which only the largest value is needed: taken from
    /// a file's footer statistics where they decide it (every row group in
    /// `[from, to)` and of the `equals` value), else read as `numbers`.
    pub maxima: Vec<String>,
}

/// Rows read, sorted by time; every column is as long as `time`.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub time: Vec<i64>,
    pub numbers: BTreeMap<String, Vec<f64>>,
    pub texts: BTreeMap<String, Vec<String>>,
    pub lists: BTreeMap<String, Vec<Vec<f64>>>,
    pub times: BTreeMap<String, Vec<i64>>,
    /// Largest values of `Query::maxima` columns from statistics (the rows
    /// of the files read instead are in `numbers`).
    pub maxima: BTreeMap<String, f64>,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// A number column; all NaN when no file had it.
    pub fn number(&self, name: &str) -> &[f64] {
        self.numbers.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn text(&self, name: &str) -> &[String] {
        self.texts.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether any row has a value in number column `name`.
    pub fn has_values(&self, name: &str) -> bool {
        self.number(name).iter().any(|v| !v.is_nan())
    }

    /// Drops every row from `rows` on and restores `maxima`: what a file
    /// that failed half-way had added.
    fn roll_back(&mut self, rows: usize, maxima: BTreeMap<String, f64>) {
        self.time.truncate(rows);
        for column in self.numbers.values_mut() {
            column.truncate(rows);
        }
        for column in self.times.values_mut() {
            column.truncate(rows);
        }
        for column in self.texts.values_mut() {
            column.truncate(rows);
        }
        for column in self.lists.values_mut() {
            column.truncate(rows);
        }
        self.maxima = maxima;
    }

    fn sort_by_time(&mut self) {
        if self.time.windows(2).all(|w| w[0] <= w[1]) {
            return;
        }
        let mut order: Vec<usize> = (0..self.time.len()).collect();
        order.sort_by_key(|&i| self.time[i]);
        let time: Vec<i64> = order.iter().map(|&i| self.time[i]).collect();
        self.time = time;
        for column in self.numbers.values_mut() {
            *column = order.iter().map(|&i| column[i]).collect();
        }
        for column in self.times.values_mut() {
            *column = order.iter().map(|&i| column[i]).collect();
        }
        for column in self.texts.values_mut() {
            *column = order
                .iter()
                .map(|&i| std::mem::take(&mut column[i]))
                .collect();
        }
        for column in self.lists.values_mut() {
            *column = order
                .iter()
                .map(|&i| std::mem::take(&mut column[i]))
                .collect();
        }
    }
}

/// Where column `name` is in `schema`.
fn column_index(schema: &SchemaDescriptor, name: &str) -> Option<usize> {
    schema.columns().iter().position(|c| c.name() == name)
}

fn open_file(file: &PartFile) -> Result<File> {
    File::open(&file.path).map_err(|e| ReportError::io("open", &file.path, e))
}

/// Whether `error` says that a file's content is damaged (rather than that
/// the file system failed): such a file is skipped, not the report.
fn is_damage(error: &ReportError) -> bool {
    matches!(
        error,
        ReportError::Parquet { .. } | ReportError::Arrow { .. }
    )
}

/// [`decode_footer`], or `None` for a file that is, or turns out to be,
/// damaged (0 bytes, truncated, not Parquet): it is noted in the dataset's
/// skipped files and left out.
fn footer<R: ChunkReader>(
    file: &PartFile,
    input: &R,
    stats: &[&str],
) -> Result<Option<ArrowReaderMetadata>> {
    if file.skipped.contains(&file.path) {
        return Ok(None);
    }
    match decode_footer(file, input, stats) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(error) if is_damage(&error) => {
            file.skipped.note(&file.path, &error);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// `file`'s footer (read from `input`) with statistics only for the
/// columns named in `stats`. A fleet has thousands of ~150-column footers;
/// decoding (and keeping) every statistic of every one was most of a
/// report's time and gigabytes of memory. The table's first schema says
/// where those columns are; a file that has them elsewhere is decoded in full.
fn decode_footer<R: ChunkReader>(
    file: &PartFile,
    input: &R,
    stats: &[&str],
) -> Result<ArrowReaderMetadata> {
    let parquet_error = |source| ReportError::Parquet {
        path: file.path.clone(),
        source,
    };
    // The Parquet schema says all the report needs; decoding the embedded
    // Arrow schema too costs a tenth of opening a small file.
    let options = ArrowReaderOptions::new()
        .with_skip_arrow_metadata(true)
        .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll);
    let Some(hint) = file.table_schema.get() else {
        let metadata = ArrowReaderMetadata::load(input, options).map_err(parquet_error)?;
        let schema = metadata.metadata().file_metadata().schema_descr_ptr();
        file.table_schema.get_or_init(|| schema);
        return Ok(metadata);
    };
    let expected: Vec<Option<usize>> = stats.iter().map(|n| column_index(hint, n)).collect();
    let keep: Vec<usize> = expected.iter().flatten().copied().collect();
    let light = options
        .clone()
        .with_column_stats_policy(ParquetStatisticsPolicy::skip_except(&keep));
    let metadata = ArrowReaderMetadata::load(input, light).map_err(parquet_error)?;
    let schema = metadata.metadata().file_metadata().schema_descr();
    let same = stats.iter().zip(&expected).all(|(name, at)| match at {
        Some(i) => schema.columns().get(*i).is_some_and(|c| c.name() == *name),
        None => column_index(schema, name).is_none(),
    });
    if same {
        Ok(metadata)
    } else {
        ArrowReaderMetadata::load(input, options).map_err(parquet_error)
    }
}

/// What the footer's statistics say about `column == value` in every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    All,
    None,
    Some,
}

/// `Match::All`/`None` when every row group's statistics of text column
/// `name` hold the one value `value` (or one other value) and no nulls.
fn match_by_statistics(metadata: &ParquetMetaData, name: &str, value: &str) -> Match {
    let schema = metadata.file_metadata().schema_descr();
    let Some(index) = column_index(schema, name) else {
        return Match::None;
    };
    let mut all = true;
    let mut none = true;
    for group in metadata.row_groups() {
        let Some(stats) = group.column(index).statistics() else {
            return Match::Some;
        };
        let (Some(min), Some(max)) = (stats.min_bytes_opt(), stats.max_bytes_opt()) else {
            return Match::Some;
        };
        if stats.null_count_opt() != Some(0) || min != max {
            return Match::Some;
        }
        all &= min == value.as_bytes();
        none &= min != value.as_bytes();
    }
    match (all, none) {
        (true, _) => Match::All,
        (_, true) => Match::None,
        _ => Match::Some,
    }
}

/// Rows of `device` in `files`: a device's own files by their footers
/// (no data is read), files shared by devices by their `device` column.
pub fn count_rows(files: &[&PartFile], device: &str) -> Result<u64> {
    let mut rows = 0u64;
    for file in files {
        if file.device.is_none() {
            device_runs(file, |name, run| {
                if name == device {
                    rows += run;
                }
            })?;
            continue;
        }
        let Some(metadata) = footer(file, &open_file(file)?, &[])? else {
            continue;
        };
        rows += u64::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    }
    Ok(rows)
}

/// The devices named in the `device` column of files shared by devices.
pub fn device_names(files: &[&PartFile]) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for file in files {
        device_runs(file, |name, _| {
            if !names.contains(name) {
                names.insert(name.to_string());
            }
        })?;
    }
    Ok(names)
}

/// Hands `each` every run of rows of one device in `file` (rows are
/// grouped by device) and its length; a damaged file is noted and skipped.
fn device_runs(file: &PartFile, mut each: impl FnMut(&str, u64)) -> Result<()> {
    let handle = open_file(file)?;
    let Some(metadata) = footer(file, &handle, &[])? else {
        return Ok(());
    };
    let schema = metadata.metadata().file_metadata().schema_descr_ptr();
    let Some(index) = column_index(&schema, "device") else {
        return Ok(());
    };
    let mask = ProjectionMask::leaves(&schema, [index]);
    let runs = parquet_reader(&file.path, handle, metadata, mask).and_then(|reader| {
        for batch in reader {
            let batch = batch.map_err(arrow_error(&file.path, "device"))?;
            let names =
                batch
                    .column(0)
                    .as_string_opt::<i32>()
                    .ok_or_else(|| ReportError::Arrow {
                        path: file.path.clone(),
                        column: "device".into(),
                        source: arrow::error::ArrowError::CastError("`device` is not text".into()),
                    })?;
            let mut start = 0;
            while start < names.len() {
                let name = names.value(start);
                let end = (start + 1..names.len())
                    .find(|&i| names.value(i) != name)
                    .unwrap_or(names.len());
                each(name, (end - start) as u64);
                start = end;
            }
        }
        Ok(())
    });
    match runs {
        Err(error) if is_damage(&error) => {
            file.skipped.note(&file.path, &error);
            Ok(())
        }
        other => other,
    }
}

/// The smallest `start` and largest `end` value over `files`, from the
/// footers' column statistics; `None` when a file has no statistics for
/// them, or holds several devices' rows (its statistics are not one device's).
pub fn time_bounds(files: &[&PartFile], start: &str, end: &str) -> Result<Option<(i64, i64)>> {
    use parquet::file::statistics::Statistics;
    let mut bounds: Option<(i64, i64)> = None;
    if files.iter().any(|f| f.device.is_none()) {
        return Ok(None);
    }
    for file in files {
        let Some(metadata) = footer(file, &open_file(file)?, &[start, end])? else {
            continue;
        };
        let metadata = metadata.metadata();
        let schema = metadata.file_metadata().schema_descr();
        let (Some(s), Some(e)) = (column_index(schema, start), column_index(schema, end)) else {
            return Ok(None);
        };
        for group in metadata.row_groups() {
            let min = match group.column(s).statistics() {
                Some(Statistics::Int64(v)) => v.min_opt().copied(),
                _ => None,
            };
            let max = match group.column(e).statistics() {
                Some(Statistics::Int64(v)) => v.max_opt().copied(),
                _ => None,
            };
            let (Some(min), Some(max)) = (min, max) else {
                return Ok(None);
            };
            bounds = Some(bounds.map_or((min, max), |(a, b)| (a.min(min), b.max(max))));
        }
    }
    Ok(bounds)
}

/// Reads `query`'s columns of every file, keeping the rows in its time range.
pub fn read(files: &[&PartFile], query: &Query) -> Result<Frame> {
    let mut frame = Frame::default();
    for name in query.numbers.iter().chain(&query.maxima) {
        frame.numbers.insert(name.clone(), Vec::new());
    }
    for name in &query.texts {
        frame.texts.insert(name.clone(), Vec::new());
    }
    for name in &query.lists {
        frame.lists.insert(name.clone(), Vec::new());
    }
    for name in &query.times {
        frame.times.insert(name.clone(), Vec::new());
    }
    for file in files {
        let (rows, maxima) = (frame.len(), frame.maxima.clone());
        match read_file(file, query, &mut frame) {
            Ok(()) => {}
            Err(error) if is_damage(&error) => {
                file.skipped.note(&file.path, &error);
                frame.roll_back(rows, maxima);
            }
            Err(error) => return Err(error),
        }
    }
    frame.sort_by_time();
    Ok(frame)
}

/// Rows per record batch the report reads.
const BATCH: usize = 65_536;

/// parquet's own reader of the `mask` columns of `input`.
fn parquet_reader<T: ChunkReader + 'static>(
    path: &Path,
    input: T,
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
) -> Result<ParquetRecordBatchReader> {
    ParquetRecordBatchReaderBuilder::new_with_metadata(input, metadata)
        .with_projection(mask)
        .with_batch_size(BATCH)
        .build()
        .map_err(|source| ReportError::Parquet {
            path: path.to_path_buf(),
            source,
        })
}

fn read_file(file: &PartFile, query: &Query, frame: &mut Frame) -> Result<()> {
    let path = file.path.as_path();
    let mut stats: Vec<&str> = vec![query.time.as_str()];
    stats.extend(query.equals.iter().map(|(name, _)| name.as_str()));
    stats.extend(query.maxima.iter().map(String::as_str));
    let mut handle = open_file(file)?;
    // A small file is read in one go and its pages decompressed with this
    // thread's zstd context (see `pages`).
    let size = handle.metadata().map_or(u64::MAX, |m| m.len());
    let whole = if size <= pages::SMALL_FILE {
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        handle
            .read_to_end(&mut bytes)
            .map_err(|e| ReportError::io("read", path, e))?;
        Some(Bytes::from(bytes))
    } else {
        None
    };
    let metadata = match &whole {
        Some(bytes) => footer(file, bytes, &stats)?,
        None => footer(file, &handle, &stats)?,
    };
    let Some(metadata) = metadata else {
        return Ok(());
    };
    // A filter the statistics decide costs no column read (or no file).
    let mut query = std::borrow::Cow::Borrowed(query);
    if let Some((name, value)) = &query.equals {
        match match_by_statistics(metadata.metadata(), name, value) {
            Match::None => return Ok(()),
            Match::All => query.to_mut().equals = None,
            Match::Some => {}
        }
    }
    let query = query.as_ref();
    let filter_device = query.device.as_deref().filter(|_| file.device.is_none());
    // A shared file's statistics are every device's: its rows are read.
    let from_statistics = !query.maxima.is_empty()
        && filter_device.is_none()
        && fold_maxima(metadata.metadata(), query, &mut frame.maxima);
    let schema = metadata.schema().clone();
    let mut wanted: Vec<&str> = vec![query.time.as_str()];
    wanted.extend(query.numbers.iter().map(String::as_str));
    if !from_statistics {
        wanted.extend(query.maxima.iter().map(String::as_str));
    }
    wanted.extend(query.texts.iter().map(String::as_str));
    wanted.extend(query.lists.iter().map(String::as_str));
    wanted.extend(query.times.iter().map(String::as_str));
    if filter_device.is_some() {
        wanted.push("device");
    }
    if let Some((name, _)) = &query.equals {
        wanted.push(name.as_str());
    }
    let indices: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    if schema.index_of(&query.time).is_err() {
        return Ok(());
    }
    let mask = ProjectionMask::roots(metadata.parquet_schema(), indices);
    let reader = match whole {
        Some(bytes) => match pages::reader(&bytes, metadata.metadata(), mask.clone(), BATCH) {
            Some(reader) => reader,
            None => parquet_reader(path, bytes, metadata, mask)?,
        },
        None => parquet_reader(path, handle, metadata, mask)?,
    };
    for batch in reader {
        let batch = batch.map_err(|source| ReportError::Arrow {
            path: path.to_path_buf(),
            column: "(batch)".into(),
            source,
        })?;
        append_batch(path, &batch, query, filter_device, frame)?;
    }
    Ok(())
}

/// Folds the largest value of each `query.maxima` column into `maxima`
/// when the footer decides them all; false (and nothing folded) otherwise.
fn fold_maxima(
    metadata: &ParquetMetaData,
    query: &Query,
    maxima: &mut BTreeMap<String, f64>,
) -> bool {
    use parquet::file::statistics::Statistics;
    if let Some((name, value)) = &query.equals {
        if match_by_statistics(metadata, name, value) != Match::All {
            return false;
        }
    }
    let schema = metadata.file_metadata().schema_descr();
    let index = |name: &str| column_index(schema, name);
    let Some(time) = index(&query.time) else {
        return false;
    };
    let mut found: Vec<(&String, f64)> = Vec::new();
    for group in metadata.row_groups() {
        let inside = match group.column(time).statistics() {
            Some(Statistics::Int64(v)) => {
                v.min_opt().is_some_and(|&t| t >= query.from)
                    && v.max_opt().is_some_and(|&t| t < query.to)
            }
            _ => false,
        };
        if !inside {
            return false;
        }
        for name in &query.maxima {
            let Some(column) = index(name) else {
                continue;
            };
            let max = match group.column(column).statistics() {
                Some(Statistics::Double(v)) => v.max_opt().copied(),
                Some(Statistics::Float(v)) => v.max_opt().map(|&x| f64::from(x)),
                _ => return false,
            };
            // No maximum: every value of the chunk is null.
            if let Some(max) = max.filter(|m| m.is_finite()) {
                found.push((name, max));
            }
        }
    }
    for (name, max) in found {
        let entry = maxima.entry(name.clone()).or_insert(max);
        *entry = entry.max(max);
    }
    true
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

fn arrow_error(path: &Path, column: &str) -> impl FnOnce(arrow::error::ArrowError) -> ReportError {
    let (path, column) = (path.to_path_buf(), column.to_string());
    move |source| ReportError::Arrow {
        path,
        column,
        source,
    }
}

/// A timestamp (any unit) or integer column as ns; null is `i64::MIN`.
fn nanos(path: &Path, name: &str, array: &ArrayRef) -> Result<Vec<i64>> {
    let scale = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        _ => 1,
    };
    let ints = cast(array, &DataType::Int64).map_err(arrow_error(path, name))?;
    let ints = ints.as_primitive::<Int64Type>();
    Ok((0..ints.len())
        .map(|i| {
            if ints.is_null(i) {
                i64::MIN
            } else {
                ints.value(i).saturating_mul(scale)
            }
        })
        .collect())
}

fn append_batch(
    path: &Path,
    batch: &RecordBatch,
    query: &Query,
    filter_device: Option<&str>,
    frame: &mut Frame,
) -> Result<()> {
    let Some(time) = column(batch, &query.time) else {
        return Ok(());
    };
    let time = nanos(path, &query.time, time)?;
    let devices = match (filter_device, column(batch, "device")) {
        (Some(_), Some(array)) => Some(texts(path, "device", array)?),
        _ => None,
    };
    let equals = match &query.equals {
        Some((name, value)) => match column(batch, name) {
            Some(array) => Some((texts(path, name, array)?, value.as_str())),
            // A file without the column has no row with that value.
            None => return Ok(()),
        },
        None => None,
    };
    let keep: Vec<usize> = (0..batch.num_rows())
        .filter(|&i| {
            equals
                .as_ref()
                .is_none_or(|(values, want)| values[i] == *want)
        })
        .filter(|&i| time[i] != i64::MIN && time[i] >= query.from && time[i] < query.to)
        .filter(|&i| match (&devices, filter_device) {
            (Some(names), Some(device)) => names[i] == device,
            _ => true,
        })
        .collect();
    if keep.is_empty() {
        return Ok(());
    }
    frame.time.extend(keep.iter().map(|&i| time[i]));
    for (name, out) in frame.numbers.iter_mut() {
        match column(batch, name) {
            Some(array) => {
                let values = cast(array, &DataType::Float64).map_err(arrow_error(path, name))?;
                let values = values.as_primitive::<Float64Type>();
                out.extend(keep.iter().map(|&i| {
                    if values.is_null(i) {
                        f64::NAN
                    } else {
                        values.value(i)
                    }
                }));
            }
            None => out.extend(keep.iter().map(|_| f64::NAN)),
        }
    }
    for (name, out) in frame.times.iter_mut() {
        match column(batch, name) {
            Some(array) => {
                let values = nanos(path, name, array)?;
                out.extend(keep.iter().map(|&i| values[i]));
            }
            None => out.extend(keep.iter().map(|_| i64::MIN)),
        }
    }
    for (name, out) in frame.texts.iter_mut() {
        match column(batch, name) {
            Some(array) => {
                let values = texts(path, name, array)?;
                out.extend(keep.iter().map(|&i| values[i].clone()));
            }
            None => out.extend(keep.iter().map(|_| String::new())),
        }
    }
    for (name, out) in frame.lists.iter_mut() {
        let list = column(batch, name).and_then(|a| a.as_list_opt::<i32>());
        match list {
            Some(list) => {
                for &i in &keep {
                    if list.is_null(i) {
                        out.push(Vec::new());
                        continue;
                    }
                    let item = list.value(i);
                    let item = cast(&item, &DataType::Float64).map_err(arrow_error(path, name))?;
                    let item = item.as_primitive::<Float64Type>();
                    out.push(
                        (0..item.len())
                            .map(|k| {
                                if item.is_null(k) {
                                    f64::NAN
                                } else {
                                    item.value(k)
                                }
                            })
                            .collect(),
                    );
                }
            }
            None => out.extend(keep.iter().map(|_| Vec::new())),
        }
    }
    Ok(())
}

/// Any column as display text (timestamps in RFC 3339); null is "".
fn texts(path: &Path, name: &str, array: &ArrayRef) -> Result<Vec<String>> {
    // Arrow's formatter needs its chrono-tz feature for named zones; UTC
    // is all the datasets use, so timestamps are written here.
    if matches!(array.data_type(), DataType::Timestamp(_, _)) {
        return Ok(nanos(path, name, array)?
            .into_iter()
            .map(|t| {
                if t == i64::MIN {
                    String::new()
                } else {
                    chrono::DateTime::from_timestamp_nanos(t)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string()
                }
            })
            .collect());
    }
    let options = FormatOptions::default().with_null("");
    let formatter =
        ArrayFormatter::try_new(array.as_ref(), &options).map_err(arrow_error(path, name))?;
    Ok((0..array.len())
        .map(|i| formatter.value(i).to_string())
        .collect())
}

/// The column names of the first readable file, in schema order (what a
/// table shows).
pub fn column_names(files: &[&PartFile]) -> Result<Vec<String>> {
    for file in files {
        if let Some(metadata) = footer(file, &open_file(file)?, &[])? {
            return Ok(metadata
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect());
        }
    }
    Ok(Vec::new())
}
