//! All tables of one dataset, written synchronously: rows are buffered per
//! table, encoded a batch at a time, grouped by device, and handed to each
//! table's [`PartitionedWriter`]. The Parquet output runs one on its own
//! thread.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesBuilder, DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT,
};

use super::aggregates;
use super::commit::{self, CommitRecovery, RowMark};
use super::config::{DatasetInfo, FileLayout, ParquetConfig};
use super::durable;
use super::error::{ParquetSinkError, Result};
use super::events;
use super::half_cycle;
use super::harmonics::{self, HarmonicRow};
use super::held_rows::{HeldRows, HeldSpans, RowIdentity};
use super::latch;
use super::pinst;
use super::pq_events;
use super::raw::{self, RawBuffer};
use super::schema::{file_metadata, keys, PartitionRow, TableSpec};
use super::windows;
use super::writer::{PartitionedWriter, PropertiesFor, Rotation, SealedFile};
use crate::model::{
    AggregateRow, DeviceInfo, EventRow, HalfCycleRow, LatchRow, PinstRow, PqEventRow, WindowRow,
};
use crate::wire::SampleBlock;

/// How long after its span ended a quiet device's file stays open for late rows.
const LATE_ROWS_GRACE_NS: i64 = 60_000_000_000;
/// A device's file counts as quiet once the table took this many batches
/// of other rows since the file's last row.
const QUIET_AFTER_BATCHES: u64 = 16;
/// Most samples encoded at once in the raw archive.
const RAW_BATCH_SAMPLES: usize = 65_536;

/// What a closed dataset holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetSummary {
    /// Every finished file, per table in the order they were closed.
    pub files: Vec<PathBuf>,
    /// Rows written per table.
    pub rows: BTreeMap<&'static str, u64>,
    /// Rows not written per table because the dataset already held them
    /// (a batch run into an existing dataset; only tables that skipped any).
    pub already_held: BTreeMap<&'static str, u64>,
}

/// One metric table: its columns, its files, and rows waiting to be encoded.
///
/// Rows wait per device (with shared files: all devices' together) until
/// they make a whole row group, which is then encoded and flushed at once.
/// An open file thus holds no column writers between row groups (about 1 MB
/// per file with a hundred-odd columns): with hundreds of devices streaming
/// into the sink that is what bounds memory.
pub(crate) struct Table<R> {
    spec: TableSpec<R>,
    writer: PartitionedWriter,
    time_of: fn(&R) -> i64,
    /// Per device: rows waiting (with the seq of the record each came
    /// from), and the table's push count at its last one.
    staged: HashMap<String, (Vec<(R, u64)>, u64)>,
    row_group_rows: usize,
    pushes: usize,
    total_pushes: u64,
    latest_ns: i64,
    rows: u64,
    /// How long after its span ended a file stays open for late rows, ns.
    grace_ns: i64,
    /// What the dataset held before this run (None: not checked).
    held: Option<HeldRows>,
    /// The text that tells apart rows of one time (see [`RowIdentity`]).
    kind_of: Option<fn(&R) -> &str>,
}

impl<R: PartitionRow> Table<R> {
    pub(crate) fn new(
        spec: TableSpec<R>,
        writer: PartitionedWriter,
        time_of: fn(&R) -> i64,
        row_group_rows: usize,
    ) -> Self {
        Table {
            spec,
            writer,
            time_of,
            staged: HashMap::new(),
            row_group_rows: row_group_rows.max(1),
            pushes: 0,
            total_pushes: 0,
            latest_ns: i64::MIN,
            rows: 0,
            grace_ns: LATE_ROWS_GRACE_NS,
            held: None,
            kind_of: None,
        }
    }

    /// Rows that tell apart by `kind_of` (stored in `identity.kind_column`).
    pub(crate) fn with_kind(mut self, kind_of: fn(&R) -> &str) -> Self {
        self.kind_of = Some(kind_of);
        self
    }

    /// From now on rows the dataset under `out` already holds are skipped.
    pub(crate) fn skip_held_rows(&mut self, out: &std::path::Path, identity: RowIdentity) {
        let shared = self.writer.shares_files();
        self.held = Some(HeldRows::new(out, self.writer.table(), identity, shared));
    }

    /// Rows skipped because the dataset already held them.
    pub(crate) fn already_held(&self) -> u64 {
        self.held.as_ref().map_or(0, HeldRows::skipped)
    }

    /// Files stay open this long after their span ended (data time).
    pub(crate) fn with_grace_ns(mut self, grace_ns: i64) -> Self {
        self.grace_ns = grace_ns;
        self
    }

    /// Writes and finishes the files of spans that ended `grace` before
    /// `now` (the newest data time), whatever the row count: on a clock, so
    /// a streaming sink's files become visible a grace after their span.
    pub(crate) fn seal_ended(&mut self, now: i64) -> Result<()> {
        let grace = self.grace_ns;
        if now == i64::MIN {
            return Ok(());
        }
        let time_of = self.time_of;
        let mut names: Vec<String> = self
            .staged
            .iter()
            .filter(|(_, (rows, _))| {
                rows.first()
                    .is_some_and(|(r, _)| self.writer.span_ended(time_of(r), now, grace))
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.extend(self.writer.devices_with_ended_spans(now, grace));
        names.sort();
        names.dedup();
        for name in names {
            self.write_device(&name)?;
            self.writer.finish_ended_spans(&name, now, grace)?;
        }
        Ok(())
    }

    pub(crate) fn push(&mut self, row: R, batch_rows: usize) -> Result<()> {
        self.push_from(row, 0, batch_rows)
    }

    /// [`Self::push`] of a row made from record log entry `seq`.
    pub(crate) fn push_from(&mut self, row: R, seq: u64, batch_rows: usize) -> Result<()> {
        self.latest_ns = self.latest_ns.max((self.time_of)(&row));
        self.total_pushes += 1;
        let shared = self.writer.shares_files();
        let group = group_of(shared, &row);
        if !self.staged.contains_key(group) {
            self.staged.insert(group.to_string(), (Vec::new(), 0));
        }
        let Some((staged, last_push)) = self.staged.get_mut(group) else {
            return Ok(());
        };
        staged.push((row, seq));
        *last_push = self.total_pushes;
        if staged.len() >= self.row_group_rows {
            let group = group_of(shared, &staged[0].0).to_string();
            self.write_device(&group)?;
        }
        self.pushes += 1;
        if self.pushes >= batch_rows {
            self.pushes = 0;
            let (now, grace) = (self.latest_ns, self.grace_ns);
            let idle_rows = QUIET_AFTER_BATCHES * batch_rows as u64;
            // A device that sent nothing while the table took `idle_rows`
            // rows, and whose waiting rows all lie in spans that ended, went
            // quiet: its rows go out and its files are finished.
            let mut quiet: Vec<String> = self
                .staged
                .iter()
                .filter(|(_, (rows, last_push))| {
                    self.total_pushes - last_push >= idle_rows
                        && rows.last().is_some_and(|(r, _)| {
                            self.writer.span_ended((self.time_of)(r), now, grace)
                        })
                })
                .map(|(name, _)| name.clone())
                .collect();
            quiet.sort();
            for name in quiet {
                self.write_device(&name)?;
                self.writer.finish_ended_spans(&name, now, grace)?;
            }
            if self.writer.shares_files() {
                // Waiting rows of a span that ended go to its file before
                // the file closes for want of rows.
                let ended = self.staged.values().any(|(rows, _)| {
                    rows.iter()
                        .any(|(r, _)| self.writer.span_ended((self.time_of)(r), now, grace))
                });
                if ended {
                    self.write_device("")?;
                }
            } else {
                // A streaming device's rows go to the file of a span that
                // ended, so its rows of the next span finish that file.
                for name in self.writer.devices_with_ended_spans(now, grace) {
                    self.write_device(&name)?;
                }
            }
            self.writer.close_idle(now, grace, idle_rows)?;
        }
        Ok(())
    }

    /// Encodes the waiting rows of a device (or, with shared files, of
    /// every device: group `""`) as a row group.
    fn write_device(&mut self, group: &str) -> Result<()> {
        let Some((staged, _)) = self.staged.get_mut(group) else {
            return Ok(());
        };
        if staged.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(staged);
        // Rows a replay brings again that an earlier run already made visible.
        let writer = &self.writer;
        let time_of = self.time_of;
        rows.retain(|(r, seq)| *seq == 0 || !writer.is_committed(r.partition(), *seq, time_of(r)));
        if let Some(held) = &mut self.held {
            let kind_of = self.kind_of;
            rows.retain(|(r, _)| {
                !held.holds(r.partition(), time_of(r), kind_of.map(|kind| kind(r)))
            });
        }
        if rows.is_empty() {
            return Ok(());
        }
        if writer.shares_files() {
            // One row group per file, each device's rows together in it
            // (stable: a device's rows keep their order).
            rows.sort_by(|(a, _), (b, _)| {
                (writer.file_of(time_of(a)), a.partition())
                    .cmp(&(writer.file_of(time_of(b)), b.partition()))
            });
        }
        let refs: Vec<&R> = rows.iter().map(|(r, _)| r).collect();
        let batch = self.spec.build(&refs)?;
        let times: Vec<i64> = rows.iter().map(|(r, _)| time_of(r)).collect();
        let seqs: Vec<u64> = rows.iter().map(|(_, seq)| *seq).collect();
        if self.writer.shares_files() {
            let devices: Vec<&str> = rows.iter().map(|(r, _)| r.partition()).collect();
            self.writer.write_shared(&devices, &batch, &times, &seqs)?;
        } else {
            self.writer
                .write_with_seqs(group, &batch, &times, Some(&seqs))?;
        }
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Writes each device's waiting rows and closes its files at once (an
    /// open file holds its buffers), then publishes them all as one group;
    /// a device whose rows failed to write keeps its files open.
    fn finish_devices(&mut self, devices: &[&str]) -> Result<()> {
        if self.writer.shares_files() {
            // Other devices' rows share the files: they finish with their span.
            return Ok(());
        }
        let mut result = Ok(());
        for &device in devices {
            let written = self.write_device(device);
            self.staged.remove(device);
            let sealed = written.and_then(|()| self.writer.seal_device(device));
            result = result.and(sealed);
        }
        let published = self.writer.publish_closed();
        result.and(published)
    }

    /// Orders the rows not yet encoded (a table clustered by a key).
    pub(crate) fn sort_pending_by(&mut self, mut order: impl FnMut(&R, &R) -> std::cmp::Ordering) {
        for (rows, _) in self.staged.values_mut() {
            rows.sort_by(|a, b| order(&a.0, &b.0));
        }
    }

    pub(crate) fn writer(&self) -> &PartitionedWriter {
        &self.writer
    }

    /// The lowest record seq whose rows are not yet in visible files.
    pub(crate) fn pending_min_seq(&self) -> Option<u64> {
        let staged = self
            .staged
            .values()
            .flat_map(|(rows, _)| rows.iter().map(|(_, seq)| *seq))
            .filter(|seq| *seq > 0)
            .min();
        staged
            .into_iter()
            .chain(self.writer.pending_min_seq())
            .min()
    }

    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Encodes every device's waiting rows, devices in name order.
    pub(crate) fn flush(&mut self) -> Result<()> {
        let mut names: Vec<String> = self.staged.keys().cloned().collect();
        names.sort();
        let mut result = Ok(());
        for name in names {
            if let Err(e) = self.write_device(&name) {
                result = result.and(Err(e));
            }
        }
        self.staged.retain(|_, (rows, _)| !rows.is_empty());
        result
    }

    /// Encodes what is waiting and finishes every open file; the table
    /// stays usable (new rows open new files).
    pub(crate) fn close(&mut self) -> Result<()> {
        let flushed = self.flush();
        self.staged.clear();
        flushed.and(self.writer.close_all())
    }
}

/// Whose rows `row` waits with: its device's, or with shared files every
/// device's together (group `""`).
fn group_of<R: PartitionRow>(shared_files: bool, row: &R) -> &str {
    if shared_files {
        ""
    } else {
        row.partition()
    }
}

/// The raw archive: per-device sample buffers and their files.
struct RawTable {
    writer: PartitionedWriter,
    buffers: HashMap<Arc<str>, RawBuffer>,
    batch_samples: usize,
    latest_ns: i64,
    rows: u64,
    /// Per device: the record seq of its buffered samples, as runs of
    /// (seq, samples).
    buffer_seqs: HashMap<Arc<str>, Vec<(u64, usize)>>,
    /// What the archive held before this run (None: not checked).
    held: Option<HeldSpans>,
}

impl RawTable {
    fn push(&mut self, device: &DeviceInfo, block: &SampleBlock, seq: u64) -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        // A replay brings blocks whose samples are visible already: all of
        // them, or (a block across a span edge, the first span's file
        // committed) the first ones.
        let visible = if seq > 0 {
            let is_visible = |index: u64| {
                self.writer
                    .is_committed(&device.name, seq, block.time_of(index))
            };
            (block.first_index..)
                .take(block.len())
                .take_while(|&n| is_visible(n))
                .count()
        } else {
            0
        };
        if visible == block.len() {
            return Ok(());
        }
        let rest;
        let block = if visible > 0 {
            rest = SampleBlock {
                first_index: block.first_index + visible as u64,
                gap_before: 0,
                channels: block
                    .channels
                    .iter()
                    .map(|c| c[visible..].to_vec())
                    .collect(),
                ..*block
            };
            &rest
        } else {
            block
        };
        if let Some(held) = &mut self.held {
            let first_ns = block.time_of(block.first_index);
            let last_ns = block.time_of(block.first_index + block.len() as u64 - 1);
            let period_ns = 1_000_000_000 / i64::from(block.rate.max(1)) + 1;
            if held.holds(
                &device.name,
                first_ns,
                last_ns,
                period_ns,
                block.len() as u64,
            ) {
                return Ok(());
            }
        }
        let stale = self
            .buffers
            .get(&device.name)
            .is_some_and(|b| !b.accepts(block));
        if stale {
            self.flush_device(&device.name)?;
            self.buffers.remove(&device.name);
        }
        let buffer = self
            .buffers
            .entry(device.name.clone())
            .or_insert_with(|| RawBuffer::new(device.clone(), block));
        buffer.push(block)?;
        if seq > 0 {
            let runs = self.buffer_seqs.entry(device.name.clone()).or_default();
            match runs.last_mut() {
                Some((last, samples)) if *last == seq => *samples += block.len(),
                _ => runs.push((seq, block.len())),
            }
        }
        self.latest_ns = self
            .latest_ns
            .max(block.time_of(block.first_index + block.len() as u64 - 1));
        if buffer.len() >= self.batch_samples {
            self.flush_device(&device.name)?;
            self.writer.close_idle(
                self.latest_ns,
                LATE_ROWS_GRACE_NS,
                QUIET_AFTER_BATCHES * self.batch_samples as u64,
            )?;
        }
        Ok(())
    }

    fn flush_device(&mut self, name: &str) -> Result<()> {
        let Some(buffer) = self.buffers.get_mut(name) else {
            return Ok(());
        };
        if buffer.len() == 0 {
            return Ok(());
        }
        let (batch, times) = buffer.take_batch()?;
        self.rows += times.len() as u64;
        let seqs = self.buffer_seqs.remove(name).map(|runs| {
            runs.iter()
                .flat_map(|&(seq, samples)| std::iter::repeat_n(seq, samples))
                .collect::<Vec<u64>>()
        });
        self.writer
            .write_with_seqs(name, &batch, &times[..], seqs.as_deref())?;
        buffer.recycle(batch, times);
        Ok(())
    }

    fn pending_min_seq(&self) -> Option<u64> {
        let buffered = self
            .buffer_seqs
            .values()
            .flat_map(|runs| runs.iter().map(|&(seq, _)| seq))
            .min();
        buffered
            .into_iter()
            .chain(self.writer.pending_min_seq())
            .min()
    }

    /// As `Table::finish_devices`.
    fn finish_devices(&mut self, devices: &[&str]) -> Result<()> {
        let mut result = Ok(());
        for &device in devices {
            let sealed = self.flush_device(device).and_then(|()| {
                self.buffers.remove(device);
                self.writer.seal_device(device)
            });
            result = result.and(sealed);
        }
        let published = self.writer.publish_closed();
        result.and(published)
    }

    fn close(&mut self) -> Result<()> {
        let mut names: Vec<Arc<str>> = self.buffers.keys().cloned().collect();
        names.sort();
        let mut result = Ok(());
        for name in names {
            if let Err(e) = self.flush_device(&name) {
                result = result.and(Err(e));
            }
        }
        self.buffers.clear();
        result.and(self.writer.close_all())
    }
}

/// Every enabled table of one dataset.
pub struct DatasetWriter {
    batch_rows: usize,
    windows: Option<Table<WindowRow>>,
    latch: Option<Table<LatchRow>>,
    aggregates: Option<Table<AggregateRow>>,
    harmonics: Option<Table<HarmonicRow>>,
    events: Option<Table<EventRow>>,
    pq_events: Option<Table<PqEventRow>>,
    half_cycle: Option<Table<HalfCycleRow>>,
    pinst: Option<Table<PinstRow>>,
    raw: Option<RawTable>,
    closed: bool,
    out: PathBuf,
    fsync: bool,
    /// The record log entry the rows being written come from (0: none).
    current_seq: u64,
    /// `Some(log id)` once files wait for [`Self::commit`] to become visible.
    commit_log: Option<String>,
    /// See [`ParquetConfig::commit_owner`].
    commit_owner: Option<String>,
}

pub(crate) fn base_properties(
    config: &ParquetConfig,
    row_group_rows: usize,
) -> WriterPropertiesBuilder {
    // validate() checked the level; the fallback only keeps this infallible.
    let level = ZstdLevel::try_new(config.zstd_level).unwrap_or_default();
    // No dictionaries: measured values are nearly all distinct, so each
    // column would grow a hash table up to the 1 MB dictionary limit before
    // falling back to plain. With hundreds of devices' files open at once
    // (the stream sink) that was most of the memory; ZSTD still squeezes
    // the repeated strings.
    // A row group that fits in one data page gains nothing from a page
    // index: its chunk statistics say the same. parquet-rs holds every row
    // group's index until the file ends, a fifth of the ~80 kB a 79-column
    // row group keeps in memory (a sink's hourly file of 512-row groups
    // reaches 2-3 MB per meter).
    let statistics = if row_group_rows <= DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT {
        EnabledStatistics::Chunk
    } else {
        EnabledStatistics::Page
    };
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_statistics_enabled(statistics)
}

impl DatasetWriter {
    /// Checks the settings and that `config.out` can be created and written,
    /// so a bad output folder is reported before any data arrives.
    pub fn create(config: &ParquetConfig, info: &DatasetInfo) -> Result<Self> {
        config.validate()?;
        probe_writable(&config.out)?;
        let rotation = Rotation {
            span_ns: config.max_file_span_ns(),
            max_bytes: config.max_file_bytes,
            fsync: config.fsync,
        };
        let metric_writer = |table: &'static str, with_thd: bool| {
            let properties = base_properties(config, config.row_group_rows)
                .set_key_value_metadata(Some(file_metadata(table, info, with_thd, &[])))
                .build();
            let properties_for: PropertiesFor = Box::new(move |_| properties.clone());
            let writer = PartitionedWriter::new(&config.out, table, rotation, properties_for);
            match config.layout {
                FileLayout::DeviceFolders => writer,
                FileLayout::SharedFiles => writer.sharing_files(),
            }
        };
        let tables = config.tables;
        let raw = tables.raw.then(|| {
            let raw_config = config.clone();
            let info = info.clone();
            let properties_for: PropertiesFor = Box::new(move |schema| {
                let measures = schema
                    .metadata()
                    .get(keys::MEASURES)
                    .cloned()
                    .unwrap_or_default();
                let builder = base_properties(&raw_config, raw_config.raw_row_group_rows)
                    .set_key_value_metadata(Some(file_metadata(
                        raw::TABLE,
                        &info,
                        false,
                        &[(keys::MEASURES, measures)],
                    )));
                // validate() checked the level, as base_properties' own.
                let sample_level =
                    ZstdLevel::try_new(raw_config.raw_zstd_level).unwrap_or_default();
                raw::column_properties(builder, schema, sample_level).build()
            });
            RawTable {
                writer: PartitionedWriter::new(&config.out, raw::TABLE, rotation, properties_for)
                    .accumulating_row_groups()
                    .encoding_columns_in_parallel(),
                buffers: HashMap::new(),
                batch_samples: RAW_BATCH_SAMPLES.min(config.raw_row_group_rows),
                latest_ns: i64::MIN,
                rows: 0,
                buffer_seqs: HashMap::new(),
                held: None,
            }
        });
        Ok(DatasetWriter {
            batch_rows: config.batch_rows,
            windows: tables.windows.then(|| {
                Table::new(
                    windows::spec(),
                    metric_writer(windows::TABLE, true),
                    |r: &WindowRow| r.metrics.start_unix_ns,
                    config.row_group_rows,
                )
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            // Latch windows are the windows of latch-mode streams, so the
            // `windows` switch covers them too.
            latch: tables.latch.then(|| {
                Table::new(
                    latch::spec(),
                    metric_writer(latch::TABLE, false),
                    |r: &LatchRow| r.window.start_unix_ns,
                    config.row_group_rows,
                )
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            aggregates: tables.aggregates.then(|| {
                Table::new(
                    aggregates::spec(),
                    metric_writer(aggregates::TABLE, true),
                    |r: &AggregateRow| r.aggregate.start_unix_ns,
                    config.row_group_rows,
                )
                .with_kind(|r: &AggregateRow| r.kind.as_str())
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            harmonics: tables.harmonics.then(|| {
                Table::new(
                    harmonics::spec(),
                    metric_writer(harmonics::TABLE, true),
                    |r: &HarmonicRow| r.window_start_unix_ns,
                    config.row_group_rows,
                )
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            events: tables.events.then(|| {
                Table::new(
                    events::spec(),
                    metric_writer(events::TABLE, false),
                    |r: &EventRow| r.time_unix_ns,
                    config.row_group_rows,
                )
                .with_kind(|r: &EventRow| r.kind.as_str())
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            pq_events: tables.pq_events.then(|| {
                Table::new(
                    pq_events::spec(),
                    metric_writer(pq_events::TABLE, false),
                    |r: &PqEventRow| r.event.start_unix_ns,
                    config.row_group_rows,
                )
                .with_kind(|r: &PqEventRow| r.event.kind.name())
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            half_cycle: tables.half_cycle.then(|| {
                Table::new(
                    half_cycle::spec(),
                    metric_writer(half_cycle::TABLE, false),
                    |r: &HalfCycleRow| r.value.start_unix_ns,
                    config.row_group_rows,
                )
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            pinst: tables.pinst.then(|| {
                Table::new(
                    pinst::spec(),
                    metric_writer(pinst::TABLE, false),
                    |r: &PinstRow| r.value.time_unix_ns,
                    config.row_group_rows,
                )
                .with_grace_ns(config.late_rows_grace_ns())
            }),
            raw,
            closed: false,
            out: config.out.clone(),
            fsync: config.fsync,
            current_seq: 0,
            commit_log: None,
            commit_owner: config.commit_owner.clone(),
        })
    }

    /// Files become visible only at [`Self::commit`], and rows of records a
    /// commit of this log (`log_id`) already made visible are skipped: a
    /// replay of the record log then writes every row exactly once. Finishes
    /// an interrupted commit and removes uncommitted files first.
    pub fn with_commits(mut self, log_id: &str) -> Result<(Self, CommitRecovery)> {
        let owner = self.commit_owner.clone();
        let recovery = commit::recover(&self.out, log_id, owner.as_deref())?;
        let committed_of = |table: &str| -> HashMap<(String, i64), RowMark> {
            recovery
                .committed
                .iter()
                .filter(|((t, _, _), _)| t == table)
                .map(|((_, device, day), last)| ((device.clone(), *day), *last))
                .collect()
        };
        self.for_each_writer(|writer| {
            let committed = committed_of(writer.table());
            writer.defer_commits(committed, owner.as_deref());
        });
        self.commit_log = Some(log_id.to_string());
        Ok((self, recovery))
    }

    /// Rows the dataset already holds (same device, time and kind, in a
    /// finished file from an earlier run; for the raw archive, a block whose
    /// samples all lie in its row groups' spans) are skipped, so a batch run
    /// into an existing dataset adds only what is new. Not for a dataset fed
    /// from the record log: its commits already keep replays out.
    pub fn skipping_held_rows(mut self) -> Self {
        let out = self.out.clone();
        let identity = |time_column, kind_column| RowIdentity {
            time_column,
            kind_column,
        };
        if let Some(t) = &mut self.windows {
            t.skip_held_rows(&out, identity("window_start", None));
        }
        if let Some(t) = &mut self.latch {
            t.skip_held_rows(&out, identity("window_start", None));
        }
        if let Some(t) = &mut self.aggregates {
            t.skip_held_rows(&out, identity("interval_start", Some("interval")));
        }
        if let Some(t) = &mut self.harmonics {
            t.skip_held_rows(&out, identity("window_start", None));
        }
        if let Some(t) = &mut self.events {
            t.skip_held_rows(&out, identity("time", Some("kind")));
        }
        if let Some(t) = &mut self.pq_events {
            t.skip_held_rows(&out, identity("start", Some("kind")));
        }
        if let Some(t) = &mut self.half_cycle {
            t.skip_held_rows(&out, identity("start", None));
        }
        if let Some(t) = &mut self.pinst {
            t.skip_held_rows(&out, identity("time", None));
        }
        if let Some(t) = &mut self.raw {
            t.held = Some(HeldSpans::new(&out, raw::TABLE, "time"));
        }
        self
    }

    /// The rows written next come from record log entry `seq`.
    pub fn at_seq(&mut self, seq: u64) {
        self.current_seq = seq;
    }

    /// Makes every sealed file visible at once (journal, then renames).
    /// Returns how many files it published.
    pub fn commit(&mut self) -> Result<usize> {
        let Some(log_id) = self.commit_log.clone() else {
            return Ok(0);
        };
        let mut sealed: Vec<(usize, Vec<SealedFile>)> = Vec::new();
        let mut index = 0;
        self.for_each_writer(|writer| {
            sealed.push((index, writer.take_sealed()));
            index += 1;
        });
        if sealed.iter().all(|(_, files)| files.is_empty()) {
            return Ok(0);
        }
        // The journal holds the state after this commit.
        let mut committed = std::collections::BTreeMap::new();
        let mut index = 0;
        self.for_each_writer(|writer| {
            for (device, day, last) in writer.committed() {
                committed.insert((writer.table().to_string(), device.to_string(), day), last);
            }
            for file in &sealed[index].1 {
                for device in &file.devices {
                    let last = committed
                        .entry((writer.table().to_string(), device.device.clone(), file.day))
                        .or_insert((0, i64::MIN));
                    *last = (*last).max(device.last);
                }
            }
            index += 1;
        });
        let renames: Vec<(PathBuf, PathBuf)> = sealed
            .iter()
            .flat_map(|(_, files)| files.iter())
            .map(|f| (f.temp_path.clone(), f.final_path.clone()))
            .collect();
        let journal = commit::state(&log_id, &committed, renames);
        // The journal rolls these renames forward after a crash: the files
        // and their names must be on disk before it is.
        let synced = if self.fsync {
            let temps: Vec<&Path> = journal
                .renames
                .iter()
                .map(|(temp, _)| temp.as_path())
                .collect();
            durable::sync_files(&temps).inspect(|()| durable::sync_folders_of(&temps))
        } else {
            Ok(())
        };
        let stored =
            synced.and_then(|()| commit::store(&self.out, self.commit_owner.as_deref(), &journal));
        if let Err(error) = stored {
            // Nothing was renamed: the files wait for the next commit.
            let mut index = 0;
            self.for_each_writer(|writer| {
                writer.restore_sealed(std::mem::take(&mut sealed[index].1));
                index += 1;
            });
            return Err(error);
        }
        // The journal rolls a failed rename forward on the next start.
        let (published, renamed) = durable::publish_files(&journal.renames, false);
        if self.fsync {
            let finals: Vec<&Path> = published.iter().map(PathBuf::as_path).collect();
            durable::sync_folders_of(&finals);
        }
        renamed?;
        let published = published.len();
        let mut index = 0;
        self.for_each_writer(|writer| {
            writer.mark_committed(&sealed[index].1);
            index += 1;
        });
        Ok(published)
    }

    /// The lowest record seq whose rows are not yet visible (None: all are).
    pub fn pending_min_seq(&self) -> Option<u64> {
        self.tables()
            .into_iter()
            .filter_map(|table| table.pending_min_seq())
            .min()
    }

    /// Finishes the files of spans that ended a grace ago (see `Table::seal_ended`).
    /// Data time is the newest of any table: a table that gets rows rarely
    /// (`events`: a connect, a gap) still finishes its files when their span
    /// ended, instead of keeping them open, and the record log's
    /// acknowledgement with them, until shutdown.
    pub fn seal_ended(&mut self) -> Result<()> {
        let now = self
            .tables()
            .into_iter()
            .map(|table| table.latest_ns())
            .max()
            .unwrap_or(i64::MIN);
        let mut result = Ok(());
        for table in self.tables_mut() {
            let sealed = table.seal_ended(now);
            result = result.and(sealed);
        }
        result
    }

    /// Finishes (seals) every open file; with commits on they stay
    /// invisible until the next [`Self::commit`].
    pub fn seal_all(&mut self) -> Result<()> {
        self.close_all_tables()
    }

    fn for_each_writer(&mut self, mut each: impl FnMut(&mut PartitionedWriter)) {
        for table in self.tables_mut() {
            each(table.writer_mut());
        }
    }

    /// The enabled tables, in a fixed order (windows first, raw last).
    fn tables(&self) -> Vec<&dyn DatasetTable> {
        fn table<T: DatasetTable>(table: &Option<T>) -> Option<&dyn DatasetTable> {
            table.as_ref().map(|table| table as &dyn DatasetTable)
        }
        [
            table(&self.windows),
            table(&self.latch),
            table(&self.aggregates),
            table(&self.harmonics),
            table(&self.events),
            table(&self.pq_events),
            table(&self.half_cycle),
            table(&self.pinst),
            table(&self.raw),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// [`Self::tables`], to change.
    fn tables_mut(&mut self) -> Vec<&mut dyn DatasetTable> {
        fn table<T: DatasetTable>(table: &mut Option<T>) -> Option<&mut dyn DatasetTable> {
            table.as_mut().map(|table| table as &mut dyn DatasetTable)
        }
        [
            table(&mut self.windows),
            table(&mut self.latch),
            table(&mut self.aggregates),
            table(&mut self.harmonics),
            table(&mut self.events),
            table(&mut self.pq_events),
            table(&mut self.half_cycle),
            table(&mut self.pinst),
            table(&mut self.raw),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// A window (and, with the harmonics table on, its subgroups).
    pub fn write_window(&mut self, row: WindowRow) -> Result<()> {
        if let Some(table) = &mut self.harmonics {
            for harmonic in harmonics::rows_of_window(&row) {
                table.push_from(harmonic, self.current_seq, self.batch_rows)?;
            }
        }
        match &mut self.windows {
            Some(table) => table.push_from(row, self.current_seq, self.batch_rows),
            None => Ok(()),
        }
    }

    /// A window of a latch-mode (`p,q`, `v,i_RMS`) stream.
    pub fn write_latch(&mut self, row: LatchRow) -> Result<()> {
        match &mut self.latch {
            Some(table) => table.push_from(row, self.current_seq, self.batch_rows),
            None => Ok(()),
        }
    }

    pub fn write_aggregate(&mut self, row: AggregateRow) -> Result<()> {
        match &mut self.aggregates {
            Some(table) => table.push_from(row, self.current_seq, self.batch_rows),
            None => Ok(()),
        }
    }

    pub fn write_event(&mut self, row: EventRow) -> Result<()> {
        match &mut self.events {
            Some(table) => table.push_from(row, self.current_seq, self.batch_rows),
            None => Ok(()),
        }
    }

    pub fn write_pq_event(&mut self, row: PqEventRow) -> Result<()> {
        match &mut self.pq_events {
            Some(table) => table.push_from(row, self.current_seq, self.batch_rows),
            None => Ok(()),
        }
    }

    pub fn write_half_cycle(&mut self, row: HalfCycleRow) -> Result<()> {
        match &mut self.half_cycle {
            Some(table) => table.push_from(row, self.current_seq, self.batch_rows),
            None => Ok(()),
        }
    }

    pub fn write_pinst(&mut self, row: PinstRow) -> Result<()> {
        match &mut self.pinst {
            Some(table) => table.push_from(row, self.current_seq, self.batch_rows),
            None => Ok(()),
        }
    }

    /// Samples for the raw archive (ignored when it is off).
    pub fn write_raw(&mut self, device: &DeviceInfo, block: &SampleBlock) -> Result<()> {
        match &mut self.raw {
            Some(table) => table.push(device, block, self.current_seq),
            None => Ok(()),
        }
    }

    /// The device's stream ended: its rows are written and its files finished.
    pub fn finish_device(&mut self, device: &str) -> Result<()> {
        self.finish_devices(&[device])
    }

    /// Finishes several ended devices, the tables side by side: a sink's
    /// shutdown ends every meter at once, and each of them has a file per
    /// table to write and finish. Each table publishes its files as one
    /// group; every table tries every device; the first error wins.
    pub fn finish_devices(&mut self, devices: &[impl AsRef<str>]) -> Result<()> {
        let devices: Vec<&str> = devices.iter().map(AsRef::as_ref).collect();
        self.side_by_side(|table| table.finish_devices(&devices))
    }

    /// Writes everything pending and finishes every open file.
    pub fn close(mut self) -> Result<DatasetSummary> {
        self.close_all()?;
        Ok(self.summary())
    }

    /// Finished files and row counts so far.
    pub fn summary(&self) -> DatasetSummary {
        let mut summary = DatasetSummary::default();
        for table in self.tables() {
            let writer = table.writer();
            summary.files.extend_from_slice(writer.finished_files());
            summary.rows.insert(writer.table(), table.rows());
            if table.already_held() > 0 {
                summary
                    .already_held
                    .insert(writer.table(), table.already_held());
            }
        }
        summary
    }

    /// Closes every table, trying all of them; the first error wins.
    fn close_all(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.close_all_tables()?;
        self.commit().map(|_| ())
    }

    /// Tables are separate files, so they close side by side: a sink's
    /// shutdown writes every meter's waiting rows of every table at once.
    fn close_all_tables(&mut self) -> Result<()> {
        self.side_by_side(|table| table.close())
    }

    /// Runs `step` on every enabled table, each on its own thread but the
    /// last, which runs on this one. Every table runs; the first error wins.
    fn side_by_side(
        &mut self,
        step: impl Fn(&mut dyn DatasetTable) -> Result<()> + Sync,
    ) -> Result<()> {
        let mut tables = self.tables_mut();
        let last = tables.pop();
        let step = &step;
        std::thread::scope(|scope| {
            let threads: Vec<_> = tables
                .into_iter()
                .map(|table| scope.spawn(move || step(table)))
                .collect();
            let mut result = last.map_or(Ok(()), step);
            for thread in threads {
                let done = thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                result = result.and(done);
            }
            result
        })
    }
}

/// What the dataset asks of each of its tables alike, whatever its rows.
trait DatasetTable: Send {
    fn writer(&self) -> &PartitionedWriter;
    fn writer_mut(&mut self) -> &mut PartitionedWriter;
    /// Rows written so far.
    fn rows(&self) -> u64;
    /// Rows skipped because the dataset already held them.
    fn already_held(&self) -> u64;
    /// The lowest record seq whose rows are not yet visible.
    fn pending_min_seq(&self) -> Option<u64>;
    /// The newest data time of a row pushed (`i64::MIN`: none yet).
    fn latest_ns(&self) -> i64;
    /// Finishes the files whose span ended a grace before `now`.
    fn seal_ended(&mut self, now: i64) -> Result<()>;
    /// Writes the ended devices' rows and finishes their files.
    fn finish_devices(&mut self, devices: &[&str]) -> Result<()>;
    fn close(&mut self) -> Result<()>;
}

impl<R: PartitionRow + Send> DatasetTable for Table<R> {
    fn writer(&self) -> &PartitionedWriter {
        &self.writer
    }

    fn writer_mut(&mut self) -> &mut PartitionedWriter {
        &mut self.writer
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn already_held(&self) -> u64 {
        Table::already_held(self)
    }

    fn pending_min_seq(&self) -> Option<u64> {
        Table::pending_min_seq(self)
    }

    fn latest_ns(&self) -> i64 {
        self.latest_ns
    }

    fn seal_ended(&mut self, now: i64) -> Result<()> {
        Table::seal_ended(self, now)
    }

    fn finish_devices(&mut self, devices: &[&str]) -> Result<()> {
        Table::finish_devices(self, devices)
    }

    fn close(&mut self) -> Result<()> {
        Table::close(self)
    }
}

impl DatasetTable for RawTable {
    fn writer(&self) -> &PartitionedWriter {
        &self.writer
    }

    fn writer_mut(&mut self) -> &mut PartitionedWriter {
        &mut self.writer
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn already_held(&self) -> u64 {
        self.held.as_ref().map_or(0, HeldSpans::skipped)
    }

    fn pending_min_seq(&self) -> Option<u64> {
        RawTable::pending_min_seq(self)
    }

    fn latest_ns(&self) -> i64 {
        self.latest_ns
    }

    /// Raw files are not sealed on the clock (as before this trait): they
    /// end when the samples cross the span, when the device ends, or at close.
    fn seal_ended(&mut self, _now: i64) -> Result<()> {
        Ok(())
    }

    fn finish_devices(&mut self, devices: &[&str]) -> Result<()> {
        RawTable::finish_devices(self, devices)
    }

    fn close(&mut self) -> Result<()> {
        RawTable::close(self)
    }
}

impl Drop for DatasetWriter {
    /// Best effort: a writer dropped without `close` still finishes its files.
    fn drop(&mut self) {
        if let Err(e) = self.close_all() {
            tracing::warn!("Parquet dataset closed on drop with an error: {e}");
        }
    }
}

/// Creates `out` and writes and removes a probe file in it.
pub(crate) fn probe_writable(out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .map_err(|e| ParquetSinkError::io("create output folder", out, e))?;
    let probe = out.join(format!(
        ".meterflow-write-probe-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&probe, b"")
        .map_err(|e| ParquetSinkError::io("write into output folder", out, e))?;
    std::fs::remove_file(&probe)
        .map_err(|e| ParquetSinkError::io("remove probe file in", out, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use parquet::schema::types::ColumnPath;

    use super::*;

    #[test]
    fn only_row_groups_of_several_pages_get_a_page_index() {
        let config = ParquetConfig::new("unused");
        let column = ColumnPath::from("window_start");
        for (rows, expected) in [
            (512, EnabledStatistics::Chunk),
            (DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT, EnabledStatistics::Chunk),
            (
                DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT + 1,
                EnabledStatistics::Page,
            ),
            (1 << 20, EnabledStatistics::Page),
        ] {
            let properties = base_properties(&config, rows).build();
            assert_eq!(
                properties.statistics_enabled(&column),
                expected,
                "{rows} rows"
            );
        }
    }
}
