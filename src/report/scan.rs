//! Finds a dataset's tables, devices and files from its Hive layout
//! (`<root>/<table>/device=<name>/date=<YYYY-MM-DD>/part-<seq>.parquet`, or
//! `<root>/<table>/date=…/` for files shared by devices, whose `device`
//! column says whose rows they hold), so only the partitions a report
//! needs are opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use parquet::schema::types::SchemaDescPtr;

use super::error::{ReportError, Result};
use crate::model::partition::{date_string, utc_day};

/// Tables whose rows the report can plot over time.
pub const SERIES_TABLES: [&str; 3] = ["windows", "latch", "aggregates"];

/// One Parquet file and the partition values its path names.
#[derive(Debug, Clone)]
pub struct PartFile {
    pub path: PathBuf,
    /// `device=` value, decoded; `None` when the table is not partitioned by device.
    pub device: Option<String>,
    /// `date=` value as written (`YYYY-MM-DD`).
    pub date: Option<String>,
    /// The schema of the first file of this table that was opened, shared
    /// by the table's files: it says where the columns whose statistics a
    /// read needs are, so a footer decodes only those (see `read::open`).
    pub table_schema: Arc<OnceLock<SchemaDescPtr>>,
    /// The dataset's list of files that could not be read, shared by all
    /// its files: a damaged file is noted there and left out.
    pub skipped: SkippedFiles,
}

/// Files left out of a report because they could not be read (a 0-byte,
/// truncated or foreign `.parquet`), each with why; one list per dataset,
/// filled while the report reads, from any thread.
#[derive(Debug, Clone, Default)]
pub struct SkippedFiles(Arc<Mutex<BTreeMap<PathBuf, String>>>);

impl SkippedFiles {
    /// Notes `path` as skipped (the first reason counts) and logs it once.
    pub fn note(&self, path: &Path, reason: &dyn std::fmt::Display) {
        let mut files = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !files.contains_key(path) {
            tracing::warn!(file = %path.display(), "report skips a damaged file: {reason}");
            files.insert(path.to_path_buf(), reason.to_string());
        }
    }

    pub fn contains(&self, path: &Path) -> bool {
        let files = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        files.contains_key(path)
    }

    /// Every file skipped so far, by path, with why.
    pub fn list(&self) -> Vec<(PathBuf, String)> {
        let files = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        files.iter().map(|(p, r)| (p.clone(), r.clone())).collect()
    }
}

impl PartialEq for PartFile {
    fn eq(&self, other: &Self) -> bool {
        (&self.path, &self.device, &self.date) == (&other.path, &other.device, &other.date)
    }
}

impl Eq for PartFile {}

/// Every finished part file of every table under a dataset root.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub root: PathBuf,
    pub tables: BTreeMap<String, Vec<PartFile>>,
    /// Files of any table that could not be read.
    pub skipped: SkippedFiles,
}

impl Dataset {
    /// Scans `path`: a dataset root, or a run's output folder holding `parquet/`.
    pub fn open(path: &Path) -> Result<Self> {
        match std::fs::metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReportError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(error) => return Err(ReportError::io("open", path, error)),
            Ok(meta) if !meta.is_dir() => {
                return Err(ReportError::NotAFolder {
                    path: path.to_path_buf(),
                })
            }
            Ok(_) => {}
        }
        let nested = path.join("parquet");
        let has_table = |root: &Path| SERIES_TABLES.iter().any(|t| root.join(t).is_dir());
        let root = if !has_table(path) && has_table(&nested) {
            nested
        } else {
            path.to_path_buf()
        };
        if !has_table(&root) {
            return Err(ReportError::NotADataset {
                path: path.to_path_buf(),
            });
        }
        let mut tables = BTreeMap::new();
        let skipped = SkippedFiles::default();
        for entry in read_dir(&root)? {
            if !entry.is_dir() {
                continue;
            }
            let Some(table) = entry.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if table.starts_with('.') {
                continue;
            }
            let mut files = Vec::new();
            let schema = Arc::default();
            let shared = Shared {
                schema: &schema,
                skipped: &skipped,
            };
            collect_files(&entry, None, None, &shared, &mut files)?;
            files.sort_by(|a, b| a.path.cmp(&b.path));
            tables.insert(table.to_string(), files);
        }
        Ok(Dataset {
            root,
            tables,
            skipped,
        })
    }

    pub fn has(&self, table: &str) -> bool {
        self.tables.get(table).is_some_and(|f| !f.is_empty())
    }

    /// Devices with rows in any of the series tables, sorted by name: from
    /// the `device=` folders, and from the `device` column of files
    /// shared by devices.
    pub fn devices(&self) -> Result<Vec<String>> {
        let files = || {
            SERIES_TABLES
                .iter()
                .filter_map(|t| self.tables.get(*t))
                .flatten()
        };
        let shared: Vec<&PartFile> = files().filter(|f| f.device.is_none()).collect();
        let mut names = super::read::device_names(&shared)?;
        names.extend(files().filter_map(|f| f.device.clone()));
        Ok(names.into_iter().collect())
    }

    /// Files of `table` that may hold rows of `device` within `[from, to)`
    /// (by the UTC `date=` partition; files without a device partition are
    /// kept, their rows are filtered by the `device` column).
    pub fn files(&self, table: &str, device: &str, from: i64, to: i64) -> Vec<&PartFile> {
        // Open ends (i64::MIN/MAX) have no date; they bound nothing.
        let first = (from > i64::MIN).then(|| date_string(utc_day(from)));
        let last = (to < i64::MAX).then(|| date_string(utc_day(to)));
        self.tables
            .get(table)
            .map(|files| {
                files
                    .iter()
                    .filter(|f| f.device.as_deref().is_none_or(|d| d == device))
                    .filter(|f| {
                        f.date.as_deref().is_none_or(|d| {
                            first.as_deref().is_none_or(|a| d >= a)
                                && last.as_deref().is_none_or(|b| d <= b)
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| ReportError::io("list folder", dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ReportError::io("list folder", dir, e))?;
        paths.push(entry.path());
    }
    Ok(paths)
}

/// What every file of a table shares.
struct Shared<'a> {
    schema: &'a Arc<OnceLock<SchemaDescPtr>>,
    skipped: &'a SkippedFiles,
}

/// Walks `dir`, picking up `device=` and `date=` on the way down; hidden
/// (in-progress) files and anything not ending in `.parquet` are skipped.
fn collect_files(
    dir: &Path,
    device: Option<&str>,
    date: Option<&str>,
    shared: &Shared,
    out: &mut Vec<PartFile>,
) -> Result<()> {
    for path in read_dir(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            let (mut dev, mut day) = (device.map(str::to_string), date.map(str::to_string));
            if let Some(value) = name.strip_prefix("device=") {
                dev = Some(decode_partition_value(value));
            } else if let Some(value) = name.strip_prefix("date=") {
                day = Some(value.to_string());
            }
            collect_files(&path, dev.as_deref(), day.as_deref(), shared, out)?;
        } else if name.ends_with(".parquet") {
            out.push(PartFile {
                path: path.clone(),
                device: device.map(str::to_string),
                date: date.map(str::to_string),
                table_schema: shared.schema.clone(),
                skipped: shared.skipped.clone(),
            });
        }
    }
    Ok(())
}

/// Inverse of the writer's partition encoding: `%XX` escapes back to bytes
/// (invalid escapes stay as they are), Hive's default partition to "".
pub fn decode_partition_value(value: &str) -> String {
    if value == "__HIVE_DEFAULT_PARTITION__" {
        return String::new();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::partition::encode_partition_value;

    #[test]
    fn partition_values_round_trip() {
        for name in ["meter-01_a", "a/b", "..", "x=y z", "", "zähler", "100%"] {
            assert_eq!(decode_partition_value(&encode_partition_value(name)), name);
        }
        assert_eq!(decode_partition_value("bad%zz"), "bad%zz");
    }
}
