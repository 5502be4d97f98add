//! One table's partitioned files: rows go to the open file of their device
//! and UTC date (or, with files shared by devices, of their date and span);
//! files rotate when data time enters a new clock-aligned span or the file
//! reaches its size limit; each file is written under a hidden temporary
//! name and renamed when finished, so a reader never sees half a file.
//! Blocking I/O: run it off the async runtime.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::commit::RowMark;
use super::durable::publish_files;
use super::error::{ParquetSinkError, Result};
use super::parallel_writer::ParallelArrowWriter;
use super::partition::{date_dir, next_seq, owned_temp_file_name, part_file_name, partition_dir};
use crate::model::partition::{utc_day, NS_PER_DAY};

/// Writer properties of a file, given its schema (the raw table's columns
/// and metadata depend on the device's layout).
pub type PropertiesFor = Box<dyn Fn(&SchemaRef) -> WriterProperties + Send>;

/// How a table cuts its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Clock-aligned span of data time one file covers, ns.
    pub span_ns: i64,
    /// Encoded size at which a file is closed, bytes.
    pub max_bytes: u64,
    /// fsync before the rename.
    pub fsync: bool,
}

/// Encodes a file's rows: one column after another, or (the raw archive)
/// the columns of a row group in parallel.
enum FileEncoder {
    Serial(ArrowWriter<File>),
    Parallel(ParallelArrowWriter),
}

impl FileEncoder {
    fn write(&mut self, rows: &RecordBatch) -> parquet::errors::Result<()> {
        match self {
            FileEncoder::Serial(w) => w.write(rows),
            FileEncoder::Parallel(w) => w.write(rows),
        }
    }

    fn flush(&mut self) -> parquet::errors::Result<()> {
        match self {
            FileEncoder::Serial(w) => w.flush(),
            FileEncoder::Parallel(w) => w.flush(),
        }
    }

    fn finish(&mut self) -> parquet::errors::Result<()> {
        match self {
            FileEncoder::Serial(w) => w.finish().map(drop),
            FileEncoder::Parallel(w) => w.finish(),
        }
    }

    /// Bytes written plus the anticipated size of the open row group.
    fn size_so_far(&self) -> usize {
        match self {
            FileEncoder::Serial(w) => w.bytes_written() + w.in_progress_size(),
            FileEncoder::Parallel(w) => w.bytes_written() + w.in_progress_size(),
        }
    }

    fn flushed_row_groups(&self) -> usize {
        match self {
            FileEncoder::Serial(w) => w.flushed_row_groups().len(),
            FileEncoder::Parallel(w) => w.flushed_row_groups().len(),
        }
    }
}

/// An open file: its group (the device, or `""` for files shared by
/// devices), UTC day, and span slot (0 for a device's one file of a day,
/// which a newer span replaces).
type FileKey = (String, i64, i64);

/// One device's rows in a file: its lowest record seq and its last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSeqs {
    pub device: String,
    pub min_seq: u64,
    pub last: RowMark,
}

/// A file being written.
struct OpenFile {
    writer: FileEncoder,
    schema: SchemaRef,
    temp_path: PathBuf,
    final_path: PathBuf,
    /// `time.div_euclid(span_ns)` of the span the file covers.
    slot: i64,
    /// The table's row count when this file last got rows.
    rows_at_last_write: u64,
    day: i64,
    /// Per device: lowest record seq and last row of its rows in the file.
    seqs: HashMap<String, (u64, RowMark)>,
}

/// A finished file under its temporary name, waiting for a commit.
#[derive(Debug, Clone)]
pub struct SealedFile {
    pub temp_path: PathBuf,
    pub final_path: PathBuf,
    pub day: i64,
    /// Record seqs per device in the file (none: rows written without seqs).
    pub devices: Vec<DeviceSeqs>,
}

/// The partitioned files of one table.
pub struct PartitionedWriter {
    table: &'static str,
    out: PathBuf,
    rotation: Rotation,
    properties_for: PropertiesFor,
    open: HashMap<FileKey, OpenFile>,
    /// Next file number per partition folder (scanned once, then counted).
    next_seq: HashMap<PathBuf, u64>,
    finished: Vec<PathBuf>,
    /// Files sealed (temporary → final name) that the current call
    /// publishes as one group when it ends (see [`Self::publish_closed`]).
    closed: Vec<(PathBuf, PathBuf)>,
    /// Rows written to the table so far, all devices.
    rows_written: u64,
    /// One file per date and span holds every device's rows, under
    /// `<table>/date=…/` (see [`Self::sharing_files`]).
    shared_files: bool,
    /// End the row group after every write (see [`Self::accumulating_row_groups`]).
    row_group_per_write: bool,
    /// Encode a row group's columns in parallel (see [`Self::encoding_columns_in_parallel`]).
    parallel_columns: bool,
    /// Finished files wait in `sealed` for [`Self::take_sealed`] instead of
    /// being renamed at once (see `commit`).
    deferred_commit: bool,
    sealed: Vec<SealedFile>,
    /// Per (device, day): rows of records up to this seq are in visible files.
    /// Keyed by device first so a row's lookup borrows its name.
    committed: HashMap<String, HashMap<i64, RowMark>>,
    /// Tag of this writer's temporary files when several share the dataset.
    temp_owner: Option<String>,
}

impl PartitionedWriter {
    pub fn new(
        out: impl Into<PathBuf>,
        table: &'static str,
        rotation: Rotation,
        properties_for: PropertiesFor,
    ) -> Self {
        PartitionedWriter {
            table,
            out: out.into(),
            rotation: Rotation {
                span_ns: rotation.span_ns.max(1),
                ..rotation
            },
            properties_for,
            open: HashMap::new(),
            next_seq: HashMap::new(),
            finished: Vec::new(),
            closed: Vec::new(),
            rows_written: 0,
            shared_files: false,
            row_group_per_write: true,
            parallel_columns: false,
            deferred_commit: false,
            sealed: Vec::new(),
            committed: HashMap::new(),
            temp_owner: None,
        }
    }

    /// Seals finished files without renaming them; a commit makes them
    /// visible. `committed` says up to which row each (device, day) file
    /// stream already is in visible files: those rows are skipped.
    pub fn defer_commits(
        &mut self,
        committed: HashMap<(String, i64), RowMark>,
        owner: Option<&str>,
    ) {
        self.deferred_commit = true;
        self.temp_owner = owner.map(str::to_string);
        self.committed.clear();
        for ((device, day), mark) in committed {
            self.committed.entry(device).or_default().insert(day, mark);
        }
    }

    /// Gives back files a failed commit could not publish.
    pub fn restore_sealed(&mut self, mut files: Vec<SealedFile>) {
        files.append(&mut self.sealed);
        self.sealed = files;
    }

    /// Whether the row of `device` at `time_ns` from record `seq` is
    /// already in a visible file (a replay brings it again).
    pub fn is_committed(&self, device: &str, seq: u64, time_ns: i64) -> bool {
        self.committed
            .get(device)
            .and_then(|days| days.get(&utc_day(time_ns)))
            .is_some_and(|&last| (seq, time_ns) <= last)
    }

    /// The sealed files waiting for a commit, handed over.
    pub fn take_sealed(&mut self) -> Vec<SealedFile> {
        std::mem::take(&mut self.sealed)
    }

    /// Notes that `files` are visible now (the commit renamed them).
    pub fn mark_committed(&mut self, files: &[SealedFile]) {
        for file in files {
            for device in &file.devices {
                let last = self
                    .committed
                    .entry(device.device.clone())
                    .or_default()
                    .entry(file.day)
                    .or_insert((0, i64::MIN));
                *last = (*last).max(device.last);
            }
            self.finished.push(file.final_path.clone());
        }
    }

    /// The last visible row of every file stream, for the journal.
    pub fn committed(&self) -> impl Iterator<Item = (&str, i64, RowMark)> {
        self.committed.iter().flat_map(|(device, days)| {
            days.iter()
                .map(move |(day, last)| (device.as_str(), *day, *last))
        })
    }

    /// The lowest record seq held only in files not yet visible (open or sealed).
    pub fn pending_min_seq(&self) -> Option<u64> {
        let open = self
            .open
            .values()
            .flat_map(|f| f.seqs.values().map(|(lo, _)| *lo));
        let sealed = self
            .sealed
            .iter()
            .flat_map(|f| f.devices.iter().map(|d| d.min_seq));
        open.chain(sealed).min()
    }

    /// Lets row groups grow over several writes up to the properties' row
    /// count (the raw archive, whose writes are slices of a row group).
    pub fn accumulating_row_groups(mut self) -> Self {
        self.row_group_per_write = false;
        self
    }

    /// Encodes each row group's columns in parallel on rayon's pool (the
    /// raw archive: megabytes of samples per column and row group).
    pub fn encoding_columns_in_parallel(mut self) -> Self {
        self.parallel_columns = true;
        self
    }

    /// Partitions by date only: one file per date and span holds the rows
    /// of every device (rows come through [`Self::write_shared`]). Files
    /// of several spans may be open at once, so a device that lags finds
    /// its span's file until the grace after it ends.
    pub fn sharing_files(mut self) -> Self {
        self.shared_files = true;
        self
    }

    pub fn shares_files(&self) -> bool {
        self.shared_files
    }

    /// The (UTC day, span slot) of the file a row at `time_ns` goes to.
    pub fn file_of(&self, time_ns: i64) -> (i64, i64) {
        (utc_day(time_ns), time_ns.div_euclid(self.rotation.span_ns))
    }

    pub fn table(&self) -> &'static str {
        self.table
    }

    /// Files finished so far, in the order they were closed.
    pub fn finished_files(&self) -> &[PathBuf] {
        &self.finished
    }

    /// Writes rows of one device; `times[i]` (ns) places row i in its date
    /// folder and time span. Rows need not be sorted: a row older than its
    /// partition's open file goes into that file rather than reopening a
    /// finished span.
    pub fn write(&mut self, device: &str, batch: &RecordBatch, times: &[i64]) -> Result<()> {
        self.write_with_seqs(device, batch, times, None)
    }

    /// [`Self::write`] of rows that came from record log entries `seqs[i]`.
    pub fn write_with_seqs(
        &mut self,
        device: &str,
        batch: &RecordBatch,
        times: &[i64],
        seqs: Option<&[u64]>,
    ) -> Result<()> {
        self.write_runs(device, batch, times, |run| {
            seqs.and_then(|seqs| {
                let marks = seqs.get(run.clone())?.iter().zip(times.get(run)?);
                let mut marks = marks.map(|(&seq, &time)| (seq, time));
                let first = marks.next()?;
                let (min_seq, last) = marks.fold((first.0, first), |(lo, last), mark| {
                    (lo.min(mark.0), last.max(mark))
                });
                Some(vec![(device, (min_seq, last))])
            })
            .unwrap_or_default()
        })
    }

    /// Rows of several devices (`devices[i]` is row i's, from record log
    /// entry `seqs[i]`) into the files shared by all of them. Rows sorted
    /// by (day, span) make one row group per file.
    pub fn write_shared(
        &mut self,
        devices: &[&str],
        batch: &RecordBatch,
        times: &[i64],
        seqs: &[u64],
    ) -> Result<()> {
        debug_assert!(self.shared_files);
        self.write_runs("", batch, times, |run| {
            let mut spans: Vec<(&str, (u64, RowMark))> = Vec::new();
            for ((&device, &seq), &time) in devices
                .get(run.clone())
                .unwrap_or_default()
                .iter()
                .zip(seqs.get(run.clone()).unwrap_or_default())
                .zip(times.get(run).unwrap_or_default())
            {
                match spans.last_mut() {
                    Some((previous, (lo, last))) if *previous == device => {
                        *lo = (*lo).min(seq);
                        *last = (*last).max((seq, time));
                    }
                    _ => spans.push((device, (seq, (seq, time)))),
                }
            }
            spans
        })
    }

    /// Cuts the rows into runs of one day and span and writes each to its
    /// file; `seqs_of` gives per device of a run's rows their lowest seq
    /// and last row.
    fn write_runs<'d>(
        &mut self,
        group: &str,
        batch: &RecordBatch,
        times: &[i64],
        seqs_of: impl Fn(Range<usize>) -> Vec<(&'d str, (u64, RowMark))>,
    ) -> Result<()> {
        debug_assert_eq!(batch.num_rows(), times.len());
        let span = self.rotation.span_ns;
        let mut start = 0;
        while start < times.len() {
            let key = (utc_day(times[start]), times[start].div_euclid(span));
            // The run's rows lie in one day and one span: a range check per
            // row instead of two divisions.
            let (from, until) = run_bounds(key.0, key.1, span);
            let len = times[start..]
                .iter()
                .take_while(|&&t| {
                    (from <= t && t < until) || (utc_day(t), t.div_euclid(span)) == key
                })
                .count();
            let run_seqs = seqs_of(start..start + len);
            self.write_run(group, key.0, key.1, &batch.slice(start, len), &run_seqs)?;
            start += len;
        }
        self.publish_closed()
    }

    fn write_run(
        &mut self,
        group: &str,
        day: i64,
        slot: i64,
        rows: &RecordBatch,
        seqs: &[(&str, (u64, RowMark))],
    ) -> Result<()> {
        // A device's file of the day takes its late rows; shared files
        // are one per span.
        let map_key = (
            group.to_string(),
            day,
            if self.shared_files { slot } else { 0 },
        );
        let stale = self
            .open
            .get(&map_key)
            .is_some_and(|f| slot > f.slot || f.schema != rows.schema());
        if stale {
            self.close_file(&map_key)?;
        }
        if !self.open.contains_key(&map_key) {
            let file = self.open_file(group, day, slot, rows.schema())?;
            self.open.insert(map_key.clone(), file);
        }
        let Some(file) = self.open.get_mut(&map_key) else {
            return Ok(());
        };
        self.rows_written += rows.num_rows() as u64;
        file.rows_at_last_write = self.rows_written;
        for &(device, (lo, hi)) in seqs {
            match file.seqs.get_mut(device) {
                Some((a, b)) => {
                    *a = (*a).min(lo);
                    *b = (*b).max(hi);
                }
                None => {
                    file.seqs.insert(device.to_string(), (lo, hi));
                }
            }
        }
        // Each write ends its row group unless told otherwise: no column
        // writers stay open between writes (callers hand whole row groups).
        let per_write = self.row_group_per_write;
        file.writer
            .write(rows)
            .and_then(|()| {
                if per_write {
                    file.writer.flush()
                } else {
                    Ok(())
                }
            })
            .map_err(|source| ParquetSinkError::Parquet {
                path: file.temp_path.clone(),
                source,
            })?;
        if estimated_file_size(file) >= self.rotation.max_bytes {
            self.close_file(&map_key)?;
        }
        Ok(())
    }

    fn open_file(
        &mut self,
        group: &str,
        day: i64,
        slot: i64,
        schema: SchemaRef,
    ) -> Result<OpenFile> {
        let dir = if self.shared_files {
            date_dir(&self.out.join(self.table), day)
        } else {
            partition_dir(&self.out, self.table, group, day)
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| ParquetSinkError::io("create folder", &dir, e))?;
        let mut seq = match self.next_seq.get(&dir) {
            Some(&seq) => seq,
            None => next_seq(&dir)?,
        };
        // create_new: another writer on the same folder never loses a file to us.
        let (file, temp_path) = loop {
            let temp_path = dir.join(owned_temp_file_name(seq, self.temp_owner.as_deref()));
            let taken = dir.join(part_file_name(seq)).exists();
            if !taken {
                match OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&temp_path)
                {
                    Ok(file) => break (file, temp_path),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(ParquetSinkError::io("create file", &temp_path, e)),
                }
            }
            seq += 1;
        };
        self.next_seq.insert(dir.clone(), seq + 1);
        let properties = (self.properties_for)(&schema);
        let writer = if self.parallel_columns {
            ParallelArrowWriter::try_new(file, schema.clone(), properties)
                .map(FileEncoder::Parallel)
        } else {
            ArrowWriter::try_new(file, schema.clone(), Some(properties)).map(FileEncoder::Serial)
        }
        .map_err(|source| ParquetSinkError::Parquet {
            path: temp_path.clone(),
            source,
        })?;
        Ok(OpenFile {
            writer,
            schema,
            final_path: dir.join(part_file_name(seq)),
            temp_path,
            slot,
            rows_at_last_write: self.rows_written,
            day,
            seqs: HashMap::new(),
        })
    }

    fn close_file(&mut self, key: &FileKey) -> Result<()> {
        let Some(mut file) = self.open.remove(key) else {
            return Ok(());
        };
        if self.deferred_commit {
            let mut devices: Vec<DeviceSeqs> = std::mem::take(&mut file.seqs)
                .into_iter()
                .map(|(device, (min_seq, last))| DeviceSeqs {
                    device,
                    min_seq,
                    last,
                })
                .collect();
            devices.sort_by(|a, b| a.device.cmp(&b.device));
            let sealed = SealedFile {
                temp_path: file.temp_path.clone(),
                final_path: file.final_path.clone(),
                day: file.day,
                devices,
            };
            // Synced at the commit, with every other file it publishes.
            seal_file(file)?;
            self.sealed.push(sealed);
        } else {
            let paths = (file.temp_path.clone(), file.final_path.clone());
            seal_file(file)?;
            self.closed.push(paths);
        }
        Ok(())
    }

    /// Syncs and renames the files closed since the last publish, side by side.
    pub(crate) fn publish_closed(&mut self) -> Result<()> {
        if self.closed.is_empty() {
            return Ok(());
        }
        let closed = std::mem::take(&mut self.closed);
        let (published, result) = publish_files(&closed, self.rotation.fsync);
        self.finished.extend(published);
        result
    }

    /// Closes the files of devices that went quiet, so their data becomes
    /// visible without waiting for `close`: files that got no rows while the
    /// table took `idle_rows` others, and whose span ended `grace_ns` before
    /// `now_ns` (the newest data time). Needing both keeps a device whose
    /// clock runs ahead from closing the files of devices still streaming.
    pub fn close_idle(&mut self, now_ns: i64, grace_ns: i64, idle_rows: u64) -> Result<()> {
        let rows_written = self.rows_written;
        let idle: Vec<FileKey> = self
            .open
            .iter()
            .filter(|(_, f)| {
                let quiet = rows_written.saturating_sub(f.rows_at_last_write) >= idle_rows;
                let span_ended = self.slot_ended(f.slot, now_ns, grace_ns);
                quiet && span_ended
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.close_files(idle)
    }

    /// Whether the span holding `time_ns` ended `grace_ns` before `now_ns`.
    pub fn span_ended(&self, time_ns: i64, now_ns: i64, grace_ns: i64) -> bool {
        self.slot_ended(time_ns.div_euclid(self.rotation.span_ns), now_ns, grace_ns)
    }

    fn slot_ended(&self, slot: i64, now_ns: i64, grace_ns: i64) -> bool {
        slot.saturating_add(1)
            .saturating_mul(self.rotation.span_ns)
            .saturating_add(grace_ns)
            <= now_ns
    }

    /// Groups (devices, or `""` for shared files) with an open file whose
    /// span ended `grace_ns` before `now_ns`.
    pub fn devices_with_ended_spans(&self, now_ns: i64, grace_ns: i64) -> Vec<String> {
        let mut devices: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| self.slot_ended(f.slot, now_ns, grace_ns))
            .map(|((device, _, _), _)| device.clone())
            .collect();
        devices.sort();
        devices.dedup();
        devices
    }

    /// Finishes the files of `device` whose span ended `grace_ns` before `now_ns`.
    pub fn finish_ended_spans(&mut self, device: &str, now_ns: i64, grace_ns: i64) -> Result<()> {
        let keys: Vec<FileKey> = self
            .open
            .iter()
            .filter(|((d, _, _), f)| d == device && self.slot_ended(f.slot, now_ns, grace_ns))
            .map(|(k, _)| k.clone())
            .collect();
        self.close_files(keys)
    }

    /// Closes every open file of `device` without publishing it: the caller
    /// publishes several devices' files as one group ([`Self::publish_closed`]).
    pub(crate) fn seal_device(&mut self, device: &str) -> Result<()> {
        let keys = self.open_keys_of(device);
        self.close_keys(keys)
    }

    fn open_keys_of(&self, device: &str) -> Vec<FileKey> {
        self.open
            .keys()
            .filter(|(d, _, _)| d == device)
            .cloned()
            .collect()
    }

    /// Finishes every open file; tries them all and reports the first failure.
    pub fn close_all(&mut self) -> Result<()> {
        let keys: Vec<FileKey> = self.open.keys().cloned().collect();
        self.close_files(keys)
    }

    /// Finishes these files in key order and publishes them as one group;
    /// tries them all and reports the first failure.
    fn close_files(&mut self, keys: Vec<FileKey>) -> Result<()> {
        let closed = self.close_keys(keys);
        let published = self.publish_closed();
        closed.and(published)
    }

    /// Closes these files in key order; tries them all and reports the
    /// first failure.
    fn close_keys(&mut self, mut keys: Vec<FileKey>) -> Result<()> {
        keys.sort();
        let mut first_error = None;
        for key in keys {
            if let Err(e) = self.close_file(&key) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Footer bytes per column chunk (chunk metadata with statistics, column
/// and offset index); they are only written at `finish`, so the encoder's
/// byte count misses them, and with small row groups they dominate.
const FOOTER_BYTES_PER_COLUMN_CHUNK: u64 = 160;

/// The times, ns, of day `day` and span `slot` (of `span_ns`): `from..until`,
/// clamped to i64 (a time at `i64::MAX` itself falls outside).
fn run_bounds(day: i64, slot: i64, span_ns: i64) -> (i64, i64) {
    let (day, slot, span) = (i128::from(day), i128::from(slot), i128::from(span_ns));
    let day_ns = i128::from(NS_PER_DAY);
    let from = (day * day_ns).max(slot * span);
    let until = ((day + 1) * day_ns).min((slot + 1) * span);
    let clamp = |ns: i128| ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (clamp(from), clamp(until))
}

/// What the file would measure if finished now.
fn estimated_file_size(file: &OpenFile) -> u64 {
    let written = file.writer.size_so_far() as u64;
    let row_groups = file.writer.flushed_row_groups() as u64 + 1;
    let columns = file.schema.fields().len() as u64;
    written + row_groups * columns * FOOTER_BYTES_PER_COLUMN_CHUNK
}

/// Writes the footer; the file keeps its temporary name, unsynced.
fn seal_file(mut file: OpenFile) -> Result<()> {
    file.writer
        .finish()
        .map_err(|source| ParquetSinkError::Parquet {
            path: file.temp_path.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_s_bounds_hold_the_times_of_its_day_and_span() {
        // Spans that divide a day, that do not (7 h), and a day-long one;
        // times around midnight, span edges and the ends of i64.
        let hour = 3_600_000_000_000_i64;
        for span in [10_000_000_000, hour, 7 * hour, NS_PER_DAY] {
            let edges = [
                0,
                1,
                -1,
                NS_PER_DAY,
                3 * NS_PER_DAY + 5,
                7 * hour,
                -7 * hour,
            ];
            let times = edges.iter().flat_map(|&t| [t - 1, t, t + 1]).chain([
                i64::MIN,
                i64::MIN + 1,
                i64::MAX,
                i64::MAX - 1,
            ]);
            for t in times {
                let (day, slot) = (utc_day(t), t.div_euclid(span));
                let (from, until) = run_bounds(day, slot, span);
                let inside = |x: i64| from <= x && x < until;
                let same = |x: i64| (utc_day(x), x.div_euclid(span)) == (day, slot);
                for x in [
                    t,
                    t.saturating_sub(1),
                    t.saturating_add(1),
                    from,
                    until - 1,
                    until,
                ] {
                    // Inside the bounds is the same day and span, except
                    // that i64::MAX itself lies past a clamped end.
                    if x != i64::MAX {
                        assert_eq!(inside(x), same(x), "span {span}, t {t}, x {x}");
                    }
                }
            }
        }
    }
}
