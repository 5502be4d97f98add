//! Capture files of every kind, recognised by content, and the bad ones:
//! each is read to the same samples or refused with a clear reason.

use std::path::{Path, PathBuf};

use meterflow::meter::signal::{SignalConfig, SignalGenerator};
use meterflow::source::capture::{
    read_capture, CaptureError, CaptureKind, CaptureVisitor, RawParams, SessionDescription,
};
use meterflow::source::event::{EventKind, SourceEvent};
use meterflow::source::wav::wav_header;
use meterflow::wire::samples::SampleBlock;
use meterflow::wire::Measures;

#[derive(Default)]
struct Collect {
    sessions: Vec<SessionDescription>,
    channels: Vec<Vec<f32>>,
    first_indices: Vec<u64>,
    events: Vec<SourceEvent>,
}

impl CaptureVisitor for Collect {
    fn session_start(&mut self, session: &SessionDescription) {
        self.channels = vec![Vec::new(); session.measures.channel_count()];
        self.sessions.push(session.clone());
    }
    fn block(&mut self, block: &SampleBlock) {
        self.first_indices.push(block.first_index);
        for (out, channel) in self.channels.iter_mut().zip(&block.channels) {
            out.extend_from_slice(channel);
        }
    }
    fn event(&mut self, event: SourceEvent) {
        self.events.push(event);
    }
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Wire-unit interleaved samples of a default signal.
fn wire_samples(measures: Measures, rate: u32, samples: usize) -> Vec<f32> {
    let config = SignalConfig {
        seed: 5,
        ..SignalConfig::default()
    };
    let mut generator = SignalGenerator::new(config, measures, rate).unwrap();
    let mut out = vec![0f32; samples * measures.channel_count()];
    generator.fill(&mut out);
    out
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn check_si(collected: &Collect, measures: Measures, wire: &[f32]) {
    let channels = measures.channels();
    for (c, channel) in channels.iter().enumerate() {
        let expected: Vec<f32> = wire
            .iter()
            .skip(c)
            .step_by(channels.len())
            .map(|v| v / channel.si_divisor())
            .collect();
        assert_eq!(collected.channels[c], expected, "channel {}", channel.name);
    }
}

fn raw_params() -> RawParams {
    RawParams {
        name: Some("recorded".into()),
        measures: Some(Measures::ThreePhase),
        rate: Some(8000),
        start_unix_ns: Some(1_700_000_000_000_000_000),
        ..RawParams::default()
    }
}

#[test]
fn bare_f32le_with_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let wire = wire_samples(Measures::ThreePhase, 8000, 10_000);
    let path = dir.path().join("capture.f32");
    std::fs::write(&path, le_bytes(&wire)).unwrap();
    let mut collected = Collect::default();
    let summary = read_capture(&path, &raw_params(), &mut collected).unwrap();
    assert_eq!(summary.kind, Some(CaptureKind::RawF32));
    assert_eq!(summary.samples(), 10_000);
    assert_eq!(collected.sessions[0].device, "recorded");
    assert_eq!(
        collected.sessions[0].start_unix_ns,
        1_700_000_000_000_000_000
    );
    check_si(&collected, Measures::ThreePhase, &wire);
    // Blocks are consecutive.
    assert_eq!(collected.first_indices[1], 4096);
}

#[test]
fn bare_f32le_without_parameters_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.bin");
    std::fs::write(&path, le_bytes(&[1.0; 60])).unwrap();
    let params = RawParams {
        rate: Some(8000),
        ..RawParams::default()
    };
    let error = read_capture(&path, &params, &mut Collect::default()).unwrap_err();
    assert!(matches!(error, CaptureError::MissingRawParams { .. }));
    let text = error.to_string();
    assert!(text.contains("--measures") && text.contains("--start") && text.contains("--name"));
    assert!(!text.contains("--rate"), "{text}");
}

#[test]
fn a_partial_sample_at_the_end_of_a_raw_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wire = wire_samples(Measures::ThreePhase, 8000, 100);
    let mut bytes = le_bytes(&wire);
    bytes.extend_from_slice(&[1, 2, 3]);
    let path = dir.path().join("capture.raw");
    std::fs::write(&path, bytes).unwrap();
    let mut collected = Collect::default();
    let summary = read_capture(&path, &raw_params(), &mut collected).unwrap();
    assert_eq!(summary.samples(), 100);
    assert!(collected
        .events
        .iter()
        .any(|e| e.kind == EventKind::Truncated { bytes: 3 }));
}

#[test]
fn wav_float32_takes_rate_and_layout_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let wire = wire_samples(Measures::SinglePhase, 4000, 5000);
    let mut bytes = wav_header(2, 4000, 5000);
    bytes.extend(le_bytes(&wire));
    // A name that says nothing: the kind comes from the content.
    let path = dir.path().join("recording.dat");
    std::fs::write(&path, bytes).unwrap();
    let params = RawParams {
        start_unix_ns: Some(0),
        ..RawParams::default()
    };
    let mut collected = Collect::default();
    let summary = read_capture(&path, &params, &mut collected).unwrap();
    assert_eq!(summary.kind, Some(CaptureKind::Wav));
    assert_eq!(collected.sessions[0].rate, 4000);
    assert_eq!(collected.sessions[0].measures, Measures::SinglePhase);
    assert_eq!(collected.sessions[0].device, "recording");
    check_si(&collected, Measures::SinglePhase, &wire);
}

#[test]
fn a_meter_stream_is_recognised_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("looks_like.wav");
    std::fs::copy(testdata("single_phase_4khz_60hz.mfcap"), &path).unwrap();
    let mut collected = Collect::default();
    let summary = read_capture(&path, &RawParams::default(), &mut collected).unwrap();
    assert_eq!(summary.kind, Some(CaptureKind::MeterStream));
    assert_eq!(collected.sessions[0].device, "single_phase_4khz_60hz-001");
    assert_eq!(summary.samples(), 8000);
    let kinds: Vec<&str> = collected.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["session_start", "session_stop"]);
}

#[test]
fn an_empty_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    std::fs::write(&path, b"").unwrap();
    let error = read_capture(&path, &raw_params(), &mut Collect::default()).unwrap_err();
    assert!(matches!(error, CaptureError::Empty), "{error}");
}

#[test]
fn garbage_in_the_middle_costs_only_what_it_hit() {
    let bytes = std::fs::read(testdata("three_phase_8khz.mfcap")).unwrap();
    // Overwrite 3000 bytes in the middle: a few chunks are lost, the rest reads.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    for (k, byte) in damaged[middle..middle + 3000].iter_mut().enumerate() {
        *byte = (k * 7 + 13) as u8;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.mfcap");
    std::fs::write(&path, &damaged).unwrap();
    let mut collected = Collect::default();
    let summary = read_capture(&path, &RawParams::default(), &mut collected).unwrap();
    let session = &summary.sessions[0];
    assert!(summary.wire.resyncs >= 1, "{:?}", summary.wire);
    assert!(summary.wire.gaps >= 1, "{:?}", summary.wire);
    // 3000 bytes touch at most 4 chunks of 42 samples.
    assert!(
        session.lost_samples >= 42 && session.lost_samples <= 4 * 42,
        "{}",
        session.lost_samples
    );
    assert_eq!(session.samples + session.lost_samples, 16_000);
    assert!(
        session.stop.is_some(),
        "the stop answer after the damage is read"
    );
    let gap_samples: u64 = collected.events.iter().map(|e| e.kind.lost_samples()).sum();
    assert_eq!(gap_samples, session.lost_samples);
}

#[test]
fn a_stream_without_a_sample_answer_has_no_layout() {
    let bytes = std::fs::read(testdata("three_phase_8khz.mfcap")).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let answer_at = text
        .find("Info:{\"error\":false,\"cmd\":\"sample\"")
        .unwrap();
    let answer_end = answer_at + text[answer_at..].find("\r\n").unwrap() + 2;
    let mut stripped = bytes[..answer_at].to_vec();
    stripped.extend_from_slice(&bytes[answer_end..]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_answer.mfcap");
    std::fs::write(&path, stripped).unwrap();
    let error = read_capture(&path, &RawParams::default(), &mut Collect::default()).unwrap_err();
    assert!(matches!(error, CaptureError::NoSession), "{error}");
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let error = read_capture(
        Path::new("/nonexistent/meterflow/capture"),
        &RawParams::default(),
        &mut Collect::default(),
    )
    .unwrap_err();
    assert!(matches!(error, CaptureError::Read(_)));
}
