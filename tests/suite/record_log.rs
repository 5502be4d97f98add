//! The local write-ahead record log: round trips, acks and deletion,
//! replay, torn and corrupt tails, concurrency, caps, a full disk (a real
//! tmpfs) and kill -9 (a real child process).
//!
//! Ground truth is what the test appended: every payload is kept with the
//! seq the log returned, and byte offsets come from the documented format
//! (20-byte segment header, 16-byte entry header + payload).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use meterflow::pipeline::record_log::{
    AppendError, LogCompression, RecordLog, RecordLogConfig, Snapshot,
};

const HEADER: u64 = 20;
const ENTRY: u64 = 16;

fn config(dir: &Path, segment_bytes: u64) -> RecordLogConfig {
    RecordLogConfig {
        dir: dir.to_path_buf(),
        flush_interval_s: 0.5,
        segment_bytes,
        max_bytes: 1 << 30,
        max_buffer_bytes: 1 << 20,
        // The byte offsets these tests work out are those of plain entries;
        // tests/record_log_frames.rs covers segments of zstd frames.
        compression: LogCompression::None,
    }
}

/// A payload whose bytes depend on `i` and `len`.
fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|k| (i.wrapping_mul(131) ^ k.wrapping_mul(7)) as u8)
        .collect()
}

fn read_all(log: &RecordLog, after: u64) -> Vec<(u64, Vec<u8>)> {
    log.read_from(after)
        .collect::<anyhow::Result<Vec<_>>>()
        .unwrap()
}

/// First seqs of the segment files, from their names.
fn segment_names(dir: &Path) -> Vec<u64> {
    let mut names: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wal").map(|n| n.parse().unwrap())
        })
        .collect();
    names.sort_unstable();
    names
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

fn open(
    config: RecordLogConfig,
    consumers: &[&str],
) -> (RecordLog, meterflow::pipeline::record_log::Recovery) {
    RecordLog::open(config, consumers).unwrap()
}

#[test]
fn entries_and_seqs_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, recovery) = open(config(dir.path(), 64 << 20), &[]);
    assert_eq!(recovery.next_seq, 1);
    assert_eq!(recovery.entries, 0);
    let mut expected = Vec::new();
    for i in 0..100u64 {
        let body = payload(i, (i as usize * 3) % 301);
        let seq = log.append(&body).unwrap();
        assert_eq!(seq, i + 1);
        expected.push((seq, body));
    }
    assert_eq!(log.durable_seq(), 0);
    assert!(
        read_all(&log, 0).is_empty(),
        "nothing is readable before a flush"
    );
    assert_eq!(log.flush().unwrap(), 100);
    assert_eq!(read_all(&log, 0), expected);
    assert_eq!(log.close().unwrap(), 100);
    assert_eq!(log.append(b"late"), Err(AppendError::Closed));
    drop(log);

    let (log, recovery) = open(config(dir.path(), 64 << 20), &[]);
    assert_eq!(recovery.next_seq, 101);
    assert_eq!(recovery.entries, 100);
    assert_eq!(recovery.first_seq, Some(1));
    assert_eq!((recovery.torn_bytes, recovery.corrupt_bytes), (0, 0));
    assert!(recovery.problems.is_empty(), "{:?}", recovery.problems);
    assert_eq!(read_all(&log, 0), expected);
    assert_eq!(read_all(&log, 37), expected[37..].to_vec());
    assert_eq!(log.append(b"next").unwrap(), 101);
    let total: u64 = expected.iter().map(|(_, p)| ENTRY + p.len() as u64).sum();
    let stats = log.stats();
    assert_eq!(stats.bytes_on_disk, HEADER + total);
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
        HEADER + total
    );
}

/// 200-byte payloads in 1024-byte segments: 20 + 4 × 216 = 884 fits, a
/// fifth entry (1100) does not, so segments hold seqs 1-4, 5-8, 9-12, …
#[test]
fn segments_are_deleted_once_every_consumer_and_the_snapshot_passed_them() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 1024), &["a", "b"]);
    for i in 0..20 {
        log.append(&payload(i, 200)).unwrap();
    }
    log.flush().unwrap();
    assert_eq!(segment_names(dir.path()), vec![1, 5, 9, 13, 17]);
    assert_eq!(log.stats().bytes_on_disk, 5 * (HEADER + 4 * 216));

    assert!(log.ack("a", 10).unwrap());
    assert!(log.ack("b", 10).unwrap());
    // No snapshot yet: the state could not be rebuilt without these entries.
    assert_eq!(segment_names(dir.path()), vec![1, 5, 9, 13, 17]);
    assert!(log.write_snapshot(6, b"state@6").unwrap());
    assert_eq!(segment_names(dir.path()), vec![5, 9, 13, 17]);
    assert!(log.write_snapshot(10, b"state@10").unwrap());
    assert_eq!(segment_names(dir.path()), vec![9, 13, 17]);
    assert!(
        !log.write_snapshot(8, b"older").unwrap(),
        "an older snapshot is ignored"
    );
    assert!(!log.ack("a", 5).unwrap(), "a lower ack is ignored");
    assert_eq!(log.acked("a"), Some(10));
    assert!(log.ack("a", 21).is_err(), "seq 21 was never handed out");
    assert!(log.ack("zz", 1).is_err(), "not a consumer");
    let stats = log.stats();
    assert_eq!(stats.segments, 3);
    assert_eq!(stats.bytes_on_disk, 3 * (HEADER + 4 * 216));
    assert_eq!(stats.first_retained_seq, Some(9));
    assert_eq!(stats.snapshot_seq, 10);
    assert_eq!(
        stats.consumers.iter().map(|c| c.lag).collect::<Vec<_>>(),
        vec![10, 10]
    );
    log.close().unwrap();
    drop(log);

    let (log, recovery) = open(config(dir.path(), 1024), &["a", "b"]);
    assert_eq!(
        recovery.acked,
        vec![("a".to_string(), 10), ("b".to_string(), 10)]
    );
    assert_eq!(
        recovery.snapshot,
        Some(Snapshot {
            seq: 10,
            bytes: b"state@10".to_vec()
        })
    );
    assert_eq!(recovery.next_seq, 21);
    log.ack("a", 20).unwrap();
    log.ack("b", 12).unwrap();
    // Bound = min(acks 20 and 12, snapshot 10) = 10: nothing new.
    assert_eq!(segment_names(dir.path()), vec![9, 13, 17]);
    log.write_snapshot(20, b"state@20").unwrap();
    // Bound = 12: segment 9 (seqs 9-12) goes.
    assert_eq!(segment_names(dir.path()), vec![13, 17]);
    log.close().unwrap();
    drop(log);

    // Output b was removed from the configuration: its ack no longer holds
    // anything back, so every segment (the newest too) is covered.
    let (log, recovery) = open(config(dir.path(), 1024), &["a"]);
    assert_eq!(recovery.ignored_consumers, vec![("b".to_string(), 12)]);
    assert_eq!(segment_names(dir.path()), Vec::<u64>::new());
    assert_eq!(log.stats().bytes_on_disk, 0);
    assert_eq!(log.append(b"after").unwrap(), 21);
    log.flush().unwrap();
    assert_eq!(segment_names(dir.path()), vec![21]);
    assert_eq!(read_all(&log, 0), vec![(21, b"after".to_vec())]);
}

#[test]
fn seqs_keep_increasing_after_every_segment_was_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 1024), &["out"]);
    for i in 0..10 {
        log.append(&payload(i, 300)).unwrap();
    }
    log.flush().unwrap();
    log.ack("out", 10).unwrap();
    log.write_snapshot(10, b"").unwrap();
    assert!(segment_names(dir.path()).is_empty());
    // Appends after the last segment was deleted start a new one.
    assert_eq!(log.append(b"x").unwrap(), 11);
    log.flush().unwrap();
    log.ack("out", 11).unwrap();
    log.write_snapshot(11, b"").unwrap();
    assert!(segment_names(dir.path()).is_empty());
    log.close().unwrap();
    drop(log);
    let (log, recovery) = open(config(dir.path(), 1024), &["out"]);
    assert_eq!(recovery.next_seq, 12);
    assert_eq!(recovery.entries, 0);
    assert_eq!(log.append(b"y").unwrap(), 12);
}

#[test]
fn a_consumer_replays_from_its_ack_and_state_from_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 4096), &["parquet", "packets"]);
    let expected: Vec<(u64, Vec<u8>)> = (0..50)
        .map(|i| {
            let body = payload(i, 100);
            (log.append(&body).unwrap(), body)
        })
        .collect();
    log.flush().unwrap();
    log.ack("parquet", 30).unwrap();
    log.ack("packets", 45).unwrap();
    log.write_snapshot(20, b"registers").unwrap();
    // Kill-style end: no close, the log is just dropped.
    drop(log);
    let (log, recovery) = open(config(dir.path(), 4096), &["parquet", "packets"]);
    for (consumer, acked) in &recovery.acked {
        let tail = read_all(&log, *acked);
        assert_eq!(tail, expected[*acked as usize..].to_vec(), "{consumer}");
    }
    let snapshot = recovery.snapshot.unwrap();
    assert_eq!(snapshot.bytes, b"registers");
    assert_eq!(read_all(&log, snapshot.seq), expected[20..].to_vec());
    // Segments of 4096 bytes hold 35 entries of 116 bytes: seqs 1-35, 36-50;
    // the snapshot (20) holds the first back.
    assert_eq!(segment_names(dir.path()), vec![1, 36]);
}

/// Three entries of 40, 50 and 60 bytes: the last starts at
/// 20 + 56 + 66 = 142 and ends at 142 + 76 = 218.
fn three_entry_segment() -> (Vec<u8>, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 1 << 20), &[]);
    let bodies: Vec<Vec<u8>> = [40, 50, 60].iter().map(|&n| payload(n as u64, n)).collect();
    for body in &bodies {
        log.append(body).unwrap();
    }
    log.close().unwrap();
    let bytes = fs::read(segment_path(dir.path(), 1)).unwrap();
    assert_eq!(bytes.len(), 218);
    (bytes, bodies)
}

/// Opens a log made of `bytes` as segment 1, checks what recovery found,
/// appends one entry and checks what a second reopen reads.
fn recover_and_append(bytes: &[u8], bodies: &[Vec<u8>], kept: usize, cut_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 1), bytes).unwrap();
    let (log, recovery) = open(config(dir.path(), 1 << 20), &[]);
    assert_eq!(recovery.next_seq, kept as u64 + 1);
    assert_eq!(recovery.entries, kept as u64);
    assert_eq!(recovery.torn_bytes, cut_bytes);
    assert_eq!(recovery.corrupt_bytes, 0);
    assert_eq!(recovery.problems.is_empty(), cut_bytes == 0);
    let seq = log.append(b"new").unwrap();
    assert_eq!(seq, kept as u64 + 1);
    log.close().unwrap();
    drop(log);
    let (log, recovery) = open(config(dir.path(), 1 << 20), &[]);
    assert_eq!(recovery.torn_bytes, 0);
    let mut expected: Vec<(u64, Vec<u8>)> = bodies[..kept]
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u64 + 1, b.clone()))
        .collect();
    expected.push((seq, b"new".to_vec()));
    assert_eq!(read_all(&log, 0), expected);
}

#[test]
fn a_tail_torn_at_any_byte_of_the_last_entry_is_cut_and_counted() {
    let (bytes, bodies) = three_entry_segment();
    for cut in 142..218 {
        recover_and_append(&bytes[..cut], &bodies, 2, cut as u64 - 142);
    }
}

#[test]
fn a_segment_torn_inside_its_header_is_removed() {
    let (bytes, bodies) = three_entry_segment();
    for cut in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment_path(dir.path(), 1), &bytes[..cut]).unwrap();
        let (log, recovery) = open(config(dir.path(), 1 << 20), &[]);
        assert_eq!(recovery.torn_bytes, cut as u64);
        assert_eq!(recovery.next_seq, 1);
        assert_eq!(log.append(b"new").unwrap(), 1);
    }
    // A header alone is a valid empty segment that takes the next entry.
    recover_and_append(&bytes[..20], &bodies, 0, 0);
}

#[test]
fn a_flipped_bit_in_the_last_entry_is_cut_and_counted() {
    let (bytes, bodies) = three_entry_segment();
    // One bit in every byte of the last entry: length, checksum, seq, payload.
    for offset in 142..218 {
        let mut bad = bytes.clone();
        bad[offset] ^= 1 << (offset % 8);
        recover_and_append(&bad, &bodies, 2, 76);
    }
}

#[test]
fn corruption_in_an_older_segment_skips_only_the_rest_of_that_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 1024), &[]);
    let bodies: Vec<Vec<u8>> = (0..12).map(|i| payload(i, 200)).collect();
    for body in &bodies {
        log.append(body).unwrap();
    }
    log.close().unwrap();
    drop(log);
    assert_eq!(segment_names(dir.path()), vec![1, 5, 9]);
    // Entry 6 is the second of segment 5: it starts at 20 + 216 = 236.
    let path = segment_path(dir.path(), 5);
    let mut data = fs::read(&path).unwrap();
    data[236 + 16 + 10] ^= 0x04;
    fs::write(&path, &data).unwrap();

    let (log, recovery) = open(config(dir.path(), 1024), &[]);
    assert_eq!(recovery.corrupt_bytes, 884 - 236);
    assert_eq!(recovery.torn_bytes, 0);
    assert_eq!(recovery.entries, 9);
    assert_eq!(recovery.next_seq, 13);
    // The corrupt entry, and the entries 6-8 it cost.
    assert_eq!(recovery.lost, vec![(6, 8)]);
    assert_eq!(recovery.problems.len(), 2, "{:?}", recovery.problems);
    let seqs: Vec<u64> = read_all(&log, 0).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 9, 10, 11, 12]);
    for (seq, body) in read_all(&log, 0) {
        assert_eq!(body, bodies[seq as usize - 1]);
    }
    assert_eq!(log.append(b"next").unwrap(), 13);
}

#[test]
fn concurrent_appends_get_dense_unique_seqs_while_a_reader_replays() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 64 << 10);
    cfg.flush_interval_s = 0.002;
    let (log, _) = open(cfg, &[]);
    let log = Arc::new(log);
    let flusher = log.spawn_flusher().unwrap();
    let appenders: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        let body = payload(t * PER_THREAD + i, 40 + (i % 50) as usize);
                        (log.append(&body).unwrap(), body)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Each replay sees a dense prefix, at least up to what was durable before it.
    let mut replays = 0;
    while appenders.iter().any(|a| !a.is_finished()) || replays == 0 {
        let durable = log.durable_seq();
        let seqs: Vec<u64> = read_all(&log, 0).into_iter().map(|(s, _)| s).collect();
        assert!(seqs.len() as u64 >= durable);
        assert!(seqs.iter().enumerate().all(|(k, &s)| s == k as u64 + 1));
        replays += 1;
    }
    let mut by_seq = BTreeMap::new();
    for appender in appenders {
        let appended = appender.join().unwrap();
        assert!(appended.windows(2).all(|w| w[0].0 < w[1].0));
        for (seq, body) in appended {
            assert!(by_seq.insert(seq, body).is_none(), "seq {seq} twice");
        }
    }
    let total = THREADS * PER_THREAD;
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(flusher.stop().unwrap(), total);
    let read = read_all(&log, 0);
    assert_eq!(read, by_seq.into_iter().collect::<Vec<_>>());
    let stats = log.stats();
    assert_eq!(stats.appended_entries, total);
    assert_eq!(stats.durable_seq, total);
    assert!(stats.segments > 1, "64 KiB segments rolled");
}

#[test]
fn full_is_returned_and_counted_at_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RecordLogConfig {
        dir: dir.path().to_path_buf(),
        flush_interval_s: 0.5,
        segment_bytes: 4096,
        max_bytes: 16384,
        max_buffer_bytes: 8192,
        compression: LogCompression::None,
    };
    let (log, _) = open(cfg, &[]);
    let body = payload(1, 1000);
    // Unflushed cap: 8 entries of 1016 bytes (8128) fit in 8192.
    for _ in 0..8 {
        log.append(&body).unwrap();
    }
    assert_eq!(log.append(&body), Err(AppendError::Full));
    assert_eq!(log.stats().overflows, 1);
    assert_eq!(log.stats().buffered_bytes, 8 * 1016);
    log.flush().unwrap();
    // Byte cap: 4 entries per 4096-byte segment (20 + 4 × 1016 = 4084); after
    // 16 entries the disk holds 4 × 20 + 16 × 1016 = 16336 and one more
    // entry would pass 16384.
    for _ in 8..16 {
        log.append(&body).unwrap();
        log.flush().unwrap();
    }
    assert_eq!(log.stats().bytes_on_disk, 16336);
    assert_eq!(log.append(&body), Err(AppendError::Full));
    assert_eq!(log.stats().overflows, 2);
    // Outputs catching up (here: the snapshot, no consumers) make room.
    log.write_snapshot(12, b"").unwrap();
    assert_eq!(log.stats().bytes_on_disk, 4084);
    assert_eq!(log.append(&body).unwrap(), 17);
    assert_eq!(
        log.append(&vec![0u8; 8192]),
        Err(AppendError::TooLarge {
            len: 8192,
            max: 8192 - 16
        })
    );
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes a file until the filesystem refuses more.
fn fill(path: &Path) {
    let mut file = fs::File::create(path).unwrap();
    let block = vec![0xAAu8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_loses_nothing_and_the_log_recovers_when_space_returns() {
    let tmpfs = match Tmpfs::mount("256k") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            eprintln!("skipping the disk-full test: cannot mount a tmpfs ({reason})");
            return;
        }
    };
    let dir = tmpfs.path().join("log");
    let cfg = RecordLogConfig {
        dir: dir.clone(),
        flush_interval_s: 0.5,
        segment_bytes: 16 << 10,
        max_bytes: 1 << 20,
        max_buffer_bytes: 128 << 10,
        compression: LogCompression::None,
    };
    let (log, _) = open(cfg.clone(), &["out"]);
    let mut expected = Vec::new();
    for i in 0..20 {
        let body = payload(i, 500);
        expected.push((log.append(&body).unwrap(), body));
    }
    assert_eq!(log.flush().unwrap(), 20);
    let filler = tmpfs.path().join("filler");
    fill(&filler);

    for i in 20..70 {
        let body = payload(i, 500);
        expected.push((log.append(&body).unwrap(), body));
    }
    // The segment is 20 + 20 × 516 = 10340 bytes; its last page has 1948
    // free bytes, the next 11 entries need 5676: the write fails part way.
    assert!(log.flush().is_err());
    assert!(!log.is_healthy());
    let error = log.last_error().unwrap();
    assert!(error.contains("No space left"), "{error}");
    assert!(log.flush().is_err());
    assert_eq!(log.durable_seq(), 20);
    assert_eq!(log.stats().flush_errors, 2);
    assert_eq!(
        read_all(&log, 0),
        expected[..20].to_vec(),
        "only durable entries are read"
    );

    // Appends go on into memory up to the buffer cap: 131072 / 516 = 254 entries.
    let mut i = 70;
    loop {
        let body = payload(i, 500);
        match log.append(&body) {
            Ok(seq) => expected.push((seq, body)),
            Err(AppendError::Full) => break,
            Err(other) => panic!("{other}"),
        }
        i += 1;
        assert!(i < 10_000, "the buffer cap never stopped appends");
    }
    assert_eq!(expected.len(), 20 + 254);
    assert_eq!(log.stats().overflows, 1);
    assert!(log.flush().is_err());

    fs::remove_file(&filler).unwrap();
    assert_eq!(log.flush().unwrap(), 274);
    assert!(log.is_healthy());
    assert_eq!(log.last_error(), None);
    assert_eq!(read_all(&log, 0), expected);
    log.close().unwrap();
    drop(log);

    let (log, recovery) = open(cfg, &["out"]);
    assert_eq!((recovery.torn_bytes, recovery.corrupt_bytes), (0, 0));
    assert_eq!(recovery.entries, 274);
    assert_eq!(read_all(&log, 0), expected);
}

const CHILD_DIR: &str = "METERFLOW_RECORD_LOG_CHILD_DIR";
const CHILD_THREADS: u64 = 2;

/// A child payload: writer thread, its counter, then filler derived from both.
fn child_payload(thread: u64, counter: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(216);
    body.extend_from_slice(&thread.to_le_bytes());
    body.extend_from_slice(&counter.to_le_bytes());
    body.extend(payload(thread * 1_000_003 + counter, 200));
    body
}

/// The child half of the kill -9 test: runs only when the parent starts
/// this binary with `CHILD_DIR` set; appends until killed.
#[test]
fn kill9_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut cfg = config(Path::new(&dir), 64 << 10);
    cfg.flush_interval_s = 0.005;
    // The shipped setting: entries in zstd frames.
    cfg.compression = LogCompression::Zstd;
    let (log, _) = open(cfg, &[]);
    let log = Arc::new(log);
    let _flusher = log.spawn_flusher().unwrap();
    for thread in 0..CHILD_THREADS {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut counter = 0;
            loop {
                match log.append(&child_payload(thread, counter)) {
                    Ok(_) => counter += 1,
                    Err(_) => std::thread::yield_now(),
                }
            }
        });
    }
    let mut reported = 0;
    let stdout = std::io::stdout();
    loop {
        let durable = log.durable_seq();
        if durable > reported {
            reported = durable;
            let mut out = stdout.lock();
            writeln!(out, "durable {durable}").unwrap();
            out.flush().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `kill9_child`'s name as the test harness lists it: its module path without
/// the crate's name, so the parent finds it wherever this file is mounted.
fn child_test_name() -> String {
    match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::kill9_child"),
        None => "kill9_child".to_string(),
    }
}

#[test]
fn kill_9_loses_nothing_that_was_reported_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            child_test_name().as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut reported = 0u64;
    let mut reports = 0;
    for line in lines.by_ref() {
        if let Some(seq) = line.unwrap().strip_prefix("durable ") {
            reported = seq.parse().unwrap();
            reports += 1;
            if reports == 40 && reported > 5000 || reports == 400 {
                break;
            }
        }
    }
    assert!(reports > 0, "the child reported nothing");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed");
    // Lines the child wrote before it died are still in the pipe.
    for line in lines {
        if let Some(seq) = line.unwrap().strip_prefix("durable ") {
            reported = reported.max(seq.parse().unwrap());
        }
    }

    let (log, recovery) = open(config(dir.path(), 64 << 10), &[]);
    assert_eq!(recovery.corrupt_bytes, 0, "{:?}", recovery.problems);
    let entries = read_all(&log, 0);
    eprintln!(
        "kill -9: {reported} reported durable, {} entries recovered, {} torn bytes cut",
        entries.len(),
        recovery.torn_bytes
    );
    assert!(
        entries.len() as u64 >= reported,
        "{} < {reported}",
        entries.len()
    );
    assert_eq!(recovery.next_seq, entries.len() as u64 + 1);
    let mut next_counter = [0u64; CHILD_THREADS as usize];
    for (k, (seq, body)) in entries.iter().enumerate() {
        assert_eq!(*seq, k as u64 + 1, "seqs are dense");
        let thread = u64::from_le_bytes(body[0..8].try_into().unwrap());
        let counter = u64::from_le_bytes(body[8..16].try_into().unwrap());
        assert!(thread < CHILD_THREADS);
        assert_eq!(
            counter, next_counter[thread as usize],
            "thread {thread}'s entries in order"
        );
        next_counter[thread as usize] += 1;
        assert_eq!(*body, child_payload(thread, counter));
    }
    assert_eq!(log.append(b"after").unwrap(), entries.len() as u64 + 1);
}

#[test]
fn a_full_disk_while_starting_a_segment_leaves_no_stray_file() {
    let tmpfs = match Tmpfs::mount("256k") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            eprintln!("skipping the disk-full test: cannot mount a tmpfs ({reason})");
            return;
        }
    };
    let dir = tmpfs.path().join("log");
    let (log, _) = open(config(&dir, 1024), &[]);
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| payload(i, 200)).collect();
    for body in &bodies[..4] {
        log.append(body).unwrap();
    }
    log.flush().unwrap();
    let filler = tmpfs.path().join("filler");
    fill(&filler);
    // Segment 1 is full (884 bytes, a fifth entry would pass 1024): the next
    // flush must start segment 5, whose header finds no free page.
    for body in &bodies[4..] {
        log.append(body).unwrap();
    }
    assert!(log.flush().is_err());
    assert_eq!(segment_names(&dir), vec![1]);
    assert_eq!(log.durable_seq(), 4);
    fs::remove_file(&filler).unwrap();
    assert_eq!(log.flush().unwrap(), 8);
    assert_eq!(segment_names(&dir), vec![1, 5]);
    log.close().unwrap();
    drop(log);
    let (log, recovery) = open(config(&dir, 1024), &[]);
    assert_eq!((recovery.torn_bytes, recovery.corrupt_bytes), (0, 0));
    let read = read_all(&log, 0);
    assert_eq!(read.len(), 8);
    for (seq, body) in read {
        assert_eq!(body, bodies[seq as usize - 1]);
    }
}

/// Twenty entries of 200 bytes in segments of four (1, 5, 9, 13, 17), with
/// `acks` acknowledged and an optional snapshot; the log is closed.
fn five_segments(dir: &Path, consumers: &[&str], acks: &[(&str, u64)], snapshot: Option<u64>) {
    let (log, _) = open(config(dir, 1024), consumers);
    for i in 0..20 {
        log.append(&payload(i, 200)).unwrap();
    }
    log.flush().unwrap();
    for &(consumer, seq) in acks {
        log.ack(consumer, seq).unwrap();
    }
    if let Some(seq) = snapshot {
        log.write_snapshot(seq, b"state").unwrap();
    }
    log.close().unwrap();
}

fn seqs(log: &RecordLog) -> Vec<u64> {
    read_all(log, 0).into_iter().map(|(seq, _)| seq).collect()
}

#[test]
fn a_deleted_middle_segment_is_reported_lost_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    five_segments(dir.path(), &["out"], &[("out", 2)], None);
    assert_eq!(segment_names(dir.path()), vec![1, 5, 9, 13, 17]);
    fs::remove_file(segment_path(dir.path(), 9)).unwrap();

    let (log, recovery) = open(config(dir.path(), 1024), &["out"]);
    assert_eq!(recovery.lost, vec![(9, 12)]);
    assert!(
        recovery
            .problems
            .iter()
            .any(|p| p.contains("records 9 to 12 are lost")),
        "{:?}",
        recovery.problems
    );
    assert_eq!(recovery.next_seq, 21);
    assert_eq!(recovery.entries, 16);
    let expected: Vec<u64> = (1..=8).chain(13..=20).collect();
    assert_eq!(seqs(&log), expected);
    for (seq, body) in read_all(&log, 0) {
        assert_eq!(body, payload(seq - 1, 200), "seq {seq}");
    }
    // A reader waiting for any of 9-12 goes on after 12.
    assert_eq!(log.lost_through(8), None);
    assert_eq!(log.lost_through(9), Some(12));
    assert_eq!(log.lost_through(12), Some(12));
    assert_eq!(log.lost_through(13), None);
    assert_eq!(log.append(b"next").unwrap(), 21);
}

#[test]
fn damaged_segments_side_by_side_are_one_lost_run() {
    let dir = tempfile::tempdir().unwrap();
    five_segments(dir.path(), &["out"], &[], None);
    // A flipped payload bit in the first entry of segments 5 and 9 (after
    // the 20-byte header and the 16-byte entry header): both headers stay
    // valid, no entry of either can be trusted.
    for first in [5, 9] {
        let path = segment_path(dir.path(), first);
        let mut data = fs::read(&path).unwrap();
        data[(HEADER + ENTRY) as usize + 3] ^= 0x01;
        fs::write(&path, &data).unwrap();
    }
    let (log, recovery) = open(config(dir.path(), 1024), &["out"]);
    assert_eq!(recovery.lost, vec![(5, 12)]);
    assert_eq!(recovery.corrupt_bytes, 2 * 4 * (ENTRY + 200));
    let expected: Vec<u64> = (1..=4).chain(13..=20).collect();
    assert_eq!(seqs(&log), expected);
}

#[test]
fn a_deleted_oldest_segment_loses_only_what_an_output_or_the_snapshot_still_needed() {
    let dir = tempfile::tempdir().unwrap();
    // Bound min(ack 10, snapshot 10) = 10: segments 1 and 5 (seqs 1-8) went
    // in due course, segment 9 (9-12) holds 11 and 12 still needed.
    five_segments(dir.path(), &["out"], &[("out", 10)], Some(10));
    assert_eq!(segment_names(dir.path()), vec![9, 13, 17]);
    let (_, recovery) = open(config(dir.path(), 1024), &["out"]);
    assert_eq!(
        recovery.lost,
        Vec::<(u64, u64)>::new(),
        "deleted in due course"
    );
    fs::remove_file(segment_path(dir.path(), 9)).unwrap();

    let (log, recovery) = open(config(dir.path(), 1024), &["out"]);
    assert_eq!(recovery.lost, vec![(11, 12)]);
    assert_eq!(seqs(&log), (13..=20).collect::<Vec<u64>>());
    drop(log);

    // A consumer added later (no ack yet) starts from what is there: the
    // seqs before the oldest segment are not a loss to it.
    let (_, recovery) = open(config(dir.path(), 1024), &["out", "new"]);
    assert_eq!(recovery.lost, vec![(11, 12)]);
}

#[test]
fn acked_entries_cut_off_the_tail_are_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    five_segments(dir.path(), &["a", "b"], &[("a", 20), ("b", 5)], None);
    // Cut entries 19 and 20 off segment 17 (20 + 4 * 216 bytes).
    let path = segment_path(dir.path(), 17);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(HEADER + 2 * (ENTRY + 200) + 7).unwrap();
    drop(file);

    let (log, recovery) = open(config(dir.path(), 1024), &["a", "b"]);
    assert_eq!(recovery.torn_bytes, 7);
    // Output a acknowledged 20: seqs up to 20 were handed out.
    assert_eq!(recovery.next_seq, 21);
    assert_eq!(recovery.lost, vec![(19, 20)]);
    assert_eq!(log.lost_through(19), Some(20));
    assert_eq!(read_all(&log, 5).len(), 13);
}

#[test]
fn a_stray_file_with_a_segment_name_costs_no_valid_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 1 << 20), &["out"]);
    for i in 0..40 {
        log.append(&payload(i, 100)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    // Inside segment 1's range, and past its end: neither is a segment.
    let inside = b"not a segment, but named like one".repeat(3);
    let past = vec![0x5au8; 300];
    fs::write(segment_path(dir.path(), 20), &inside).unwrap();
    fs::write(segment_path(dir.path(), 99), &past).unwrap();

    let (log, recovery) = open(config(dir.path(), 1 << 20), &["out"]);
    assert_eq!(recovery.entries, 40);
    assert_eq!(recovery.next_seq, 41);
    assert_eq!(recovery.lost, Vec::<(u64, u64)>::new());
    assert_eq!(recovery.torn_bytes, 0);
    assert_eq!(recovery.corrupt_bytes, (inside.len() + past.len()) as u64);
    assert_eq!(recovery.problems.len(), 2, "{:?}", recovery.problems);
    let read = read_all(&log, 0);
    assert_eq!(read.len(), 40);
    for (seq, body) in read {
        assert_eq!(body, payload(seq - 1, 100));
    }
    // Set aside under another name, kept as they were.
    assert_eq!(segment_names(dir.path()), vec![1]);
    let aside = |first: u64| dir.path().join(format!("{first:020}.wal.unreadable"));
    assert_eq!(fs::read(aside(20)).unwrap(), inside);
    assert_eq!(fs::read(aside(99)).unwrap(), past);
    assert_eq!(log.append(b"next").unwrap(), 41);
    log.close().unwrap();
    drop(log);
    let (log, recovery) = open(config(dir.path(), 1 << 20), &["out"]);
    assert!(recovery.problems.is_empty(), "{:?}", recovery.problems);
    assert_eq!(seqs(&log), (1..=41).collect::<Vec<u64>>());
}

#[test]
fn no_ack_or_snapshot_passes_the_durable_end() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 1 << 20), &["out"]);
    for i in 0..10 {
        log.append(&payload(i, 50)).unwrap();
    }
    assert_eq!(log.flush().unwrap(), 10);
    for i in 10..15 {
        log.append(&payload(i, 50)).unwrap();
    }
    assert_eq!(log.durable_seq(), 10);
    // Entries 11-15 are only in memory: an ack of 15 counts up to 10.
    assert!(log.ack("out", 15).unwrap());
    assert_eq!(log.acked("out"), Some(10));
    assert!(log.ack("out", 16).is_err(), "16 was never handed out");
    // A snapshot covering 15 makes 15 durable first.
    assert!(log.write_snapshot(15, b"state@15").unwrap());
    assert_eq!(log.durable_seq(), 15);
    assert!(log.ack("out", 15).unwrap());
    assert_eq!(log.acked("out"), Some(15));
}
