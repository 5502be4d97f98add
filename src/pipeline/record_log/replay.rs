//! Reading entries back: each consumer's unacknowledged tail at start, and
//! the entries after the snapshot when state is rebuilt.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;

use anyhow::Context;

use super::segment::{file_name, EntryReader, Step};

/// Durable entries with a seq above `after_seq`, oldest first, as they were
/// when `RecordLog::read_from` was called: appends made later are not seen
/// (call again from the last seq). A segment deleted meanwhile (every
/// consumer and the snapshot passed it) is skipped. A corrupt entry yields
/// one error and the rest of that segment is skipped.
pub struct Replay {
    dir: PathBuf,
    /// `(first_seq, readable_end)` of the segments still to read.
    segments: VecDeque<(u64, u64)>,
    after_seq: u64,
    current: Option<(u64, EntryReader)>,
    /// Where to start in the segment of this first seq (see [`ReplayMark`]).
    start: Option<ReplayMark>,
    /// Where the entry returned last began (or the end of what was read).
    before_last: Option<ReplayMark>,
}

/// A place in the log to read on from: every entry before it has a seq
/// below `next_seq`. Reading on from a mark instead of the start of its
/// segment is what keeps a consumer that catches up again and again from
/// decompressing its whole segment each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayMark {
    next_seq: u64,
    segment: u64,
    offset: u64,
}

impl Replay {
    pub(super) fn new(
        dir: PathBuf,
        segments: Vec<(u64, u64)>,
        after_seq: u64,
        start: Option<ReplayMark>,
    ) -> Self {
        // A mark past the entries wanted would skip some of them.
        let start = start.filter(|mark| mark.next_seq <= after_seq + 1);
        Replay {
            dir,
            segments: segments.into(),
            after_seq,
            current: None,
            start,
            before_last: None,
        }
    }

    /// Where a later replay can start to see every entry this one has not
    /// returned yet.
    pub fn mark(&self) -> Option<ReplayMark> {
        self.before_last
    }

    /// Opens the next segment; `Ok(false)` when none is left.
    fn open_next(&mut self) -> anyhow::Result<bool> {
        while let Some((first_seq, end)) = self.segments.pop_front() {
            let path = self.dir.join(file_name(first_seq));
            let opened = match self.start.filter(|mark| mark.segment == first_seq) {
                Some(mark) => EntryReader::open_at(&path, first_seq, mark.offset, end),
                None => EntryReader::open(&path, first_seq, end),
            };
            match opened {
                Ok(Some(reader)) => {
                    self.current = Some((first_seq, reader));
                    return Ok(true);
                }
                Ok(None) => {
                    anyhow::bail!("record log segment {} has lost its header", path.display())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("opening {}", path.display()));
                }
            }
        }
        Ok(false)
    }
}

impl Iterator for Replay {
    type Item = anyhow::Result<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                match self.open_next() {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(error) => return Some(Err(error)),
                }
            }
            let (first_seq, reader) = self.current.as_mut()?;
            let mut payload = Vec::new();
            let before = ReplayMark {
                next_seq: self.after_seq + 1,
                segment: *first_seq,
                offset: reader.resume_offset(),
            };
            let step = reader.next_entry(&mut payload);
            let at = reader.offset();
            let first_seq = *first_seq;
            match step {
                Ok(Step::Entry { seq }) if seq <= self.after_seq => {}
                Ok(Step::Entry { seq }) => {
                    // Every entry before `before` is below this one's seq.
                    self.before_last = Some(ReplayMark {
                        next_seq: seq,
                        ..before
                    });
                    self.after_seq = seq;
                    return Some(Ok((seq, payload)));
                }
                Ok(Step::End) => {
                    self.before_last = Some(ReplayMark {
                        offset: reader.resume_offset(),
                        ..before
                    });
                    self.current = None;
                }
                Ok(Step::Bad { reason }) => {
                    self.current = None;
                    return Some(Err(anyhow::anyhow!(
                        "record log segment {}: {reason} at offset {at}",
                        file_name(first_seq)
                    )));
                }
                Err(error) => {
                    self.current = None;
                    return Some(Err(error).with_context(|| {
                        format!("reading record log segment {}", file_name(first_seq))
                    }));
                }
            }
        }
    }
}
