//! Half-cycle RMS and dip/swell/interruption/RVC detection against ground
//! truth: the virtual meter's disturbances (sample-exact start, end and
//! level) and hand-built sample arrays.
//!
//! Tolerances (IEC 61000-4-30 Class A): start and end within one cycle of
//! the truth, residual/maximum and ΔU within 0.2 % of Udin (0.46 V at 230 V).
//! Block sizes must not change a bit of the output.

use meterflow::dsp::aggregate::AggregateAccumulator;
use meterflow::dsp::pq::{PqConfig, PqOutput, PqStream};
use meterflow::dsp::{DeviceEngine, EngineConfig, OwnedOutput};
use meterflow::meter::disturbance::{self, Disturbance};
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::{
    HalfCycleRms, PhaseSet, PqEvent, PqEventFlags, PqEventKind, WindowFlags, WindowMetrics,
};
use meterflow::pipeline::PipelineConfig;
use meterflow::wire::{Measures, SampleBlock};

const START_NS: i64 = 1_700_000_000_000_000_000;
/// 0.2 % of Udin = 230 V.
const TOL_V: f64 = 0.46;

#[derive(Debug, Default, PartialEq)]
struct Run {
    events: Vec<PqEvent>,
    half_cycles: Vec<HalfCycleRms>,
}

impl Run {
    fn of(&self, kind: PqEventKind) -> Vec<PqEvent> {
        self.events
            .iter()
            .filter(|e| e.kind == kind)
            .copied()
            .collect()
    }
}

fn pq_config() -> PqConfig {
    PqConfig {
        keep_half_cycle: true,
        ..PqConfig::default()
    }
}

fn engine_config(nominal_hz: f64) -> EngineConfig {
    EngineConfig {
        nominal_frequency_hz: Some(nominal_hz),
        ..EngineConfig::default()
    }
}

fn collect(run: &mut Run) -> impl FnMut(PqOutput<'_>) + '_ {
    |o| match o {
        PqOutput::Event(e) => run.events.push(*e),
        PqOutput::HalfCycle(h) => run.half_cycles.push(*h),
    }
}

fn stream(blocks: &[SampleBlock], nominal_hz: f64) -> Run {
    let first = &blocks[0];
    let mut pq = PqStream::new(
        &pq_config(),
        &engine_config(nominal_hz),
        first.measures,
        first.rate,
        first.start_unix_ns,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut run = Run::default();
    for block in blocks {
        pq.push_block(block, &mut collect(&mut run))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    pq.finish(&mut collect(&mut run));
    run
}

fn signal(frequency_hz: f64, disturbances: Vec<Disturbance>) -> SignalConfig {
    SignalConfig {
        frequency_hz,
        voltage_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.03,
            phase_deg: 20.0,
        }],
        voltage_noise_rms_v: 0.1,
        current_angle_deg: 20.0,
        disturbances,
        seed: 5,
        ..SignalConfig::default()
    }
}

fn blocks(config: &SignalConfig, rate: u32, seconds: f64, chunk: usize) -> Vec<SampleBlock> {
    let samples = (seconds * f64::from(rate)) as usize;
    let whole = generate_block(config, Measures::ThreePhase, rate, START_NS, samples)
        .unwrap_or_else(|e| panic!("{e}"));
    split_block(&whole, &mut std::iter::repeat(chunk))
}

fn change(at_s: f64, duration_s: Option<f64>, phases: &[u8], level_pct: f64) -> Disturbance {
    Disturbance {
        at_s,
        duration_s,
        phases: phases.to_vec(),
        level_pct: Some(level_pct),
        level_v: None,
    }
}

fn ns(t_s: f64) -> i64 {
    START_NS + (t_s * 1e9).round() as i64
}

/// `got` (ns) is within one cycle (1 / `frequency_hz`) of the truth `t_s`.
fn assert_within_cycle(got: i64, t_s: f64, frequency_hz: f64, what: &str) {
    let error_s = (got - ns(t_s)) as f64 * 1e-9;
    assert!(
        error_s.abs() <= 1.0 / frequency_hz,
        "{what}: {error_s:+.5} s from the truth {t_s} s"
    );
}

fn assert_volts(got: f64, truth: f64, what: &str) {
    assert!(
        (got - truth).abs() <= TOL_V,
        "{what}: {got} V, truth {truth} V"
    );
}

#[test]
fn a_steady_sine_gives_no_event_and_exact_half_cycle_values() {
    let distorted = [(3, 0.08, 90.0), (5, 0.05, 0.0), (7, 0.03, 45.0)]
        .map(|(order, magnitude, phase_deg)| Harmonic {
            order,
            magnitude,
            phase_deg,
        })
        .to_vec();
    for (f, rate, harmonics) in [
        (50.0, 8000, None),
        (60.0, 4000, None),
        (50.0, 32_000, None),
        (50.0, 8000, Some(distorted.clone())),
        (60.0, 4000, Some(distorted)),
    ] {
        let base = signal(f, Vec::new());
        let config = SignalConfig {
            frequency_wander_hz: 0.05,
            frequency_wander_period_s: 2.0,
            voltage_noise_rms_v: 0.3,
            voltage_harmonics: harmonics.unwrap_or(base.voltage_harmonics.clone()),
            ..base
        };
        let run = stream(&blocks(&config, rate, 3.0, 420), f);
        assert_eq!(run.events, Vec::new(), "{f} Hz {rate} Hz");
        assert!(run.half_cycles.iter().all(|h| !h.extrapolated));
        let truth = config.truth_at(0.0).phases[0].v_rms_v;
        // Two values per cycle, gapless.
        assert!(run.half_cycles.len() as f64 >= 2.0 * f * 3.0 - 6.0);
        for h in &run.half_cycles {
            for v in h.v_rms_v {
                assert_volts(v.unwrap_or(f64::NAN), truth, "steady Urms(1/2)");
            }
        }
        for pair in run.half_cycles.windows(2) {
            let step_s = (pair[1].start_unix_ns - pair[0].start_unix_ns) as f64 * 1e-9;
            assert!((step_s * 2.0 * f - 1.0).abs() < 0.01, "refresh {step_s}");
        }
    }
}

#[test]
fn a_dip_on_one_phase_at_50_and_60_hz_and_4_8_32_khz() {
    for f in [50.0, 60.0] {
        for rate in [4000, 8000, 32_000] {
            let config = signal(f, vec![change(0.5137, Some(0.3), &[2], 60.0)]);
            let truth = disturbance::truth(&config, rate)[0];
            let run = stream(&blocks(&config, rate, 1.5, 1000), f);
            let what = format!("{f} Hz at {rate} samples/s");
            assert_eq!(run.events.len(), 1, "{what}: {:?}", run.events);
            let dip = run.events[0];
            assert_eq!(dip.kind, PqEventKind::Dip, "{what}");
            assert_eq!(dip.phases, PhaseSet::of(1), "{what}");
            assert!(dip.flags.is_clean(), "{what}: {:?}", dip.flags);
            assert_within_cycle(dip.start_unix_ns, truth.start_s, f, &what);
            let end_s = truth.end_s.unwrap_or(f64::NAN);
            assert_within_cycle(dip.end_unix_ns, end_s, f, &what);
            assert_volts(dip.extreme_v, truth.during_v[1], &what);
            assert!((dip.extreme_pct_udin - dip.extreme_v / 2.3).abs() < 1e-9);
            let duration = (dip.end_unix_ns - dip.start_unix_ns) as f64 * 1e-9;
            assert_eq!(dip.duration_s, duration);
        }
    }
}

#[test]
fn an_interruption_needs_every_phase_down() {
    let f = 50.0;
    // Two phases out, one still there: a dip on those two, no interruption.
    let config = signal(f, vec![change(0.4, Some(0.3), &[1, 2], 0.0)]);
    let run = stream(&blocks(&config, 8000, 1.2, 512), f);
    assert_eq!(run.of(PqEventKind::Interruption), Vec::new());
    let dips = run.of(PqEventKind::Dip);
    assert_eq!(dips.len(), 1, "{:?}", run.events);
    assert_eq!(dips[0].phases, PhaseSet::of(0) | PhaseSet::of(1));
    assert_volts(dips[0].extreme_v, 0.0, "residual");
    assert_within_cycle(dips[0].start_unix_ns, 0.4, f, "dip start");
    assert_within_cycle(dips[0].end_unix_ns, 0.7, f, "dip end");

    // All three out (the reference too): an interruption, and a dip.
    for f in [50.0, 60.0] {
        let config = signal(f, vec![change(0.4013, Some(0.5), &[], 0.0)]);
        let truth = disturbance::truth(&config, 8000)[0];
        let run = stream(&blocks(&config, 8000, 1.5, 512), f);
        let cuts = run.of(PqEventKind::Interruption);
        assert_eq!(cuts.len(), 1, "{:?}", run.events);
        assert_eq!(run.of(PqEventKind::Dip).len(), 1);
        let cut = cuts[0];
        assert_within_cycle(cut.start_unix_ns, truth.start_s, f, "interruption start");
        let end_s = truth.end_s.unwrap_or(f64::NAN);
        assert_within_cycle(cut.end_unix_ns, end_s, f, "interruption end");
        assert_volts(cut.extreme_v, 0.0, "interruption residual");
        assert_eq!(cut.phases.bits(), 0b111);
        // No crossings meanwhile: the cycle timing ran on.
        assert!(cut.flags.contains(PqEventFlags::EXTRAPOLATED_TIMING));
        let during: Vec<&HalfCycleRms> = run
            .half_cycles
            .iter()
            .filter(|h| h.start_unix_ns > ns(0.45) && h.end_unix_ns < ns(0.85))
            .collect();
        assert!(
            during.len() as f64 >= 0.4 * 2.0 * f - 2.0,
            "{}",
            during.len()
        );
    }
}

#[test]
fn an_event_can_end_on_another_phase_than_it_started() {
    let f = 50.0;
    let config = signal(
        f,
        vec![
            change(0.4, Some(0.3), &[1], 70.0),
            change(0.6, Some(0.4), &[3], 50.0),
        ],
    );
    let truth = disturbance::truth(&config, 8000);
    let run = stream(&blocks(&config, 8000, 1.5, 333), f);
    assert_eq!(run.events.len(), 1, "{:?}", run.events);
    let dip = run.events[0];
    assert_eq!(dip.kind, PqEventKind::Dip);
    assert_eq!(dip.phases, PhaseSet::of(0) | PhaseSet::of(2));
    assert_within_cycle(dip.start_unix_ns, 0.4, f, "start on L1");
    assert_within_cycle(dip.end_unix_ns, 1.0, f, "end on L3");
    assert_volts(dip.extreme_v, truth[1].during_v[2], "residual on L3");
}

#[test]
fn a_swell_reports_its_maximum() {
    for (f, rate) in [(50.0, 4000), (60.0, 32_000)] {
        let config = signal(f, vec![change(0.4, Some(0.2), &[1], 115.0)]);
        let truth = disturbance::truth(&config, rate)[0];
        let run = stream(&blocks(&config, rate, 1.0, 700), f);
        assert_eq!(run.events.len(), 1, "{:?}", run.events);
        let swell = run.events[0];
        assert_eq!(swell.kind, PqEventKind::Swell);
        assert_eq!(swell.phases, PhaseSet::of(0));
        assert_volts(swell.extreme_v, truth.during_v[0], "maximum");
        assert_within_cycle(swell.start_unix_ns, 0.4, f, "swell start");
        assert_within_cycle(swell.end_unix_ns, 0.6, f, "swell end");
    }
}

#[test]
fn rapid_voltage_changes_against_truth() {
    for f in [50.0, 60.0] {
        // A lasting step 230 → 220 V on all phases: ΔUss = ΔUmax = 10 V.
        let step = Disturbance {
            level_pct: None,
            level_v: Some(220.0 * (1.0f64 + 0.03 * 0.03).sqrt()),
            ..change(1.7013, None, &[], 0.0)
        };
        let config = signal(f, vec![step]);
        let truth = disturbance::truth(&config, 8000)[0];
        let run = stream(&blocks(&config, 8000, 4.0, 512), f);
        assert_eq!(run.events.len(), 1, "{f} Hz: {:?}", run.events);
        let rvc = run.events[0];
        assert_eq!(rvc.kind, PqEventKind::Rvc);
        assert_eq!(rvc.phases.bits(), 0b111);
        let delta = truth.during_v[0] - truth.before_v[0];
        assert_volts(rvc.delta_u_ss_v.unwrap_or(f64::NAN), delta, "ΔUss");
        assert_volts(rvc.delta_u_max_v.unwrap_or(f64::NAN), delta.abs(), "ΔUmax");
        assert_within_cycle(rvc.start_unix_ns, truth.start_s, f, "RVC start");
        // A step settles at once: the new steady state starts within a cycle.
        assert_within_cycle(rvc.end_unix_ns, truth.start_s, f, "RVC end");
        let pct = rvc.delta_u_ss_pct_udin.unwrap_or(f64::NAN);
        assert!((pct - delta / 2.3).abs() < 0.2, "{pct}");

        // A 0.1 s drop to 215 V and back: ΔUmax 15 V, ΔUss 0.
        let blip = Disturbance {
            level_pct: None,
            level_v: Some(215.0 * (1.0f64 + 0.03 * 0.03).sqrt()),
            ..change(1.5, Some(0.1), &[2], 0.0)
        };
        let config = signal(f, vec![blip]);
        let truth = disturbance::truth(&config, 8000)[0];
        let run = stream(&blocks(&config, 8000, 3.5, 512), f);
        assert_eq!(run.events.len(), 1, "{f} Hz: {:?}", run.events);
        let rvc = run.events[0];
        assert_eq!((rvc.kind, rvc.phases), (PqEventKind::Rvc, PhaseSet::of(1)));
        assert_volts(rvc.delta_u_ss_v.unwrap_or(f64::NAN), 0.0, "ΔUss of a blip");
        let drop = truth.before_v[1] - truth.during_v[1];
        assert_volts(
            rvc.delta_u_max_v.unwrap_or(f64::NAN),
            drop,
            "ΔUmax of a blip",
        );
        assert_within_cycle(rvc.end_unix_ns, 1.6, f, "blip RVC end");

        // A step that crosses the dip threshold is a dip, not an RVC.
        let config = signal(f, vec![change(1.7, None, &[], 87.0)]);
        let run = stream(&blocks(&config, 8000, 3.0, 512), f);
        assert_eq!(run.of(PqEventKind::Rvc), Vec::new());
        let dips = run.of(PqEventKind::Dip);
        assert_eq!(dips.len(), 1, "{:?}", run.events);
        assert!(dips[0].flags.contains(PqEventFlags::OPEN_AT_END));
    }
}

/// Dip, swell, interruption and RVC in one stream.
fn busy_signal() -> SignalConfig {
    SignalConfig {
        frequency_hz: 50.2,
        voltage_noise_rms_v: 0.4,
        ..signal(
            50.2,
            vec![
                change(0.3, Some(0.15), &[1], 50.0),
                change(0.6, Some(0.1), &[3], 120.0),
                change(0.9, Some(0.2), &[], 2.0),
                change(2.3, None, &[2], 95.0),
            ],
        )
    }
}

#[test]
fn block_sizes_do_not_change_events_or_half_cycle_values() {
    let config = busy_signal();
    let reference = stream(&blocks(&config, 8000, 4.0, 4096), 50.0);
    let kinds: Vec<PqEventKind> = reference.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            PqEventKind::Dip,
            PqEventKind::Swell,
            PqEventKind::Interruption,
            PqEventKind::Dip,
            PqEventKind::Rvc
        ]
    );
    for chunk in [1, 7, 42] {
        assert_eq!(
            stream(&blocks(&config, 8000, 4.0, chunk), 50.0),
            reference,
            "{chunk}"
        );
    }
}

fn engine_run(blocks: &[SampleBlock], config: &EngineConfig) -> Vec<OwnedOutput> {
    let mut engine = DeviceEngine::for_block(config, &blocks[0]).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for block in blocks {
        engine
            .push_block(block, &mut |o| out.push(o.to_owned_output()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine.finish(&mut |o| out.push(o.to_owned_output()));
    out
}

fn windows(outputs: &[OwnedOutput]) -> Vec<WindowMetrics> {
    outputs
        .iter()
        .filter_map(|o| match o {
            OwnedOutput::Window(w) => Some((**w).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_engine_flags_windows_that_overlap_events_whatever_the_block_sizes() {
    let signal = busy_signal();
    let with_pq = EngineConfig {
        pq: Some(PqConfig::default()),
        ..EngineConfig::default()
    };
    let reference = engine_run(&blocks(&signal, 8000, 4.0, 4096), &with_pq);
    let events_of = |outputs: &[OwnedOutput]| -> Vec<PqEvent> {
        outputs
            .iter()
            .filter_map(|o| match o {
                OwnedOutput::PqEvent(e) => Some(*e),
                _ => None,
            })
            .collect()
    };
    let events = events_of(&reference);
    // Events and windows each come in order; how they interleave depends on the blocks.
    for chunk in [1, 7, 42] {
        let outputs = engine_run(&blocks(&signal, 8000, 4.0, chunk), &with_pq);
        assert_eq!(windows(&outputs), windows(&reference), "chunk {chunk}");
        assert_eq!(events_of(&outputs), events, "chunk {chunk}");
    }
    assert_eq!(events, stream(&blocks(&signal, 8000, 4.0, 42), 50.0).events);
    let flagged = windows(&reference);
    let plain = windows(&engine_run(
        &blocks(&signal, 8000, 4.0, 4096),
        &EngineConfig::default(),
    ));
    assert_eq!(flagged.len(), plain.len());
    let mut accumulator = AggregateAccumulator::default();
    let mut count = 0;
    for (w, p) in flagged.iter().zip(&plain) {
        let expected =
            meterflow::dsp::pq::flagging::window_flags(&events, w.start_unix_ns, w.end_unix_ns);
        assert_eq!(w.flags, p.flags | expected, "window at {}", w.start_unix_ns);
        // Only the flag differs.
        let mut unflagged = w.clone();
        unflagged.flags = p.flags;
        assert_eq!(&unflagged, p);
        count += u32::from(expected == WindowFlags::PQ_EVENT);
        accumulator.push(w);
    }
    // dip 0.15 s, swell 0.1 s, interruption 0.2 s: each touches 1..3 windows more.
    assert!((4..=12).contains(&count), "{count}");
    assert_eq!(accumulator.finish(None).pq_flagged_windows, count);
}

#[test]
fn a_gap_closes_the_event_with_a_flag_and_the_next_one_says_it_started_earlier() {
    let f = 50.0;
    let config = signal(f, vec![change(0.4, Some(0.4), &[1], 50.0)]);
    let mut parts = blocks(&config, 8000, 1.2, 400);
    // Samples 4800..5200 (0.6 to 0.65 s) are lost.
    parts.remove(12);
    let truth = disturbance::truth(&config, 8000)[0];
    let run = stream(&parts, f);
    assert_eq!(run.events.len(), 2, "{:?}", run.events);
    let (before, after) = (run.events[0], run.events[1]);
    assert_eq!(before.kind, PqEventKind::Dip);
    assert_eq!(before.flags, PqEventFlags::GAP);
    assert_within_cycle(before.start_unix_ns, 0.4, f, "start");
    assert_eq!(before.end_unix_ns, ns(4799.5 / 8000.0));
    assert_volts(
        before.extreme_v,
        truth.during_v[0],
        "residual before the gap",
    );
    assert!(after.flags.contains(PqEventFlags::OPEN_AT_START));
    // The crossing detector settles first (1.5 cycles), then one cycle for the first value.
    let delay_s = (after.start_unix_ns - ns(0.65)) as f64 * 1e-9;
    assert!(
        (0.0..=3.0 / f).contains(&delay_s),
        "first value {delay_s} s after the gap"
    );
    assert_within_cycle(after.end_unix_ns, 0.8, f, "end");
    assert_volts(after.extreme_v, truth.during_v[0], "residual after the gap");
}

#[test]
fn an_event_open_at_the_stream_end_is_closed_with_a_flag() {
    let f = 60.0;
    let config = signal(f, vec![change(1.0, None, &[2, 3], 30.0)]);
    let run = stream(&blocks(&config, 8000, 1.5, 4096), f);
    assert_eq!(run.events.len(), 1, "{:?}", run.events);
    let dip = run.events[0];
    assert_eq!(dip.flags, PqEventFlags::OPEN_AT_END);
    assert_eq!(dip.end_unix_ns, ns(11_999.5 / 8000.0));
    assert_within_cycle(dip.start_unix_ns, 1.0, f, "start");
    assert!((dip.duration_s - 0.5).abs() <= 1.0 / f);
}

/// Hand-built single-phase samples: √2·230 V at 50 Hz, 8 kHz, times `level(n)`.
fn hand_built(seconds: f64, level: impl Fn(usize) -> f64) -> SampleBlock {
    let rate = 8000;
    let n = (seconds * f64::from(rate)) as usize;
    let mut block = SampleBlock::new(Measures::SinglePhase, rate, START_NS);
    let peak = 230.0 * std::f64::consts::SQRT_2;
    block.channels[0] = (0..n)
        .map(|k| {
            let phase = std::f64::consts::TAU * 50.0 * k as f64 / f64::from(rate);
            (level(k) * peak * phase.sin()) as f32
        })
        .collect();
    block.channels[1] = vec![0.0; n];
    block
}

#[test]
fn hand_built_dip_and_interruption_on_a_single_phase() {
    // 30 % from 1.0 to 1.2 s (samples 8000..9600, zero crossings), 0 from 2.0 to 2.5 s.
    let level = |k: usize| match k {
        8000..=9599 => 0.3,
        16_000..=19_999 => 0.0,
        _ => 1.0,
    };
    let whole = hand_built(3.0, level);
    let reference = stream(&split_block(&whole, &mut std::iter::repeat(4096)), 50.0);
    for chunk in [1, 7, 42] {
        let parts = split_block(&whole, &mut std::iter::repeat(chunk));
        assert_eq!(stream(&parts, 50.0), reference, "chunk {chunk}");
    }
    let kinds: Vec<PqEventKind> = reference.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            PqEventKind::Dip,
            PqEventKind::Interruption,
            PqEventKind::Dip
        ]
    );
    let [dip, cut, dip2] = [0, 1, 2].map(|k| reference.events[k]);
    assert_within_cycle(dip.start_unix_ns, 1.0, 50.0, "dip start");
    assert_within_cycle(dip.end_unix_ns, 1.2, 50.0, "dip end");
    assert_volts(dip.extreme_v, 69.0, "residual 30 % of 230 V");
    assert_eq!(dip.phases, PhaseSet::of(0));
    assert_within_cycle(cut.start_unix_ns, 2.0, 50.0, "interruption start");
    assert_within_cycle(cut.end_unix_ns, 2.5, 50.0, "interruption end");
    assert_volts(cut.extreme_v, 0.0, "interruption residual");
    assert_within_cycle(dip2.start_unix_ns, 2.0, 50.0, "dip of the interruption");
    // Away from the events, each value is the RMS of exactly one cycle.
    for h in reference
        .half_cycles
        .iter()
        .filter(|h| h.end_unix_ns < ns(0.95) || h.start_unix_ns > ns(2.6))
    {
        let v = h.v_rms_v[0].unwrap_or(f64::NAN);
        assert!((v - 230.0).abs() < 0.01, "{v} at {}", h.start_unix_ns);
    }
}

#[test]
fn configs_parse_with_their_keys_and_refuse_unknown_ones() {
    let engine: EngineConfig =
        toml::from_str("nominal_frequency_hz = 60\n[pq]\nudin_v = 120\ndip_threshold_pct = 85\n")
            .unwrap_or_else(|e| panic!("{e}"));
    let pq = engine.pq.clone().unwrap_or_default();
    assert_eq!((pq.udin(), pq.dip_threshold_pct), (120.0, 85.0));
    assert_eq!(engine.udin_v(), 120.0);
    assert_eq!(engine.validate(), Ok(()));
    assert!(toml::from_str::<EngineConfig>("[pq]\nudin = 120\n").is_err());
    let bad: EngineConfig =
        toml::from_str("[pq]\nswell_threshold_pct = 95\n").unwrap_or_else(|e| panic!("{e}"));
    let message = bad
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("dsp.pq.swell_threshold_pct"), "{message}");

    let text = "[[disturbances]]\nat_s = 1.5\nduration_s = 0.1\nphases = [2]\nlevel_pct = 40\n";
    let signal: SignalConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(signal.validate(), Ok(()));
    assert_eq!(signal.disturbances[0].phases, vec![2]);
    let typo = "[[disturbances]]\nat_s = 1.5\nlevel = 40\n";
    assert!(toml::from_str::<SignalConfig>(typo).is_err());
    let both = "[[disturbances]]\nat_s = 1.5\nlevel_pct = 40\nlevel_v = 3\n";
    let signal: SignalConfig = toml::from_str(both).unwrap_or_else(|e| panic!("{e}"));
    assert!(signal.validate().is_err());

    // Both reach a pipeline file: `[dsp.pq]` and a virtual meter's disturbances.
    let pipeline = r#"
[source]
kind = "virtual_meters"
[[source.meter]]
[[source.meter.signal.disturbances]]
at_s = 2.0
duration_s = 0.2
level_pct = 40
[dsp.pq]
udin_v = 230
keep_half_cycle = true
"#;
    let parsed = PipelineConfig::parse(pipeline).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(parsed.dsp.pq.is_some_and(|pq| pq.keep_half_cycle));
    let typo = pipeline.replace("udin_v", "udin");
    assert!(PipelineConfig::parse(&typo).is_err());
}

#[test]
fn with_pq_the_engine_keeps_its_windows_through_gaps_and_the_stream_end() {
    let signal = busy_signal();
    let with_pq = EngineConfig {
        pq: Some(PqConfig::default()),
        ..EngineConfig::default()
    };
    // Samples 5200..5600 (inside the swell) and 12_000..12_400 lost.
    let gappy = |chunk: usize| -> Vec<SampleBlock> {
        let mut parts = blocks(&signal, 8000, 2.5, 400);
        parts.remove(30);
        parts.remove(13);
        parts
            .iter()
            .flat_map(|p| split_block(p, &mut std::iter::repeat(chunk)))
            .collect()
    };
    let without_pq = EngineConfig {
        pq: None,
        ..EngineConfig::default()
    };
    let plain = windows(&engine_run(&gappy(400), &without_pq));
    let reference = engine_run(&gappy(400), &with_pq);
    let flagged = windows(&reference);
    assert_eq!(flagged.len(), plain.len());
    for (w, p) in flagged.iter().zip(&plain) {
        let mut unflagged = w.clone();
        unflagged.flags = WindowFlags::from_bits(w.flags.bits() & !WindowFlags::PQ_EVENT.bits());
        assert_eq!(&unflagged, p);
    }
    assert!(flagged
        .iter()
        .any(|w| w.flags.contains(WindowFlags::PQ_EVENT)));
    let gap_closed = reference
        .iter()
        .any(|o| matches!(o, OwnedOutput::PqEvent(e) if e.flags.contains(PqEventFlags::GAP)));
    assert!(gap_closed, "the swell is cut by the gap");
    for chunk in [7, 42] {
        let outputs = engine_run(&gappy(chunk), &with_pq);
        assert_eq!(windows(&outputs), flagged, "chunk {chunk}");
    }
}
