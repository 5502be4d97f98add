//! The captures in `testdata/` replay to exactly the samples their truth
//! files describe: the signal parameters regenerate every value bit for bit.

use std::path::{Path, PathBuf};

use meterflow::meter::signal::{SignalConfig, SignalGenerator};
use meterflow::source::capture::replay_file;
use meterflow::wire::Measures;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct TruthFile {
    capture: String,
    measures: String,
    rate_hz: u32,
    samples: u64,
    signal: SignalConfig,
}

fn truth_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn there_are_captures_for_every_layout_family() {
    let layouts: Vec<Measures> = truth_files()
        .iter()
        .map(|path| {
            let truth: TruthFile =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            truth.measures.parse().unwrap()
        })
        .collect();
    for wanted in [
        Measures::ThreePhase,
        Measures::SinglePhase,
        Measures::PowerLatch,
        Measures::RmsLatch,
    ] {
        assert!(layouts.contains(&wanted), "no capture with {wanted}");
    }
    assert!(layouts.iter().any(|m| matches!(m, Measures::Phase(_))));
}

#[test]
fn every_capture_replays_to_its_truth() {
    let files = truth_files();
    assert!(
        files.len() >= 5,
        "testdata holds {} truth files",
        files.len()
    );
    for path in files {
        let truth: TruthFile =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let measures: Measures = truth.measures.parse().unwrap();
        let capture = path.with_file_name(&truth.capture);

        let mut received: Vec<Vec<f32>> = vec![Vec::new(); measures.channel_count()];
        let summary = replay_file(&capture, |block| {
            assert_eq!(block.rate, truth.rate_hz);
            for (out, channel) in received.iter_mut().zip(&block.channels) {
                out.extend_from_slice(channel);
            }
        })
        .unwrap();
        let name = capture.display().to_string();
        assert_eq!(summary.wire.anomalies(), 0, "{name}: {:?}", summary.wire);
        assert_eq!(summary.sessions.len(), 1, "{name}");
        let session = &summary.sessions[0];
        assert_eq!(session.samples, truth.samples, "{name}");
        assert_eq!(
            session.description.measures.channels(),
            measures.channels(),
            "{name}"
        );
        assert_eq!(
            session.stop.as_ref().map(|s| s.sent_samples),
            Some(truth.samples),
            "{name}"
        );

        let mut generator = SignalGenerator::new(truth.signal, measures, truth.rate_hz).unwrap();
        let channels = measures.channels();
        let mut wire = vec![0f32; truth.samples as usize * channels.len()];
        generator.fill(&mut wire);
        for (c, channel) in channels.iter().enumerate() {
            let expected: Vec<f32> = wire
                .iter()
                .skip(c)
                .step_by(channels.len())
                .map(|v| v / channel.si_divisor())
                .collect();
            assert!(
                expected
                    .iter()
                    .zip(&received[c])
                    .all(|(a, b)| a.to_bits() == b.to_bits())
                    && expected.len() == received[c].len(),
                "{name}: channel {} differs from its signal",
                channel.name
            );
        }
    }
}

#[test]
fn a_capture_cut_short_loses_only_its_tail() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/three_phase_8khz.mfcap");
    let bytes = std::fs::read(path).unwrap();
    let cut = &bytes[..bytes.len() * 2 / 3];
    let mut samples = 0u64;
    let summary =
        meterflow::source::capture::replay(cut, |block| samples += block.len() as u64).unwrap();
    assert_eq!(summary.wire.truncated, 1);
    assert_eq!(summary.sessions.len(), 1);
    assert!(summary.sessions[0].stop.is_none());
    // Two thirds of the bytes hold nearly two thirds of the samples.
    assert!(samples > 10_000 && samples < 10_700, "{samples}");
}

#[test]
fn garbage_is_not_a_capture() {
    assert!(meterflow::source::capture::replay(b"\x00\x01garbage", |_| {}).is_err());
}
