//! The dataset's commit journal, for outputs fed from the record log.
//!
//! Finished files are sealed under their hidden temporary names and become
//! visible together at a commit: the journal (`<out>/.meterflow-commit.json`,
//! replaced atomically) first records the renames and, per file stream
//! (table, device, date), the last row now in visible files as a
//! [`RowMark`]; then
//! the files are renamed. On start the renames of the last journal are rolled
//! forward and every other temporary file is removed, so a replay of the log
//! writes exactly the rows that are not yet visible, never one twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ParquetSinkError, Result};

/// The journal file inside the dataset folder (hidden: readers skip it).
pub const JOURNAL_FILE: &str = ".meterflow-commit.json";
const FORMAT_VERSION: u32 = 2;

/// One file stream: a table's files of one device on one UTC day.
pub type StreamKey = (String, String, i64);

/// Where a row stands in the record log: its record's seq, then its time
/// (ns). Ordered as a pair, because one record's rows can fall in two
/// spans' files and only the first be visible when the process dies: the
/// seq alone would skip the second span's rows on the replay.
pub type RowMark = (u64, i64);

/// A stream's last visible row in the journal. Version 1 journals hold the
/// seq alone (all of that record's rows visible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JournalEntry {
    Mark(StreamKey, u64, i64),
    WholeRecord(StreamKey, u64),
}

impl JournalEntry {
    fn into_mark(self) -> (StreamKey, RowMark) {
        match self {
            JournalEntry::Mark(key, seq, time_ns) => (key, (seq, time_ns)),
            JournalEntry::WholeRecord(key, seq) => (key, (seq, i64::MAX)),
        }
    }
}

/// What the journal holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitState {
    pub version: u32,
    /// Which record log the seqs count in; another log's seqs mean nothing here.
    pub log_id: String,
    /// The last row in visible files, per (table, device, day).
    pub committed: Vec<JournalEntry>,
    /// Renames (temporary → final) of the last commit, rolled forward on start.
    pub renames: Vec<(PathBuf, PathBuf)>,
}

/// What opening the dataset found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitRecovery {
    /// Renames of an interrupted commit that were completed.
    pub rolled_forward: usize,
    /// Uncommitted temporary files removed (their rows come back from the log).
    pub removed_temps: usize,
    /// Per (table, device, day): rows up to this mark are already visible.
    pub committed: BTreeMap<StreamKey, RowMark>,
}

/// Reads the journal of `out`, completes its renames, removes stray
/// temporary files. A journal of another log (`log_id`) keeps no seqs.
pub fn recover(out: &Path, log_id: &str, owner: Option<&str>) -> Result<CommitRecovery> {
    let path = journal_path(out, owner);
    let state = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<CommitState>(&bytes).map_err(|e| {
            ParquetSinkError::Config(format!("commit journal {} is damaged: {e}", path.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CommitState::default(),
        Err(e) => return Err(ParquetSinkError::io("read", &path, e)),
    };
    let mut recovery = CommitRecovery::default();
    for (temp, final_path) in &state.renames {
        if temp.exists() && !final_path.exists() {
            std::fs::rename(temp, final_path)
                .map_err(|e| ParquetSinkError::io("complete the rename to", final_path, e))?;
            recovery.rolled_forward += 1;
        }
    }
    if state.log_id == log_id {
        recovery.committed = state
            .committed
            .into_iter()
            .map(JournalEntry::into_mark)
            .collect();
    } else if !state.log_id.is_empty() {
        tracing::warn!(
            dataset = %out.display(),
            "the commit journal belongs to another record log; its seqs are ignored"
        );
    }
    recovery.removed_temps = remove_temps(out, owner)?;
    Ok(recovery)
}

/// The journal of `owner` (one of several writers) or of the only writer.
pub fn journal_path(out: &Path, owner: Option<&str>) -> PathBuf {
    match owner {
        Some(owner) => out.join(format!(".meterflow-commit.{owner}.json")),
        None => out.join(JOURNAL_FILE),
    }
}

/// Replaces the journal atomically.
pub fn store(out: &Path, owner: Option<&str>, state: &CommitState) -> Result<()> {
    let path = journal_path(out, owner);
    let bytes = serde_json::to_vec(state)
        .map_err(|e| ParquetSinkError::Config(format!("encoding the commit journal: {e}")))?;
    crate::sink::atomic_file::write_atomically(&path, &bytes)
        .map_err(|e| ParquetSinkError::io("write", &path, std::io::Error::other(format!("{e:#}"))))
}

/// The state to store, as of format version 2.
pub fn state(
    log_id: &str,
    committed: &BTreeMap<StreamKey, RowMark>,
    renames: Vec<(PathBuf, PathBuf)>,
) -> CommitState {
    CommitState {
        version: FORMAT_VERSION,
        log_id: log_id.to_string(),
        committed: committed
            .iter()
            .map(|(key, &(seq, time_ns))| JournalEntry::Mark(key.clone(), seq, time_ns))
            .collect(),
        renames,
    }
}

/// Removes every `.part-*.parquet.tmp` of `owner` under `out`; returns how many.
fn remove_temps(out: &Path, owner: Option<&str>) -> Result<usize> {
    let mut removed = 0;
    let mut folders = vec![out.to_path_buf()];
    while let Some(dir) = folders.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ParquetSinkError::io("list folder", &dir, e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(path);
            } else if super::partition::is_temp_of(&name, owner) {
                std::fs::remove_file(&path)
                    .map_err(|e| ParquetSinkError::io("remove stray temporary file", &path, e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_commit_rolls_forward_and_strays_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let part = out.join("windows/device=a/date=2024-01-01");
        std::fs::create_dir_all(&part).unwrap();
        let (temp, final_path) = (
            part.join(".part-00000.parquet.tmp"),
            part.join("part-00000.parquet"),
        );
        let stray = part.join(".part-00001.parquet.tmp");
        std::fs::write(&temp, b"sealed").unwrap();
        std::fs::write(&stray, b"half").unwrap();
        let key = ("windows".to_string(), "a".to_string(), 19723);
        let committed = BTreeMap::from([(key.clone(), (42, 1_700_000_000_000_000_000))]);
        // Another writer's temporary file in the same dataset stays.
        let others = part.join(".part-00002.writer1.parquet.tmp");
        std::fs::write(&others, b"theirs").unwrap();
        store(
            out,
            None,
            &state(
                "log-1",
                &committed,
                vec![(temp.clone(), final_path.clone())],
            ),
        )
        .unwrap();

        let recovery = recover(out, "log-1", None).unwrap();
        assert_eq!(recovery.rolled_forward, 1);
        assert_eq!(recovery.removed_temps, 1);
        assert_eq!(
            recovery.committed.get(&key),
            Some(&(42, 1_700_000_000_000_000_000))
        );
        assert_eq!(std::fs::read(&final_path).unwrap(), b"sealed");
        assert!(!temp.exists() && !stray.exists());
        assert!(others.exists(), "writer1's files are writer1's to clean up");

        // Another log's seqs are not trusted.
        assert!(recover(out, "log-2", None).unwrap().committed.is_empty());
        // writer1 has its own journal (none yet) and removes its own temps only.
        let theirs = recover(out, "log-3", Some("writer1")).unwrap();
        assert!(theirs.committed.is_empty());
        assert_eq!(theirs.removed_temps, 1);
        assert!(!others.exists());
    }

    /// A journal written before row marks (format 1: a seq per stream)
    /// still reads: all of that record's rows count as visible.
    #[test]
    fn a_version_1_journal_reads_as_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = r#"{"version":1,"log_id":"log-1","committed":[[["windows","a",19723],42]],"renames":[]}"#;
        std::fs::write(dir.path().join(JOURNAL_FILE), v1).unwrap();
        let recovery = recover(dir.path(), "log-1", None).unwrap();
        let key = ("windows".to_string(), "a".to_string(), 19723);
        assert_eq!(recovery.committed.get(&key), Some(&(42, i64::MAX)));
    }
}
