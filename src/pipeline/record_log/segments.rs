//! The list of segment files on disk: what readers may read, and removing
//! the oldest ones once every entry in them is covered.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::segment::{file_name, HEADER_LEN};

/// One segment file as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub first_seq: u64,
    /// Bytes of the file on disk.
    pub len: u64,
    /// Offset up to which entries are valid and durable; readers stop here.
    /// 0 for a segment whose header is unreadable.
    pub readable_end: u64,
    /// Seq of the last valid entry, `None` when it holds none.
    pub last_seq: Option<u64>,
}

/// Segments oldest first; names (first seqs) strictly increase.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    list: Vec<SegmentInfo>,
}

/// What `remove_covered` deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub segments: usize,
    pub bytes: u64,
}

impl Segments {
    pub fn new(dir: PathBuf, list: Vec<SegmentInfo>) -> Self {
        Segments { dir, list }
    }

    pub fn path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(file_name(first_seq))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn bytes(&self) -> u64 {
        self.list.iter().map(|s| s.len).sum()
    }

    pub fn contains(&self, first_seq: u64) -> bool {
        self.list.iter().any(|s| s.first_seq == first_seq)
    }

    /// Seq of the oldest entry still on disk.
    pub fn first_entry_seq(&self) -> Option<u64> {
        self.list
            .iter()
            .find(|s| s.last_seq.is_some())
            .map(|s| s.first_seq)
    }

    pub fn push(&mut self, segment: SegmentInfo) {
        self.list.push(segment);
    }

    /// Records entries made durable at the end of the newest segment.
    pub fn extend_last(&mut self, first_seq: u64, len: u64, last_seq: u64) {
        if let Some(last) = self.list.last_mut().filter(|s| s.first_seq == first_seq) {
            last.len = len;
            last.readable_end = len;
            last.last_seq = Some(last_seq);
        }
    }

    /// Highest seq a segment can hold: up to the next segment's first, or
    /// its own last entry for the newest one.
    fn covers_up_to(&self, index: usize) -> Option<u64> {
        match self.list.get(index + 1) {
            Some(next) => Some(next.first_seq.saturating_sub(1)),
            None => self.list.get(index).and_then(|s| s.last_seq),
        }
    }

    /// `(first_seq, readable_end)` of the segments that may hold entries
    /// after `after_seq`, oldest first.
    pub fn readable_after(&self, after_seq: u64) -> Vec<(u64, u64)> {
        (0..self.list.len())
            .filter(|&i| self.covers_up_to(i).is_some_and(|end| end > after_seq))
            .map(|i| &self.list[i])
            .filter(|s| s.readable_end > HEADER_LEN)
            .map(|s| (s.first_seq, s.readable_end))
            .collect()
    }

    /// Deletes the oldest segments whose every entry is at most `bound`.
    /// Stops at the first file that cannot be removed and reports it.
    pub fn remove_covered(&mut self, bound: u64) -> (Removed, io::Result<()>) {
        let mut removed = Removed::default();
        let mut result = Ok(());
        while !self.list.is_empty() && self.covers_up_to(0).is_some_and(|end| end <= bound) {
            let path = self.path(self.list[0].first_seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(io::Error::new(
                        e.kind(),
                        format!("removing {}: {e}", path.display()),
                    ));
                    break;
                }
            }
            let segment = self.list.remove(0);
            removed.segments += 1;
            removed.bytes += segment.len;
        }
        (removed, result)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first_seq: u64, last_seq: Option<u64>) -> SegmentInfo {
        SegmentInfo {
            first_seq,
            len: 100,
            readable_end: 100,
            last_seq,
        }
    }

    #[test]
    fn readers_get_only_segments_with_entries_past_the_seq() {
        let segments = Segments::new(
            PathBuf::from("/nonexistent"),
            vec![
                segment(1, Some(4)),
                segment(5, Some(8)),
                segment(9, Some(10)),
            ],
        );
        assert_eq!(segments.readable_after(0).len(), 3);
        assert_eq!(segments.readable_after(4), vec![(5, 100), (9, 100)]);
        assert_eq!(segments.readable_after(7), vec![(5, 100), (9, 100)]);
        assert_eq!(segments.readable_after(8), vec![(9, 100)]);
        assert!(segments.readable_after(10).is_empty());
        assert_eq!(segments.first_entry_seq(), Some(1));
    }

    #[test]
    fn covered_segments_are_removed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let list = vec![segment(1, Some(4)), segment(5, Some(8)), segment(9, None)];
        for s in &list {
            fs::write(dir.path().join(file_name(s.first_seq)), [0u8; 100]).unwrap();
        }
        let mut segments = Segments::new(dir.path().to_path_buf(), list);
        let (removed, result) = segments.remove_covered(7);
        result.unwrap();
        assert_eq!(
            removed,
            Removed {
                segments: 1,
                bytes: 100
            }
        );
        let (removed, result) = segments.remove_covered(100);
        result.unwrap();
        // The newest segment holds no entry, so nothing bounds it: it stays.
        assert_eq!(removed.segments, 1);
        assert_eq!(segments.len(), 1);
        assert!(dir.path().join(file_name(9)).exists());
        assert!(!dir.path().join(file_name(5)).exists());
    }
}
