//! Hostile samples: one value outside the meter's physical range (or NaN,
//! inf) flags the window that holds it and nothing else. Checked against the
//! analytic truth of a clean 230 V / 10 A three-phase signal, through the
//! engine directly, through `meterflow batch` on an f32le file, and by a
//! property test over random values.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::parquet_read::Cell;
use common::rows::{by_device, num, text, ts};
use common::three_phase::{
    clean_channels, wire_f32le, I_RMS, MEASURES, P_TOTAL_W, RATE, SPIKE, V_RMS,
};
use meterflow::dsp::{DeviceEngine, EngineConfig, InvalidSamples, OwnedOutput};
use meterflow::model::{WindowFlags, WindowMetrics};
use meterflow::wire::{Measures, SampleBlock};
use proptest::prelude::*;

const START_NS: i64 = 1_700_000_000_000_000_000;
const SPIKE_AT: usize = 8000;

fn block(channels: Vec<Vec<f32>>, first_index: u64) -> SampleBlock {
    SampleBlock {
        channels,
        first_index,
        ..SampleBlock::new(Measures::ThreePhase, RATE, START_NS)
    }
}

/// Every output of `channels` cut into blocks of `cut` samples.
fn run(channels: &[Vec<f32>], cut: usize) -> (Vec<OwnedOutput>, f64) {
    let config = EngineConfig::default();
    let mut engine = DeviceEngine::new(&config, Measures::ThreePhase, RATE, START_NS)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let len = channels[0].len();
    let mut at = 0;
    while at < len {
        let end = (at + cut).min(len);
        let part = channels.iter().map(|c| c[at..end].to_vec()).collect();
        engine
            .push_block(&block(part, at as u64), &mut |o| {
                out.push(o.to_owned_output())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        at = end;
    }
    engine.finish(&mut |o| out.push(o.to_owned_output()));
    let import = engine.energy().total.import_wh;
    (out, import)
}

fn windows(outputs: &[OwnedOutput]) -> Vec<&WindowMetrics> {
    outputs
        .iter()
        .filter_map(|o| match o {
            OwnedOutput::Window(w) => Some(&**w),
            _ => None,
        })
        .collect()
}

fn invalid_runs(outputs: &[OwnedOutput]) -> Vec<InvalidSamples> {
    outputs
        .iter()
        .filter_map(|o| match o {
            OwnedOutput::InvalidSamples(run) => Some(*run),
            _ => None,
        })
        .collect()
}

/// Whether sample `n` has weight in window `w` (its cell overlaps the window).
fn touches(w: &WindowMetrics, n: usize) -> bool {
    let start = (w.start_unix_ns - START_NS) as f64 * f64::from(RATE) / 1e9;
    let end = (w.end_unix_ns - START_NS) as f64 * f64::from(RATE) / 1e9;
    let n = n as f64;
    n + 0.5 > start + 1e-6 && n - 0.5 < end - 1e-6
}

/// A window against the analytic truth: RMS within 0.05 %, frequency
/// within 1 mHz, P within 0.05 %, energy P × duration. The partial windows
/// at the stream's ends (flagged as such) hold part of a cycle: skipped.
fn assert_analytic(w: &WindowMetrics, what: &str) {
    assert!(
        !w.flags.contains(WindowFlags::INVALID_SAMPLES),
        "{what}: {w:?}"
    );
    if !w.flags.is_clean() {
        return;
    }
    let f = w.frequency_hz.unwrap_or(f64::NAN);
    assert!((f - 50.0).abs() < 1e-3, "{what}: frequency {f}");
    for phase in w.phases.iter().flatten() {
        assert!(
            (phase.v_rms_v / V_RMS - 1.0).abs() < 5e-4,
            "{what}: {phase:?}"
        );
        assert!(
            (phase.i_rms_a / I_RMS - 1.0).abs() < 5e-4,
            "{what}: {phase:?}"
        );
    }
    assert!(
        (w.p_total_w / P_TOTAL_W - 1.0).abs() < 5e-4,
        "{what}: P {}",
        w.p_total_w
    );
    let energy = P_TOTAL_W * w.duration_s / 3600.0;
    assert!((w.energy_total_wh / energy - 1.0).abs() < 5e-4, "{what}");
}

#[test]
fn one_out_of_range_sample_flags_only_its_window() {
    let clean = clean_channels(20.0);
    let (clean_out, clean_import) = run(&clean, 1008 / 24);
    let clean_windows = windows(&clean_out);
    // The clean stream itself: analytic windows, analytic energy (the
    // covered time is the stream less the half sample before sample 0).
    for w in &clean_windows {
        assert_analytic(w, "clean");
    }
    // Only the first and the last window are partial.
    let partial = clean_windows.iter().filter(|w| !w.flags.is_clean()).count();
    assert!(
        partial <= 2 && clean_windows.len() == 101,
        "{partial} of {}",
        clean_windows.len()
    );
    let covered_s = (clean[0].len() as f64 - 0.5) / f64::from(RATE);
    let analytic_wh = P_TOTAL_W * covered_s / 3600.0;
    assert!(
        (clean_import / analytic_wh - 1.0).abs() < 5e-4,
        "{clean_import} vs {analytic_wh}"
    );
    let cases: [(usize, f32); 8] = [
        (0, 1e20),
        (0, -1e9),
        (0, 1e12),
        (0, f32::NAN),
        (2, f32::INFINITY),
        (1, 1e20),
        (1, -1e6),
        (5, f32::NEG_INFINITY),
    ];
    for (channel, value) in cases {
        let what = format!("channel {channel} = {value}");
        let mut spiked = clean.clone();
        spiked[channel][SPIKE_AT] = value;
        for cut in [42, 1000, 7] {
            let (out, import) = run(&spiked, cut);
            let ws = windows(&out);
            assert_eq!(ws.len(), clean_windows.len(), "{what}");
            let mut flagged_wh = 0.0;
            let mut flagged = 0;
            for (w, c) in ws.iter().zip(&clean_windows) {
                assert_eq!(
                    (w.start_unix_ns, w.end_unix_ns),
                    (c.start_unix_ns, c.end_unix_ns)
                );
                let holds = touches(w, SPIKE_AT);
                assert_eq!(
                    w.flags.contains(WindowFlags::INVALID_SAMPLES),
                    holds,
                    "{what}"
                );
                if holds {
                    flagged += 1;
                    flagged_wh += P_TOTAL_W * w.duration_s / 3600.0;
                    assert_eq!(w.energy_total_wh, 0.0, "{what}");
                    // Its values stand in physical bounds (the last valid value stood in).
                    for phase in w.phases.iter().flatten() {
                        assert!(phase.v_rms_v < 1.01 * V_RMS && phase.i_rms_a < 1.01 * I_RMS);
                    }
                } else {
                    assert_eq!(w.flags, c.flags, "{what}");
                    assert_analytic(w, &what);
                }
            }
            assert!((1..=2).contains(&flagged), "{what}: {flagged} flagged");
            // Energy: the clean analytic energy less at most the spike windows' share.
            let expected = analytic_wh - flagged_wh;
            assert!(
                (import / expected - 1.0).abs() < 5e-4 && import <= analytic_wh,
                "{what}: {import} Wh vs {expected} Wh"
            );
            let runs = invalid_runs(&out);
            assert_eq!(runs.len(), 1, "{what}: {runs:?}");
            let run = runs[0];
            assert_eq!(
                (run.first_sample, run.last_sample, run.values),
                (8000, 8000, 1)
            );
            assert_eq!(run.channels, 1 << channel);
            assert_eq!(run.start_unix_ns, START_NS + 1_000_000_000);
            assert_eq!(run.non_finite, u64::from(!value.is_finite()));
        }
    }
}

fn meterflow(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the meterflow binary")
}

/// The repro: 20 s of 6-channel f32le (currents in mA, as the wire
/// carries them), sample 8000 of V L1 = 1e20; a second file with the spike
/// on I L1. Through the binary into Parquet: the windows around the spike
/// are flagged, all others carry the analytic values and a frequency, the
/// energy register is the analytic energy less at most those windows, and
/// the spike is one `invalid_samples` event row.
#[test]
fn batch_of_a_spiked_file_keeps_the_rest_of_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    for (channel, name) in [(0usize, "fv"), (1, "fi")] {
        let mut channels = clean_channels(20.0);
        channels[channel][SPIKE_AT] = SPIKE;
        let bytes = wire_f32le(&channels, 0..channels[0].len());
        let file = dir.path().join(format!("{name}.f32"));
        std::fs::write(&file, bytes).unwrap();
        let out = dir.path().join(format!("o-{name}"));
        let output = meterflow(
            &[
                "batch",
                file.to_str().unwrap(),
                "--rate",
                "8000",
                "--measures",
                MEASURES,
                "--start",
                "1700000000",
                "--name",
                name,
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ],
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let parquet = out.join("parquet");
        let rows = &by_device(&parquet.join("windows"), "window_start")[name];
        assert!(rows.len() > 90, "{}", rows.len());
        let spike_ns = START_NS + 1_000_000_000;
        let mut flagged_s = 0.0;
        for (k, row) in rows.iter().enumerate() {
            let (start, end) = (ts(row, "window_start"), ts(row, "window_end"));
            // Sample 8000's cell is 62.5 µs either side of its instant.
            let holds = start < spike_ns + 62_500 && end > spike_ns - 62_500;
            let flag = matches!(row["flag_invalid_samples"], Cell::Bool(true));
            assert_eq!(flag, holds, "{name}: window at {start}");
            if holds {
                flagged_s += (end - start) as f64 / 1e9;
                continue;
            }
            if matches!(row["flagged"], Cell::Bool(true)) {
                // Only the partial windows at the stream's ends.
                assert!(k == 0 || k == rows.len() - 1, "{name}: window {k} flagged");
                continue;
            }
            let f = num(row, "frequency_hz");
            assert!((f - 50.0).abs() < 1e-3, "{name}: frequency {f} at {start}");
            for tag in ["l1", "l2", "l3"] {
                let v = num(row, &format!("v_rms_{tag}_v"));
                let i = num(row, &format!("i_rms_{tag}_a"));
                assert!((v / V_RMS - 1.0).abs() < 5e-4, "{name}: {v} V at {start}");
                assert!((i / I_RMS - 1.0).abs() < 5e-4, "{name}: {i} A at {start}");
            }
        }
        assert!(
            flagged_s > 0.1 && flagged_s < 0.45,
            "{name}: {flagged_s} s flagged"
        );
        let last = rows.last().unwrap();
        let register = num(last, "cum_import_total_wh");
        let analytic = P_TOTAL_W * (20.0 - 0.5 / 8000.0) / 3600.0;
        let expected = analytic - P_TOTAL_W * flagged_s / 3600.0;
        assert!(
            (register / expected - 1.0).abs() < 5e-4,
            "{name}: register {register} Wh, expected {expected} Wh"
        );
        let events = &by_device(&parquet.join("events"), "time")[name];
        let invalid: Vec<_> = events
            .iter()
            .filter(|e| text(e, "kind") == "invalid_samples")
            .collect();
        assert_eq!(invalid.len(), 1, "{name}: {events:?}");
        assert_eq!(ts(invalid[0], "time"), spike_ns);
    }
}

/// One value of any kind: ordinary, beyond the limits, or non-finite.
/// `PROPTEST_CASES` if set (a longer local run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn hostile_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        -400.0f32..400.0,
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::MAX),
        Just(-f32::MAX),
        Just(f32::MIN_POSITIVE),
        1e3f32..1e38,
        -1e38f32..-1e3,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    /// Any values at all: no panic, every window and the registers within
    /// what the limits allow (1000 V, 1000 A per channel).
    #[test]
    fn random_values_stay_in_physical_bounds(
        values in proptest::collection::vec(hostile_value(), 6 * 800..6 * 4000),
        cut in 1usize..600,
    ) {
        let n = values.len() / 6;
        let channels: Vec<Vec<f32>> = (0..6)
            .map(|c| (0..n).map(|k| values[6 * k + c]).collect())
            .collect();
        let (out, import) = run(&channels, cut);
        let max_p = 3.0 * 1000.0 * 1000.0;
        let duration_s = n as f64 / f64::from(RATE);
        for w in windows(&out) {
            for phase in w.phases.iter().flatten() {
                prop_assert!(phase.v_rms_v.is_finite() && phase.v_rms_v <= 1000.0);
                prop_assert!(phase.i_rms_a.is_finite() && phase.i_rms_a <= 1000.0);
                prop_assert!(phase.p_w.abs() <= 1000.0 * 1000.0);
            }
            prop_assert!(w.p_total_w.is_finite() && w.p_total_w.abs() <= max_p);
            prop_assert!(w.energy_total_wh.abs() <= max_p * w.duration_s / 3600.0 + 1e-9);
            if let Some(f) = w.frequency_hz {
                prop_assert!(f.is_finite() && f > 0.0 && f <= f64::from(RATE) / 2.0);
            }
        }
        prop_assert!(import.is_finite() && import >= 0.0);
        prop_assert!(import <= max_p * duration_s / 3600.0 + 1e-9);
    }

    /// One bad value anywhere in a clean stream flags the windows that hold
    /// it and changes nothing else beyond what its stand-in (the last valid
    /// value continued by its step) does to the crossing filter: a window
    /// edge moves by far less
    /// than 0.05 sample, values by less than 1e-4 relative. Cut anyhow.
    #[test]
    fn one_bad_value_changes_at_most_its_window(
        channel in 0usize..6,
        // From sample 0: a bad reference sample beside the first crossing
        // (sample 153) moved it by 0.04 sample while its stand-in was the
        // held value, 2e-4 of the short partial window before it.
        at in 0usize..16_000,
        value in hostile_value().prop_filter("beyond the limits", |x| x.is_nan() || x.abs() > 1000.0),
        cut in 1usize..3000,
    ) {
        let clean = clean_channels(2.0);
        let (clean_out, clean_import) = run(&clean, cut);
        let mut spiked = clean.clone();
        spiked[channel][at] = value;
        let (out, import) = run(&spiked, cut);
        let (a, b) = (windows(&clean_out), windows(&out));
        prop_assert_eq!(a.len(), b.len());
        let mut lost_wh = 0.0;
        let mut changed = 0;
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1e-3);
        let edge_ns = (0.05 * 1e9 / f64::from(RATE)) as i64;
        for (c, w) in a.iter().zip(&b) {
            if touches(w, at) {
                changed += 1;
                prop_assert!(w.flags.contains(WindowFlags::INVALID_SAMPLES));
                prop_assert_eq!(w.energy_total_wh, 0.0);
                lost_wh += c.energy_total_wh;
                continue;
            }
            prop_assert_eq!(c.flags, w.flags);
            prop_assert!((c.start_unix_ns - w.start_unix_ns).abs() <= edge_ns);
            prop_assert!((c.end_unix_ns - w.end_unix_ns).abs() <= edge_ns);
            prop_assert!(close(c.p_total_w, w.p_total_w), "{} vs {}", c.p_total_w, w.p_total_w);
            prop_assert!(close(c.energy_total_wh, w.energy_total_wh));
            if let (Some(x), Some(y)) = (c.frequency_hz, w.frequency_hz) {
                // Both edges of a 10-cycle window may move by the edge
                // tolerance: 50 Hz × 2 × 0.05 sample / 1600 samples ≈ 3.1 mHz.
                let f_tolerance = 50.0 * 2.0 * 0.05 / (10.0 * f64::from(RATE) / 50.0);
                prop_assert!((x - y).abs() <= f_tolerance, "{} vs {}", x, y);
            } else {
                prop_assert_eq!(c.frequency_hz, w.frequency_hz);
            }
            for (p, q) in c.phases.iter().flatten().zip(w.phases.iter().flatten()) {
                prop_assert!(close(p.v_rms_v, q.v_rms_v) && close(p.i_rms_a, q.i_rms_a));
            }
        }
        prop_assert!((1..=2).contains(&changed));
        // The registers lose that window's energy and nothing else.
        prop_assert!(
            (clean_import - lost_wh - import).abs() <= 1e-5 * clean_import,
            "{} - {} vs {}", clean_import, lost_wh, import
        );
    }
}
