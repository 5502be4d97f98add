//! Block boundaries, gaps and bad samples: random block sizes give
//! bit-identical windows; dropped chunks flag exactly the windows that
//! touch them and their energy is not invented; NaN samples flag, never panic.

use meterflow::dsp::{DeviceEngine, EngineConfig, OwnedOutput};
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::{WindowFlags, WindowMetrics};
use meterflow::wire::{Measures, SampleBlock};

const START_NS: i64 = 1_700_000_000_000_000_000;

fn noisy_config() -> SignalConfig {
    SignalConfig {
        frequency_hz: 50.2,
        current_angle_deg: 25.0,
        voltage_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.04,
            phase_deg: 10.0,
        }],
        current_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.3,
            phase_deg: 0.0,
        }],
        voltage_noise_rms_v: 0.5,
        current_noise_rms_a: 0.02,
        seed: 11,
        ..SignalConfig::default()
    }
}

/// Deterministic pseudo-random sizes in 1..=max.
fn sizes(seed: u64, max: usize) -> impl Iterator<Item = usize> {
    let mut state = seed;
    std::iter::from_fn(move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Some(1 + (state >> 33) as usize % max)
    })
}

fn all_outputs(blocks: &[SampleBlock]) -> Vec<OwnedOutput> {
    // The window path, with power quality off: a PQ event is handed out
    // when the block that ends it arrives, so its place among the windows
    // moves with the block size (pq_events checks PQ's own block independence).
    let config = EngineConfig {
        pq: None,
        ..EngineConfig::default()
    };
    let mut engine = DeviceEngine::for_block(&config, &blocks[0]).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for block in blocks {
        engine
            .push_block(block, &mut |o| out.push(o.to_owned_output()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine.finish(&mut |o| out.push(o.to_owned_output()));
    out
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

#[test]
fn random_block_sizes_give_bit_identical_windows() {
    let mut whole = generate_block(
        &noisy_config(),
        Measures::ThreePhase,
        8000,
        START_NS,
        3 * 8000,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A dead stretch of reference voltage: sync lost, fixed windows, resync.
    for v in &mut whole.channels[0][9000..15000] {
        *v = 0.0;
    }
    let reference = all_outputs(std::slice::from_ref(&whole));
    let kinds = windows(&reference);
    assert!(kinds
        .iter()
        .any(|w| w.flags.contains(WindowFlags::NO_ZERO_CROSSING)));
    assert!(kinds.iter().filter(|w| w.flags.is_clean()).count() > 5);
    for (seed, max) in [(1u64, 42usize), (2, 5000), (3, 1), (4, 777)] {
        let blocks = split_block(&whole, &mut sizes(seed, max));
        let outputs = all_outputs(&blocks);
        assert_eq!(outputs.len(), reference.len(), "seed {seed}");
        for (a, b) in outputs.iter().zip(&reference) {
            // PartialEq on f64 is bit equality here (no NaN in these windows).
            assert_eq!(a, b, "seed {seed}, max block {max}");
        }
    }
}

#[test]
fn gaps_flag_exactly_the_windows_they_touch() {
    let rate = 8000u32;
    let config = noisy_config();
    let whole = generate_block(&config, Measures::ThreePhase, rate, START_NS, 4 * 8000)
        .unwrap_or_else(|e| panic!("{e}"));
    let chunks = split_block(&whole, &mut std::iter::repeat(42));
    // Drop chunks 200..203 (samples 8400..8526) and chunk 500 (21000..21042).
    let dropped = [(200usize, 203usize), (500, 501)];
    let mut kept = Vec::new();
    let mut pending_gap = 0u64;
    for (k, chunk) in chunks.into_iter().enumerate() {
        if dropped.iter().any(|&(a, b)| (a..b).contains(&k)) {
            pending_gap += chunk.len() as u64;
            continue;
        }
        let mut chunk = chunk;
        chunk.gap_before = std::mem::take(&mut pending_gap);
        kept.push(chunk);
    }
    let gaps: Vec<(u64, u64)> = dropped
        .iter()
        .map(|&(a, b)| (a as u64 * 42, b as u64 * 42))
        .collect();
    let outputs = all_outputs(&kept);
    let windows = windows(&outputs);
    let truth = config.truth_at(0.0);
    let mut energy_truth = 0.0;
    let mut engine_energy = 0.0;
    let mut flagged = 0;
    for w in &windows {
        let (first, end) = (w.first_sample, w.first_sample + w.sample_count);
        // No window owns a lost sample.
        assert!(
            gaps.iter().all(|&(g0, g1)| end <= g0 || first >= g1),
            "window {first}..{end} holds lost samples"
        );
        let touches = gaps.iter().any(|&(g0, g1)| end == g0 || first == g1);
        assert_eq!(
            w.flags.contains(WindowFlags::GAP),
            touches,
            "window {first}..{end}: {:?}",
            w.flags
        );
        if touches {
            flagged += 1;
        }
        if w.flags.is_clean() {
            let m = w.phases[0].unwrap_or_default();
            assert!(
                (m.v_rms_v / truth.phases[0].v_rms_v - 1.0).abs() < 2e-3,
                "noisy V within 0.2 %"
            );
        }
        energy_truth += truth.p_total_w * w.duration_s / 3600.0;
        engine_energy += w.energy_total_wh;
    }
    assert_eq!(flagged, 4, "two windows per gap");
    // Energy: the measured windows' truth, never the gap's.
    let measured: f64 = windows.iter().map(|w| w.duration_s).sum();
    let lost_s = (3 * 42 + 42) as f64 / f64::from(rate);
    // Each of the three runs of data starts at its first sample's instant,
    // so the half sample period before it is not covered.
    let run_starts_s = 3.0 * 0.5 / f64::from(rate);
    assert!(
        (measured - (4.0 - lost_s - run_starts_s)).abs() < 1e-9,
        "measured {measured}"
    );
    assert!(
        (engine_energy / energy_truth - 1.0).abs() < 2e-4,
        "{engine_energy} vs {energy_truth}"
    );
}

#[test]
fn nan_and_infinite_samples_flag_the_window() {
    let mut whole = generate_block(&noisy_config(), Measures::ThreePhase, 8000, START_NS, 8000)
        .unwrap_or_else(|e| panic!("{e}"));
    whole.channels[1][4000] = f32::NAN;
    whole.channels[0][6000] = f32::INFINITY;
    whole.channels[0][6001] = f32::NAN;
    let outputs = all_outputs(std::slice::from_ref(&whole));
    let windows = windows(&outputs);
    let bad: Vec<_> = windows
        .iter()
        .filter(|w| w.flags.contains(WindowFlags::INVALID_SAMPLES))
        .collect();
    assert_eq!(bad.len(), 2);
    for w in &windows {
        let holds = [4000u64, 6000]
            .iter()
            .any(|&n| (w.first_sample..w.first_sample + w.sample_count).contains(&n));
        assert_eq!(w.flags.contains(WindowFlags::INVALID_SAMPLES), holds);
        for phase in w.phases.iter().flatten() {
            assert!(phase.v_rms_v.is_finite() && phase.p_w.is_finite());
        }
        if holds {
            assert_eq!(w.energy_total_wh, 0.0);
        }
    }
    // All-NaN stream: fixed flagged windows, no panic.
    let mut nan = whole.clone();
    for channel in &mut nan.channels {
        channel.fill(f32::NAN);
    }
    let outputs = all_outputs(std::slice::from_ref(&nan));
    assert!(windows_of(&outputs).all(|w| w.flags.contains(WindowFlags::INVALID_SAMPLES)));
}

fn windows_of(outputs: &[OwnedOutput]) -> impl Iterator<Item = &WindowMetrics> {
    outputs.iter().filter_map(|o| match o {
        OwnedOutput::Window(w) => Some(&**w),
        _ => None,
    })
}

#[test]
fn out_of_order_blocks_are_refused() {
    let whole = generate_block(&noisy_config(), Measures::SinglePhase, 8000, START_NS, 1000)
        .unwrap_or_else(|e| panic!("{e}"));
    let blocks = split_block(&whole, &mut std::iter::repeat(100));
    let mut engine = DeviceEngine::for_block(&EngineConfig::default(), &blocks[0])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sink = |_: meterflow::dsp::EngineOutput<'_>| {};
    assert!(engine.push_block(&blocks[1], &mut sink).is_ok());
    assert!(engine.push_block(&blocks[0], &mut sink).is_err());
    let other = generate_block(&noisy_config(), Measures::ThreePhase, 8000, START_NS, 10)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(engine.push_block(&other, &mut sink).is_err());
}
