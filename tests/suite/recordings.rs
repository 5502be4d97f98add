//! The vendor's Matroska/WavPack recordings through `meterflow batch`: files
//! made with the real ffmpeg and the vendor's own command line from
//! analytic sines, checked against the sines' truth; slices of one meter
//! continue one stream; damaged files, unknown tags and a missing ffmpeg
//! are clear errors that cost nothing else.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::parquet_read::{read_rows, Cell};
use meterflow::model::run_report::RunReport;
use meterflow::pipeline::batch::run_batch;
use meterflow::pipeline::batch_request::BatchRequest;
use meterflow::source::capture::{read_capture, CaptureKind, RawParams, SessionDescription};
use meterflow::source::event::SourceEvent;
use meterflow::source::files::expand_inputs;
use meterflow::source::recording::RecordingTools;
use meterflow::wire::samples::SampleBlock;

const RATE: u32 = 8000;
const V_RMS: f64 = 230.0;
const F_HZ: f64 = 50.0;
/// Per phase: current RMS (A) and lag (degrees): three different loads.
const LOADS: [(f64, f64); 3] = [(5.0, 30.0), (3.0, 0.0), (8.0, 60.0)];
/// The first sample of the first slice, as the meter's startTs gives it.
const START: &str = "1614697441.119";
const START_NS: i64 = 1_614_697_441_119_000_000;

/// The three-phase signal at sample `index` (counted from START), in wire
/// units (V, mA), interleaved as v_l1,i_l1,v_l2,i_l2,v_l3,i_l3.
fn three_phase(first: u64, samples: u64) -> Vec<f32> {
    let mut out = Vec::with_capacity(samples as usize * 6);
    for n in first..first + samples {
        let x = std::f64::consts::TAU * F_HZ * n as f64 / f64::from(RATE);
        for (k, (i_rms, lag_deg)) in LOADS.iter().enumerate() {
            let alpha = -(k as f64) * std::f64::consts::TAU / 3.0;
            let v = std::f64::consts::SQRT_2 * V_RMS * (x + alpha).sin();
            let i = std::f64::consts::SQRT_2 * i_rms * (x + alpha - lag_deg.to_radians()).sin();
            out.push(v as f32);
            out.push((i * 1000.0) as f32);
        }
    }
    out
}

/// Analytic P of phase k, W.
fn p_truth(k: usize) -> f64 {
    V_RMS * LOADS[k].0 * LOADS[k].1.to_radians().cos()
}

/// S_total, W: the scale the power tolerances are relative to.
fn s_total() -> f64 {
    LOADS.iter().map(|(i, _)| V_RMS * i).sum()
}

/// Writes a recording with `recordingServer.py`'s ffmpeg command line
/// (constructFFMPEGCall), the samples piped to its stdin.
fn record(path: &Path, rate: u32, tags: &str, name: &str, timestamp: &str, samples: &[f32]) {
    let channels = tags.split(',').count();
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-f", "f32le", "-ar"])
        .arg(rate.to_string())
        .args(["-guess_layout_max", "0", "-ac"])
        .arg(channels.to_string())
        .args(["-i", "pipe:0", "-c:a", "wavpack"])
        .args(["-metadata:s:a:0", &format!("CHANNELS={channels}")])
        .args(["-metadata:s:a:0", &format!("CHANNEL_TAGS={tags}")])
        .args(["-metadata:s:a:0", &format!("title={name}")])
        .args(["-metadata:s:a:0", &format!("timestamp={timestamp}")])
        .arg("-y")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("ffmpeg is needed for these tests (scripts/test installs it): {e}")
        });
    let bytes: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    assert!(child.wait().unwrap().success(), "ffmpeg failed on {path:?}");
}

/// `seconds` of the three-phase signal from sample `first`, as a file.
fn slice(dir: &Path, file: &str, first: u64, seconds: f64, timestamp: &str) -> PathBuf {
    let path = dir.join(file);
    let samples = (seconds * f64::from(RATE)).round() as u64;
    record(
        &path,
        RATE,
        "v_l1,i_l1,v_l2,i_l2,v_l3,i_l3",
        "smartmeter001",
        timestamp,
        &three_phase(first, samples),
    );
    path
}

/// Unix seconds `offset_s` after START, as the vendor's `str(float(ts))`.
fn timestamp_after(offset_s: f64) -> String {
    format!("{}", 1_614_697_441.119 + offset_s)
}

fn args(inputs: Vec<PathBuf>, out: &Path) -> BatchRequest {
    BatchRequest {
        inputs,
        out: out.to_path_buf(),
        pipeline: None,
        ..BatchRequest::default()
    }
}

async fn batch(inputs: &[PathBuf], out: &Path, raw: &RawParams) -> RunReport {
    let args = args(inputs.to_vec(), out);
    let config = args.config().unwrap();
    let files = expand_inputs(&args.inputs, raw).unwrap();
    run_batch(&config, &files, raw, false).await.unwrap()
}

fn rows(out: &Path, table: &str) -> Vec<BTreeMap<String, Cell>> {
    read_rows(&out.join("parquet").join(table))
}

fn num(row: &BTreeMap<String, Cell>, column: &str) -> f64 {
    match &row[column] {
        Cell::F64(x) => *x,
        Cell::U64(x) => *x as f64,
        Cell::I64(x) => *x as f64,
        Cell::Ts(x) => *x as f64,
        other => panic!("{column} is {other:?}"),
    }
}

fn flagged(row: &BTreeMap<String, Cell>) -> bool {
    row["flagged"] == Cell::Bool(true)
}

fn reason(report: &RunReport, path: &Path) -> String {
    let file = report
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path:?} not in the report"));
    match &file.result {
        Ok(_) => panic!("{path:?} did not fail"),
        Err(reason) => reason.clone(),
    }
}

/// Checks clean windows against the analytic truth.
/// Tolerances: the windows span whole cycles of exact sines, so the only
/// errors are f32 quantisation (~1e-7) and WavPack's float mode, which is
/// lossless: 1e-5 relative for V and I, 1e-5 of S_total for P.
fn assert_windows_match_truth(windows: &[BTreeMap<String, Cell>]) {
    let clean: Vec<_> = windows.iter().filter(|w| !flagged(w)).collect();
    assert!(!clean.is_empty());
    for w in clean {
        for (k, tag) in ["l1", "l2", "l3"].iter().enumerate() {
            let v = num(w, &format!("v_rms_{tag}_v"));
            assert!((v - V_RMS).abs() <= 1e-5 * V_RMS, "V {tag} {v}");
            let i = num(w, &format!("i_rms_{tag}_a"));
            assert!((i - LOADS[k].0).abs() <= 1e-5 * LOADS[k].0, "I {tag} {i}");
            let p = num(w, &format!("p_{tag}_w"));
            assert!((p - p_truth(k)).abs() <= 1e-5 * s_total(), "P {tag} {p}");
        }
        let f = num(w, "frequency_hz");
        assert!((f - F_HZ).abs() < 1e-3, "f {f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_recording_matches_its_analytic_signal() {
    let dir = tempfile::tempdir().unwrap();
    let path = slice(
        dir.path(),
        "smartmeter001_2021_03_02__15_04_01.mkv",
        0,
        3.0,
        START,
    );
    let out = tempfile::tempdir().unwrap();
    // Found by content inside a folder, like the other captures.
    let report = batch(
        &[dir.path().to_path_buf()],
        out.path(),
        &RawParams::default(),
    )
    .await;
    assert_eq!(report.failed_files(), 0, "{:?}", report.files);
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].path, path);
    let [device] = report.devices.as_slice() else {
        panic!("{:?}", report.devices)
    };
    // Name, rate and layout from the tags.
    assert_eq!(device.device, "smartmeter001");
    assert_eq!(device.rate, RATE);
    assert_eq!(device.measures, "v,i,v,i,v,i");
    assert_eq!(device.samples, 3 * u64::from(RATE));
    assert_eq!(device.lost_samples, 0);

    let windows = rows(out.path(), "windows");
    assert_eq!(windows.len() as u64, device.windows);
    // 3 s of 10-cycle (200 ms) windows: 15, the last one possibly partial.
    // The engine starts its first 10-cycle window at the first zero
    // crossing it confirms (one cycle in): a leading fragment, 14 clean
    // 200 ms windows, and the truncated tail; together every sample.
    assert_eq!(windows.len(), 16, "{windows:?}");
    let clean: Vec<_> = windows.iter().filter(|w| !flagged(w)).collect();
    assert_eq!(clean.len(), 14);
    assert!(clean
        .iter()
        .all(|w| (num(w, "duration_s") - 0.2).abs() < 2e-4));
    let covered: f64 = windows.iter().map(|w| num(w, "sample_count")).sum();
    assert_eq!(covered, 3.0 * f64::from(RATE));
    assert_windows_match_truth(&windows);
    // Times from TIMESTAMP: windows start at the first zero crossing, so
    // the first window starts within one sample of START (the sines cross
    // zero at sample 0).
    let first_start = windows
        .iter()
        .map(|w| num(w, "window_start"))
        .fold(f64::MAX, f64::min);
    assert!(
        (first_start - START_NS as f64).abs() <= 1e9 / f64::from(RATE),
        "first window at {first_start}"
    );
    // Energy: the registers grow by P·t over the time the windows cover;
    // tolerance 1e-4 relative: the clean windows are exact to 1e-5, the
    // leading fragment and the truncated tail (not whole cycles, 6 % of the
    // time) carry a little of the 100 Hz ripple of p(t).
    let p_total: f64 = (0..3).map(p_truth).sum();
    let expected_wh = p_total * device.duration_s / 3600.0;
    assert!(
        (device.energy_imported_wh - expected_wh).abs() <= 1e-4 * expected_wh,
        "energy {} vs {expected_wh}",
        device.energy_imported_wh
    );
    assert!(
        (device.duration_s - 3.0).abs() < 0.021,
        "{}",
        device.duration_s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_slices_continue_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    // The vendor cuts where the next slice's TIMESTAMP says: here 1.55 s in,
    // in the middle of a window (12400 samples).
    let first = slice(dir.path(), "a.mkv", 0, 1.55, START);
    let second = slice(dir.path(), "b.mkv", 12_400, 2.45, &timestamp_after(1.55));
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = slice(whole_dir.path(), "whole.mkv", 0, 4.0, START);

    let out = tempfile::tempdir().unwrap();
    // Named out of order: the TIMESTAMPs order them.
    let report = batch(
        &[second.clone(), first.clone()],
        out.path(),
        &RawParams::default(),
    )
    .await;
    assert_eq!(report.failed_files(), 0, "{:?}", report.files);
    let whole_out = tempfile::tempdir().unwrap();
    let reference = batch(&[whole], whole_out.path(), &RawParams::default()).await;

    let [sliced] = report.devices.as_slice() else {
        panic!("{:?}", report.devices)
    };
    let [one] = reference.devices.as_slice() else {
        panic!("{:?}", reference.devices)
    };
    assert_eq!(sliced.samples, 4 * u64::from(RATE));
    assert_eq!(sliced.lost_samples, 0);
    // The same windows as one continuous file: nothing restarts at the
    // boundary. Energy to 1e-9 relative (the same samples; only block
    // boundaries differ, which the engine does not depend on).
    assert_eq!(sliced.windows, one.windows);
    assert_eq!(sliced.flagged_windows, one.flagged_windows);
    assert!(
        (sliced.energy_imported_wh - one.energy_imported_wh).abs() <= 1e-9 * one.energy_imported_wh,
        "{} vs {}",
        sliced.energy_imported_wh,
        one.energy_imported_wh
    );
    let windows = rows(out.path(), "windows");
    assert_windows_match_truth(&windows);
    // The window across the boundary (1.4 s .. 1.6 s) is a clean one.
    let boundary_ns = START_NS as f64 + 1.55e9;
    let across: Vec<_> = windows
        .iter()
        .filter(|w| num(w, "window_start") < boundary_ns && num(w, "window_end") > boundary_ns)
        .collect();
    assert_eq!(across.len(), 1);
    assert!(!flagged(across[0]));
    // No gap events.
    let events = rows(out.path(), "events");
    assert!(
        events.iter().all(|e| e["kind"] != Cell::Str("gap".into())),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_between_slices_is_a_gap_event_and_an_overlap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = slice(dir.path(), "a.mkv", 0, 2.0, START);
    // One second missing: the next slice starts at 3 s.
    let after_gap = slice(dir.path(), "b.mkv", 24_000, 2.0, &timestamp_after(3.0));
    // And one that starts 0.5 s before the previous one ends.
    let overlapping = slice(dir.path(), "c.mkv", 36_000, 1.0, &timestamp_after(4.5));
    let out = tempfile::tempdir().unwrap();
    let inputs = [first.clone(), after_gap.clone(), overlapping.clone()];
    let report = batch(&inputs, out.path(), &RawParams::default()).await;
    assert_eq!(report.failed_files(), 1, "{:?}", report.files);
    let why = reason(&report, &overlapping);
    assert!(
        why.contains("overlapping") && why.contains("smartmeter001"),
        "{why}"
    );
    assert!(why.contains("4000 samples"), "{why}");

    let [device] = report.devices.as_slice() else {
        panic!("{:?}", report.devices)
    };
    assert_eq!(device.samples, 4 * u64::from(RATE));
    assert_eq!(device.lost_samples, u64::from(RATE));
    let events = rows(out.path(), "events");
    let gaps: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == Cell::Str("gap".into()))
        .collect();
    assert_eq!(gaps.len(), 1, "{events:?}");
    assert_eq!(gaps[0]["lost_samples"], Cell::U64(u64::from(RATE)));
    // At the end of the first slice.
    assert_eq!(num(gaps[0], "time"), (START_NS + 2_000_000_000) as f64);
    // The windows after the gap are timed from TIMESTAMP (3 s), and the
    // first of them carries the gap flag.
    let windows = rows(out.path(), "windows");
    let after: Vec<_> = windows
        .iter()
        .filter(|w| num(w, "window_start") >= (START_NS + 2_500_000_000) as f64)
        .collect();
    assert!(!after.is_empty());
    let first_after = after
        .iter()
        .min_by(|a, b| num(a, "window_start").total_cmp(&num(b, "window_start")))
        .unwrap();
    assert_eq!(first_after["flag_gap"], Cell::Bool(true));
    assert!((num(first_after, "window_start") - (START_NS + 3_000_000_000) as f64).abs() <= 125e3);
    assert_windows_match_truth(&windows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_fail_clearly_and_cost_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let good = slice(dir.path(), "good.mkv", 0, 2.0, START);
    let meter = |name: &str| {
        let path = dir.path().join(format!("{name}.mkv"));
        record(
            &path,
            RATE,
            "v_l1,i_l1,v_l2,i_l2,v_l3,i_l3",
            name,
            START,
            &three_phase(0, 3 * u64::from(RATE)),
        );
        std::fs::read(&path).unwrap()
    };
    // Cut in the middle, as a recorder that died leaves it.
    let truncated = dir.path().join("truncated.mkv");
    let mut cut = meter("smartmeter002");
    cut.truncate(cut.len() / 2);
    std::fs::write(&truncated, cut).unwrap();
    // 400 bytes overwritten in the middle of the audio.
    let corrupt = dir.path().join("corrupt.mkv");
    let mut scrambled = meter("smartmeter003");
    let middle = scrambled.len() / 2;
    for b in &mut scrambled[middle..middle + 400] {
        *b = b.wrapping_mul(7).wrapping_add(13);
    }
    std::fs::write(&corrupt, scrambled).unwrap();

    let out = tempfile::tempdir().unwrap();
    let inputs = [truncated.clone(), good.clone(), corrupt.clone()];
    let report = batch(&inputs, out.path(), &RawParams::default()).await;
    assert_eq!(report.failed_files(), 2, "{:?}", report.files);
    let why = reason(&report, &truncated);
    assert!(
        why.contains("ffmpeg") && why.contains("prematurely"),
        "{why}"
    );
    let why = reason(&report, &corrupt);
    assert!(why.contains("ffmpeg") && why.contains("CRC"), "{why}");
    // The good file is whole.
    let good_device = report
        .devices
        .iter()
        .find(|d| d.device == "smartmeter001")
        .unwrap();
    assert_eq!(good_device.samples, 2 * u64::from(RATE));
    // What the damaged files held before the damage was processed, and
    // nothing after it: fewer samples than they were made with.
    for name in ["smartmeter002", "smartmeter003"] {
        let damaged = report.devices.iter().find(|d| d.device == name);
        let samples = damaged.map_or(0, |d| d.samples);
        assert!(samples < 3 * u64::from(RATE), "{name}: {samples}");
    }
    let windows = rows(out.path(), "windows");
    let good_windows: Vec<_> = windows
        .into_iter()
        .filter(|w| w["device"] == Cell::Str("smartmeter001".into()))
        .collect();
    assert_eq!(good_windows.len() as u64, good_device.windows);
    assert_windows_match_truth(&good_windows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_channel_tags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.mkv");
    record(
        &odd,
        RATE,
        "temp,humidity",
        "sensor",
        START,
        &[20.0, 50.0].repeat(800),
    );
    let good = slice(dir.path(), "good.mkv", 0, 1.0, START);
    let out = tempfile::tempdir().unwrap();
    let report = batch(&[odd.clone(), good], out.path(), &RawParams::default()).await;
    assert_eq!(report.failed_files(), 1);
    let why = reason(&report, &odd);
    assert!(
        why.contains("CHANNEL_TAGS")
            && why.contains("\"temp,humidity\"")
            && why.contains("--measures"),
        "{why}"
    );
    assert_eq!(report.devices.len(), 1);
}

#[derive(Default)]
struct Collect {
    sessions: Vec<SessionDescription>,
    channels: Vec<Vec<f32>>,
    events: Vec<SourceEvent>,
}

impl meterflow::source::capture::CaptureVisitor for Collect {
    fn session_start(&mut self, session: &SessionDescription) {
        self.sessions.push(session.clone());
    }
    fn block(&mut self, block: &SampleBlock) {
        self.channels.resize(block.channels.len(), Vec::new());
        for (all, channel) in self.channels.iter_mut().zip(&block.channels) {
            all.extend_from_slice(channel);
        }
    }
    fn event(&mut self, event: SourceEvent) {
        self.events.push(event);
    }
}

#[test]
fn a_missing_ffmpeg_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = slice(dir.path(), "a.mkv", 0, 0.5, START);
    let absent = dir.path().join("no-such-bin");
    // Only this call's programs change: no PATH or environment of the
    // test process is touched.
    let without_ffmpeg = RawParams {
        tools: RecordingTools {
            ffmpeg: Some(absent.join("ffmpeg")),
            ffprobe: None,
        },
        ..RawParams::default()
    };
    let error = read_capture(&path, &without_ffmpeg, &mut Collect::default())
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("ffmpeg not found"), "{error}");
    assert!(
        error.contains("no-such-bin") && error.contains("apt-get install ffmpeg"),
        "{error}"
    );
    let without_either = RawParams {
        tools: RecordingTools {
            ffmpeg: Some(absent.join("ffmpeg")),
            ffprobe: Some(absent.join("ffprobe")),
        },
        ..RawParams::default()
    };
    let error = read_capture(&path, &without_either, &mut Collect::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("ffprobe not found") && error.contains("install ffmpeg"),
        "{error}"
    );
}

#[test]
fn plug_layouts_map_to_known_ones_and_flags_override_tags() {
    let dir = tempfile::tempdir().unwrap();
    // A PowerMeter plug's v,i at 4 kHz: V 230 V, I 2 A in phase.
    let rate = 4000;
    let samples: Vec<f32> = (0..rate)
        .flat_map(|n| {
            let x = std::f64::consts::TAU * 50.0 * f64::from(n) / f64::from(rate);
            let s = std::f64::consts::SQRT_2 * x.sin();
            [(230.0 * s) as f32, (2000.0 * s) as f32]
        })
        .collect();
    let plug = dir.path().join("plug.mkv");
    record(&plug, rate, "v,i", "powermeter17", START, &samples);
    let mut collected = Collect::default();
    let summary = read_capture(&plug, &RawParams::default(), &mut collected).unwrap();
    assert_eq!(summary.kind, Some(CaptureKind::Matroska));
    assert_eq!(summary.samples(), u64::from(rate));
    let session = &collected.sessions[0];
    assert_eq!(
        (
            session.device.as_str(),
            session.measures.as_str(),
            session.rate
        ),
        ("powermeter17", "v,i", rate)
    );
    assert_eq!(session.start_unix_ns, START_NS);
    // WavPack float is lossless; currents arrive in A (mA / 1000).
    for (n, (v, i)) in collected.channels[0]
        .iter()
        .zip(&collected.channels[1])
        .enumerate()
    {
        assert_eq!(*v, samples[2 * n]);
        assert_eq!(*i, samples[2 * n + 1] / 1000.0);
    }
    // --measures says which phase a phase-less `v,i` was; --name, --start
    // and --rate replace the tags.
    let raw = RawParams {
        name: Some("kitchen".into()),
        measures: Some("v,i_L2".parse().unwrap()),
        start_unix_ns: Some(7),
        ..RawParams::default()
    };
    let mut collected = Collect::default();
    read_capture(&plug, &raw, &mut collected).unwrap();
    let session = &collected.sessions[0];
    assert_eq!(
        (
            session.device.as_str(),
            session.measures.as_str(),
            session.start_unix_ns
        ),
        ("kitchen", "v,i_L2", 7)
    );

    // The plug's p,q latch stream: P on L1, nothing on the other phases.
    let pq = dir.path().join("pq.mkv");
    record(
        &pq,
        50,
        "p,q",
        "powermeter17",
        START,
        &[1000.0, 200.0].repeat(500),
    );
    let mut collected = Collect::default();
    read_capture(&pq, &RawParams::default(), &mut collected).unwrap();
    assert_eq!(collected.sessions[0].measures.as_str(), "p,q");
    assert_eq!(collected.channels.len(), 6);
    assert!(collected.channels[0].iter().all(|&p| p == 1000.0));
    assert!(collected.channels[3].iter().all(|&q| q == 200.0));
    for other in [1, 2, 4, 5] {
        assert!(collected.channels[other].iter().all(|&x| x == 0.0));
    }
    assert_eq!(collected.channels[0].len(), 500);
}
