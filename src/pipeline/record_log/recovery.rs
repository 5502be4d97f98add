//! Reading what a previous run left: which segments exist, how far each is
//! valid, and cutting a torn or corrupt tail off the newest one. Corruption
//! is counted and reported, never a reason to refuse to start. A file with a
//! segment's name but not a segment header of that seq is set aside before
//! the segments are read, so it never cuts a valid segment short.

use std::fs::{self, OpenOptions};
use std::path::Path;

use anyhow::Context;

use super::segment::{file_name, parse_file_name, sync_dir, EntryReader, Step, HEADER_LEN};
use super::segments::SegmentInfo;

/// Suffix a file that is not a readable segment is renamed with.
const SET_ASIDE_SUFFIX: &str = ".unreadable";

/// The segments found at open.
#[derive(Debug, Default)]
pub struct Scan {
    pub segments: Vec<SegmentInfo>,
    /// Bytes cut off the end of the newest segment (a write the crash tore).
    pub torn_bytes: u64,
    /// Bytes skipped inside older segments (bad entry) or set aside (bad header).
    pub corrupt_bytes: u64,
    /// One line per problem, for the log.
    pub problems: Vec<String>,
}

impl Scan {
    /// Seq of the last valid entry on disk.
    pub fn last_seq(&self) -> Option<u64> {
        self.segments.iter().rev().find_map(|s| s.last_seq)
    }

    /// Seq ranges (inclusive) missing between and inside the segments: after
    /// each segment's last valid entry up to the next segment's first seq.
    pub fn holes(&self) -> Vec<(u64, u64)> {
        self.segments
            .windows(2)
            .filter_map(|pair| {
                let from = pair[0].last_seq.map_or(pair[0].first_seq, |last| last + 1);
                let to = pair[1].first_seq.checked_sub(1)?;
                (from <= to).then_some((from, to))
            })
            .collect()
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
    let mut changed_dir = false;
    let firsts = readable_headers(dir, &firsts, &mut scan, &mut changed_dir)?;
    let mut payload = Vec::new();
    for (index, &(first_seq, len)) in firsts.iter().enumerate() {
        let next_first = firsts.get(index + 1).map(|&(first, _)| first);
        let path = dir.join(file_name(first_seq));
        let name = file_name(first_seq);
        let reader = EntryReader::open(&path, first_seq, len)
            .with_context(|| format!("reading {}", path.display()))?;
        let Some(mut reader) = reader else {
            anyhow::bail!(
                "record log segment {} changed while it was read",
                path.display()
            );
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
    if changed_dir {
        sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(scan)
}

/// The `(first_seq, len)` of the files whose header is a segment header of
/// the seq in their name. Of the others, a newest one no longer than a
/// header is a segment start a crash tore (removed); any other is damage or
/// a foreign file: renamed with [`SET_ASIDE_SUFFIX`], so that it neither
/// bounds the segment before it nor gets overwritten.
fn readable_headers(
    dir: &Path,
    firsts: &[u64],
    scan: &mut Scan,
    changed_dir: &mut bool,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut readable = Vec::with_capacity(firsts.len());
    for (index, &first_seq) in firsts.iter().enumerate() {
        let name = file_name(first_seq);
        let path = dir.join(&name);
        let len = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let header = EntryReader::open(&path, first_seq, len)
            .with_context(|| format!("reading {}", path.display()))?;
        if header.is_some() {
            readable.push((first_seq, len));
            continue;
        }
        *changed_dir = true;
        if index + 1 == firsts.len() && len <= HEADER_LEN {
            fs::remove_file(&path)
                .with_context(|| format!("removing the torn segment {}", path.display()))?;
            scan.torn_bytes += len;
            scan.problems.push(format!(
                "{name}: no valid segment header ({len} bytes), removed"
            ));
            continue;
        }
        let aside = dir.join(format!("{name}{SET_ASIDE_SUFFIX}"));
        fs::rename(&path, &aside)
            .with_context(|| format!("setting {} aside as {}", path.display(), aside.display()))?;
        scan.corrupt_bytes += len;
        scan.problems.push(format!(
            "{name}: not a segment of seq {first_seq} (bad header, {len} bytes); set aside as {}, \
             nothing in it is read",
            aside.display()
        ));
    }
    Ok(readable)
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
