//! The record log's segments of zstd frames (the shipped setting): entries
//! come back byte for byte across segments and reopens; a frame torn at the
//! tail or damaged in an older segment costs that frame's entries (one
//! flush) and what follows it in its segment, counted; a plain segment an
//! older meterflow left is read and continued in its own kind.

use std::fs;
use std::path::{Path, PathBuf};

use meterflow::pipeline::record_log::{LogCompression, RecordLog, RecordLogConfig, Recovery};

fn config(dir: &Path, segment_bytes: u64, compression: LogCompression) -> RecordLogConfig {
    RecordLogConfig {
        dir: dir.to_path_buf(),
        segment_bytes,
        max_bytes: 1 << 30,
        max_buffer_bytes: 1 << 20,
        compression,
        ..RecordLogConfig::default()
    }
}

fn open(config: RecordLogConfig) -> (RecordLog, Recovery) {
    RecordLog::open(config, &[]).unwrap()
}

/// A record-like payload: field names repeat, values change a little.
fn record_like(i: u64) -> Vec<u8> {
    format!(
        "{{\"window\":{{\"device\":\"meter-{:03}\",\"start_unix_ns\":{},\"v_rms\":[{:.3},{:.3},{:.3}],\
         \"i_rms\":[{:.3},{:.3},{:.3}],\"p_w\":{:.1},\"flags\":0}}}}",
        i % 7,
        1_800_000_000_000_000_000u64 + i * 200_000_000,
        230.0 + (i % 13) as f64 * 0.01,
        229.9,
        230.1,
        10.0 + (i % 5) as f64 * 0.001,
        9.99,
        10.01,
        6900.0 + (i % 11) as f64
    )
    .into_bytes()
}

fn read_all(log: &RecordLog) -> Vec<(u64, Vec<u8>)> {
    log.read_from(0)
        .collect::<anyhow::Result<Vec<_>>>()
        .unwrap()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn magic(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()[..4].to_vec()
}

fn bytes_on_disk(dir: &Path) -> u64 {
    segments(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Appends `count` record-like entries from `first`, flushing every
/// `per_flush` (each flush writes its entries as frames).
fn append_flushed(log: &RecordLog, first: u64, count: u64, per_flush: u64) {
    for i in first..first + count {
        log.append(&record_like(i)).unwrap();
        if (i + 1 - first).is_multiple_of(per_flush) {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
}

#[test]
fn framed_entries_come_back_byte_for_byte_across_segments_in_a_fraction_of_the_bytes() {
    let framed = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    for (dir, compression) in [
        (framed.path(), LogCompression::Zstd),
        (plain.path(), LogCompression::None),
    ] {
        let (log, _) = open(config(dir, 4096, compression));
        append_flushed(&log, 0, 3000, 100);
        log.close().unwrap();
    }
    assert!(segments(framed.path()).len() > 1, "the framed log rolled");
    for path in segments(framed.path()) {
        assert_eq!(magic(&path), b"MFRZ", "{}", path.display());
    }
    let (log, recovery) = open(config(framed.path(), 4096, LogCompression::Zstd));
    assert_eq!(recovery.entries, 3000);
    assert_eq!((recovery.torn_bytes, recovery.corrupt_bytes), (0, 0));
    let entries = read_all(&log);
    let expected: Vec<(u64, Vec<u8>)> = (0..3000).map(|i| (i + 1, record_like(i))).collect();
    assert_eq!(entries, expected);
    // 100 similar entries per frame: at least 4x smaller than as they are
    // (zstd takes the repeats out; the bound leaves room for frame headers).
    let (framed_bytes, plain_bytes) = (bytes_on_disk(framed.path()), bytes_on_disk(plain.path()));
    assert!(
        framed_bytes * 4 < plain_bytes,
        "framed {framed_bytes} B, plain {plain_bytes} B"
    );
    assert_eq!(log.append(b"next").unwrap(), 3001);
}

/// One segment of three flushes (three frames); the file's length after
/// each flush is where each frame ends.
fn three_frame_segment(dir: &Path) -> (PathBuf, Vec<u64>) {
    let (log, _) = open(config(dir, 1 << 20, LogCompression::Zstd));
    let mut ends = Vec::new();
    for flush in 0..3 {
        append_flushed(&log, flush * 10, 10, 10);
        ends.push(fs::metadata(&segments(dir)[0]).unwrap().len());
    }
    log.close().unwrap();
    (segments(dir)[0].clone(), ends)
}

#[test]
fn a_frame_torn_at_any_byte_costs_its_flush_only_and_is_counted() {
    let source = tempfile::tempdir().unwrap();
    let (path, ends) = three_frame_segment(source.path());
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, ends[2]);
    for cut in (ends[1] + 1..ends[2]).step_by(7) {
        let dir = tempfile::tempdir().unwrap();
        let torn = dir.path().join(path.file_name().unwrap());
        fs::write(&torn, &bytes[..cut as usize]).unwrap();
        let (log, recovery) = open(config(dir.path(), 1 << 20, LogCompression::Zstd));
        assert_eq!(recovery.entries, 20, "cut at {cut}");
        assert_eq!(recovery.torn_bytes, cut - ends[1], "cut at {cut}");
        assert_eq!(recovery.next_seq, 21);
        assert_eq!(log.append(b"new").unwrap(), 21);
        log.close().unwrap();
        drop(log);
        let (log, _) = open(config(dir.path(), 1 << 20, LogCompression::Zstd));
        let entries = read_all(&log);
        assert_eq!(entries.len(), 21);
        assert_eq!(entries[19], (20, record_like(19)));
        assert_eq!(entries[20], (21, b"new".to_vec()));
    }
}

#[test]
fn a_flipped_bit_in_an_older_segments_frame_skips_the_rest_of_that_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Segment 1: three frames of 100 entries (seqs 1-300).
    let (log, _) = open(config(dir.path(), 1 << 20, LogCompression::Zstd));
    let mut ends = Vec::new();
    for flush in 0..3 {
        append_flushed(&log, flush * 100, 100, 100);
        ends.push(fs::metadata(&segments(dir.path())[0]).unwrap().len());
    }
    log.close().unwrap();
    drop(log);
    // Reopened with smaller segments, the log starts segment 2 (seqs 301-310).
    assert!(ends[2] > 1024, "segment 1 holds {} bytes", ends[2]);
    let (log, _) = open(config(dir.path(), 1024, LogCompression::Zstd));
    append_flushed(&log, 300, 10, 10);
    log.close().unwrap();
    drop(log);
    assert_eq!(segments(dir.path()).len(), 2);
    let first = segments(dir.path())[0].clone();
    let mut data = fs::read(&first).unwrap();
    // A bit inside the second frame (seqs 101-200).
    let inside = ((ends[0] + ends[1]) / 2) as usize;
    data[inside] ^= 0x10;
    fs::write(&first, &data).unwrap();

    let (log, recovery) = open(config(dir.path(), 1 << 20, LogCompression::Zstd));
    assert_eq!(recovery.corrupt_bytes, ends[2] - ends[0]);
    assert_eq!(recovery.torn_bytes, 0);
    assert_eq!(recovery.lost, vec![(101, 300)]);
    let entries = read_all(&log);
    let seqs: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
    let expected: Vec<u64> = (1..=100).chain(301..=310).collect();
    assert_eq!(seqs, expected);
    for (seq, body) in entries {
        assert_eq!(body, record_like(seq - 1));
    }
}

#[test]
fn a_plain_segment_left_by_an_older_log_is_read_and_continued_in_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(config(dir.path(), 4096, LogCompression::None));
    append_flushed(&log, 0, 5, 5);
    log.close().unwrap();
    drop(log);
    let (log, recovery) = open(config(dir.path(), 4096, LogCompression::Zstd));
    assert_eq!(recovery.entries, 5);
    append_flushed(&log, 5, 200, 10);
    log.close().unwrap();
    drop(log);
    let files = segments(dir.path());
    assert!(files.len() > 2, "{files:?}");
    assert_eq!(magic(&files[0]), b"MFRL", "the old segment stays plain");
    for path in &files[1..] {
        assert_eq!(magic(path), b"MFRZ", "{}", path.display());
    }
    let (log, recovery) = open(config(dir.path(), 4096, LogCompression::Zstd));
    assert_eq!((recovery.torn_bytes, recovery.corrupt_bytes), (0, 0));
    let expected: Vec<(u64, Vec<u8>)> = (0..205).map(|i| (i + 1, record_like(i))).collect();
    assert_eq!(read_all(&log), expected);
}

/// A consumer that stops partway (inside a frame, at a frame's end, at a
/// segment's end) and reads on from its mark gets exactly the entries a
/// read from the start gives after that point, also once more entries and
/// segments were appended in between, in both kinds of segment.
#[test]
fn reading_on_from_a_mark_gives_what_a_fresh_read_gives() {
    for compression in [LogCompression::Zstd, LogCompression::None] {
        let dir = tempfile::tempdir().unwrap();
        // Small segments: the marks fall in several of them.
        let (log, _) = open(config(dir.path(), 16 << 10, compression));
        append_flushed(&log, 0, 900, 7);
        let everything = read_all(&log);
        assert_eq!(everything.len(), 900);
        for stop_after in [1u64, 6, 7, 8, 100, 333, 899] {
            // A consumer takes entries up to `stop_after`, reading one past it.
            let mut replay = log.read_from(0);
            for entry in replay.by_ref() {
                let (seq, _) = entry.unwrap();
                if seq > stop_after {
                    break;
                }
            }
            let mark = replay.mark();
            assert!(mark.is_some(), "{compression:?} {stop_after}");
            let on: Vec<(u64, Vec<u8>)> = log
                .read_on(stop_after, mark)
                .collect::<anyhow::Result<Vec<_>>>()
                .unwrap();
            let fresh: Vec<(u64, Vec<u8>)> = everything
                .iter()
                .filter(|(seq, _)| *seq > stop_after)
                .cloned()
                .collect();
            assert_eq!(on, fresh, "{compression:?}, after {stop_after}");
            // A consumer that went on from the mark past more entries: the
            // mark is only a place to start, never a reason to skip.
            let later: Vec<u64> = log
                .read_on(stop_after + 50, mark)
                .map(|entry| entry.unwrap().0)
                .collect();
            let expected: Vec<u64> = fresh
                .iter()
                .map(|(seq, _)| *seq)
                .filter(|seq| *seq > stop_after + 50)
                .collect();
            assert_eq!(
                later,
                expected,
                "{compression:?}, after {}",
                stop_after + 50
            );
        }
        // Read to the end, append more, read on from the end's mark.
        let mut replay = log.read_from(0);
        assert_eq!(replay.by_ref().count(), 900);
        let mark = replay.mark();
        append_flushed(&log, 900, 200, 9);
        let last = everything.last().map(|(seq, _)| *seq).unwrap();
        let on: Vec<(u64, Vec<u8>)> = log
            .read_on(last, mark)
            .collect::<anyhow::Result<Vec<_>>>()
            .unwrap();
        let fresh: Vec<(u64, Vec<u8>)> = read_all(&log)
            .into_iter()
            .filter(|(seq, _)| *seq > last)
            .collect();
        assert_eq!(on.len(), 200, "{compression:?}");
        assert_eq!(on, fresh, "{compression:?}");
        // A mark from past the entries asked for is not used.
        assert_eq!(log.read_on(0, mark).count(), 1100, "{compression:?}");
    }
}
