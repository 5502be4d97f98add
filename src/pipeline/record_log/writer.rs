//! The write path: the in-memory buffer appends encode into, and the flush
//! that writes it to the newest segment, fsyncs and rolls to a new segment.
//! Bytes a failed write or fsync did not make durable stay pending and are
//! written again, at the same offset, by the next flush.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use super::config::LogCompression;

type Compressor = zstd::bulk::Compressor<'static>;
use super::lock;
use super::segment::{
    encode_frame, encode_stamp, entry_at, file_name, frame_compressor, frame_end, is_framed,
    sync_dir, FRAMED_SEGMENT_MAGIC, HEADER_LEN, SEGMENT_MAGIC,
};
use super::segments::{SegmentInfo, Segments};

/// Appended entries not yet taken by a flush, and the append-side counters.
#[derive(Debug, Default)]
pub struct Buffer {
    /// Encoded entries, back to back.
    pub bytes: Vec<u8>,
    /// The seq the next append gets.
    pub next_seq: u64,
    /// Appended bytes not yet durable: these plus the writer's pending ones.
    pub unflushed: u64,
    pub appended_entries: u64,
    pub appended_bytes: u64,
    /// Set by `close`: appends are refused from then on.
    pub closed: bool,
    /// The flusher was woken early for the bytes gathered so far.
    pub woke: bool,
}

/// The segment being appended to.
#[derive(Debug)]
pub struct ActiveSegment {
    file: File,
    first_seq: u64,
    /// Durable length: everything before it is fsynced.
    len: u64,
    has_entries: bool,
    /// It holds frames (written in its own kind until it is full).
    framed: bool,
}

impl ActiveSegment {
    /// Continues a segment a previous run left, valid up to `len`.
    pub fn reopen(path: &Path, first_seq: u64, len: u64, has_entries: bool) -> io::Result<Self> {
        let framed = is_framed(path, first_seq)?;
        let file = OpenOptions::new().write(true).open(path)?;
        Ok(ActiveSegment {
            file,
            first_seq,
            len,
            has_entries,
            framed,
        })
    }
}

/// What one `write_pending` achieved before it finished or failed.
#[derive(Debug, Default)]
pub struct Progress {
    /// Pending bytes now durable (and dropped from pending).
    pub durable_bytes: u64,
    /// Bytes added to segment files, headers included.
    pub disk_bytes: u64,
    /// Seq of the last entry made durable.
    pub last_seq: Option<u64>,
}

/// The flush side; one at a time, behind the log's writer lock.
pub struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    /// New segments hold frames.
    frame_new_segments: bool,
    /// Made when the first frame is written.
    compressor: Option<Compressor>,
    active: Option<ActiveSegment>,
    /// Entries taken from the buffer and not yet durable, oldest first.
    pending: Vec<u8>,
    /// A segment was created since the last collection of covered segments.
    pub rolled: bool,
    /// The delete bound the last collection used.
    pub collected_bound: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dir", &self.dir)
            .field("active", &self.active)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub fn new(
        dir: PathBuf,
        segment_bytes: u64,
        compression: LogCompression,
        active: Option<ActiveSegment>,
    ) -> Self {
        Writer {
            dir,
            segment_bytes,
            frame_new_segments: compression == LogCompression::Zstd,
            compressor: None,
            active,
            pending: Vec::new(),
            rolled: true,
            collected_bound: 0,
        }
    }

    /// Moves the buffer's entries behind the pending ones. The common case
    /// (nothing pending) swaps vectors, so nothing is copied.
    pub fn take(&mut self, buffer: &mut Buffer) {
        if buffer.bytes.is_empty() {
            return;
        }
        if self.pending.is_empty() {
            std::mem::swap(&mut self.pending, &mut buffer.bytes);
        } else {
            self.pending.extend_from_slice(&buffer.bytes);
            buffer.bytes.clear();
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Forgets the active segment once it was deleted (fully covered); the
    /// next entry starts a new one.
    pub fn drop_active_if_removed(&mut self, segments: &Segments) {
        if self
            .active
            .as_ref()
            .is_some_and(|active| !segments.contains(active.first_seq))
        {
            self.active = None;
        }
    }

    /// Writes and fsyncs pending entries segment by segment (as frames in a
    /// segment of frames). On failure the entries already fsynced count as
    /// durable and the rest stay pending.
    pub fn write_pending(&mut self, segments: &Mutex<Segments>) -> (Progress, anyhow::Result<()>) {
        let mut progress = Progress::default();
        let mut done = 0;
        let mut frames = Vec::new();
        let result = loop {
            if done == self.pending.len() {
                break Ok(());
            }
            let (_, first_seq) = entry_at(&self.pending, done);
            if self.active.is_none() {
                match self.roll(first_seq, segments) {
                    Ok(header) => progress.disk_bytes += header,
                    Err(error) => break Err(error),
                }
            }
            let Some(active) = self.active.as_mut() else {
                break Err(anyhow::anyhow!("record log: no segment to write to"));
            };
            // What of the pending entries fits this segment, as it stores them.
            let room = self.segment_bytes.saturating_sub(active.len);
            let mut end = done;
            let mut last_seq = first_seq;
            frames.clear();
            while end < self.pending.len() {
                let (next, seq, stored) = if active.framed {
                    let (next, seq) = frame_end(&self.pending, end);
                    let before = frames.len();
                    let (_, first) = entry_at(&self.pending, end);
                    if self.compressor.is_none() {
                        match frame_compressor() {
                            Ok(compressor) => self.compressor = Some(compressor),
                            Err(error) => {
                                return (
                                    progress,
                                    Err(anyhow::Error::new(error).context("starting zstd")),
                                )
                            }
                        }
                    }
                    let encoded = match self.compressor.as_mut() {
                        Some(compressor) => {
                            encode_frame(&mut frames, first, &self.pending[end..next], compressor)
                        }
                        None => Err(io::Error::other("no zstd compressor")),
                    };
                    if let Err(error) = encoded {
                        frames.truncate(before);
                        return (
                            progress,
                            Err(anyhow::Error::new(error).context("compressing record log entries")),
                        );
                    }
                    (next, seq, frames.len() - before)
                } else {
                    let (len, seq) = entry_at(&self.pending, end);
                    (end + len, seq, len)
                };
                let taken = if active.framed {
                    frames.len() - stored
                } else {
                    end - done
                };
                let fits = (taken + stored) as u64 <= room;
                if !fits && (active.has_entries || end > done) {
                    if active.framed {
                        frames.truncate(taken);
                    }
                    break;
                }
                end = next;
                last_seq = seq;
            }
            if end == done {
                // Full: the next entries start a new segment.
                match self.roll(first_seq, segments) {
                    Ok(header) => progress.disk_bytes += header,
                    Err(error) => break Err(error),
                }
                continue;
            }
            let chunk = if active.framed {
                &frames[..]
            } else {
                &self.pending[done..end]
            };
            let written = active
                .file
                .write_all_at(chunk, active.len)
                .and_then(|()| active.file.sync_data());
            if let Err(error) = written {
                // Cut what part of the chunk reached the file, so no torn entry
                // lies past the durable end; should that fail too, the retry
                // writes the same bytes at the same offset over it.
                let _ = active.file.set_len(active.len);
                let path = self.dir.join(file_name(active.first_seq));
                break Err(anyhow::Error::new(error)
                    .context(format!("writing record log segment {}", path.display())));
            }
            active.len += chunk.len() as u64;
            active.has_entries = true;
            lock(segments).extend_last(active.first_seq, active.len, last_seq);
            progress.disk_bytes += chunk.len() as u64;
            progress.last_seq = Some(last_seq);
            done = end;
        };
        progress.durable_bytes = done as u64;
        if done == self.pending.len() {
            self.pending.clear();
        } else {
            self.pending.drain(..done);
        }
        (progress, result)
    }

    /// Starts segment `first_seq`: header written and fsynced, folder fsynced.
    /// Returns the bytes it added.
    fn roll(&mut self, first_seq: u64, segments: &Mutex<Segments>) -> anyhow::Result<u64> {
        self.active = None;
        let path = self.dir.join(file_name(first_seq));
        let framed = self.frame_new_segments;
        let magic = if framed {
            FRAMED_SEGMENT_MAGIC
        } else {
            SEGMENT_MAGIC
        };
        if lock(segments).contains(first_seq) {
            anyhow::bail!(
                "record log segment {} exists already; seq {first_seq} was handed out twice",
                path.display()
            );
        }
        let created = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut file| {
                file.write_all(&encode_stamp(magic, first_seq))?;
                file.sync_all()?;
                sync_dir(&self.dir)?;
                Ok(file)
            });
        let file = match created {
            Ok(file) => file,
            Err(error) => {
                // A header-only or torn file would be removed at the next
                // open anyway; removing it now keeps the folder clean.
                let _ = fs::remove_file(&path);
                return Err(error)
                    .with_context(|| format!("creating record log segment {}", path.display()));
            }
        };
        lock(segments).push(SegmentInfo {
            first_seq,
            len: HEADER_LEN,
            readable_end: HEADER_LEN,
            last_seq: None,
        });
        self.active = Some(ActiveSegment {
            file,
            first_seq,
            len: HEADER_LEN,
            has_entries: false,
            framed,
        });
        self.rolled = true;
        Ok(HEADER_LEN)
    }
}
