//! Frequency per window (2 mHz) and IEC 10-s values (0.5 mHz) against the
//! analytic phase of the virtual meter's signal, with a drifting and a
//! wandering frequency.

use meterflow::dsp::{
    CycleFrequency, DeviceEngine, EngineConfig, EngineOutput, TenSecondFrequency,
};
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::generate_block;
use meterflow::model::WindowMetrics;
use meterflow::wire::Measures;

/// Not on a 10-s tick: the first boundary is 6.7 s into the stream.
const START_NS: i64 = 1_700_000_003_300_000_000;

fn run_with_cycles(
    config: &SignalConfig,
    engine_config: &EngineConfig,
    rate: u32,
    seconds: f64,
) -> Vec<CycleFrequency> {
    let block = generate_block(
        config,
        Measures::SinglePhase,
        rate,
        START_NS,
        (seconds * f64::from(rate)) as usize,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine_config = EngineConfig {
        emit_cycle_frequency: true,
        ..engine_config.clone()
    };
    let mut engine =
        DeviceEngine::for_block(&engine_config, &block).unwrap_or_else(|e| panic!("{e}"));
    let mut cycles = Vec::new();
    engine
        .push_block(&block, &mut |o| {
            if let EngineOutput::Cycle(c) = o {
                cycles.push(c);
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    cycles
}

fn run(
    config: &SignalConfig,
    engine_config: &EngineConfig,
    rate: u32,
    seconds: f64,
) -> (Vec<WindowMetrics>, Vec<TenSecondFrequency>) {
    let block = generate_block(
        config,
        Measures::SinglePhase,
        rate,
        START_NS,
        (seconds * f64::from(rate)) as usize,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut engine =
        DeviceEngine::for_block(engine_config, &block).unwrap_or_else(|e| panic!("{e}"));
    let (mut windows, mut tens) = (Vec::new(), Vec::new());
    let mut sink = |o: EngineOutput<'_>| match o {
        EngineOutput::Window(w) => windows.push(w.clone()),
        EngineOutput::TenSecondFrequency(f) => tens.push(f),
        _ => {}
    };
    engine
        .push_block(&block, &mut sink)
        .unwrap_or_else(|e| panic!("{e}"));
    engine.finish(&mut sink);
    (windows, tens)
}

/// Seconds since sample 0 at which the signal has completed `cycles` cycles.
fn time_of_cycle(config: &SignalConfig, cycles: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1000.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if config.cycles_at(mid) < cycles {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn rel_s(unix_ns: i64) -> f64 {
    (unix_ns - START_NS) as f64 * 1e-9
}

/// Per-window truth: cycles elapsed over the window / its duration.
fn check_windows(config: &SignalConfig, windows: &[WindowMetrics], label: &str) -> f64 {
    let mut worst: f64 = 0.0;
    let mut clean = 0;
    for w in windows.iter().filter(|w| w.flags.is_clean()) {
        clean += 1;
        let (t0, t1) = (rel_s(w.start_unix_ns), rel_s(w.end_unix_ns));
        let truth = (config.cycles_at(t1) - config.cycles_at(t0)) / (t1 - t0);
        let got = w.frequency_hz.unwrap_or(f64::NAN);
        let err = (got - truth).abs();
        assert!(err < 2e-3, "{label}: window at {t0:.3} s: {got} vs {truth}");
        worst = worst.max(err);
    }
    assert!(clean > 10, "{label}: {clean} clean windows");
    worst
}

/// 10-s truth: whole cycles inside the clock interval over their duration.
fn check_ten_seconds(config: &SignalConfig, tens: &[TenSecondFrequency], label: &str) -> f64 {
    let mut worst: f64 = 0.0;
    let complete: Vec<_> = tens.iter().filter(|t| !t.incomplete).collect();
    assert!(complete.len() >= 2, "{label}: {tens:?}");
    for t in complete {
        assert_eq!(t.interval_start_unix_ns % 10_000_000_000, 0);
        let (a, b) = (
            rel_s(t.interval_start_unix_ns),
            rel_s(t.interval_start_unix_ns) + 10.0,
        );
        let (first, last) = (config.cycles_at(a).ceil(), config.cycles_at(b).ceil() - 1.0);
        let truth = (last - first) / (time_of_cycle(config, last) - time_of_cycle(config, first));
        assert_eq!(f64::from(t.cycles), last - first, "{label}: cycle count");
        let err = (t.frequency_hz - truth).abs();
        assert!(err < 5e-4, "{label}: 10-s {} vs {truth}", t.frequency_hz);
        worst = worst.max(err);
    }
    worst
}

#[test]
fn drifting_frequency_per_window_and_ten_seconds() {
    let config = SignalConfig {
        frequency_hz: 49.8,
        frequency_drift_hz_per_s: 0.02,
        voltage_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.05,
            phase_deg: 40.0,
        }],
        ..SignalConfig::default()
    };
    let (windows, tens) = run(&config, &EngineConfig::default(), 4000, 27.0);
    let w = check_windows(&config, &windows, "drift");
    let t = check_ten_seconds(&config, &tens, "drift");
    println!("drift 0.02 Hz/s at 4 kHz: worst window {w:.2e} Hz, worst 10-s {t:.2e} Hz");
    // Per-cycle values: one cycle over its own duration.
    let cycles = run_with_cycles(&config, &EngineConfig::default(), 4000, 3.0);
    assert!(cycles.len() > 140, "{}", cycles.len());
    let mut worst: f64 = 0.0;
    for c in &cycles {
        let (t0, t1) = (rel_s(c.start_unix_ns), rel_s(c.end_unix_ns));
        let truth = (config.cycles_at(t1) - config.cycles_at(t0)) / (t1 - t0);
        worst = worst.max((c.frequency_hz - truth).abs());
    }
    assert!(worst < 2e-3, "per-cycle worst {worst}");
    println!("per-cycle worst {worst:.2e} Hz");
}

#[test]
fn wandering_sixty_hz() {
    let config = SignalConfig {
        voltage_rms_v: 120.0,
        frequency_hz: 59.7,
        frequency_wander_hz: 0.2,
        frequency_wander_period_s: 8.0,
        ..SignalConfig::default()
    };
    // A 120 V grid: with Udin left at 230 V every window would be a PQ-flagged dip.
    let engine_config = EngineConfig {
        declared_voltage_v: Some(config.voltage_rms_v),
        ..EngineConfig::nominal_60hz()
    };
    let (windows, tens) = run(&config, &engine_config, 8000, 27.0);
    let w = check_windows(&config, &windows, "wander");
    let t = check_ten_seconds(&config, &tens, "wander");
    println!("wander ±0.2 Hz / 8 s at 8 kHz: worst window {w:.2e} Hz, worst 10-s {t:.2e} Hz");
}

#[test]
fn fixed_windows_without_voltage() {
    let config = SignalConfig {
        voltage_rms_v: 0.0,
        ..SignalConfig::default()
    };
    let (windows, tens) = run(&config, &EngineConfig::default(), 4000, 2.0);
    assert!(tens.is_empty());
    // Flagged 200 ms windows with values (current RMS), never synchronised.
    let full: Vec<_> = windows.iter().filter(|w| w.sample_count == 800).collect();
    assert!(full.len() >= 9, "{}", windows.len());
    for w in &windows {
        assert!(
            w.flags
                .contains(meterflow::model::WindowFlags::NO_ZERO_CROSSING),
            "{:?}",
            w.flags
        );
        assert_eq!(w.frequency_hz, None);
    }
    let i = full[1].phases[0].unwrap_or_default().i_rms_a;
    assert!((i / 10.0 - 1.0).abs() < 2e-4, "{i}");
}
