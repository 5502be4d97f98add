//! Window metrics against the analytic truth of the virtual meter's signal,
//! at 4, 8, 16, 32 kHz and 49.5/50/50.5 Hz (50 Hz nominal), 59.7/60 Hz
//! (60 Hz nominal). Tolerances (issue 3): V/I RMS 0.02 %, P within 0.05 %
//! of S, Q1 within 0.1 % of S, PF/DPF 0.001, THD 0.05 pp, frequency 2 mHz.

use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::generate_block;
use meterflow::model::WindowMetrics;
use meterflow::wire::Measures;

const START_NS: i64 = 1_700_000_003_300_000_000;

fn harmonics(list: &[(u32, f64, f64)]) -> Vec<Harmonic> {
    list.iter()
        .map(|&(order, magnitude, phase_deg)| Harmonic {
            order,
            magnitude,
            phase_deg,
        })
        .collect()
}

fn busy(frequency_hz: f64, angle_deg: f64) -> SignalConfig {
    SignalConfig {
        frequency_hz,
        current_angle_deg: angle_deg,
        voltage_imbalance: [1.0, 0.98, 1.03],
        current_imbalance: [1.0, 0.7, 1.4],
        voltage_harmonics: harmonics(&[(3, 0.03, 10.0), (5, 0.02, -20.0), (11, 0.01, 0.0)]),
        current_harmonics: harmonics(&[
            (3, 0.2, 30.0),
            (5, 0.1, 0.0),
            (7, 0.05, 45.0),
            (13, 0.02, 0.0),
        ]),
        ..SignalConfig::default()
    }
}

fn windows(
    config: &SignalConfig,
    engine_config: &EngineConfig,
    rate: u32,
    seconds: f64,
) -> Vec<WindowMetrics> {
    let samples = (seconds * f64::from(rate)) as usize;
    let block = generate_block(config, Measures::ThreePhase, rate, START_NS, samples)
        .unwrap_or_else(|e| panic!("signal: {e}"));
    let mut engine =
        DeviceEngine::for_block(engine_config, &block).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    engine
        .push_block(&block, &mut |o| {
            if let EngineOutput::Window(w) = o {
                out.push(w.clone());
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Largest errors seen, for the report.
#[derive(Default, Debug)]
struct Worst {
    v_rel: f64,
    i_rel: f64,
    p_of_s: f64,
    q1_of_s: f64,
    pf: f64,
    dpf: f64,
    thd_pp: f64,
    freq_hz: f64,
}

fn check(config: &SignalConfig, w: &WindowMetrics, worst: &mut Worst, label: &str) {
    let truth = config.truth_at(0.0);
    for k in 0..3 {
        let t = &truth.phases[k];
        let m = w.phases[k].unwrap_or_else(|| panic!("{label}: phase {k} missing"));
        let v_rel = (m.v_rms_v / t.v_rms_v - 1.0).abs();
        let i_rel = (m.i_rms_a / t.i_rms_a - 1.0).abs();
        let p_of_s = (m.p_w - t.p_w).abs() / t.s_va;
        let q1_of_s = (m.q1_var - t.q1_var).abs() / t.s_va;
        let pf = (m.pf.unwrap_or(f64::NAN) - t.pf).abs();
        let dpf = (m.dpf.unwrap_or(f64::NAN) - t.dpf).abs();
        let thd = (m.thd_v_pct.unwrap_or(f64::NAN) - t.thd_v_pct)
            .abs()
            .max((m.thd_i_pct.unwrap_or(f64::NAN) - t.thd_i_pct).abs());
        assert!(
            v_rel < 2e-4,
            "{label} L{k}: V {} vs {}",
            m.v_rms_v,
            t.v_rms_v
        );
        assert!(
            i_rel < 2e-4,
            "{label} L{k}: I {} vs {}",
            m.i_rms_a,
            t.i_rms_a
        );
        assert!(p_of_s < 5e-4, "{label} L{k}: P {} vs {}", m.p_w, t.p_w);
        assert!(
            q1_of_s < 1e-3,
            "{label} L{k}: Q1 {} vs {}",
            m.q1_var,
            t.q1_var
        );
        assert!(pf < 1e-3, "{label} L{k}: PF {:?} vs {}", m.pf, t.pf);
        assert!(dpf < 1e-3, "{label} L{k}: DPF {:?} vs {}", m.dpf, t.dpf);
        assert!(
            thd < 0.05,
            "{label} L{k}: THD v {:?}/{} i {:?}/{}",
            m.thd_v_pct,
            t.thd_v_pct,
            m.thd_i_pct,
            t.thd_i_pct
        );
        worst.v_rel = worst.v_rel.max(v_rel);
        worst.i_rel = worst.i_rel.max(i_rel);
        worst.p_of_s = worst.p_of_s.max(p_of_s);
        worst.q1_of_s = worst.q1_of_s.max(q1_of_s);
        worst.pf = worst.pf.max(pf);
        worst.dpf = worst.dpf.max(dpf);
        worst.thd_pp = worst.thd_pp.max(thd);
    }
    let f = w
        .frequency_hz
        .unwrap_or_else(|| panic!("{label}: no frequency"));
    let df = (f - config.frequency_hz).abs();
    assert!(df < 2e-3, "{label}: f {f}");
    worst.freq_hz = worst.freq_hz.max(df);
    let s_total: f64 = truth.s_total_va;
    assert!(
        (w.p_total_w - truth.p_total_w).abs() / s_total < 5e-4,
        "{label}: P total"
    );
    assert!(
        (w.q1_total_var - truth.q1_total_var).abs() / s_total < 1e-3,
        "{label}: Q1 total"
    );
    assert!(
        (w.pf_total.unwrap_or(f64::NAN) - truth.pf_total).abs() < 1e-3,
        "{label}: PF total"
    );
}

fn sweep(nominal: &EngineConfig, frequencies: &[f64], angle_deg: f64) -> Worst {
    let mut worst = Worst::default();
    let cycles = f64::from(nominal.window_cycles());
    for rate in [4000u32, 8000, 16000, 32000] {
        for &f in frequencies {
            let config = busy(f, angle_deg);
            let seconds = 7.0 * cycles / f;
            let all = windows(&config, nominal, rate, seconds);
            let clean: Vec<_> = all.iter().filter(|w| w.flags.is_clean()).collect();
            assert!(
                clean.len() >= 4,
                "{rate} Hz / {f} Hz: only {} clean windows",
                clean.len()
            );
            for w in clean {
                assert_eq!(w.cycles, nominal.window_cycles());
                let h = w.harmonic_orders;
                assert!(h == 40 || (rate == 4000 && h < 40), "H used {h} at {rate}");
                check(&config, w, &mut worst, &format!("{rate} Hz / {f} Hz"));
            }
        }
    }
    worst
}

#[test]
fn fifty_hz_nominal_lagging() {
    // 49.97 Hz: 10 cycles = 800.48 samples at 4 kHz, the worst DFT length mismatch.
    let worst = sweep(&EngineConfig::default(), &[49.5, 49.97, 50.0, 50.5], 30.0);
    println!("50 Hz nominal, lagging 30°: {worst:?}");
}

#[test]
fn sixty_hz_nominal_leading() {
    let worst = sweep(&EngineConfig::nominal_60hz(), &[59.7, 60.0], -60.0);
    println!("60 Hz nominal, leading 60°: {worst:?}");
}

#[test]
fn quadrature_and_reverse_power_signs() {
    // Pure inductive (90°), exporting (150°): signs of P, Q1 and PF.
    for angle in [90.0, 150.0, -120.0] {
        let config = busy(50.0, angle);
        let all = windows(&config, &EngineConfig::default(), 8000, 1.0);
        let mut worst = Worst::default();
        for w in all.iter().filter(|w| w.flags.is_clean()) {
            check(&config, w, &mut worst, &format!("angle {angle}"));
            let l1 = w.phases[0].unwrap_or_default();
            assert!(
                (l1.angle_deg - angle).abs() < 0.05,
                "angle {} vs {angle}",
                l1.angle_deg
            );
        }
        println!("angle {angle}: {worst:?}");
    }
}

#[test]
fn thd_from_one_to_forty_percent() {
    for (rate, thd_i, thd_v) in [
        (4000u32, 0.01, 0.01),
        (8000, 0.10, 0.05),
        (16000, 0.40, 0.08),
        (32000, 0.25, 0.012),
    ] {
        let config = SignalConfig {
            current_angle_deg: 20.0,
            // Spread over several orders, one of them high (order 37).
            voltage_harmonics: harmonics(&[(3, thd_v * 0.8, 0.0), (37, thd_v * 0.6, 90.0)]),
            current_harmonics: harmonics(&[
                (5, thd_i * 0.6, 0.0),
                (7, thd_i * 0.48, 30.0),
                (29, thd_i * 0.64, 0.0),
            ]),
            ..SignalConfig::default()
        };
        let truth = config.truth_at(0.0);
        let all = windows(&config, &EngineConfig::default(), rate, 1.0);
        let mut worst: f64 = 0.0;
        for w in all.iter().filter(|w| w.flags.is_clean()) {
            for (k, phase) in w.phases.iter().enumerate() {
                let m = phase.unwrap_or_default();
                let t = &truth.phases[k];
                let dv = (m.thd_v_pct.unwrap_or(f64::NAN) - t.thd_v_pct).abs();
                let di = (m.thd_i_pct.unwrap_or(f64::NAN) - t.thd_i_pct).abs();
                assert!(
                    dv < 0.05 && di < 0.05,
                    "{rate}: THD v {:?} vs {}, i {:?} vs {}",
                    m.thd_v_pct,
                    t.thd_v_pct,
                    m.thd_i_pct,
                    t.thd_i_pct
                );
                worst = worst.max(dv).max(di);
            }
        }
        println!("{rate} Hz THD_i {} %: worst {worst:.2e} pp", t_pct(thd_i));
    }
}

fn t_pct(x: f64) -> f64 {
    x * 100.0
}

#[test]
fn harmonic_subgroups_and_line_to_line_and_unbalance() {
    let config = SignalConfig {
        voltage_imbalance: [1.0, 1.0, 0.9],
        voltage_harmonics: harmonics(&[(5, 0.04, 0.0)]),
        ..SignalConfig::default()
    };
    let engine_config = EngineConfig {
        keep_harmonic_subgroups: true,
        max_harmonic_order: 50,
        ..EngineConfig::default()
    };
    let all = windows(&config, &engine_config, 8000, 1.0);
    let w = all
        .iter()
        .find(|w| w.flags.is_clean())
        .unwrap_or_else(|| panic!("no clean window"));
    assert_eq!(w.harmonic_orders, 50);
    assert_eq!(w.harmonic_subgroups.len(), 6);
    let v1 = &w.harmonic_subgroups[0];
    assert_eq!(v1.len(), 50);
    assert!((v1[0] - 230.0).abs() < 0.01, "G1 {}", v1[0]);
    assert!((v1[4] - 230.0 * 0.04).abs() < 0.01, "G5 {}", v1[4]);
    assert!(v1[2] < 1e-3, "G3 {}", v1[2]);
    // Analytic line-to-line RMS: phasor differences per order.
    let phasor = |k: usize, h: f64| {
        let g = config.voltage_imbalance[k];
        let a = (h * config.phase_angles_deg[k]).to_radians();
        (g * a.cos(), g * a.sin())
    };
    for (slot, (a, b)) in [(0usize, 1usize), (1, 2), (2, 0)].into_iter().enumerate() {
        let mut sq = 0.0;
        for (h, m) in [(1.0, 1.0), (5.0, 0.04)] {
            let (pa, pb) = (phasor(a, h), phasor(b, h));
            sq += (230.0 * m) * (230.0 * m) * ((pa.0 - pb.0).powi(2) + (pa.1 - pb.1).powi(2));
        }
        let truth = sq.sqrt();
        let got = w.line_to_line_v[slot].unwrap_or(f64::NAN);
        assert!(
            (got / truth - 1.0).abs() < 2e-4,
            "LL {slot}: {got} vs {truth}"
        );
    }
    // u2 = u0 = |1 - 0.9| / (2 + 0.9) for one phase 10 % low.
    let u = w.unbalance.unwrap_or_else(|| panic!("no unbalance"));
    let expected = 0.1 / 2.9;
    assert!(
        (u.u2 - expected).abs() < 1e-4 && (u.u0 - expected).abs() < 1e-4,
        "{u:?}"
    );
}

#[test]
fn single_phase_layouts_give_only_their_phase() {
    let config = busy(50.0, 30.0);
    for (measures, k) in [
        (Measures::SinglePhase, 0usize),
        (Measures::Phase(meterflow::wire::Phase::L3), 2),
    ] {
        let block = generate_block(&config, measures, 8000, START_NS, 8000)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut engine = DeviceEngine::for_block(&EngineConfig::default(), &block)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut worst = Worst::default();
        let mut seen = 0;
        engine
            .push_block(&block, &mut |o| {
                if let EngineOutput::Window(w) = o {
                    for j in 0..3 {
                        assert_eq!(w.phases[j].is_some(), j == k, "{measures}: phase {j}");
                    }
                    assert_eq!(w.line_to_line_v, [None; 3]);
                    assert!(w.unbalance.is_none());
                    if w.flags.is_clean() {
                        seen += 1;
                        let m = w.phases[k].unwrap_or_default();
                        let t = config.truth_at(0.0).phases[k];
                        assert!((m.v_rms_v / t.v_rms_v - 1.0).abs() < 2e-4);
                        assert!((m.p_w - t.p_w).abs() / t.s_va < 5e-4);
                        assert!((w.p_total_w - m.p_w).abs() < 1e-9);
                        worst.v_rel = worst.v_rel.max((m.v_rms_v / t.v_rms_v - 1.0).abs());
                    }
                }
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(seen >= 3);
    }
}
