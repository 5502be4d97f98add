//! Wire faults do not move the timeline (issue 22, item 10): a corrupt
//! packet number is a resync, not billions of lost chunks; a `Data:` header
//! whose length was cut to 0 costs exactly the samples it hid; a real gap is
//! still a gap, counted once however the bytes were damaged. Ground truth is
//! the clean capture the damaged ones are made from: every sample that
//! arrives must keep the index (so the time) it has there. Then the same
//! through `meterflow batch`: the windows of a capture with corrupt counters
//! are the clean capture's, row for row.

use crate::common;

use std::path::Path;
use std::process::Command;

use bytes::BytesMut;
use common::parquet_read::{read_rows, Cell};
use meterflow::meter::offline_capture::OfflineCapture;
use meterflow::meter::signal::SignalConfig;
use meterflow::source::capture::{
    read_meter_stream, CaptureSummary, CaptureVisitor, SessionDescription,
};
use meterflow::source::event::{EventKind, SourceEvent};
use meterflow::wire::frame::{put_data_header, put_info_line, DATA_HEADER_LEN};
use meterflow::wire::{Frame, Measures, MeterCodec, SampleBlock};
use tokio_util::codec::Decoder;

const RATE: u32 = 4000;
/// Six seconds.
const SAMPLES: u64 = 6 * RATE as u64;
/// Three phases at 4 kHz over TCP: 1008-byte chunks of 42 samples.
const CHUNK: u64 = 42;
const CHUNK_BYTES: usize = 1008;

/// What a capture's frames become in the damaged copy.
enum Damage {
    Keep,
    /// Sent with this packet number instead.
    Seq(u32),
    /// Left out (a real loss).
    Drop,
    /// The header says length 0; the 1008 payload bytes still follow.
    ZeroLength,
    /// The `Data:` tag is mangled, so header and payload are garbage.
    BadTag,
}

fn clean_capture(dir: &Path) -> Vec<u8> {
    let mut capture = OfflineCapture::new(
        "faulty001",
        SignalConfig::default(),
        Measures::ThreePhase,
        RATE,
    );
    capture.samples = SAMPLES;
    assert_eq!(capture.samples_per_chunk() as u64, CHUNK);
    let path = dir.join("clean.mfcap");
    capture.write(&path).unwrap();
    std::fs::read(&path).unwrap()
}

/// The clean capture with `damage(seq)` done to each frame.
fn damaged(clean: &[u8], damage: impl Fn(u32) -> Damage) -> Vec<u8> {
    let mut codec = MeterCodec::new();
    let mut src = BytesMut::from(clean);
    let mut out = BytesMut::new();
    while let Some(frame) = codec.decode_eof(&mut src).unwrap() {
        match frame {
            Frame::Info(text) => put_info_line(&mut out, &text),
            Frame::Data { seq, payload } => {
                let len = payload.len() as u16;
                match damage(seq) {
                    Damage::Keep => put_data_header(&mut out, len, seq),
                    Damage::Seq(other) => put_data_header(&mut out, len, other),
                    Damage::Drop => continue,
                    Damage::ZeroLength => put_data_header(&mut out, 0, seq),
                    Damage::BadTag => {
                        let at = out.len();
                        put_data_header(&mut out, len, seq);
                        out[at + 1] = b'x';
                    }
                }
                out.extend_from_slice(&payload);
            }
            Frame::Anomaly(anomaly) => panic!("the clean capture has {anomaly:?}"),
        }
    }
    out.to_vec()
}

/// Every block (first index, samples lost before it, its values) and event.
#[derive(Default)]
struct Seen {
    blocks: Vec<(u64, u64, Vec<Vec<f32>>)>,
    events: Vec<SourceEvent>,
}

impl CaptureVisitor for Seen {
    fn session_start(&mut self, _: &SessionDescription) {}
    /// Reading hands over runs of chunks; the checks here are per chunk, so
    /// a run is cut back into its chunks (chunk k holds the samples from
    /// k·`CHUNK` on; only the first of a run can follow a gap).
    fn block(&mut self, block: &SampleBlock) {
        let end = block.first_index + block.len() as u64;
        let mut first = block.first_index;
        while first < end {
            let next = ((first / CHUNK + 1) * CHUNK).min(end);
            let (from, to) = (
                (first - block.first_index) as usize,
                (next - block.first_index) as usize,
            );
            let channels = block
                .channels
                .iter()
                .map(|c| c[from..to].to_vec())
                .collect();
            let gap_before = if from == 0 { block.gap_before } else { 0 };
            self.blocks.push((first, gap_before, channels));
            first = next;
        }
    }
    fn event(&mut self, event: SourceEvent) {
        self.events.push(event);
    }
}

fn decode(bytes: &[u8]) -> (Seen, CaptureSummary) {
    let mut seen = Seen::default();
    let summary = read_meter_stream(bytes, &mut seen).unwrap();
    (seen, summary)
}

/// Meter time of sample `index` (the capture's default start, 4 kHz).
fn start_ns(seen: &Seen) -> i64 {
    seen.events[0].unix_ns
}

fn trouble(seen: &Seen) -> Vec<(i64, EventKind)> {
    let start = start_ns(seen);
    seen.events
        .iter()
        .filter(|e| e.kind.is_trouble())
        .map(|e| {
            (
                (e.unix_ns - start) * i64::from(RATE) / 1_000_000_000,
                e.kind.clone(),
            )
        })
        .collect()
}

#[test]
fn a_corrupt_packet_number_is_a_resync_and_every_sample_keeps_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_capture(dir.path());
    let glitched = damaged(&clean, |seq| match seq {
        // The case: "went back from 190 to 4294967295".
        190 => Damage::Seq(u32::MAX),
        // A jump forward the next frame does not go on from.
        300 => Damage::Seq(5_000_000),
        // The last chunk: nothing after it could confirm a jump.
        _ if u64::from(seq) == SAMPLES / CHUNK - 1 => Damage::Seq(77),
        _ => Damage::Keep,
    });
    let (want, _) = decode(&clean);
    let (seen, summary) = decode(&glitched);
    assert_eq!(seen.blocks.len(), want.blocks.len());
    for (k, (got, want)) in seen.blocks.iter().zip(&want.blocks).enumerate() {
        assert!(
            got == want,
            "block {k}: index/gap {:?} vs {:?}",
            (got.0, got.1),
            (want.0, want.1)
        );
    }
    let last = (SAMPLES / CHUNK - 1) as u32;
    assert_eq!(
        trouble(&seen),
        [
            (
                190 * CHUNK as i64,
                EventKind::CounterGlitch {
                    expected: 190,
                    received: u32::MAX
                }
            ),
            (
                300 * CHUNK as i64,
                EventKind::CounterGlitch {
                    expected: 300,
                    received: 5_000_000
                }
            ),
            (
                i64::from(last) * CHUNK as i64,
                EventKind::CounterGlitch {
                    expected: last,
                    received: 77
                }
            ),
        ]
    );
    let session = &summary.sessions[0];
    assert_eq!((session.samples, session.lost_samples), (SAMPLES, 0));
    assert_eq!(summary.wire.sequence_glitches, 3);
    assert_eq!((summary.wire.gaps, summary.wire.sequence_backwards), (0, 0));
}

#[test]
fn real_gaps_stay_gaps_and_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_capture(dir.path());
    let broken = damaged(&clean, |seq| match seq {
        // Two chunks lost: the stream goes on from 52, so the jump is real.
        50 | 51 => Damage::Drop,
        // A corrupt counter right before a lost chunk: 199, 7, 202, 203.
        200 => Damage::Seq(7),
        201 => Damage::Drop,
        // A mangled tag: 1019 bytes skipped and packet numbers jump by one;
        // one chunk lost, not two.
        350 => Damage::BadTag,
        _ => Damage::Keep,
    });
    let (want, _) = decode(&clean);
    let (seen, summary) = decode(&broken);
    let lost_chunks = [50u64, 51, 201, 350];
    let kept: Vec<_> = want
        .blocks
        .iter()
        .filter(|b| !lost_chunks.contains(&(b.0 / CHUNK)))
        .collect();
    assert_eq!(seen.blocks.len(), kept.len());
    for (got, want) in seen.blocks.iter().zip(kept) {
        // Same index and values; the gap before is what was lost right before it.
        let lost_before = match got.0 / CHUNK {
            52 => 2 * CHUNK,
            202 | 351 => CHUNK,
            _ => 0,
        };
        assert_eq!((got.0, got.1), (want.0, lost_before));
        assert!(got.2 == want.2, "values of the block at {}", got.0);
    }
    let c = CHUNK as i64;
    assert_eq!(
        trouble(&seen),
        [
            (
                52 * c,
                EventKind::Gap {
                    lost_chunks: 2,
                    lost_samples: 2 * CHUNK
                }
            ),
            (
                200 * c,
                EventKind::CounterGlitch {
                    expected: 200,
                    received: 7
                }
            ),
            (
                202 * c,
                EventKind::Gap {
                    lost_chunks: 1,
                    lost_samples: CHUNK
                }
            ),
            // The skipped bytes are the lost chunk the gap counts.
            (
                350 * c,
                EventKind::Resync {
                    skipped_bytes: (DATA_HEADER_LEN + CHUNK_BYTES) as u64,
                    lost_samples: 0
                }
            ),
            (
                351 * c,
                EventKind::Gap {
                    lost_chunks: 1,
                    lost_samples: CHUNK
                }
            ),
        ]
    );
    let session = &summary.sessions[0];
    assert_eq!(session.lost_samples, 4 * CHUNK);
    assert_eq!(session.samples + session.lost_samples, SAMPLES);
}

#[test]
fn a_data_header_of_length_zero_costs_its_samples_and_later_ones_keep_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_capture(dir.path());
    let cut = damaged(&clean, |seq| match seq {
        100 => Damage::ZeroLength,
        _ => Damage::Keep,
    });
    let (want, _) = decode(&clean);
    let (seen, summary) = decode(&cut);
    let kept: Vec<_> = want.blocks.iter().filter(|b| b.0 / CHUNK != 100).collect();
    assert_eq!(seen.blocks.len(), kept.len());
    for (got, want) in seen.blocks.iter().zip(kept) {
        let lost_before = if got.0 / CHUNK == 101 { CHUNK } else { 0 };
        assert_eq!((got.0, got.1), (want.0, lost_before));
        assert!(got.2 == want.2, "values of the block at {}", got.0);
    }
    assert_eq!(
        trouble(&seen),
        [(
            101 * CHUNK as i64,
            EventKind::Resync {
                skipped_bytes: CHUNK_BYTES as u64,
                lost_samples: CHUNK
            }
        )]
    );
    let session = &summary.sessions[0];
    assert_eq!(
        (session.samples, session.lost_samples),
        (SAMPLES - CHUNK, CHUNK)
    );
}

fn batch(capture: &Path, out: &Path) -> Vec<std::collections::BTreeMap<String, Cell>> {
    let output = Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .arg("batch")
        .arg(capture)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "batch {}: {}",
        capture.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut rows = read_rows(&out.join("parquet/windows"));
    rows.sort_by_key(|r| match r["window_start"] {
        Cell::Ts(t) => t,
        ref other => panic!("window_start is {other:?}"),
    });
    rows
}

#[test]
fn batch_of_a_capture_with_corrupt_counters_gives_the_clean_windows() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_capture(dir.path());
    let glitched = damaged(&clean, |seq| match seq {
        190 => Damage::Seq(u32::MAX),
        400 => Damage::Seq(0),
        _ => Damage::Keep,
    });
    let path = dir.path().join("glitched.mfcap");
    std::fs::write(&path, glitched).unwrap();
    let want = batch(
        &dir.path().join("clean.mfcap"),
        &dir.path().join("clean-out"),
    );
    let got = batch(&path, &dir.path().join("glitched-out"));
    // Six seconds of 200-ms windows.
    assert!(want.len() >= 29, "{} windows", want.len());
    assert!(got == want, "windows differ from the clean capture's");
}

/// Issue 22, item 15: a capture that ends before any session, inside its
/// info line or in a line without an end, is an error naming the file and
/// why (as an empty file is), not exit 0 with nothing written.
#[test]
fn a_capture_cut_before_any_session_is_an_error_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let clean = clean_capture(dir.path());
    let info_end = clean.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let answer_end = info_end
        + clean[info_end..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap();
    let mut long_line = b"Info:".to_vec();
    long_line.resize(2_000_000 + 5, b'a');
    let cases: [(&str, Vec<u8>, String); 3] = [
        (
            "in_info.mfcap",
            clean[..60].to_vec(),
            "ends 60 bytes into a line or frame".into(),
        ),
        (
            "in_answer.mfcap",
            clean[..answer_end].to_vec(),
            format!("ends {} bytes into a line or frame", answer_end - info_end),
        ),
        (
            "endless.mfcap",
            long_line,
            "Info line longer than 65536 bytes".into(),
        ),
    ];
    for (name, bytes, why) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let out = dir.path().join(format!("{name}-out"));
        let output = Command::new(env!("CARGO_BIN_EXE_meterflow"))
            .arg("batch")
            .arg(&path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}: the capture")) && stderr.contains(&why),
            "{name}: {stderr}"
        );
        assert!(read_rows(&out.join("parquet/windows")).is_empty(), "{name}");
    }
}
