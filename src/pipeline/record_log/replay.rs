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
}

impl Replay {
    pub(super) fn new(dir: PathBuf, segments: Vec<(u64, u64)>, after_seq: u64) -> Self {
        Replay {
            dir,
            segments: segments.into(),
            after_seq,
            current: None,
        }
    }

    /// Opens the next segment; `Ok(false)` when none is left.
    fn open_next(&mut self) -> anyhow::Result<bool> {
        while let Some((first_seq, end)) = self.segments.pop_front() {
            let path = self.dir.join(file_name(first_seq));
            match EntryReader::open(&path, first_seq, end) {
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
            let step = reader.next_entry(&mut payload);
            let at = reader.offset();
            let first_seq = *first_seq;
            match step {
                Ok(Step::Entry { seq }) if seq <= self.after_seq => {}
                Ok(Step::Entry { seq }) => return Some(Ok((seq, payload))),
                Ok(Step::End) => self.current = None,
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
