//! Consecutive time slices of one meter's recording as one stream.
//! `recordingServer.py` cuts every meter's stream into files at fixed times
//! (the next slice's `TIMESTAMP` is where the previous one's samples end),
//! so slices that meet within a sample continue one session: energy and
//! windows run across the file boundary. A gap between slices is a gap
//! event; a slice that starts before the previous one ends is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::capture::{
    CaptureError, CaptureSummary, CaptureVisitor, Continuation, RawParams, SessionDescription,
};
use super::decoder::SessionEnd;
use super::event::{EventKind, SourceEvent};
use super::recording::{decode_recording, is_recording, open_recording, Recording, RecordingError};
use crate::wire::samples::{sample_time, SampleBlock};

/// One unit of batch work.
#[derive(Debug, Clone)]
pub enum CaptureJob {
    /// A capture read on its own (whatever its kind).
    File(PathBuf),
    /// Recording slices of one meter, one layout and rate, in time order.
    Slices(Vec<Recording>),
}

impl CaptureJob {
    /// The files of the job, in reading order.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            CaptureJob::File(path) => vec![path.as_path()],
            CaptureJob::Slices(slices) => slices.iter().map(|s| s.path.as_path()).collect(),
        }
    }

    /// Bytes the job hands on as f32 samples, for progress: a recording's
    /// decoded size (its file is compressed), else the file's size.
    pub fn decoded_bytes(&self) -> u64 {
        match self {
            CaptureJob::File(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
            CaptureJob::Slices(slices) => slices
                .iter()
                .map(|s| {
                    s.expected_samples.unwrap_or(0) * s.session.measures.bytes_per_sample() as u64
                })
                .sum(),
        }
    }
}

/// The batch's jobs: recordings that probe cleanly are grouped per meter
/// (name, layout, rate) into time-ordered slices; everything else, and any
/// recording when `--start` fixes every file's start, is a job of its own.
/// Probing runs in parallel.
pub fn plan_jobs(files: &[PathBuf], raw: &RawParams) -> Vec<CaptureJob> {
    let probed: Vec<Option<Recording>> = files
        .par_iter()
        .map(|path| {
            (raw.start_unix_ns.is_none() && is_recording(path))
                .then(|| open_recording(path, raw).ok())
                .flatten()
        })
        .collect();
    // Jobs in the order their first file was named.
    let mut jobs: Vec<CaptureJob> = Vec::new();
    let mut meters: BTreeMap<(String, &'static str, u32), usize> = BTreeMap::new();
    for (path, recording) in files.iter().zip(probed) {
        match recording {
            // A recording that does not probe is read on its own, which
            // reports why.
            None => jobs.push(CaptureJob::File(path.clone())),
            Some(recording) => {
                let session = &recording.session;
                let key = (
                    session.device.clone(),
                    session.measures.as_str(),
                    session.rate,
                );
                match meters.get(&key) {
                    Some(&job) => {
                        if let CaptureJob::Slices(slices) = &mut jobs[job] {
                            slices.push(recording);
                        }
                    }
                    None => {
                        meters.insert(key, jobs.len());
                        jobs.push(CaptureJob::Slices(vec![recording]));
                    }
                }
            }
        }
    }
    for job in &mut jobs {
        if let CaptureJob::Slices(slices) = job {
            slices.sort_by(|a, b| {
                (a.session.start_unix_ns, &a.path).cmp(&(b.session.start_unix_ns, &b.path))
            });
        }
    }
    jobs
}

/// Passes everything on, remembers where the last block ended, and tells
/// a gap before a slice once that slice delivers its first block (a slice
/// that delivers none leaves the gap to the next).
struct Tracking<'v> {
    inner: &'v mut dyn CaptureVisitor,
    end_index: Option<u64>,
    /// Time and length of the gap before the slice being read.
    pending_gap: Option<(i64, u64)>,
}

impl CaptureVisitor for Tracking<'_> {
    fn session_start(&mut self, session: &SessionDescription) {
        self.inner.session_start(session);
    }

    fn block(&mut self, block: &SampleBlock) {
        if let Some((unix_ns, lost_samples)) = self.pending_gap.take() {
            self.inner.event(SourceEvent {
                unix_ns,
                kind: EventKind::Gap {
                    lost_chunks: 0,
                    lost_samples,
                },
            });
        }
        self.end_index = Some(block.first_index + block.len() as u64);
        self.inner.block(block);
    }

    fn event(&mut self, event: SourceEvent) {
        self.inner.event(event);
    }
}

/// Reads time-ordered slices of one meter as one session; one result per
/// slice. A slice that fails costs only its own samples (the samples it
/// delivered before failing stay in the stream, the next slice continues
/// after them, with a gap if it does not meet them).
pub fn read_slices(
    slices: &[Recording],
    raw: &RawParams,
    visitor: &mut dyn CaptureVisitor,
) -> Vec<Result<CaptureSummary, CaptureError>> {
    let Some(first) = slices.first() else {
        return Vec::new();
    };
    let session = first.session.clone();
    let rate = session.rate.max(1);
    visitor.session_start(&session);
    visitor.event(SourceEvent {
        unix_ns: session.start_unix_ns,
        kind: EventKind::SessionStart,
    });
    let mut visitor = Tracking {
        inner: visitor,
        end_index: None,
        pending_gap: None,
    };
    let mut next_index = 0u64;
    let mut results = Vec::with_capacity(slices.len());
    // The last slice read, which an overlapping one is named against.
    let mut previous = first.path.as_path();
    for slice in slices {
        let expected_ns = sample_time(session.start_unix_ns, rate, next_index);
        let offset = (slice.session.start_unix_ns - expected_ns) as f64 * f64::from(rate) / 1e9;
        if offset <= -1.0 {
            results.push(Err(RecordingError::Overlap {
                device: session.device.clone(),
                previous: previous.to_path_buf(),
                samples: (-offset).round() as u64,
                seconds: -offset / f64::from(rate),
            }
            .into()));
            continue;
        }
        // Within a sample of where the previous slice ended: contiguous.
        let gap = if offset >= 1.0 {
            offset.round() as u64
        } else {
            0
        };
        visitor.pending_gap = (gap > 0).then_some((expected_ns, gap));
        let continuation = Continuation {
            first_index: next_index + gap,
            gap_before: gap,
        };
        // Every slice's samples are timed from the session's start.
        let mut placed = slice.clone();
        placed.session = session.clone();
        visitor.end_index = None;
        results.push(decode_recording(
            &placed,
            raw,
            Some(continuation),
            &mut visitor,
        ));
        next_index = visitor.end_index.unwrap_or(next_index);
        previous = slice.path.as_path();
    }
    visitor.inner.event(SourceEvent {
        unix_ns: sample_time(session.start_unix_ns, rate, next_index),
        kind: EventKind::SessionStop {
            end: SessionEnd::Disconnected,
            sent_samples: None,
        },
    });
    results
}
