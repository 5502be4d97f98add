//! Energy over 60 s against the analytic integral (0.02 %), the
//! import/export split of a load that reverses, and counters that survive
//! a save and restore.

use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::signal::{Harmonic, LoadStep, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::{EnergyCounters, WindowMetrics};
use meterflow::wire::{Measures, SampleBlock};

const START_NS: i64 = 1_700_000_000_000_000_000;
const RATE: u32 = 4000;

fn config(steps: Vec<LoadStep>) -> SignalConfig {
    SignalConfig {
        current_angle_deg: 30.0,
        current_imbalance: [1.0, 0.5, 1.5],
        voltage_harmonics: vec![Harmonic {
            order: 5,
            magnitude: 0.03,
            phase_deg: 0.0,
        }],
        current_harmonics: vec![Harmonic {
            order: 5,
            magnitude: 0.2,
            phase_deg: 20.0,
        }],
        load_steps: steps,
        ..SignalConfig::default()
    }
}

fn run(engine: &mut DeviceEngine, blocks: &[SampleBlock], finish: bool) -> Vec<WindowMetrics> {
    let mut windows = Vec::new();
    let mut sink = |o: EngineOutput<'_>| {
        if let EngineOutput::Window(w) = o {
            windows.push(w.clone());
        }
    };
    for block in blocks {
        engine
            .push_block(block, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    if finish {
        engine.finish(&mut sink);
    }
    windows
}

fn stream(config: &SignalConfig, seconds: u32) -> SampleBlock {
    generate_block(
        config,
        Measures::ThreePhase,
        RATE,
        START_NS,
        (seconds * RATE) as usize,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn sixty_seconds_within_two_hundredths_of_a_percent() {
    let config = config(Vec::new());
    let block = stream(&config, 60);
    let mut engine =
        DeviceEngine::for_block(&EngineConfig::default(), &block).unwrap_or_else(|e| panic!("{e}"));
    let windows = run(&mut engine, std::slice::from_ref(&block), true);
    let truth = config.truth_at(0.0);
    let energy = engine.energy();
    let covered: f64 = windows.iter().map(|w| w.duration_s).sum();
    // From the first sample's instant (no window before the data) to the end
    // of the last sample's period: 60 s less half a sample.
    let expected_s = 60.0 - 0.5 / f64::from(RATE);
    assert!((covered - expected_s).abs() < 1e-9, "covered {covered}");
    let expected_total = truth.p_total_w * 60.0 / 3600.0;
    let err_total = (energy.total.import_wh / expected_total - 1.0).abs();
    assert!(
        err_total < 2e-4,
        "total {} vs {expected_total}",
        energy.total.import_wh
    );
    assert_eq!(energy.total.export_wh, 0.0);
    let mut worst = err_total;
    for k in 0..3 {
        let expected = truth.phases[k].p_w * 60.0 / 3600.0;
        let got = energy.phases[k].unwrap_or_default().import_wh;
        let err = (got / expected - 1.0).abs();
        assert!(err < 2e-4, "L{k}: {got} vs {expected}");
        worst = worst.max(err);
    }
    assert!((energy.measured_s - expected_s).abs() < 1e-9);
    println!("60 s energy: worst relative error {worst:.2e}");
}

#[test]
fn reversing_load_splits_import_and_export() {
    // Imports for 20 s, exports (angle 150°) for 20 s.
    let config = config(vec![LoadStep {
        at_s: 20.0,
        current_rms_a: Some(8.0),
        current_angle_deg: Some(150.0),
    }]);
    let block = stream(&config, 40);
    let mut engine =
        DeviceEngine::for_block(&EngineConfig::default(), &block).unwrap_or_else(|e| panic!("{e}"));
    let windows = run(&mut engine, std::slice::from_ref(&block), true);
    let (before, after) = (config.truth_at(0.0), config.truth_at(30.0));
    assert!(before.p_total_w > 0.0 && after.p_total_w < 0.0);
    // The step applies from sample 80 000, whose cell starts at 19.999875 s.
    let step_s = (20.0 * f64::from(RATE) - 0.5) / f64::from(RATE);
    let rel = |ns: i64| (ns - START_NS) as f64 * 1e-9;
    // Truth per window, netted per window as the engine does.
    let (mut import, mut export) = (0.0, 0.0);
    for w in &windows {
        let (t0, t1) = (rel(w.start_unix_ns), rel(w.end_unix_ns));
        let e = (before.p_total_w * (step_s.min(t1) - t0).max(0.0)
            + after.p_total_w * (t1 - step_s.max(t0)).max(0.0))
            / 3600.0;
        if e >= 0.0 {
            import += e;
        } else {
            export -= e;
        }
    }
    let energy = engine.energy();
    let ei = (energy.total.import_wh / import - 1.0).abs();
    let ee = (energy.total.export_wh / export - 1.0).abs();
    assert!(
        ei < 2e-4 && ee < 2e-4,
        "import {} vs {import}, export {} vs {export}",
        energy.total.import_wh,
        energy.total.export_wh
    );
    // Unnetted analytic split: off by at most the straddling window.
    let (import_analytic, export_analytic) = (
        before.p_total_w * (step_s + 0.5 / 4000.0) / 3600.0,
        -after.p_total_w * (40.0 - step_s - 0.5 / 4000.0) / 3600.0,
    );
    let one_window = before.p_total_w.abs().max(after.p_total_w.abs()) * 0.2 / 3600.0;
    assert!((energy.total.import_wh - import_analytic).abs() < one_window);
    assert!((energy.total.export_wh - export_analytic).abs() < one_window);
    for k in 0..3 {
        let flow = energy.phases[k].unwrap_or_default();
        assert!(flow.import_wh > 0.0 && flow.export_wh > 0.0);
    }
    println!("reversing load: import error {ei:.2e}, export error {ee:.2e}");
}

#[test]
fn counters_survive_save_and_restore() {
    let config = config(Vec::new());
    let block = stream(&config, 20);
    let halves = split_block(&block, &mut [40_000usize, 40_000].into_iter());
    let engine_config = EngineConfig::default();
    let mut first =
        DeviceEngine::for_block(&engine_config, &halves[0]).unwrap_or_else(|e| panic!("{e}"));
    run(&mut first, &halves[..1], true);
    let saved = first.energy().to_json().unwrap_or_else(|e| panic!("{e}"));
    // A new process picks the stream up again at sample 40 000.
    let mut second =
        DeviceEngine::for_block(&engine_config, &halves[1]).unwrap_or_else(|e| panic!("{e}"));
    second.restore_energy(EnergyCounters::from_json(&saved).unwrap_or_else(|e| panic!("{e}")));
    run(&mut second, &halves[1..], true);
    let expected = config.truth_at(0.0).p_total_w * 20.0 / 3600.0;
    let got = second.energy().total.import_wh;
    assert!((got / expected - 1.0).abs() < 2e-4, "{got} vs {expected}");
    // The second process continues where the first one's windows ended; only
    // the half sample period before the stream's first sample is not covered.
    let expected_s = 20.0 - 0.5 / f64::from(RATE);
    assert!((second.energy().measured_s - expected_s).abs() < 1e-9);
}
