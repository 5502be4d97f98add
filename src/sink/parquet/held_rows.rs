//! Rows a dataset already holds from earlier runs, so that a batch run into
//! an existing dataset adds only what is new and the result equals one run:
//! a row whose identity (device, time, and the table's kind column where
//! rows of one time differ by kind) is in a finished file of its partition
//! is skipped. A partition's identities are read once, the first time the
//! run writes to it, before the run's own files exist there.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, StringArray, TimestampNanosecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::partition::{date_dir, parse_seq, partition_dir};
use crate::model::partition::utc_day;

/// The columns that tell one row of a table from another of the same device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowIdentity {
    /// The row's time (the table's partitioning time).
    pub time_column: &'static str,
    /// A text column that tells apart rows of one time (event kind,
    /// aggregation interval), if the table has one.
    pub kind_column: Option<&'static str>,
}

/// Per (device, day): the identities held, time → kinds at that time.
type Held = HashMap<i64, Vec<Box<str>>>;

/// The identities of one table's rows already in the dataset.
pub(crate) struct HeldRows {
    out: PathBuf,
    table: &'static str,
    identity: RowIdentity,
    partitions: HashMap<(String, i64), Held>,
    /// Files shared by devices (`<table>/date=…/`): a day's folder is read
    /// once for all of them; these days are read.
    shared_days: Option<HashSet<i64>>,
    skipped: u64,
}

impl HeldRows {
    pub(crate) fn new(
        out: &Path,
        table: &'static str,
        identity: RowIdentity,
        shared_files: bool,
    ) -> Self {
        HeldRows {
            out: out.to_path_buf(),
            table,
            identity,
            partitions: HashMap::new(),
            shared_days: shared_files.then(HashSet::new),
            skipped: 0,
        }
    }

    /// Reads what the dataset held of `device` on `day`, once.
    fn load(&mut self, device: &str, day: i64) {
        let key = (device.to_string(), day);
        match &mut self.shared_days {
            Some(days) => {
                if days.insert(day) {
                    let dir = date_dir(&self.out.join(self.table), day);
                    let identity = self.identity;
                    let partitions = &mut self.partitions;
                    read_partition(&dir, identity, true, |device, time, kind| {
                        let held = partitions.entry((device.to_string(), day)).or_default();
                        note_held(held, time, kind);
                    });
                }
            }
            None => {
                if !self.partitions.contains_key(&key) {
                    let dir = partition_dir(&self.out, self.table, device, day);
                    let mut held = Held::new();
                    read_partition(&dir, self.identity, false, |_, time, kind| {
                        note_held(&mut held, time, kind);
                    });
                    self.partitions.insert(key, held);
                }
            }
        }
    }

    /// Whether the dataset held a row of `device` at `time_ns` (of `kind`)
    /// before this run; counts it as skipped when it did.
    pub(crate) fn holds(&mut self, device: &str, time_ns: i64, kind: Option<&str>) -> bool {
        let day = utc_day(time_ns);
        self.load(device, day);
        let key = (device.to_string(), day);
        let held = self
            .partitions
            .get(&key)
            .and_then(|held| held.get(&time_ns))
            .is_some_and(|kinds| match kind {
                Some(kind) => kinds.iter().any(|k| &**k == kind),
                None => true,
            });
        self.skipped += u64::from(held);
        held
    }

    /// Rows skipped so far because the dataset held them.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Notes a row of `kind` at `time` as held.
fn note_held(held: &mut Held, time: i64, kind: &str) {
    let at = held.entry(time).or_default();
    if !at.iter().any(|k| &**k == kind) {
        at.push(kind.into());
    }
}

/// Hands `add` the (device, time, kind) of every row in the finished part
/// files of `dir` (device `""` unless `with_device`: a folder of one
/// device's files). A file that cannot be read is reported and holds
/// nothing (its rows cannot be known).
fn read_partition(
    dir: &Path,
    identity: RowIdentity,
    with_device: bool,
    mut add: impl FnMut(&str, i64, &str),
) {
    for path in finished_parts(dir) {
        if let Err(error) = read_file(&path, identity, with_device, &mut add) {
            note_unreadable(&path, &error);
        }
    }
}

/// The finished part files of `dir` (none for a missing folder).
fn finished_parts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| !n.starts_with('.') && parse_seq(n).is_some())
        })
        .map(|entry| entry.path())
        .collect()
}

/// A file whose rows cannot be known holds none: said once, and the run goes on.
fn note_unreadable(path: &Path, error: &anyhow::Error) {
    tracing::warn!(
        file = %path.display(),
        "cannot read the rows this dataset already holds ({error}); a re-run may write them again"
    );
}

fn read_file(
    path: &Path,
    identity: RowIdentity,
    with_device: bool,
    add: &mut impl FnMut(&str, i64, &str),
) -> anyhow::Result<()> {
    let file = File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let schema = builder.parquet_schema();
    let index_of = |name: &str| {
        schema
            .columns()
            .iter()
            .position(|c| c.path().string() == name)
            .ok_or_else(|| anyhow::anyhow!("no column `{name}`"))
    };
    let mut columns = vec![index_of(identity.time_column)?];
    if with_device {
        columns.push(index_of("device")?);
    }
    if let Some(kind) = identity.kind_column {
        columns.push(index_of(kind)?);
    }
    let mask = ProjectionMask::leaves(schema, columns);
    let reader = builder.with_projection(mask).build()?;
    for batch in reader {
        let batch = batch?;
        let times = batch
            .column_by_name(identity.time_column)
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
            .ok_or_else(|| anyhow::anyhow!("`{}` is not a ns timestamp", identity.time_column))?;
        let devices = match with_device {
            true => Some(
                batch
                    .column_by_name("device")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| anyhow::anyhow!("`device` is not text"))?,
            ),
            false => None,
        };
        let kinds = match identity.kind_column {
            Some(name) => Some(
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| anyhow::anyhow!("`{name}` is not text"))?,
            ),
            None => None,
        };
        for row in 0..batch.num_rows() {
            if times.is_null(row) {
                continue;
            }
            let kind = kinds.map_or("", |k| k.value(row));
            add(devices.map_or("", |d| d.value(row)), times.value(row), kind);
        }
    }
    Ok(())
}

/// The time spans of the row groups in the raw archive's finished files,
/// from their statistics: a partition's sample times would not fit in
/// memory (8 kHz is 691 M a day), its row groups' spans do.
pub(crate) struct HeldSpans {
    out: PathBuf,
    table: &'static str,
    time_column: &'static str,
    /// Per (device, day): spans `[first, last]` in ns, sorted by start.
    partitions: HashMap<(String, i64), Vec<(i64, i64)>>,
    skipped: u64,
}

impl HeldSpans {
    pub(crate) fn new(out: &Path, table: &'static str, time_column: &'static str) -> Self {
        HeldSpans {
            out: out.to_path_buf(),
            table,
            time_column,
            partitions: HashMap::new(),
            skipped: 0,
        }
    }

    /// Whether every time in `[first_ns, last_ns]` lies in spans held before
    /// this run that follow on within `period_ns` (one sample); counts the
    /// `rows` as skipped when it does.
    pub(crate) fn holds(
        &mut self,
        device: &str,
        first_ns: i64,
        last_ns: i64,
        period_ns: i64,
        rows: u64,
    ) -> bool {
        let day = utc_day(first_ns);
        let key = (device.to_string(), day);
        if !self.partitions.contains_key(&key) {
            let dir = partition_dir(&self.out, self.table, device, day);
            let spans = read_spans(&dir, self.time_column);
            self.partitions.insert(key.clone(), spans);
        }
        let Some(spans) = self.partitions.get(&key) else {
            return false;
        };
        let mut reached: Option<i64> = None;
        for &(start, end) in spans {
            reached = match reached {
                None if start <= first_ns && first_ns <= end => Some(end),
                Some(until) if start <= until.saturating_add(period_ns) => Some(until.max(end)),
                other => other,
            };
            if reached.is_some_and(|until| until >= last_ns) {
                self.skipped += rows;
                return true;
            }
        }
        false
    }

    /// Rows skipped so far because the dataset held them.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// The row groups' time spans in every finished part file of `dir`, sorted.
fn read_spans(dir: &Path, time_column: &str) -> Vec<(i64, i64)> {
    let mut spans = Vec::new();
    for path in finished_parts(dir) {
        if let Err(error) = file_spans(&path, time_column, &mut spans) {
            note_unreadable(&path, &error);
        }
    }
    spans.sort_unstable();
    spans
}

fn file_spans(path: &Path, time_column: &str, spans: &mut Vec<(i64, i64)>) -> anyhow::Result<()> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;
    let reader = SerializedFileReader::new(File::open(path)?)?;
    let metadata = reader.metadata();
    let column = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == time_column)
        .ok_or_else(|| anyhow::anyhow!("no column `{time_column}`"))?;
    for group in metadata.row_groups() {
        match group.column(column).statistics() {
            Some(Statistics::Int64(values)) => {
                if let (Some(&min), Some(&max)) = (values.min_opt(), values.max_opt()) {
                    spans.push((min, max));
                }
            }
            _ => anyhow::bail!("no time statistics in a row group"),
        }
    }
    Ok(())
}
