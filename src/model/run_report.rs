//! The one report every run returns, whatever its source, and every
//! command prints from: the devices it computed, per source kind what it
//! took in (files, connections, telemetry adapters, JetStream messages),
//! what the outputs wrote, and what failed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::pq_counts::PqEventCounts;

/// How one capture file went (batch runs).
#[derive(Debug)]
pub struct FileOutcome {
    pub path: PathBuf,
    pub bytes: u64,
    /// The devices it held, or why it could not be read.
    pub result: Result<Vec<DeviceSummary>, String>,
}

/// What one telemetry adapter took and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterCounts {
    pub accepted: u64,
    pub rejected: u64,
    pub readings: u64,
}

/// Meters that dialled in or were dialled (stream sink).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    pub accepted: u64,
    pub peak_streaming: u64,
    /// Peers dropped, by reason (only reasons that occurred).
    pub dropped: Vec<(&'static str, u64)>,
}

/// What a writer node took from JetStream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumedCounts {
    pub messages: u64,
    pub records: u64,
    /// Messages delivered again that the log already had.
    pub duplicate_messages: u64,
    /// Records a node published twice (a republish after its crash).
    pub duplicate_records: u64,
    /// Messages that were not meterflow record batches.
    pub rejected: u64,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// One entry per device (batch: merged over files) or sampling session (sink).
    pub devices: Vec<DeviceSummary>,
    /// Capture files read.
    pub files: Vec<FileOutcome>,
    /// Telemetry adapter name → counts.
    pub adapters: BTreeMap<&'static str, AdapterCounts>,
    pub connections: Option<ConnectionCounts>,
    pub consumed: Option<ConsumedCounts>,
    /// What each output did, in the order they were built.
    pub outputs: Vec<OutputSummary>,
    /// Inputs that failed (unreadable files, meters that did not finish, bind errors…).
    pub failures: Vec<String>,
    /// The meter state's readable copy, for a run that keeps one.
    pub checkpoint: Option<PathBuf>,
    /// Bytes of input read.
    pub bytes: u64,
    /// Channel values processed (one sample of a 6-channel stream is 6).
    pub values: u64,
    pub elapsed_s: f64,
}

impl RunReport {
    /// Total `key` of output `output` (0 when it did not report it).
    pub fn output_total(&self, output: &str, key: &str) -> u64 {
        self.outputs
            .iter()
            .filter(|summary| summary.output == output)
            .map(|summary| summary.total(key))
            .sum()
    }

    /// Files that could not be read.
    pub fn failed_files(&self) -> usize {
        self.files.iter().filter(|f| f.result.is_err()).count()
    }
}

/// What a device did, for the summary table.
#[derive(Debug, Clone, Default)]
pub struct DeviceSummary {
    pub device: String,
    pub measures: String,
    pub rate: u32,
    pub samples: u64,
    pub lost_samples: u64,
    /// Data time covered by windows, s.
    pub duration_s: f64,
    pub windows: u64,
    pub flagged_windows: u64,
    pub energy_imported_wh: f64,
    pub energy_exported_wh: f64,
    /// Time-weighted mean of P_total, W.
    pub mean_p_w: Option<f64>,
    pub max_thd_v_pct: Option<f64>,
    pub max_thd_i_pct: Option<f64>,
    pub events: u64,
    /// Dips, swells, interruptions and RVCs (with `[dsp.pq]`).
    pub pq_events: PqEventCounts,
    /// The wiring checks' last finding (waveform layouts, after ~3 s of clean windows).
    pub wiring: Option<super::wiring::WiringStatus>,
    /// Output failures (a full disk, a closed sink); the first is kept.
    pub output_error: Option<String>,
}

/// What a closed output did, for the run's summary: lines worded by the
/// output itself and named totals for programs that read the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutputSummary {
    /// The output's [`Output::name`].
    pub output: &'static str,
    /// What the command prints, one line each.
    pub lines: Vec<String>,
    /// Totals by name (e.g. `rows.windows`, `built`).
    pub totals: BTreeMap<String, u64>,
}

impl OutputSummary {
    pub fn new(output: &'static str) -> Self {
        OutputSummary {
            output,
            ..OutputSummary::default()
        }
    }

    /// A total, 0 when the output did not report it.
    pub fn total(&self, key: &str) -> u64 {
        self.totals.get(key).copied().unwrap_or(0)
    }
}

impl DeviceSummary {
    /// Adds another session of the same device (another file of a batch):
    /// counts and energy add up, means are weighted by duration, maxima
    /// stay maxima, a wiring fault found in any session stands.
    pub fn add_session(&mut self, summary: &DeviceSummary) {
        let weight_before = self.duration_s;
        self.samples += summary.samples;
        self.lost_samples += summary.lost_samples;
        self.duration_s += summary.duration_s;
        self.windows += summary.windows;
        self.flagged_windows += summary.flagged_windows;
        self.energy_imported_wh += summary.energy_imported_wh;
        self.energy_exported_wh += summary.energy_exported_wh;
        self.mean_p_w = match (self.mean_p_w, summary.mean_p_w) {
            (Some(a), Some(b)) if self.duration_s > 0.0 => {
                Some((a * weight_before + b * summary.duration_s) / self.duration_s)
            }
            (a, b) => a.or(b),
        };
        self.max_thd_v_pct = max_option(self.max_thd_v_pct, summary.max_thd_v_pct);
        self.max_thd_i_pct = max_option(self.max_thd_i_pct, summary.max_thd_i_pct);
        self.events += summary.events;
        self.pq_events.add_counts(&summary.pq_events);
        if !self.wiring.as_ref().is_some_and(|w| w.reason.is_fault()) {
            self.wiring = summary.wiring.clone().or(self.wiring.take());
        }
        if self.output_error.is_none() {
            self.output_error.clone_from(&summary.output_error);
        }
    }
}

/// The larger of two optional values; either alone when the other is missing.
pub fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
