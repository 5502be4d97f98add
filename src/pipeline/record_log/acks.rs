//! What each consumer (output) has made durable: one small stamped file per
//! consumer in `acks/`, replaced atomically, only ever moving forward.
//!
//! Acks of consumers that are no longer configured (a removed output) stay on
//! disk but are ignored: they neither hold segments back nor get replayed.
//! They still count towards the lowest seq a restart may hand out, so seqs are
//! never reused.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::segment::{decode_stamp, encode_stamp};
use crate::sink::atomic_file::write_atomically;

const ACK_MAGIC: [u8; 4] = *b"MFAK";
const ACK_EXTENSION: &str = ".ack";
const MAX_NAME_LEN: usize = 100;

/// The acked seq of every consumer, configured or not.
#[derive(Debug)]
pub struct Acks {
    dir: PathBuf,
    known: Vec<(String, u64)>,
    ignored: Vec<(String, u64)>,
}

/// What loading the acks found wrong.
#[derive(Debug, Default)]
pub struct AckProblems {
    pub corrupt_bytes: u64,
    pub problems: Vec<String>,
}

/// A consumer name becomes a file name, so it is kept to a safe alphabet.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let safe = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.starts_with('.') || !safe {
        anyhow::bail!(
            "record log consumer name {name:?} must be 1 to {MAX_NAME_LEN} characters of \
             A-Z a-z 0-9 - _ . and not start with a dot"
        );
    }
    Ok(())
}

fn ack_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{ACK_EXTENSION}"))
}

/// Reads `dir` (created when missing); configured consumers without a file start at 0.
pub fn load(dir: &Path, consumers: &[&str]) -> anyhow::Result<(Acks, AckProblems)> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut problems = AckProblems::default();
    let mut on_disk = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with('.') && file_name.ends_with(".tmp") {
            // A replacement that a crash interrupted; the old file still stands.
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let Some(name) = file_name.strip_suffix(ACK_EXTENSION) else {
            continue;
        };
        let bytes = fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        match decode_stamp(ACK_MAGIC, &bytes).filter(|_| bytes.len() == 20) {
            Some(seq) => on_disk.push((name.to_string(), seq)),
            None => {
                problems.corrupt_bytes += bytes.len() as u64;
                problems.problems.push(format!(
                    "ack file {file_name} is unreadable; {name} restarts from seq 0"
                ));
            }
        }
    }
    let mut known = Vec::new();
    for &consumer in consumers {
        check_name(consumer)?;
        if known.iter().any(|(name, _)| name == consumer) {
            anyhow::bail!("record log consumer {consumer:?} is named twice");
        }
        let seq = on_disk
            .iter()
            .find(|(name, _)| name == consumer)
            .map_or(0, |&(_, seq)| seq);
        known.push((consumer.to_string(), seq));
    }
    let ignored = on_disk
        .into_iter()
        .filter(|(name, _)| !consumers.contains(&name.as_str()))
        .collect();
    Ok((
        Acks {
            dir: dir.to_path_buf(),
            known,
            ignored,
        },
        problems,
    ))
}

impl Acks {
    /// Moves `consumer` forward to `seq` and persists it; a seq at or below
    /// the current ack is ignored (`Ok(false)`).
    pub fn ack(&mut self, consumer: &str, seq: u64) -> anyhow::Result<bool> {
        let Some(slot) = self.known.iter_mut().find(|(name, _)| name == consumer) else {
            anyhow::bail!("record log: {consumer:?} is not a configured consumer");
        };
        if seq <= slot.1 {
            return Ok(false);
        }
        write_atomically(
            &ack_path(&self.dir, consumer),
            &encode_stamp(ACK_MAGIC, seq),
        )
        .with_context(|| format!("persisting the ack of {consumer}"))?;
        slot.1 = seq;
        Ok(true)
    }

    pub fn acked(&self, consumer: &str) -> Option<u64> {
        self.known
            .iter()
            .find(|(name, _)| name == consumer)
            .map(|&(_, seq)| seq)
    }

    /// The lowest ack of the configured consumers, `None` when there are none.
    pub fn min_known(&self) -> Option<u64> {
        self.known.iter().map(|&(_, seq)| seq).min()
    }

    /// The highest ack on disk, configured or not.
    pub fn max_any(&self) -> u64 {
        self.known
            .iter()
            .chain(&self.ignored)
            .map(|&(_, seq)| seq)
            .max()
            .unwrap_or(0)
    }

    pub fn known(&self) -> &[(String, u64)] {
        &self.known
    }

    pub fn ignored(&self) -> &[(String, u64)] {
        &self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["parquet", "betterfleet-mqtt", "out_1.v2"] {
            check_name(good).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(101)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn acks_persist_move_forward_only_and_unknown_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut acks, problems) = load(dir.path(), &["a", "b"]).unwrap();
        assert!(problems.problems.is_empty());
        assert_eq!(acks.min_known(), Some(0));
        assert!(acks.ack("a", 10).unwrap());
        assert!(!acks.ack("a", 5).unwrap());
        assert!(acks.ack("b", 3).unwrap());
        assert!(acks.ack("c", 1).is_err());
        let (acks, _) = load(dir.path(), &["a"]).unwrap();
        assert_eq!(acks.acked("a"), Some(10));
        assert_eq!(acks.acked("b"), None);
        assert_eq!(acks.ignored(), &[("b".to_string(), 3)]);
        assert_eq!(acks.min_known(), Some(10));
        assert_eq!(acks.max_any(), 10);
    }

    #[test]
    fn an_unreadable_ack_file_restarts_that_consumer_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.ack"), b"garbage").unwrap();
        let (acks, problems) = load(dir.path(), &["a"]).unwrap();
        assert_eq!(acks.acked("a"), Some(0));
        assert_eq!(problems.corrupt_bytes, 7);
        assert_eq!(problems.problems.len(), 1);
    }
}
