//! Latch layouts (p,q means; v,i_RMS root mean squares), aggregation over
//! 150/180-cycle, 10-min and arbitrary intervals. (The old worker pool is gone: the sink's workers are tested in sink_server.rs.)

use meterflow::dsp::aggregate::{ClockAggregator, CycleAggregator, TEN_MINUTES_NS};
use meterflow::dsp::{DeviceEngine, EngineConfig, OwnedOutput};
use meterflow::meter::signal::{Harmonic, LoadStep, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::{PhaseMetrics, WindowFlags, WindowMetrics};
use meterflow::wire::Measures;

const START_NS: i64 = 1_700_000_000_000_000_000;

fn latch_config() -> SignalConfig {
    SignalConfig {
        current_angle_deg: 40.0,
        current_imbalance: [1.0, 0.5, 2.0],
        voltage_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.05,
            phase_deg: 20.0,
        }],
        current_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.3,
            phase_deg: 0.0,
        }],
        load_steps: vec![LoadStep {
            at_s: 1.0,
            current_rms_a: Some(3.0),
            current_angle_deg: Some(-170.0),
        }],
        ..SignalConfig::default()
    }
}

fn outputs(measures: Measures, rate: u32, samples: usize) -> (Vec<OwnedOutput>, DeviceEngine) {
    let block = generate_block(&latch_config(), measures, rate, START_NS, samples)
        .unwrap_or_else(|e| panic!("{e}"));
    let blocks = split_block(&block, &mut std::iter::repeat(7));
    let mut engine =
        DeviceEngine::for_block(&EngineConfig::default(), &block).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for b in &blocks {
        engine
            .push_block(b, &mut |o| out.push(o.to_owned_output()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    (out, engine)
}

#[test]
fn power_latch_gives_means_and_energy() {
    let config = latch_config();
    let (out, engine) = outputs(Measures::PowerLatch, 50, 100);
    let windows: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            OwnedOutput::Latch(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(windows.len(), 10, "ten 200 ms windows of 10 samples");
    for w in &windows {
        assert_eq!(w.sample_count, 10);
        assert!(w.flags.is_clean());
        let truth = config.truth_at(w.first_sample as f64 / 50.0);
        for k in 0..3 {
            let p = w.phases[k].unwrap_or_default();
            let t = &truth.phases[k];
            assert!((p.p_w.unwrap_or(f64::NAN) - t.p_w).abs() < 1e-3 * t.s_va);
            assert!((p.q_var.unwrap_or(f64::NAN) - t.q_budeanu_var).abs() < 1e-3 * t.s_va);
            assert_eq!(p.v_rms_v, None);
        }
    }
    let e = engine.energy();
    let (p0, p1) = (
        config.truth_at(0.0).p_total_w,
        config.truth_at(1.5).p_total_w,
    );
    assert!((e.total.import_wh / (p0 / 3600.0) - 1.0).abs() < 1e-5);
    assert!((e.total.export_wh / (-p1 / 3600.0) - 1.0).abs() < 1e-5);
}

#[test]
fn rms_latch_gives_root_mean_squares() {
    let config = latch_config();
    let (out, _) = outputs(Measures::RmsLatch, 50, 100);
    let windows: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            OwnedOutput::Latch(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(windows.len(), 10);
    let truth = config.truth_at(0.0);
    let l3 = windows[0].phases[2].unwrap_or_default();
    assert!((l3.v_rms_v.unwrap_or(f64::NAN) / truth.phases[2].v_rms_v - 1.0).abs() < 1e-6);
    assert!((l3.i_rms_a.unwrap_or(f64::NAN) / truth.phases[2].i_rms_a - 1.0).abs() < 1e-6);
    assert_eq!((l3.p_w, l3.energy_wh), (None, None));
}

fn window(start_s: f64, v: f64, p: f64, s: f64, flags: WindowFlags) -> WindowMetrics {
    let start = START_NS + (start_s * 1e9) as i64;
    WindowMetrics {
        start_unix_ns: start,
        end_unix_ns: start + 200_000_000,
        duration_s: 0.2,
        frequency_hz: Some(50.0),
        flags,
        phases: [
            Some(PhaseMetrics {
                v_rms_v: v,
                i_rms_a: s / v,
                p_w: p,
                s_va: s,
                energy_wh: p * 0.2 / 3600.0,
                ..PhaseMetrics::default()
            }),
            None,
            None,
        ],
        p_total_w: p,
        s_total_va: s,
        energy_total_wh: p * 0.2 / 3600.0,
        ..WindowMetrics::default()
    }
}

#[test]
fn aggregation_rules() {
    // 150/180 cycles: 15 windows; RMS of V, mean P, PF = ΣP/ΣS, energy sums.
    let mut short = CycleAggregator::new();
    let mut done = Vec::new();
    for k in 0..30 {
        let v = if k % 2 == 0 { 220.0 } else { 240.0 };
        let p = if k == 3 { -1000.0 } else { 2000.0 };
        let flags = if k == 4 {
            WindowFlags::GAP
        } else {
            WindowFlags::NONE
        };
        done.extend(short.push(&window(f64::from(k) * 0.2, v, p, 2500.0, flags)));
    }
    assert_eq!(done.len(), 2);
    let a = &done[0];
    assert_eq!((a.windows, a.flagged_windows), (15, 1));
    let l1 = a.phases[0].unwrap_or_default();
    let rms = ((8.0 * 220f64.powi(2) + 7.0 * 240f64.powi(2)) / 15.0).sqrt();
    assert!((l1.v_rms_v.value - rms).abs() < 1e-9);
    assert_eq!((l1.v_rms_v.min, l1.v_rms_v.max), (220.0, 240.0));
    assert!((l1.p_w.value - (14.0 * 2000.0 - 1000.0) / 15.0).abs() < 1e-9);
    assert_eq!((l1.p_w.min, l1.p_w.max), (-1000.0, 2000.0));
    assert!((l1.pf.unwrap_or(f64::NAN) - (27_000.0 / 15.0) / 2500.0).abs() < 1e-12);
    assert!((l1.energy.import_wh - 14.0 * 2000.0 * 0.2 / 3600.0).abs() < 1e-12);
    assert!((l1.energy.export_wh - 1000.0 * 0.2 / 3600.0).abs() < 1e-12);

    // The short series restarts at the 10-min tick; the clock aggregates align to it.
    let tick_s = ((START_NS / TEN_MINUTES_NS + 1) * TEN_MINUTES_NS - START_NS) as f64 * 1e-9;
    let mut short = CycleAggregator::new();
    let mut ten = ClockAggregator::ten_minutes();
    let mut packet = ClockAggregator::new(1_000_000_000);
    let (mut shorts, mut tens, mut packets) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..20 {
        let w = window(
            tick_s - 1.0 + f64::from(k) * 0.2,
            230.0,
            1000.0,
            1200.0,
            WindowFlags::NONE,
        );
        shorts.extend(short.push(&w));
        tens.extend(ten.push(&w));
        packets.extend(packet.push(&w));
    }
    assert_eq!(shorts.len(), 2);
    assert_eq!(shorts[0].windows, 5, "cut short by the tick");
    assert_eq!(shorts[1].windows, 15, "restarted at the tick");
    assert_eq!(shorts[1].start_unix_ns % TEN_MINUTES_NS, 0);
    assert_eq!(tens.len(), 1);
    assert_eq!(tens[0].end_unix_ns % TEN_MINUTES_NS, 0);
    assert_eq!(tens[0].windows, 5);
    assert!(packets
        .iter()
        .all(|p| p.windows == 5 && p.end_unix_ns - p.start_unix_ns == 1_000_000_000));
    assert_eq!(packet.flush().map(|p| p.windows), Some(5));
}
