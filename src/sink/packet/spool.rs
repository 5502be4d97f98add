//! The on-disk spool of one delivery target: packets that target could not
//! take yet, kept in order until it can, and across restarts.
//!
//! Layout of a spool folder:
//! - `seg-<seq>.ndjson`: append-only segments, one serialised packet per line;
//! - `cursor`: `<seq> <byte offset>` of the oldest undelivered packet,
//!   replaced atomically (write + rename) after each delivery.
//!
//! Segments are fsync'd at most `fsync_interval` after a write (and on
//! close), so a crash loses at most that much; a delivered packet whose
//! cursor update was lost is sent again (at-least-once). A torn last line
//! (crash mid-write) is cut off when the spool is opened.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;

/// Limits of one spool.
#[derive(Clone, Debug)]
pub struct SpoolOptions {
    /// A segment larger than this is closed and a new one started.
    pub segment_max_bytes: u64,
    /// Longest time a written packet may wait for fsync.
    pub fsync_interval: Duration,
    /// Packets waiting may take at most this many bytes; more are refused
    /// with [`SpoolFull`].
    pub max_bytes: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            segment_max_bytes: 8 * 1024 * 1024,
            fsync_interval: Duration::from_secs(1),
            max_bytes: u64::MAX,
        }
    }
}

/// The spool holds `max_bytes` of waiting packets already.
#[derive(Debug, thiserror::Error)]
#[error("spool {dir} is full ({max_bytes} bytes of packets wait)")]
pub struct SpoolFull {
    pub dir: String,
    pub max_bytes: u64,
}

struct WriteSegment {
    seq: u64,
    file: File,
    len: u64,
}

struct ReadPosition {
    seq: u64,
    offset: u64,
    reader: Option<BufReader<File>>,
    /// The packet last returned by `peek` and the offset just past it.
    peeked: Option<(Bytes, u64)>,
}

/// An append-only, ordered, persistent packet queue (single owner; wrap it
/// in a mutex to share).
pub struct Spool {
    dir: PathBuf,
    options: SpoolOptions,
    writer: Option<WriteSegment>,
    /// The next segment number to create.
    next_seq: u64,
    read: ReadPosition,
    pending: Arc<AtomicU64>,
    /// Bytes of the packets waiting (lines with their newlines).
    pending_bytes: u64,
    dirty_since: Option<Instant>,
}

fn segment_name(seq: u64) -> String {
    format!("seg-{seq:020}.ndjson")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".ndjson")?
        .parse()
        .ok()
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, repairing a torn last line and
    /// counting the packets still waiting.
    pub fn open(dir: impl Into<PathBuf>, options: SpoolOptions) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating spool folder {}", dir.display()))?;
        let mut segments = Vec::new();
        for entry in
            fs::read_dir(&dir).with_context(|| format!("listing spool folder {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing spool folder {}", dir.display()))?;
            if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
                segments.push(seq);
            }
        }
        segments.sort_unstable();

        let (mut cursor_seq, mut cursor_offset) = read_cursor(&dir)?.unwrap_or((0, 0));
        // Segments before the cursor are fully delivered.
        for &seq in segments.iter().filter(|&&s| s < cursor_seq) {
            remove_file_logged(&dir.join(segment_name(seq)));
        }
        segments.retain(|&s| s >= cursor_seq);
        match segments.first() {
            Some(&first) if first > cursor_seq => {
                cursor_seq = first;
                cursor_offset = 0;
            }
            None => cursor_offset = 0,
            _ => {}
        }

        if let Some(&last) = segments.last() {
            truncate_torn_tail(&dir.join(segment_name(last)))?;
        }

        let mut pending = 0u64;
        let mut pending_bytes = 0u64;
        for &seq in &segments {
            let path = dir.join(segment_name(seq));
            let skip = if seq == cursor_seq { cursor_offset } else { 0 };
            pending += count_lines_from(&path, skip)?;
            let len = fs::metadata(&path).map_or(0, |m| m.len());
            pending_bytes += len.saturating_sub(skip);
        }

        let next_seq = segments.last().map_or(cursor_seq, |s| s + 1);
        let spool = Self {
            dir,
            options,
            writer: None,
            next_seq,
            read: ReadPosition {
                seq: cursor_seq,
                offset: cursor_offset,
                reader: None,
                peeked: None,
            },
            pending: Arc::new(AtomicU64::new(pending)),
            pending_bytes,
            dirty_since: None,
        };
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Packets waiting in the spool.
    pub fn len(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A live view of [`Self::len`] for whoever reports it.
    pub fn pending_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.pending)
    }

    /// Appends one packet (a JSON document without newlines) at the end.
    pub fn append(&mut self, packet: &[u8]) -> Result<()> {
        if packet.contains(&b'\n') {
            bail!(
                "spool {}: a packet must not contain a newline",
                self.dir.display()
            );
        }
        let line_len = packet.len() as u64 + 1;
        if self.pending_bytes.saturating_add(line_len) > self.options.max_bytes {
            return Err(SpoolFull {
                dir: self.dir.display().to_string(),
                max_bytes: self.options.max_bytes,
            }
            .into());
        }
        let max = self.options.segment_max_bytes;
        if self.writer.as_ref().is_some_and(|w| w.len >= max) {
            self.close_writer()?;
        }
        if self.writer.is_none() {
            let seq = self.next_seq;
            let path = self.dir.join(segment_name(seq));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening spool segment {}", path.display()))?;
            let len = file
                .metadata()
                .with_context(|| format!("reading size of {}", path.display()))?
                .len();
            self.next_seq = seq + 1;
            self.writer = Some(WriteSegment { seq, file, len });
        }
        let Some(writer) = self.writer.as_mut() else {
            bail!("spool {}: no segment open", self.dir.display());
        };
        let mut line = Vec::with_capacity(packet.len() + 1);
        line.extend_from_slice(packet);
        line.push(b'\n');
        writer.file.write_all(&line).with_context(|| {
            format!(
                "writing to spool segment {}",
                self.dir.join(segment_name(writer.seq)).display()
            )
        })?;
        writer.len += line.len() as u64;
        self.pending_bytes += line_len;
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.dirty_since.get_or_insert_with(Instant::now);
        self.sync_if_due()?;
        Ok(())
    }

    /// The oldest waiting packet, without removing it.
    pub fn peek(&mut self) -> Result<Option<Bytes>> {
        if let Some((packet, _)) = &self.read.peeked {
            return Ok(Some(packet.clone()));
        }
        if self.is_empty() {
            return Ok(None);
        }
        loop {
            if self.read.reader.is_none() {
                let path = self.dir.join(segment_name(self.read.seq));
                match File::open(&path) {
                    Ok(mut file) => {
                        file.seek(SeekFrom::Start(self.read.offset))
                            .with_context(|| format!("seeking in {}", path.display()))?;
                        self.read.reader = Some(BufReader::new(file));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if self.read.seq + 1 >= self.next_seq {
                            return Ok(self.lost_count());
                        }
                        self.read.seq += 1;
                        self.read.offset = 0;
                        continue;
                    }
                    Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
                }
            }
            let Some(reader) = self.read.reader.as_mut() else {
                continue;
            };
            let mut line = Vec::new();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading spool {}", self.dir.display()))?;
            if n > 0 && line.last() == Some(&b'\n') {
                line.pop();
                let next = self.read.offset + n as u64;
                let packet = Bytes::from(line);
                self.read.peeked = Some((packet.clone(), next));
                return Ok(Some(packet));
            }
            // End of this segment (a partial line cannot be here: writes are
            // whole lines under the same owner).
            let is_writing = self.writer.as_ref().is_some_and(|w| w.seq == self.read.seq);
            if is_writing || self.read.seq + 1 >= self.next_seq {
                return Ok(self.lost_count());
            }
            self.read.reader = None;
            remove_file_logged(&self.dir.join(segment_name(self.read.seq)));
            self.read.seq += 1;
            self.read.offset = 0;
        }
    }

    /// The counter said packets were waiting but none could be read: a
    /// segment was removed behind our back. Say so and reset the count.
    fn lost_count(&mut self) -> Option<Bytes> {
        tracing::error!(
            spool = %self.dir.display(),
            missing = self.len(),
            "spool count and spool files disagree; the missing packets cannot be sent"
        );
        self.pending.store(0, Ordering::Relaxed);
        None
    }

    /// Removes the packet last returned by [`Self::peek`] (it was delivered).
    /// Peeks first when nothing was peeked, so the oldest packet is always
    /// the one removed.
    pub fn ack(&mut self) -> Result<()> {
        if self.read.peeked.is_none() {
            self.peek()?;
        }
        let Some((packet, next_offset)) = self.read.peeked.take() else {
            bail!("spool {}: nothing to acknowledge", self.dir.display());
        };
        self.read.offset = next_offset;
        self.pending_bytes = self.pending_bytes.saturating_sub(packet.len() as u64 + 1);
        let left = self.pending.load(Ordering::Relaxed).saturating_sub(1);
        self.pending.store(left, Ordering::Relaxed);
        if left == 0 {
            self.pending_bytes = 0;
            // Everything delivered: drop the files instead of keeping them.
            self.read.reader = None;
            self.close_writer()?;
            for seq in self.read.seq..self.next_seq {
                remove_file_logged(&self.dir.join(segment_name(seq)));
            }
            self.read.seq = self.next_seq;
            self.read.offset = 0;
        }
        write_cursor(&self.dir, self.read.seq, self.read.offset)
    }

    /// fsyncs the open segment when the oldest unsynced write is older than
    /// the configured interval.
    pub fn sync_if_due(&mut self) -> Result<()> {
        match self.dirty_since {
            Some(t) if t.elapsed() >= self.options.fsync_interval => self.sync(),
            _ => Ok(()),
        }
    }

    /// fsyncs the open segment now.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(w) = &self.writer {
            w.file
                .sync_data()
                .with_context(|| format!("fsync of spool {}", self.dir.display()))?;
        }
        self.dirty_since = None;
        Ok(())
    }

    fn close_writer(&mut self) -> Result<()> {
        self.sync()?;
        self.writer = None;
        Ok(())
    }

    /// fsyncs and closes; the spool can be reopened later.
    pub fn close(mut self) -> Result<()> {
        self.close_writer()?;
        write_cursor(&self.dir, self.read.seq, self.read.offset)
    }
}

fn remove_file_logged(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a delivered spool segment");
        }
    }
}

fn read_cursor(dir: &Path) -> Result<Option<(u64, u64)>> {
    let path = dir.join("cursor");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(seq)), Some(Ok(offset))) => Ok(Some((seq, offset))),
        _ => bail!(
            "spool cursor {} is not `<segment> <offset>`: {text:?}",
            path.display()
        ),
    }
}

fn write_cursor(dir: &Path, seq: u64, offset: u64) -> Result<()> {
    let tmp = dir.join("cursor.tmp");
    let path = dir.join("cursor");
    fs::write(&tmp, format!("{seq} {offset}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
}

/// Cuts a trailing partial line (no newline) left by a crash mid-write.
fn truncate_torn_tail(path: &Path) -> Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .with_context(|| format!("reading {}", path.display()))?;
    let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < data.len() {
        tracing::warn!(
            path = %path.display(),
            bytes = data.len() - keep,
            "cutting a torn last line from a spool segment"
        );
        file.set_len(keep as u64)
            .with_context(|| format!("truncating {}", path.display()))?;
    }
    Ok(())
}

fn count_lines_from(path: &Path, offset: u64) -> Result<u64> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))
        .with_context(|| format!("seeking in {}", path.display()))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(memchr::memchr_iter(b'\n', &data).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SpoolOptions {
        SpoolOptions {
            segment_max_bytes: 64,
            fsync_interval: Duration::from_millis(0),
            max_bytes: u64::MAX,
        }
    }

    #[test]
    fn the_byte_cap_refuses_more_until_packets_leave_even_after_reopen() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // Three 9-byte lines fit in 27 bytes, a fourth does not.
        let options = SpoolOptions {
            max_bytes: 27,
            ..small()
        };
        let mut spool = Spool::open(dir.path(), options.clone())?;
        for packet in [b"packet-1", b"packet-2", b"packet-3"] {
            spool.append(packet)?;
        }
        let refused = spool.append(b"packet-4").unwrap_err();
        assert!(refused.downcast_ref::<SpoolFull>().is_some(), "{refused:#}");
        drop(spool);
        let mut spool = Spool::open(dir.path(), options)?;
        assert!(
            spool.append(b"packet-4").is_err(),
            "the cap holds across a reopen"
        );
        assert_eq!(spool.peek()?.as_deref(), Some(&b"packet-1"[..]));
        spool.ack()?;
        spool.append(b"packet-4")?;
        assert_eq!(spool.len(), 3);
        Ok(())
    }

    #[test]
    fn keeps_order_across_segments_and_reopen() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut spool = Spool::open(dir.path(), small())?;
        for i in 0..20 {
            spool.append(format!("{{\"n\":{i}}}").as_bytes())?;
        }
        assert_eq!(spool.len(), 20);
        for i in 0..5 {
            let p = spool.peek()?.unwrap_or_default();
            assert_eq!(p, Bytes::from(format!("{{\"n\":{i}}}")));
            spool.ack()?;
        }
        spool.close()?;

        let mut spool = Spool::open(dir.path(), small())?;
        assert_eq!(spool.len(), 15);
        spool.append(b"{\"n\":20}")?;
        for i in 5..21 {
            let p = spool.peek()?.unwrap_or_default();
            assert_eq!(p, Bytes::from(format!("{{\"n\":{i}}}")));
            spool.ack()?;
        }
        assert!(spool.peek()?.is_none());
        let left: Vec<_> = fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .collect();
        assert!(left.is_empty(), "delivered segments are removed");
        Ok(())
    }

    #[test]
    fn torn_tail_is_cut_on_open() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut spool = Spool::open(dir.path(), SpoolOptions::default())?;
        spool.append(b"{\"a\":1}")?;
        spool.close()?;
        let seg = dir.path().join(segment_name(0));
        let mut f = OpenOptions::new().append(true).open(&seg)?;
        f.write_all(b"{\"b\":")?;
        drop(f);
        let mut spool = Spool::open(dir.path(), SpoolOptions::default())?;
        assert_eq!(spool.len(), 1);
        spool.append(b"{\"c\":3}")?;
        assert_eq!(spool.peek()?, Some(Bytes::from_static(b"{\"a\":1}")));
        spool.ack()?;
        assert_eq!(spool.peek()?, Some(Bytes::from_static(b"{\"c\":3}")));
        Ok(())
    }
}
