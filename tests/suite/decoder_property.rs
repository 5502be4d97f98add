//! Property test over the meter-stream decoder and the engine behind it
//! (issue 22, Acceptance): any byte string, split anywhere, and any meter
//! stream with hostile pieces (sample values of any bit pattern, corrupt
//! packet numbers and lengths, garbage, odd lines, sessions restarted or cut
//! short) goes through `MeterDecoder` → `BlockFeed` → `DeviceEngine`, as
//! `meterflow batch` of a capture does, without a panic, and every window
//! and energy register stays inside physical bounds.
//!
//! The bounds, from the engine's sample limits (default ±1000 V, ±1000 A per
//! sample; samples beyond them or non-finite are screened out):
//! - per phase: 0 ≤ V_rms ≤ V_max, 0 ≤ I_rms ≤ I_max, |P|, S ≤ V_max·I_max,
//!   |energy| ≤ V_max·I_max·duration;
//! - totals: |P_total|, S_total ≤ phases·V_max·I_max, |energy_total| ≤
//!   phases·V_max·I_max·duration;
//! - frequency, when given, in (0, rate / 2]; duration in [0, end − start];
//!   the window inside the session's time span;
//! - registers: import and export ≥ 0 and ≤ phases·V_max·I_max·measured time,
//!   measured time ≤ the samples received / rate.
//!
//! Every value is also finite. Relative slack 1e-6 for f64 rounding.

use bytes::BytesMut;
use meterflow::dsp::{DeviceEngine, EngineConfig, OwnedOutput};
use meterflow::model::WindowMetrics;
use meterflow::source::capture::{CaptureVisitor, SessionDescription};
use meterflow::source::decoder::{BlockFeed, MeterDecoder, SessionEnd};
use meterflow::source::event::SourceEvent;
use meterflow::wire::command::StreamType;
use meterflow::wire::frame::{put_data_header, put_info_line};
use meterflow::wire::message::{InfoAnswer, SampleAnswer, StartTs};
use meterflow::wire::{Measures, SampleBlock};
use proptest::prelude::*;

const SLACK: f64 = 1.0 + 1e-6;
/// 2026-01-01 00:00:00 UTC.
const START_MS: u64 = 1_767_225_600_000;

/// One session's engine and what it gave.
struct Session {
    rate: u32,
    phases: usize,
    start_ns: i64,
    last_end_ns: i64,
    samples: u64,
    engine: Option<DeviceEngine>,
}

#[derive(Default)]
struct Engines {
    config: EngineConfig,
    sessions: Vec<Session>,
    windows: Vec<(usize, WindowMetrics)>,
}

impl Engines {
    fn finish_last(&mut self) {
        let index = self.sessions.len().wrapping_sub(1);
        let Some(session) = self.sessions.last_mut() else {
            return;
        };
        let windows = &mut self.windows;
        if let Some(engine) = session.engine.as_mut() {
            engine.finish(&mut |o| {
                if let OwnedOutput::Window(w) = o.to_owned_output() {
                    windows.push((index, *w));
                }
            });
        }
    }
}

impl CaptureVisitor for Engines {
    fn session_start(&mut self, description: &SessionDescription) {
        self.finish_last();
        // Rates the engine does not take are refused by it, not a panic.
        let engine = DeviceEngine::new(
            &self.config,
            description.measures,
            description.rate,
            description.start_unix_ns,
        )
        .ok();
        self.sessions.push(Session {
            rate: description.rate,
            phases: description.measures.phases().len(),
            start_ns: description.start_unix_ns,
            last_end_ns: description.start_unix_ns,
            samples: 0,
            engine,
        });
    }

    fn block(&mut self, block: &SampleBlock) {
        let index = self.sessions.len() - 1;
        let session = self.sessions.last_mut().expect("a block inside a session");
        session.samples += block.len() as u64;
        session.last_end_ns = session
            .last_end_ns
            .max(block.time_of(block.first_index + block.len() as u64));
        let windows = &mut self.windows;
        if let Some(engine) = session.engine.as_mut() {
            engine
                .push_block(block, &mut |o| {
                    if let OwnedOutput::Window(w) = o.to_owned_output() {
                        windows.push((index, *w));
                    }
                })
                .unwrap_or_else(|e| panic!("the engine refused a decoded block: {e}"));
        }
    }

    fn event(&mut self, _: SourceEvent) {}
}

fn check_window(session: &Session, w: &WindowMetrics, v_max: f64, i_max: f64) {
    let what = format!("{w:?}");
    let one_sample_ns = 1e9 / f64::from(session.rate);
    assert!(w.start_unix_ns <= w.end_unix_ns, "{what}");
    assert!(
        (w.start_unix_ns as f64) >= session.start_ns as f64 - one_sample_ns,
        "window before its session: {what}"
    );
    assert!(
        (w.end_unix_ns as f64) <= session.last_end_ns as f64 + one_sample_ns,
        "window after its samples: {what}"
    );
    let span_s = (w.end_unix_ns - w.start_unix_ns) as f64 / 1e9;
    assert!(
        w.duration_s.is_finite() && w.duration_s >= 0.0 && w.duration_s <= span_s * SLACK + 1e-9,
        "duration: {what}"
    );
    if let Some(f) = w.frequency_hz {
        assert!(
            f.is_finite() && f > 0.0 && f <= f64::from(session.rate) / 2.0,
            "frequency {f}: {what}"
        );
    }
    let vi = v_max * i_max * SLACK;
    let mut present = 0.0;
    for phase in w.phases.iter().flatten() {
        present += 1.0;
        for (name, x, max) in [
            ("v_rms", phase.v_rms_v, v_max * SLACK),
            ("i_rms", phase.i_rms_a, i_max * SLACK),
            ("s", phase.s_va, vi),
        ] {
            assert!(
                x.is_finite() && (0.0..=max).contains(&x),
                "{name} {x}: {what}"
            );
        }
        assert!(phase.p_w.is_finite() && phase.p_w.abs() <= vi, "p: {what}");
        let energy_max = vi * w.duration_s / 3600.0 + 1e-12;
        assert!(
            phase.energy_wh.is_finite() && phase.energy_wh.abs() <= energy_max,
            "phase energy: {what}"
        );
    }
    let total = present * vi;
    assert!(
        w.p_total_w.is_finite() && w.p_total_w.abs() <= total,
        "p_total: {what}"
    );
    assert!(
        w.s_total_va.is_finite() && w.s_total_va <= total,
        "s_total: {what}"
    );
    assert!(
        w.energy_total_wh.is_finite()
            && w.energy_total_wh.abs() <= total * w.duration_s / 3600.0 + 1e-12,
        "energy_total: {what}"
    );
}

/// Decodes `bytes` fed in pieces cut at `cuts` and checks every bound;
/// returns the windows.
fn decode_and_check(bytes: &[u8], cuts: &[usize]) -> Vec<WindowMetrics> {
    let mut decoder = MeterDecoder::new();
    let mut feed = BlockFeed::default();
    let mut engines = Engines::default();
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    points.sort_unstable();
    points.push(bytes.len());
    let mut last = 0;
    for point in points {
        decoder.receive(&bytes[last..point]);
        last = point;
        while let Some(item) = decoder.poll() {
            feed.apply(item, &mut engines);
        }
    }
    decoder.end(SessionEnd::Disconnected);
    while let Some(item) = decoder.poll() {
        feed.apply(item, &mut engines);
    }
    assert!(decoder.is_finished());
    engines.finish_last();

    let (v_max, i_max) = (
        engines.config.max_sample_voltage_v,
        engines.config.max_sample_current_a,
    );
    for (index, w) in &engines.windows {
        check_window(&engines.sessions[*index], w, v_max, i_max);
    }
    for session in &engines.sessions {
        let Some(engine) = &session.engine else {
            continue;
        };
        let energy = engine.energy();
        let received_s = session.samples as f64 / f64::from(session.rate);
        assert!(
            energy.measured_s.is_finite() && energy.measured_s <= received_s * SLACK + 1e-9,
            "measured {} s of {received_s} s received",
            energy.measured_s
        );
        let max_wh =
            session.phases as f64 * v_max * i_max * SLACK * energy.measured_s / 3600.0 + 1e-12;
        for wh in [energy.total.import_wh, energy.total.export_wh] {
            assert!(
                wh.is_finite() && (0.0..=max_wh).contains(&wh),
                "register {wh} Wh of at most {max_wh}"
            );
        }
    }
    // Counters add up: no sample both kept and lost beyond what arrived.
    let counters = decoder.counters();
    let kept: u64 = engines.sessions.iter().map(|s| s.samples).sum();
    assert_eq!(kept, counters.samples);
    engines.windows.into_iter().map(|(_, w)| w).collect()
}

/// The harness itself: a clean stream gives the windows of its signal
/// (230 V, 10 A rms, 50 Hz; 0.1 % tolerance), so the bounds above are
/// checked on windows that exist.
#[test]
fn a_clean_stream_gives_its_signals_windows() {
    let pieces: Vec<Piece> = (0..100)
        .map(|_| Piece::Chunk {
            samples: 40,
            seq_offset: 0,
            hostile: Vec::new(),
        })
        .collect();
    let windows = decode_and_check(&stream(Measures::ThreePhase, &pieces), &[333, 7000]);
    // 1 s: five 200-ms windows, the last possibly cut short.
    assert!(windows.len() >= 4, "{} windows", windows.len());
    let inner = &windows[1];
    assert!(
        (inner.frequency_hz.unwrap_or(0.0) - 50.0).abs() < 0.05,
        "{inner:?}"
    );
    for phase in inner.phases.iter().flatten() {
        assert!(
            (phase.v_rms_v / (325.0 / 2f64.sqrt()) - 1.0).abs() < 1e-3,
            "{phase:?}"
        );
        assert!(
            (phase.i_rms_a / (14.142 / 2f64.sqrt()) - 1.0).abs() < 1e-3,
            "{phase:?}"
        );
    }
}

/// A value: mostly the 230 V / 10 A (in mA) waveform, sometimes any bits.
fn value(k: usize, channel: usize, bits: Option<u32>) -> f32 {
    if let Some(bits) = bits {
        return f32::from_bits(bits);
    }
    let phase = (k as f64) * std::f64::consts::TAU * 50.0 / 4000.0 - (channel / 2) as f64 * 2.1;
    let amplitude = if channel.is_multiple_of(2) {
        325.0
    } else {
        14_142.0
    };
    (amplitude * phase.sin()) as f32
}

#[derive(Debug, Clone)]
enum Piece {
    /// A chunk of `samples`, its packet number `seq_offset` off the due one,
    /// with `(position, bits)` values replaced.
    Chunk {
        samples: usize,
        seq_offset: i64,
        hostile: Vec<(usize, u32)>,
    },
    /// A header with any length and packet number, then `bytes`.
    Header {
        len: u16,
        seq: u32,
        bytes: Vec<u8>,
    },
    Garbage(Vec<u8>),
    Line(String),
    /// Another sample answer (a restart) at `rate`.
    Answer(u32),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        8 => (1usize..64, prop_oneof![6 => Just(0i64), 1 => -3i64..3, 1 => any::<u32>().prop_map(i64::from)],
              proptest::collection::vec((0usize..64 * 6, any::<u32>()), 0..4))
            .prop_map(|(samples, seq_offset, hostile)| Piece::Chunk { samples, seq_offset, hostile }),
        1 => (any::<u16>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(len, seq, bytes)| Piece::Header { len, seq, bytes }),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Piece::Garbage),
        1 => "[ -~]{0,60}".prop_map(Piece::Line),
        1 => prop_oneof![Just(4000u32), Just(8000), Just(1000), Just(0), Just(3), any::<u32>()]
            .prop_map(Piece::Answer),
    ]
}

fn answer_line(buf: &mut BytesMut, measures: Measures, rate: u32) {
    let mut answer = SampleAnswer::new(
        measures,
        rate.clamp(1, 32_000),
        StreamType::Tcp,
        true,
        false,
        StartTs::from_unix_millis(START_MS),
    );
    answer.samplingrate = rate;
    put_info_line(
        buf,
        &serde_json::to_string(&answer).expect("an answer serialises"),
    );
}

/// A meter stream of `measures` at 4 kHz made of `pieces`.
fn stream(measures: Measures, pieces: &[Piece]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    put_info_line(
        &mut buf,
        &serde_json::to_string(&InfoAnswer::new("prop001", "10.0.0.1")).expect("info"),
    );
    answer_line(&mut buf, measures, 4000);
    let channels = measures.channel_count();
    let (mut seq, mut k) = (0u32, 0usize);
    for piece in pieces {
        match piece {
            Piece::Chunk {
                samples,
                seq_offset,
                hostile,
            } => {
                let mut values: Vec<f32> = (0..samples * channels)
                    .map(|n| value(k + n / channels, n % channels, None))
                    .collect();
                for &(at, bits) in hostile {
                    if let Some(v) = values.get_mut(at) {
                        *v = value(0, 0, Some(bits));
                    }
                }
                let sent = (i64::from(seq) + seq_offset) as u32;
                put_data_header(&mut buf, (values.len() * 4) as u16, sent);
                for v in values {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
                seq = seq.wrapping_add(1);
                k += samples;
            }
            Piece::Header { len, seq, bytes } => {
                put_data_header(&mut buf, *len, *seq);
                buf.extend_from_slice(bytes);
            }
            Piece::Garbage(bytes) => buf.extend_from_slice(bytes),
            Piece::Line(text) => put_info_line(&mut buf, text),
            Piece::Answer(rate) => {
                answer_line(&mut buf, measures, *rate);
                seq = 0;
            }
        }
    }
    buf.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_decode_without_panic_within_bounds(
        bytes in proptest::collection::vec(any::<u8>(), 0..4000),
        cuts in proptest::collection::vec(0usize..4000, 0..6),
    ) {
        let _ = decode_and_check(&bytes, &cuts);
    }

    #[test]
    fn hostile_meter_streams_give_windows_within_bounds(
        measures in prop_oneof![Just(Measures::ThreePhase), Just(Measures::SinglePhase)],
        pieces in proptest::collection::vec(piece(), 0..120),
        cuts in proptest::collection::vec(0usize..100_000, 0..6),
    ) {
        let bytes = stream(measures, &pieces);
        let _ = decode_and_check(&bytes, &cuts);
    }
}
