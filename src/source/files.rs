//! The capture files source (`[source] kind = "files"`): recorded captures
//! (meter streams, bare f32le, WAV, Matroska recordings) read in parallel,
//! each device through the run's device engine into its outputs. One bad
//! file is reported with its reason and the others still finish.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Deserialize;

use crate::model::run_report::{DeviceSummary, FileOutcome, RunReport};
use crate::model::EnergyCounters;
use crate::wire::samples::SampleBlock;
use crate::wire::Measures;

use super::capture::{detect_kind, CaptureKind, CaptureVisitor, RawParams, SessionDescription};
use super::component::{DeviceEngines, DeviceLane, Durability, Source, SourceContext, SourceEnd};
use super::event::SourceEvent;
use super::input_claims::{InputClaims, Overlap};
use super::read_ahead::{read_capture_ahead, read_slices_ahead};
use super::recording_chain::{plan_jobs, CaptureJob};
use super::start_time::parse_start;

/// Capture files, read in parallel: a batch.
pub struct FilesSource {
    paths: Vec<PathBuf>,
    raw: RawParams,
    progress: bool,
}

impl FilesSource {
    /// The files `paths` (already expanded, see [`expand_inputs`]); a
    /// progress bar when a terminal is watching.
    pub fn new(paths: Vec<PathBuf>, raw: RawParams, progress: bool) -> anyhow::Result<Self> {
        if paths.is_empty() {
            anyhow::bail!("no capture files found in the inputs");
        }
        Ok(FilesSource {
            paths,
            raw,
            progress,
        })
    }
}

impl Source for FilesSource {
    fn origin(&self) -> String {
        match self.paths.as_slice() {
            [one] => one.display().to_string(),
            paths => format!("{} capture files", paths.len()),
        }
    }

    fn durability(&self) -> Durability {
        Durability::Rereadable
    }

    fn started(&self) -> Vec<String> {
        Vec::new()
    }

    fn stopping(&self) -> Option<&'static str> {
        None
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<'static, anyhow::Result<SourceEnd>> {
        async move {
            let report = read_files(&self.paths, &self.raw, self.progress, &cx.devices)
                .await
                .context("running the batch")?;
            Ok(report.into())
        }
        .boxed()
    }
}

/// The files named, with folders expanded (recursively, sorted). Inside
/// folders only files recognisable by content are taken (meter streams, WAV,
/// Matroska recordings),
/// plus bare f32le files when their parameters are given. A file named
/// twice (the same path again, or a folder and a file inside it) is taken
/// once, where it was first named: its rows would otherwise be written twice.
pub fn expand_inputs(inputs: &[PathBuf], raw: &RawParams) -> anyhow::Result<Vec<PathBuf>> {
    let raw_complete = raw.rate.is_some()
        && raw.measures.is_some()
        && raw.start_unix_ns.is_some()
        && raw.name.is_some();
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).with_context(|| format!("{}", input.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found)?;
            found.sort();
            for path in found {
                let mut head = [0u8; 12];
                let got = std::fs::File::open(&path)
                    .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                    .unwrap_or(0);
                let kind = detect_kind(&head[..got]);
                if got > 0 && (kind != CaptureKind::RawF32 || raw_complete) {
                    files.push(path);
                }
            }
        } else {
            files.push(input.clone());
        }
    }
    let mut seen = HashSet::new();
    files.retain(|path| {
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        let first = seen.insert(file);
        if !first {
            tracing::warn!(file = %path.display(), "named more than once; read once");
        }
        first
    });
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("reading folder {}", dir.display()))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Feeds one file's sessions to device processors.
struct FileVisitor<'a> {
    devices: &'a Arc<dyn DeviceEngines>,
    progress: &'a ProgressBar,
    values: &'a AtomicU64,
    current: Option<Box<dyn DeviceLane>>,
    finished: Vec<DeviceSummary>,
    error: Option<String>,
    /// Energy of the device's previous session in this file, continued.
    carried: Option<(String, EnergyCounters)>,
    /// Which input delivered which device's samples, over every job.
    claims: &'a InputClaims,
    /// This job's number, and every job's name for messages.
    job: usize,
    job_names: &'a [String],
    /// The device of the session being read.
    device: Option<String>,
    /// A session whose processor waits for its first block, with its events.
    pending: Option<(SessionDescription, Vec<SourceEvent>)>,
    /// Another input already gave this job's samples: the rest is not read.
    refused: bool,
}

impl FileVisitor<'_> {
    /// Stops using this job's samples: another input delivered some of them.
    fn refuse(&mut self, device: &str, overlap: &Overlap) {
        // A session refused before its first block leaves no row at all.
        self.pending = None;
        self.end_session();
        self.refused = true;
        let at = chrono::DateTime::from_timestamp_nanos(overlap.at_ns).to_rfc3339();
        let other = self
            .job_names
            .get(overlap.other_input)
            .map_or("another input", String::as_str);
        self.error.get_or_insert_with(|| {
            format!(
                "holds samples of device {device} from {at} on that {other} already gave; \
                 the two overlap, so this file's samples from there were not used"
            )
        });
    }

    /// Starts the processor of the pending session and hands it the
    /// session's events so far.
    fn start_pending(&mut self) {
        let Some((session, events)) = self.pending.take() else {
            return;
        };
        match self.devices.open(&session) {
            Ok(mut processor) => {
                if let Some((device, energy)) = self.carried.take() {
                    if device == session.device {
                        processor.restore_energy(energy);
                    }
                }
                for event in &events {
                    processor.event(event);
                }
                self.current = Some(processor);
            }
            Err(error) => {
                self.error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }

    fn end_session(&mut self) {
        // A session without samples still has its events written.
        self.start_pending();
        if let Some(processor) = self.current.take() {
            let energy = processor.energy().clone();
            let summary = processor.finish();
            self.carried = Some((summary.device.clone(), energy));
            self.finished.push(summary);
        }
    }
}

impl CaptureVisitor for FileVisitor<'_> {
    /// The processor starts with the session's first block, once no other
    /// input has given that block's time (see [`InputClaims`]).
    fn session_start(&mut self, session: &SessionDescription) {
        self.end_session();
        if self.refused {
            return;
        }
        self.device = Some(session.device.clone());
        self.pending = Some((session.clone(), Vec::new()));
    }

    fn block(&mut self, block: &SampleBlock) {
        let bytes = (block.len() * block.measures.bytes_per_sample()) as u64;
        self.values.fetch_add(
            (block.len() * block.channels.len()) as u64,
            Ordering::Relaxed,
        );
        self.progress.inc(bytes);
        if self.refused || block.is_empty() {
            return;
        }
        if let Some(device) = self.device.clone() {
            let start_ns = block.time_of(block.first_index);
            let end_ns = block.time_of(block.first_index + block.len() as u64);
            if let Err(overlap) = self.claims.claim(&device, self.job, start_ns, end_ns) {
                self.refuse(&device, &overlap);
                return;
            }
        }
        self.start_pending();
        if let Some(processor) = self.current.as_mut() {
            processor.block(block);
        }
    }

    fn event(&mut self, event: SourceEvent) {
        if self.refused {
            return;
        }
        if let Some((_, events)) = self.pending.as_mut() {
            events.push(event);
        } else if let Some(processor) = self.current.as_mut() {
            processor.event(&event);
        }
    }
}

/// Reads every file through the device engine; must be called
/// inside a tokio runtime.
async fn read_files(
    files: &[PathBuf],
    raw: &RawParams,
    show_progress: bool,
    devices: &Arc<dyn DeviceEngines>,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let file_size = |f: &Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    let total: u64 = files.iter().map(|f| file_size(f)).sum();
    // Recording slices of one meter are one job, read in time order.
    let jobs = tokio::task::block_in_place(|| plan_jobs(files, raw));
    let progress_total: u64 = jobs.iter().map(CaptureJob::decoded_bytes).sum();
    let progress = if show_progress {
        ProgressBar::new(progress_total)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .map_err(|error| anyhow::anyhow!("progress bar template: {error}"))?,
    );
    let values = AtomicU64::new(0);
    let done_files = AtomicU64::new(0);
    let claims = InputClaims::default();
    let job_names: Vec<String> = jobs.iter().map(job_name).collect();

    let outcomes: Vec<FileOutcome> = {
        let progress = &progress;
        let values = &values;
        let done_files = &done_files;
        let (claims, job_names) = (&claims, job_names.as_slice());
        let file_count = files.len();
        tokio::task::block_in_place(|| {
            jobs.par_iter()
                .enumerate()
                .flat_map_iter(|(job_number, job)| {
                    let mut visitor = FileVisitor {
                        devices,
                        progress,
                        values,
                        current: None,
                        finished: Vec::new(),
                        error: None,
                        carried: None,
                        claims,
                        job: job_number,
                        job_names,
                        device: None,
                        pending: None,
                        refused: false,
                    };
                    let reads: Vec<Result<(), String>> = match job {
                        CaptureJob::File(path) => {
                            vec![read_capture_ahead(path, raw, &mut visitor)
                                .map(drop)
                                .map_err(|e| e.to_string())]
                        }
                        CaptureJob::Slices(slices) => read_slices_ahead(slices, raw, &mut visitor)
                            .into_iter()
                            .map(|read| read.map(drop).map_err(|e| e.to_string()))
                            .collect(),
                    };
                    visitor.end_session();
                    let paths = job.paths();
                    let done = done_files.fetch_add(paths.len() as u64, Ordering::Relaxed)
                        + paths.len() as u64;
                    let seconds = started.elapsed().as_secs_f64().max(1e-9);
                    progress.set_message(format!(
                        "files {done}/{file_count}, {:.1} M samples/s",
                        values.load(Ordering::Relaxed) as f64 / seconds / 1e6
                    ));
                    // One outcome per file; the job's devices (one session
                    // over all its slices) go with the first file read.
                    let mut devices = Some(visitor.finished);
                    let error = visitor.error;
                    paths
                        .into_iter()
                        .zip(reads)
                        .map(|(path, read)| {
                            let result = match (read, &error) {
                                (Err(error), _) => Err(error),
                                (Ok(()), Some(error)) => Err(error.clone()),
                                (Ok(()), None) => Ok(devices.take().unwrap_or_default()),
                            };
                            if let Err(reason) = &result {
                                progress.suspend(|| eprintln!("{}: {reason}", path.display()));
                            }
                            FileOutcome {
                                path: path.to_path_buf(),
                                bytes: file_size(path),
                                result,
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    };
    progress.finish_and_clear();

    let devices = merge_devices(&outcomes);
    Ok(RunReport {
        files: outcomes,
        devices,
        elapsed_s: started.elapsed().as_secs_f64(),
        bytes: total,
        values: values.load(Ordering::Relaxed),
        ..RunReport::default()
    })
}

/// A job as messages name it: its file, or its first and last slices.
fn job_name(job: &CaptureJob) -> String {
    match job.paths().as_slice() {
        [] => "an empty job".to_string(),
        [one] => one.display().to_string(),
        [first, .., last] => format!("{} .. {}", first.display(), last.display()),
    }
}

/// One row per device over all files.
fn merge_devices(outcomes: &[FileOutcome]) -> Vec<DeviceSummary> {
    let mut devices: BTreeMap<String, DeviceSummary> = BTreeMap::new();
    for summary in outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .flatten()
    {
        devices
            .entry(summary.device.clone())
            .or_insert_with(|| DeviceSummary {
                device: summary.device.clone(),
                measures: summary.measures.clone(),
                rate: summary.rate,
                ..DeviceSummary::default()
            })
            .add_session(summary);
    }
    devices.into_values().collect()
}

/// Capture files and folders.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Capture files or folders (folders are searched for captures).
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub raw: RawFileConfig,
}

/// What bare f32le files need (their content does not say).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFileConfig {
    pub name: Option<String>,
    pub measures: Option<Measures>,
    pub rate: Option<u32>,
    /// Time of the first sample: RFC 3339 (`2024-05-01T12:00:00Z`) or Unix seconds.
    pub start: Option<String>,
}

impl RawFileConfig {
    /// These settings as the capture readers take them.
    pub fn params(&self) -> anyhow::Result<RawParams> {
        Ok(RawParams {
            name: self.name.clone(),
            measures: self.measures,
            rate: self.rate,
            start_unix_ns: self.start.as_deref().map(parse_start).transpose()?,
            ..RawParams::default()
        })
    }
}
