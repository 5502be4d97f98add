//! Reading what a previous run left: which segments exist, how far each is
//! valid, and cutting a torn or corrupt tail off the newest one. Corruption
//! is counted and reported, never a reason to refuse to start.

use std::fs::{self, OpenOptions};
use std::path::Path;

use anyhow::Context;

use super::segment::{file_name, parse_file_name, sync_dir, EntryReader, Step};
use super::segments::SegmentInfo;

/// The segments found at open.
#[derive(Debug, Default)]
pub struct Scan {
    pub segments: Vec<SegmentInfo>,
    /// Bytes cut off the end of the newest segment (a write the crash tore).
    pub torn_bytes: u64,
    /// Bytes skipped inside older segments (bad header or entry).
    pub corrupt_bytes: u64,
    /// One line per problem, for the log.
    pub problems: Vec<String>,
}

impl Scan {
    /// Seq of the last valid entry on disk.
    pub fn last_seq(&self) -> Option<u64> {
        self.segments.iter().rev().find_map(|s| s.last_seq)
    }
}

/// Scans every `*.wal` file in `dir`, oldest first.
pub fn scan(dir: &Path) -> anyhow::Result<Scan> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_file_name) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut scan = Scan::default();
    let mut payload = Vec::new();
    let mut removed_any = false;
    for (index, &first_seq) in firsts.iter().enumerate() {
        let next_first = firsts.get(index + 1).copied();
        let path = dir.join(file_name(first_seq));
        let name = file_name(first_seq);
        let len = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let reader = EntryReader::open(&path, first_seq, len)
            .with_context(|| format!("reading {}", path.display()))?;
        let Some(mut reader) = reader else {
            if next_first.is_none() {
                fs::remove_file(&path)
                    .with_context(|| format!("removing the torn segment {}", path.display()))?;
                removed_any = true;
                scan.torn_bytes += len;
                scan.problems.push(format!(
                    "{name}: no valid segment header ({len} bytes), removed"
                ));
            } else {
                scan.corrupt_bytes += len;
                scan.problems.push(format!(
                    "{name}: no valid segment header ({len} bytes), its entries are skipped"
                ));
                scan.segments.push(SegmentInfo {
                    first_seq,
                    len,
                    readable_end: 0,
                    last_seq: None,
                });
            }
            continue;
        };
        let mut expected = first_seq;
        let mut valid_end = reader.offset();
        let problem = loop {
            let step = reader
                .next_entry(&mut payload)
                .with_context(|| format!("reading {}", path.display()))?;
            match step {
                Step::End => break None,
                Step::Bad { reason } => break Some(reason),
                Step::Entry { seq } if seq != expected => {
                    break Some(format!("entry seq {seq} where {expected} was due"))
                }
                Step::Entry { seq } if next_first.is_some_and(|next| seq >= next) => {
                    break Some(format!("entry seq {seq} overlaps the next segment"))
                }
                Step::Entry { .. } => {
                    expected += 1;
                    valid_end = reader.offset();
                }
            }
        };
        let mut segment = SegmentInfo {
            first_seq,
            len,
            readable_end: valid_end,
            last_seq: (expected > first_seq).then(|| expected - 1),
        };
        if let Some(reason) = problem {
            let bad = len - valid_end;
            if next_first.is_none() {
                cut(&path, valid_end)?;
                segment.len = valid_end;
                scan.torn_bytes += bad;
                scan.problems.push(format!(
                    "{name}: {reason} at offset {valid_end}; {bad} bytes cut off the tail"
                ));
            } else {
                scan.corrupt_bytes += bad;
                scan.problems.push(format!(
                    "{name}: {reason} at offset {valid_end}; the {bad} bytes after it are skipped"
                ));
            }
        }
        scan.segments.push(segment);
    }
    if removed_any {
        sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(scan)
}

/// Truncates a segment to its valid part, durably.
fn cut(path: &Path, len: u64) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {} to cut its torn tail", path.display()))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cutting {} to {len} bytes", path.display()))
}
