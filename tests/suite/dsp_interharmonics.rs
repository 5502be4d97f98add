//! Interharmonic centred subgroups (IEC 61000-4-7) through the whole engine,
//! against analytic signals: a fundamental plus one interharmonic tone of
//! known RMS per channel. The tone's own subgroup must hold its RMS; every
//! other subgroup, harmonic or interharmonic, only what the tone can leak.
//!
//! Tolerances, for a tone of RMS A lying δ bins off the nearest bin
//! (δ = 0 when synchronous, up to 0.09 here): its total leakage outside its
//! own subgroup is at most L = 1.5·A·|sin πδ|/π · sqrt(2·Σ_{m≥4} 1/(m−|δ|)²)
//! (the nearest foreign bin is 4 bins away; 1.5 covers the Dirichlet
//! kernel's excess over 1/(πm)). Every other subgroup, harmonic or
//! interharmonic, stays below L plus a floor of 1e-5 of the fundamental
//! (the f32 transforms' rounding); the tone's own subgroup is within
//! 5e-4·A + L²/A (the energy it can lose) plus the floor.

use std::f64::consts::{PI, SQRT_2, TAU};

use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::model::WindowMetrics;
use meterflow::wire::{Measures, SampleBlock};

/// One interharmonic tone: frequency, RMS.
#[derive(Clone, Copy)]
struct Tone {
    hz: f64,
    rms: f64,
}

struct Case {
    rate: u32,
    nominal_hz: f64,
    fundamental_hz: f64,
    voltage_tone: Tone,
    current_tone: Tone,
}

const V_RMS: f64 = 230.0;
const I_RMS: f64 = 10.0;

/// `seconds` of v = 230 V + tone, i = 10 A lagging 30° + tone, single phase.
fn block(case: &Case, seconds: f64) -> SampleBlock {
    let rate = f64::from(case.rate);
    let count = (seconds * rate) as usize;
    let mut block = SampleBlock::new(Measures::SinglePhase, case.rate, 1_700_000_000_000_000_000);
    let (v, i) = (case.voltage_tone, case.current_tone);
    for n in 0..count {
        let t = n as f64 / rate;
        let w = TAU * case.fundamental_hz * t;
        let volts = SQRT_2 * (V_RMS * w.sin() + v.rms * (TAU * v.hz * t + 0.3).sin());
        let amps = SQRT_2
            * (I_RMS * (w - 30f64.to_radians()).sin() + i.rms * (TAU * i.hz * t + 1.1).sin());
        block.channels[0].push(volts as f32);
        block.channels[1].push(amps as f32);
    }
    block
}

fn clean_windows(case: &Case, keep: bool) -> Vec<WindowMetrics> {
    let config = EngineConfig {
        nominal_frequency_hz: Some(case.nominal_hz),
        keep_harmonic_subgroups: keep,
        ..EngineConfig::default()
    };
    let whole = block(case, 1.2);
    let mut engine = DeviceEngine::for_block(&config, &whole).unwrap_or_else(|e| panic!("{e}"));
    let mut windows = Vec::new();
    let mut sink = |o: EngineOutput<'_>| {
        if let EngineOutput::Window(w) = o {
            if w.flags.is_clean() {
                windows.push(w.clone());
            }
        }
    };
    // Wire-sized chunks, as a meter sends them.
    for part in meterflow::meter::synthetic::split_block(&whole, &mut std::iter::repeat(42)) {
        engine
            .push_block(&part, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine.finish(&mut sink);
    windows
}

/// Everything a tone of `rms` can leak outside its own subgroup.
fn leakage_bound(rms: f64, delta: f64) -> f64 {
    let d = delta.abs();
    let tail: f64 = (4..10_000).map(|m| 1.0 / (f64::from(m) - d).powi(2)).sum();
    1.5 * rms * (PI * d).sin().abs() / PI * (2.0 * tail).sqrt()
}

fn check(case: &Case) {
    let windows = clean_windows(case, true);
    assert!(
        windows.len() >= 4,
        "{} Hz: {} windows",
        case.rate,
        windows.len()
    );
    let cycles = if case.nominal_hz == 60.0 { 12 } else { 10 };
    // Worst relative error of the tone's subgroup, worst foreign subgroup.
    let (mut worst_own, mut worst_foreign) = (0.0f64, 0.0f64);
    for w in &windows {
        assert_eq!(w.interharmonic_subgroups.len(), 2);
        // The DFT spans the window's length rounded to whole samples; its
        // bin width is rate / len, and the tone lies at this many bins.
        let len = (w.duration_s * f64::from(case.rate)).round();
        let bins = |hz: f64| hz * len / f64::from(case.rate);
        for (c, tone, floor) in [
            (0, case.voltage_tone, 1e-5 * V_RMS),
            (1, case.current_tone, 1e-5 * I_RMS),
        ] {
            let groups = &w.interharmonic_subgroups[c];
            let harmonics = &w.harmonic_subgroups[c];
            assert_eq!(groups.len(), w.harmonic_orders as usize);
            let at = bins(tone.hz);
            let own = (at / f64::from(cycles)).floor() as usize;
            let delta = at - at.round();
            let bound = leakage_bound(tone.rms, delta) + floor;
            let got = groups[own];
            worst_own = worst_own.max((got / tone.rms - 1.0).abs());
            let foreign = groups
                .iter()
                .enumerate()
                .filter(|&(h, _)| h != own)
                .map(|(_, &g)| g)
                .chain(harmonics.iter().skip(1).copied())
                .fold(0.0, f64::max);
            worst_foreign = worst_foreign.max(foreign / tone.rms);
            let leak = bound - floor;
            assert!(
                (got - tone.rms).abs() <= 5e-4 * tone.rms + leak * leak / tone.rms + floor,
                "{} Hz, {} Hz nominal, channel {c}: C_isg,{own} = {got} vs {}",
                case.rate,
                case.nominal_hz,
                tone.rms
            );
            for (h, &g) in groups.iter().enumerate() {
                if h != own {
                    assert!(
                        g <= bound,
                        "{} Hz, channel {c}: C_isg,{h} = {g} > {bound}",
                        case.rate
                    );
                }
            }
            for (h, &g) in harmonics.iter().enumerate().skip(1) {
                assert!(
                    g <= bound,
                    "{} Hz, channel {c}: G_{} = {g} > {bound}",
                    case.rate,
                    h + 1
                );
            }
        }
    }
    println!(
        "{} Hz at {} Hz: tone subgroup error {worst_own:.1e}, largest other subgroup {worst_foreign:.1e} of the tone",
        case.rate, case.fundamental_hz
    );
    // Off by default: no subgroups of either kind.
    let plain = clean_windows(case, false);
    assert!(plain
        .iter()
        .all(|w| w.interharmonic_subgroups.is_empty() && w.harmonic_subgroups.is_empty()));
}

const TONE_175: Tone = Tone {
    hz: 175.0,
    rms: 2.3,
};
const TONE_75: Tone = Tone { hz: 75.0, rms: 0.5 };

#[test]
fn fifty_hz_at_8_khz() {
    check(&Case {
        rate: 8000,
        nominal_hz: 50.0,
        fundamental_hz: 50.0,
        voltage_tone: TONE_175,
        current_tone: TONE_75,
    });
}

#[test]
fn fifty_hz_at_32_khz() {
    check(&Case {
        rate: 32_000,
        nominal_hz: 50.0,
        fundamental_hz: 50.0,
        voltage_tone: Tone { hz: 75.0, rms: 2.3 },
        current_tone: Tone {
            hz: 175.0,
            rms: 0.5,
        },
    });
}

#[test]
fn awkward_1599_point_windows_at_50_03_hz() {
    // 10 cycles of 50.03 Hz at 8 kHz are 1599.04 samples: 1599-point DFTs.
    let windows = clean_windows(
        &Case {
            rate: 8000,
            nominal_hz: 50.0,
            fundamental_hz: 50.03,
            voltage_tone: TONE_175,
            current_tone: TONE_75,
        },
        true,
    );
    assert!(windows
        .iter()
        .all(|w| (w.duration_s * 8000.0).round() == 1599.0));
    check(&Case {
        rate: 8000,
        nominal_hz: 50.0,
        fundamental_hz: 50.03,
        voltage_tone: TONE_175,
        current_tone: TONE_75,
    });
}

#[test]
fn sixty_hz_twelve_cycle_windows() {
    // 12 cycles: C_isg,h = bins 12h+2..12h+10; 210 Hz is bin 42 (h = 3), 90 Hz bin 18 (h = 1).
    check(&Case {
        rate: 8000,
        nominal_hz: 60.0,
        fundamental_hz: 60.0,
        voltage_tone: Tone {
            hz: 210.0,
            rms: 1.2,
        },
        current_tone: Tone { hz: 90.0, rms: 0.5 },
    });
}

#[test]
fn fundamental_leakage_is_removed_at_4_khz() {
    // 10 cycles of 49.9 Hz at 4 kHz are 801.6 samples in an 802-point DFT:
    // uncorrected, the fundamental would put ~0.8 V into C_isg,1 alone.
    check(&Case {
        rate: 4000,
        nominal_hz: 50.0,
        fundamental_hz: 49.9,
        voltage_tone: Tone { hz: 75.0, rms: 2.3 },
        current_tone: Tone {
            hz: 175.0,
            rms: 0.5,
        },
    });
}
