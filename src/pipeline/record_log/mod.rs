//! The local write-ahead record log between the engine and the outputs.
//!
//! The engine appends opaque payloads and gets dense, increasing seqs that
//! are never reused, not even across restarts. A flush (the flusher thread,
//! every `flush_interval_s`) makes them durable. Outputs acknowledge what
//! they have made durable themselves; segments whose every entry is acked by
//! every configured consumer *and* covered by the state snapshot are deleted.
//! On open, the unacknowledged tail is there to replay with `read_from`.
//!
//! Files in `dir`: `<first seq, 20 digits>.wal` segments (format in
//! `segment`), `acks/<consumer>.ack`, and `snapshot`.
//!
//! Until a first `write_snapshot`, the snapshot seq is 0 and no segment is
//! ever deleted: the owner of the state must snapshot now and then.

mod acks;
mod config;
mod dir_lock;
mod flusher;
mod recovery;
mod replay;
mod segment;
mod segments;
mod snapshot;
mod stats;
mod writer;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use anyhow::Context;

pub use config::{LogCompression, RecordLogConfig};
pub use flusher::Flusher;
pub use replay::{Replay, ReplayMark};
pub use snapshot::Snapshot;
pub use stats::{ConsumerStats, RecordLogStats};

use acks::Acks;
use dir_lock::DirLock;
use flusher::Wake;
use segment::{payload_hasher, sync_dir, ENTRY_HEADER_LEN, HEADER_LEN, MAX_PAYLOAD};
use segments::Segments;
use stats::{Counters, Health};
use writer::{ActiveSegment, Buffer, Writer};

/// Why an append was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The byte cap (`max_bytes`) or the unflushed-buffer cap
    /// (`max_buffer_bytes`, reached when the disk is failing) would be
    /// exceeded: stop reading input until outputs catch up or the disk
    /// recovers (`is_healthy`, `last_error`). Counted as an overflow.
    #[error("record log full (byte cap or unflushed-buffer cap reached)")]
    Full,
    /// The payload could never fit in the buffer.
    #[error("record of {len} bytes is larger than the record log accepts ({max})")]
    TooLarge { len: usize, max: usize },
    /// `close` was called.
    #[error("record log is closed")]
    Closed,
}

/// What `open` found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The seq the next append gets.
    pub next_seq: u64,
    /// Seq of the oldest entry on disk.
    pub first_seq: Option<u64>,
    /// Valid entries on disk.
    pub entries: u64,
    pub segments: usize,
    /// Acked seq of each configured consumer (0: nothing acked yet), in the
    /// order given to `open`; replay each from `read_from(acked)`.
    pub acked: Vec<(String, u64)>,
    /// Acks on disk of consumers not configured any more; they do not hold
    /// segments back.
    pub ignored_consumers: Vec<(String, u64)>,
    /// The state blob; rebuild with it plus `read_from(snapshot.seq)`.
    pub snapshot: Option<Snapshot>,
    /// Bytes cut off the newest segment's end (a torn or corrupt tail).
    pub torn_bytes: u64,
    /// Bytes skipped inside older segments, in unreadable ack files or an
    /// unreadable snapshot.
    pub corrupt_bytes: u64,
    /// Seq ranges (inclusive) that were handed out and are still needed
    /// (past the lowest ack or the snapshot) but that no segment holds any
    /// more: a segment deleted or damaged by hand, a corrupt older entry.
    pub lost: Vec<(u64, u64)>,
    /// One line per problem found (already logged as warnings).
    pub problems: Vec<String>,
}

/// The record log; share it as `Arc<RecordLog>`, every method takes `&self`.
#[derive(Debug)]
pub struct RecordLog {
    config: RecordLogConfig,
    max_payload: usize,
    /// Unflushed bytes at which the flusher is woken before its interval.
    wake_bytes: u64,
    buffer: Mutex<Buffer>,
    writer: Mutex<Writer>,
    segments: Mutex<Segments>,
    acks: Mutex<Acks>,
    /// Serialises snapshot writes, which are slow, apart from acks.
    snapshot_write: Mutex<()>,
    snapshot_seq: AtomicU64,
    /// Entries up to this seq may be deleted: min of acks and snapshot.
    delete_bound: AtomicU64,
    durable_seq: AtomicU64,
    /// `Recovery::lost`: seqs no reader will ever get.
    lost: Vec<(u64, u64)>,
    disk_bytes: AtomicU64,
    counters: Counters,
    health: Health,
    wake: Wake,
    _dir_lock: DirLock,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

const ACKS_DIR: &str = "acks";

impl RecordLog {
    /// Opens (or creates) the log in `config.dir` for these consumers.
    /// A torn or corrupt tail is cut, corruption inside older segments is
    /// skipped; both are counted in `Recovery`, neither stops the open.
    /// Errors are configuration errors and I/O failures of the folder itself.
    pub fn open(config: RecordLogConfig, consumers: &[&str]) -> anyhow::Result<(Self, Recovery)> {
        config.validate()?;
        let dir = config.dir.clone();
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating the record log folder {}", dir.display()))?;
        let dir_lock = DirLock::acquire(&dir)?;
        remove_stale_temps(&dir);
        let (acks, ack_problems) = acks::load(&dir.join(ACKS_DIR), consumers)?;
        let (snapshot, snapshot_problem) = snapshot::load(&dir)?;
        let scan = recovery::scan(&dir)?;

        let snapshot_seq = snapshot.as_ref().map_or(0, |s| s.seq);
        // Every seq below these was handed out once; none may come again.
        let mut next_seq = scan
            .last_seq()
            .map_or(1, |seq| seq + 1)
            .max(acks.max_any() + 1)
            .max(snapshot_seq + 1);
        if let Some(newest) = scan.segments.last().filter(|s| s.last_seq.is_none()) {
            next_seq = next_seq.max(newest.first_seq);
        }
        let mut problems = ack_problems.problems;
        let mut corrupt_bytes = scan.corrupt_bytes + ack_problems.corrupt_bytes;
        if let Some((problem, bytes)) = snapshot_problem {
            problems.push(problem);
            corrupt_bytes += bytes;
        }
        problems.extend(scan.problems.iter().cloned());
        let lost = lost_ranges(&scan, next_seq, &acks, snapshot.as_ref().map(|s| s.seq));
        for &(from, to) in &lost {
            problems.push(format!(
                "records {from} to {to} are lost: no segment holds them, although an output or \
                 the state snapshot still needs them"
            ));
        }
        for problem in &problems {
            tracing::warn!("record log {}: {problem}", dir.display());
        }

        // Continue the newest segment when it is clean and next in line.
        let active = match scan.segments.last() {
            Some(newest)
                if newest.readable_end == newest.len
                    && newest.len >= HEADER_LEN
                    && newest.last_seq.map_or(newest.first_seq, |s| s + 1) == next_seq =>
            {
                let path = dir.join(segment::file_name(newest.first_seq));
                let active = ActiveSegment::reopen(
                    &path,
                    newest.first_seq,
                    newest.len,
                    newest.last_seq.is_some(),
                )
                .with_context(|| format!("opening {}", path.display()))?;
                Some(active)
            }
            _ => None,
        };

        let recovery = Recovery {
            next_seq,
            first_seq: scan
                .segments
                .iter()
                .find(|s| s.last_seq.is_some())
                .map(|s| s.first_seq),
            entries: scan
                .segments
                .iter()
                .filter_map(|s| s.last_seq.map(|last| last + 1 - s.first_seq))
                .sum(),
            segments: scan.segments.len(),
            acked: acks.known().to_vec(),
            ignored_consumers: acks.ignored().to_vec(),
            snapshot,
            torn_bytes: scan.torn_bytes,
            corrupt_bytes,
            lost: lost.clone(),
            problems,
        };
        let segments = Segments::new(dir.clone(), scan.segments);
        let disk_bytes = segments.bytes();
        let max_payload = MAX_PAYLOAD.min(config.max_buffer_bytes as usize - ENTRY_HEADER_LEN);
        let log = RecordLog {
            max_payload,
            wake_bytes: config.max_buffer_bytes / 4,
            buffer: Mutex::new(Buffer {
                next_seq,
                ..Buffer::default()
            }),
            writer: Mutex::new(Writer::new(
                dir,
                config.segment_bytes,
                config.compression,
                active,
            )),
            segments: Mutex::new(segments),
            acks: Mutex::new(acks),
            snapshot_write: Mutex::new(()),
            snapshot_seq: AtomicU64::new(snapshot_seq),
            delete_bound: AtomicU64::new(0),
            durable_seq: AtomicU64::new(next_seq - 1),
            lost,
            disk_bytes: AtomicU64::new(disk_bytes),
            counters: Counters::default(),
            health: Health::default(),
            wake: Wake::default(),
            _dir_lock: dir_lock,
            config,
        };
        log.update_bound(&lock(&log.acks));
        log.collect(&mut lock(&log.writer))?;
        Ok((log, recovery))
    }

    pub fn config(&self) -> &RecordLogConfig {
        &self.config
    }

    /// Buffers one entry in memory and returns its seq; durable after the
    /// next flush. Cheap: a checksum, a copy, no system call.
    pub fn append(&self, payload: &[u8]) -> Result<u64, AppendError> {
        if payload.len() > self.max_payload {
            return Err(AppendError::TooLarge {
                len: payload.len(),
                max: self.max_payload,
            });
        }
        let entry_len = (ENTRY_HEADER_LEN + payload.len()) as u64;
        let hash = payload_hasher(payload);
        let mut buffer = lock(&self.buffer);
        if buffer.closed {
            return Err(AppendError::Closed);
        }
        let unflushed = buffer.unflushed + entry_len;
        if unflushed > self.config.max_buffer_bytes
            || self.disk_bytes.load(Relaxed) + unflushed > self.config.max_bytes
        {
            drop(buffer);
            self.counters.overflows.fetch_add(1, Relaxed);
            return Err(AppendError::Full);
        }
        let seq = buffer.next_seq;
        buffer.next_seq += 1;
        segment::encode_entry(&mut buffer.bytes, seq, payload, hash);
        buffer.unflushed = unflushed;
        buffer.appended_entries += 1;
        buffer.appended_bytes += payload.len() as u64;
        let wake = !buffer.woke && unflushed >= self.wake_bytes;
        buffer.woke |= wake;
        drop(buffer);
        if wake {
            self.wake.early();
        }
        Ok(seq)
    }

    /// Writes everything appended so far to the current segment and fsyncs
    /// it, rolling to new segments past `segment_bytes`. Returns the durable
    /// seq. On failure (disk full, I/O error) nothing is lost: what was not
    /// made durable stays in memory for the next flush, the error is counted
    /// and kept in `last_error`.
    pub fn flush(&self) -> anyhow::Result<u64> {
        let mut writer = lock(&self.writer);
        {
            let mut buffer = lock(&self.buffer);
            writer.take(&mut buffer);
            buffer.woke = false;
        }
        if writer.has_pending() {
            let (progress, result) = writer.write_pending(&self.segments);
            lock(&self.buffer).unflushed -= progress.durable_bytes;
            self.disk_bytes.fetch_add(progress.disk_bytes, Relaxed);
            if let Some(seq) = progress.last_seq {
                self.durable_seq.store(seq, Relaxed);
            }
            self.counters.flushes.fetch_add(1, Relaxed);
            if let Err(error) = result {
                self.counters.flush_errors.fetch_add(1, Relaxed);
                self.health.fail(&error);
                return Err(error);
            }
        }
        self.health.ok();
        if let Err(error) = self.collect(&mut writer) {
            tracing::warn!("record log: deleting acknowledged segments failed: {error:#}");
        }
        Ok(self.durable_seq())
    }

    /// Every entry up to this seq is on disk and fsynced.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Relaxed)
    }

    /// The seq the last append got (0 before any, in this log's life).
    pub fn last_seq(&self) -> u64 {
        lock(&self.buffer).next_seq - 1
    }

    /// Whether the last flush succeeded.
    pub fn is_healthy(&self) -> bool {
        self.health.is_healthy()
    }

    /// Why the last flush failed, while it is failing.
    pub fn last_error(&self) -> Option<String> {
        self.health.last_error()
    }

    /// Records that `consumer` has made everything up to `seq` durable, and
    /// deletes segments that are now covered. Persisted before it returns
    /// (a few fsyncs: ack in batches, not per entry). A seq at or below the
    /// current ack is ignored (`Ok(false)`); a seq never handed out is an error.
    /// An ack past `durable_seq` is clamped to it: an acked entry the log
    /// lost in a crash would otherwise leave a hole no one can replay.
    pub fn ack(&self, consumer: &str, seq: u64) -> anyhow::Result<bool> {
        self.check_seq(seq, "ack")?;
        let seq = seq.min(self.durable_seq());
        let moved = {
            let mut acks = lock(&self.acks);
            let moved = acks.ack(consumer, seq)?;
            if moved {
                self.update_bound(&acks);
            }
            moved
        };
        if moved {
            self.try_collect()?;
        }
        Ok(moved)
    }

    /// The acked seq of a configured consumer.
    pub fn acked(&self, consumer: &str) -> Option<u64> {
        lock(&self.acks).acked(consumer)
    }

    /// Stores the state blob covering every entry up to `seq`, atomically,
    /// then deletes segments that are now covered. An older `seq` than the
    /// stored one is ignored (`Ok(false)`). The entries up to `seq` are made
    /// durable first: a snapshot past the log's end would leave a hole.
    pub fn write_snapshot(&self, seq: u64, bytes: &[u8]) -> anyhow::Result<bool> {
        self.check_seq(seq, "snapshot")?;
        if self.durable_seq() < seq {
            self.flush()
                .context("making the record log durable up to the snapshot")?;
        }
        {
            let _writing = lock(&self.snapshot_write);
            if seq < self.snapshot_seq.load(Relaxed) {
                return Ok(false);
            }
            snapshot::store(&self.config.dir, seq, bytes)?;
            let acks = lock(&self.acks);
            self.snapshot_seq.store(seq, Relaxed);
            self.update_bound(&acks);
        }
        self.try_collect()?;
        Ok(true)
    }

    /// The last seq of the lost range (`Recovery::lost`) that holds `seq`:
    /// a reader waiting for `seq` can go on after it.
    pub fn lost_through(&self, seq: u64) -> Option<u64> {
        self.lost
            .iter()
            .find(|&&(from, to)| (from..=to).contains(&seq))
            .map(|&(_, to)| to)
    }

    /// Durable entries after `after_seq`, oldest first (see `Replay`).
    pub fn read_from(&self, after_seq: u64) -> Replay {
        self.read_on(after_seq, None)
    }

    /// [`Self::read_from`], starting at `mark` (from an earlier replay's
    /// [`Replay::mark`]) where it lies before `after_seq`'s entries.
    pub fn read_on(&self, after_seq: u64, mark: Option<ReplayMark>) -> Replay {
        let segments = lock(&self.segments);
        Replay::new(
            segments.dir().to_path_buf(),
            segments.readable_after(after_seq),
            after_seq,
            mark,
        )
    }

    pub fn stats(&self) -> RecordLogStats {
        let (appended_entries, appended_bytes, buffered_bytes, last_seq) = {
            let buffer = lock(&self.buffer);
            (
                buffer.appended_entries,
                buffer.appended_bytes,
                buffer.unflushed,
                buffer.next_seq - 1,
            )
        };
        let (segments, first_retained_seq) = {
            let segments = lock(&self.segments);
            (segments.len(), segments.first_entry_seq())
        };
        let consumers = lock(&self.acks)
            .known()
            .iter()
            .map(|(name, acked)| ConsumerStats {
                name: name.clone(),
                acked_seq: *acked,
                lag: last_seq.saturating_sub(*acked),
            })
            .collect();
        RecordLogStats {
            bytes_on_disk: self.disk_bytes.load(Relaxed),
            segments,
            appended_entries,
            appended_bytes,
            buffered_bytes,
            flushes: self.counters.flushes.load(Relaxed),
            flush_errors: self.counters.flush_errors.load(Relaxed),
            overflows: self.counters.overflows.load(Relaxed),
            durable_seq: self.durable_seq(),
            last_seq,
            first_retained_seq,
            snapshot_seq: self.snapshot_seq.load(Relaxed),
            healthy: self.is_healthy(),
            consumers,
        }
    }

    /// Starts the thread that flushes every `flush_interval_s` (one per log).
    pub fn spawn_flusher(self: &Arc<Self>) -> anyhow::Result<Flusher> {
        Flusher::spawn(self)
    }

    /// Refuses further appends, stops the flusher and flushes what is left.
    /// On error the entries stay in memory; `flush` may be retried.
    pub fn close(&self) -> anyhow::Result<u64> {
        lock(&self.buffer).closed = true;
        self.wake.stop();
        self.flush()
    }

    fn check_seq(&self, seq: u64, what: &str) -> anyhow::Result<()> {
        let last = self.last_seq();
        if seq > last {
            anyhow::bail!("record log {what} of seq {seq}: only seqs up to {last} were handed out");
        }
        Ok(())
    }

    fn update_bound(&self, acks: &Acks) {
        let snapshot = self.snapshot_seq.load(Relaxed);
        let bound = acks
            .min_known()
            .map_or(snapshot, |acked| acked.min(snapshot));
        self.delete_bound.store(bound, Relaxed);
    }

    /// Collects now unless a flush holds the writer; that flush, or the next
    /// one, collects instead.
    fn try_collect(&self) -> anyhow::Result<()> {
        match self.writer.try_lock() {
            Ok(mut writer) => self.collect(&mut writer),
            Err(TryLockError::Poisoned(poisoned)) => self.collect(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => Ok(()),
        }
    }

    /// Deletes the segments the delete bound covers.
    fn collect(&self, writer: &mut Writer) -> anyhow::Result<()> {
        let bound = self.delete_bound.load(Relaxed);
        if bound == writer.collected_bound && !writer.rolled {
            return Ok(());
        }
        let mut segments = lock(&self.segments);
        let (removed, result) = segments.remove_covered(bound);
        writer.drop_active_if_removed(&segments);
        drop(segments);
        self.disk_bytes.fetch_sub(removed.bytes, Relaxed);
        result.context("deleting acknowledged record log segments")?;
        writer.collected_bound = bound;
        writer.rolled = false;
        if removed.segments > 0 {
            sync_dir(&self.config.dir).with_context(|| {
                format!(
                    "syncing {} after deleting segments",
                    self.config.dir.display()
                )
            })?;
        }
        Ok(())
    }
}

impl Drop for RecordLog {
    /// A log dropped without `close` still flushes what it can.
    fn drop(&mut self) {
        let unflushed = lock(&self.buffer).unflushed;
        if unflushed > 0 {
            if let Err(error) = self.flush() {
                tracing::warn!(
                    "record log dropped with {unflushed} bytes it could not write: {error:#}"
                );
            }
        }
    }
}

/// The seq ranges handed out (below `next_seq`) and not yet passed by every
/// output and the snapshot (the delete bound), that no segment holds. Before
/// the oldest segment only an ack on disk or the snapshot tells a lost range
/// from segments deleted in due course (an output added since starts at 0).
fn lost_ranges(
    scan: &recovery::Scan,
    next_seq: u64,
    acks: &Acks,
    snapshot_seq: Option<u64>,
) -> Vec<(u64, u64)> {
    let passed = acks
        .known()
        .iter()
        .map(|&(_, acked)| acked)
        .filter(|&acked| acked > 0)
        .chain(snapshot_seq)
        .min();
    let mut ranges = Vec::new();
    let oldest = scan.segments.first().map_or(next_seq, |s| s.first_seq);
    if let Some(passed) = passed.filter(|&passed| passed + 1 < oldest) {
        ranges.push((passed + 1, oldest - 1));
    }
    ranges.extend(scan.holes());
    if let Some(newest) = scan.segments.last() {
        let end = newest
            .last_seq
            .unwrap_or(newest.first_seq.saturating_sub(1));
        if end + 1 < next_seq {
            ranges.push((end + 1, next_seq - 1));
        }
    }
    let bound = acks.min_known().map_or(snapshot_seq.unwrap_or(0), |acked| {
        acked.min(snapshot_seq.unwrap_or(0))
    });
    let mut lost: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (from, to) in ranges {
        let from = from.max(bound + 1);
        match lost.last_mut() {
            _ if from > to => {}
            // Damaged segments side by side are one run of lost records.
            Some(last) if last.1 + 1 == from => last.1 = to,
            _ => lost.push((from, to)),
        }
    }
    lost
}

/// Removes temporary files a crash left in the middle of a replacement.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}
