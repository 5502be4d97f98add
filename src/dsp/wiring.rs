//! Wiring checks: from the fundamental phasors of a few seconds of windows,
//! is the meter connected the way it should be? The mistakes of a new
//! installation (a swapped phase order, a clamp reversed, on the wrong phase
//! or left off, a voltage tap off, a wrong voltage scaling) all leave plausible
//! numbers but a tell-tale phasor picture; [`assess`] reads it.
//!
//! Conventions: a phasor's angle is against the window's reference voltage;
//! a current's lag behind a voltage is arg V − arg I, in (−180°, 180°].

use rustfft::num_complex::Complex;

use crate::model::{WindowFlags, WindowMetrics, WiringReason, WiringStatus};

use super::nominal::{NOMINAL_TOLERANCE, STANDARD_NOMINALS_V};
/// Below this, V, no phase has a voltage: nothing can be checked.
const MIN_VOLTAGE_V: f64 = 10.0;
/// A voltage below this fraction of the largest is missing.
const MISSING_VOLTAGE_FRACTION: f64 = 0.10;
/// Below this largest current, A, the clamps cannot be judged.
const MIN_CURRENT_A: f64 = 0.05;
/// A current below this fraction of the largest is an empty clamp.
const EMPTY_CLAMP_FRACTION: f64 = 0.02;
/// A current within this of a voltage's axis lines up with it, degrees.
const ALIGNMENT_DEG: f64 = 30.0;
/// A phase whose active power is below this fraction of the largest has no
/// direction to compare.
const MIN_POWER_FRACTION: f64 = 0.10;
/// Clean windows averaged per assessment (15 basic windows ≈ 3 s).
pub const WINDOWS_PER_CHECK: u32 = 15;
/// A stream that ends before its first assessment still gets one from this
/// many windows (≈ 1 s), so a short capture has a status.
pub const MIN_WINDOWS_AT_END: u32 = 5;

/// Mean fundamental phasors (RMS, angle against a common reference) of the
/// meter phases L1, L2, L3; `None` where the layout has no such input.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phasors {
    pub voltage: [Option<Complex<f64>>; 3],
    pub current: [Option<Complex<f64>>; 3],
}

/// Finds the first wiring fault in `phasors`, most serious first.
pub fn assess(phasors: &Phasors) -> WiringStatus {
    let volts: Vec<(usize, Complex<f64>)> = present(&phasors.voltage);
    let v_max = volts.iter().map(|(_, v)| v.norm()).fold(0.0, f64::max);
    if v_max < MIN_VOLTAGE_V {
        return status(
            WiringReason::Unchecked,
            None,
            0.0,
            format!("no voltage (largest {v_max:.1} V)"),
        );
    }
    let found = missing_voltage(&volts, v_max)
        .or_else(|| off_nominal(&volts, v_max))
        .or_else(|| negative_sequence(phasors))
        .or_else(|| current_faults(phasors, v_max));
    found.unwrap_or_else(|| {
        let i_max = present(&phasors.current)
            .iter()
            .map(|(_, i)| i.norm())
            .fold(0.0, f64::max);
        if i_max < MIN_CURRENT_A {
            status(
                WiringReason::Ok,
                None,
                0.5,
                format!("voltages right; currents too small to check the clamps ({i_max:.3} A)"),
            )
        } else {
            status(
                WiringReason::Ok,
                None,
                1.0,
                "voltages and clamps agree".into(),
            )
        }
    })
}

fn status(
    reason: WiringReason,
    phase: Option<usize>,
    confidence: f64,
    detail: String,
) -> WiringStatus {
    WiringStatus {
        reason,
        phase: phase.and_then(|k| u8::try_from(k).ok()),
        confidence: confidence.clamp(0.0, 1.0),
        detail,
    }
}

fn present(list: &[Option<Complex<f64>>; 3]) -> Vec<(usize, Complex<f64>)> {
    (0..3).filter_map(|k| list[k].map(|p| (k, p))).collect()
}

fn name(k: usize) -> String {
    format!("L{}", k + 1)
}

/// arg a − arg b in (−180, 180], degrees.
fn angle_between(a: Complex<f64>, b: Complex<f64>) -> f64 {
    let d = (a.arg() - b.arg()).to_degrees().rem_euclid(360.0);
    if d > 180.0 {
        d - 360.0
    } else {
        d
    }
}

/// Distance of an angle from 0° or 180°, whichever is nearer: how far a
/// current is from a voltage's axis, importing or exporting.
fn off_axis(angle_deg: f64) -> f64 {
    let a = angle_deg.abs();
    a.min(180.0 - a)
}

fn missing_voltage(volts: &[(usize, Complex<f64>)], v_max: f64) -> Option<WiringStatus> {
    let limit = MISSING_VOLTAGE_FRACTION * v_max;
    volts.iter().find(|(_, v)| v.norm() < limit).map(|&(k, v)| {
        status(
            WiringReason::MissingVoltage,
            Some(k),
            1.0 - v.norm() / limit,
            format!(
                "{} reads {:.1} V while another phase has {v_max:.1} V",
                name(k),
                v.norm()
            ),
        )
    })
}

/// The standard nominal nearest to `v`, and the relative distance to it.
pub fn nearest_nominal(v: f64) -> (f64, f64) {
    STANDARD_NOMINALS_V
        .iter()
        .map(|&n| (n, (v / n - 1.0).abs()))
        .fold(
            (0.0, f64::INFINITY),
            |best, c| if c.1 < best.1 { c } else { best },
        )
}

/// The phase farthest from every nominal; the whole meter (no phase) when
/// every voltage is off, as a wrong scaling makes them.
fn off_nominal(volts: &[(usize, Complex<f64>)], v_max: f64) -> Option<WiringStatus> {
    let limit = MISSING_VOLTAGE_FRACTION * v_max;
    let judged: Vec<(usize, f64, (f64, f64))> = volts
        .iter()
        .filter(|(_, v)| v.norm() >= limit)
        .map(|&(k, v)| (k, v.norm(), nearest_nominal(v.norm())))
        .collect();
    let off: Vec<_> = judged
        .iter()
        .filter(|(_, _, (_, distance))| *distance > NOMINAL_TOLERANCE)
        .collect();
    let &&(k, v, (nominal, distance)) = off.iter().max_by(|a, b| a.2 .1.total_cmp(&b.2 .1))?;
    let every = off.len() == judged.len() && judged.len() > 1;
    let which = if every {
        "every phase".to_string()
    } else {
        name(k)
    };
    Some(status(
        WiringReason::VoltageOffNominal,
        (!every).then_some(k),
        (distance - NOMINAL_TOLERANCE) / NOMINAL_TOLERANCE,
        format!(
            "{which} reads {v:.1} V, {:.0} % from the nearest standard nominal {nominal:.0} V",
            distance * 100.0
        ),
    ))
}

fn negative_sequence(phasors: &Phasors) -> Option<WiringStatus> {
    let [Some(v1), Some(v2), Some(v3)] = phasors.voltage else {
        return None;
    };
    let a = Complex::from_polar(1.0, 120f64.to_radians());
    let positive = (v1 + a * v2 + a * a * v3).norm() / 3.0;
    let negative = (v1 + a * a * v2 + a * v3).norm() / 3.0;
    (negative > positive).then(|| {
        status(
            WiringReason::NegativeSequence,
            None,
            (negative - positive) / (negative + positive),
            format!(
                "voltages rotate L1 → L3 → L2 (L2 at {:.0}°, L3 at {:.0}° from L1): \
                 negative sequence {negative:.1} V, positive {positive:.1} V",
                angle_between(v2, v1),
                angle_between(v3, v1)
            ),
        )
    })
}

/// Empty, misplaced and reversed clamps, on phases that have a voltage.
fn current_faults(phasors: &Phasors, v_max: f64) -> Option<WiringStatus> {
    let pairs: Vec<(usize, Complex<f64>, Complex<f64>)> = (0..3)
        .filter_map(|k| match (phasors.voltage[k], phasors.current[k]) {
            (Some(v), Some(i)) if v.norm() >= MISSING_VOLTAGE_FRACTION * v_max => Some((k, v, i)),
            _ => None,
        })
        .collect();
    let i_max = pairs.iter().map(|(_, _, i)| i.norm()).fold(0.0, f64::max);
    if i_max < MIN_CURRENT_A {
        return None;
    }
    if pairs.len() > 1 {
        let limit = EMPTY_CLAMP_FRACTION * i_max;
        if let Some(&(k, _, i)) = pairs.iter().find(|(_, _, i)| i.norm() < limit) {
            return Some(status(
                WiringReason::EmptyClamp,
                Some(k),
                1.0 - i.norm() / limit,
                format!(
                    "{} carries {:.3} A while another clamp has {i_max:.2} A",
                    name(k),
                    i.norm()
                ),
            ));
        }
    }
    let loaded: Vec<_> = pairs
        .iter()
        .copied()
        .filter(|(_, _, i)| i.norm() >= EMPTY_CLAMP_FRACTION * i_max)
        .collect();
    wrong_phase(phasors, &loaded).or_else(|| reversed(&loaded))
}

/// A current that lines up with another phase's voltage (±30°) better than
/// with its own voltage's axis (import or export). Confidence: 1 when it
/// lines up exactly, 0.5 at the ±30° limit.
fn wrong_phase(
    phasors: &Phasors,
    loaded: &[(usize, Complex<f64>, Complex<f64>)],
) -> Option<WiringStatus> {
    for &(k, v_own, i) in loaded {
        let own = off_axis(angle_between(v_own, i));
        let best = (0..3)
            .filter(|&j| j != k)
            .filter_map(|j| phasors.voltage[j].map(|v| (j, angle_between(v, i))))
            .filter(|(_, lag)| lag.abs() <= ALIGNMENT_DEG && lag.abs() < own)
            .min_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
        if let Some((j, lag)) = best {
            return Some(status(
                WiringReason::ClampOnWrongPhase,
                Some(k),
                1.0 - lag.abs() / (2.0 * ALIGNMENT_DEG),
                format!(
                    "the {} current lines up with the {} voltage ({lag:.0}°) and not its own \
                     ({:.0}°): the clamp is on the {} conductor",
                    name(k),
                    name(j),
                    angle_between(v_own, i),
                    name(j)
                ),
            ));
        }
    }
    None
}

/// A phase whose power flows against every other loaded phase's, with its
/// current about 180° from where theirs sit relative to their voltages. All
/// phases exporting together (PV) is no fault.
fn reversed(loaded: &[(usize, Complex<f64>, Complex<f64>)]) -> Option<WiringStatus> {
    let power: Vec<(usize, f64, f64)> = loaded
        .iter()
        .map(|&(k, v, i)| (k, (v * i.conj()).re, angle_between(v, i)))
        .collect();
    let p_max = power.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
    let directed: Vec<_> = power
        .iter()
        .copied()
        .filter(|p| p.1.abs() >= MIN_POWER_FRACTION * p_max)
        .collect();
    if directed.len() < 3 {
        return None;
    }
    for &(k, p, lag) in &directed {
        let others: Vec<_> = directed.iter().filter(|o| o.0 != k).collect();
        if !others.iter().all(|o| o.1.signum() != p.signum()) {
            continue;
        }
        let mean = others
            .iter()
            .map(|o| Complex::from_polar(1.0, o.2.to_radians()))
            .sum::<Complex<f64>>();
        let expected = Complex::from_polar(1.0, mean.arg() + std::f64::consts::PI);
        let deviation = angle_between(Complex::from_polar(1.0, lag.to_radians()), expected).abs();
        if deviation <= ALIGNMENT_DEG {
            let others_p: f64 = others.iter().map(|o| o.1).sum();
            return Some(status(
                WiringReason::ReversedClamp,
                Some(k),
                1.0 - deviation / ALIGNMENT_DEG,
                format!(
                    "{} power {p:.0} W flows against the others' {others_p:.0} W; its current \
                     lags its voltage by {lag:.0}°, {deviation:.0}° from the opposite of theirs",
                    name(k)
                ),
            ));
        }
    }
    None
}

/// Averages the phasors of clean windows (a PQ event's flag aside) and assesses every
/// [`WINDOWS_PER_CHECK`] of them; reports when the finding changes.
#[derive(Debug, Default)]
pub struct WiringCheck {
    sums: Phasors,
    windows: u32,
    status: Option<WiringStatus>,
}

impl WiringCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest assessment; `None` before the first.
    pub fn status(&self) -> Option<&WiringStatus> {
        self.status.as_ref()
    }

    /// Adds a window. Returns the new status when an assessment changes the
    /// finding (reason or phase); the first assessment counts as a change
    /// only when it finds a fault.
    pub fn push(&mut self, window: &WindowMetrics) -> Option<&WiringStatus> {
        // A dip or an interruption is no reason to look away: a voltage
        // that stays missing is a finding whatever PQ calls it.
        let flags = WindowFlags::from_bits(window.flags.bits() & !WindowFlags::PQ_EVENT.bits());
        if !flags.is_clean() || window.harmonic_orders == 0 {
            return None;
        }
        for (k, phase) in window.phases.iter().enumerate() {
            let Some(p) = phase else { continue };
            let v = Complex::from_polar(p.v1_rms_v, p.v1_angle_deg.to_radians());
            let i = Complex::from_polar(p.i1_rms_a, p.i1_angle_deg.to_radians());
            *self.sums.voltage[k].get_or_insert(Complex::default()) += v;
            *self.sums.current[k].get_or_insert(Complex::default()) += i;
        }
        self.windows += 1;
        if self.windows < WINDOWS_PER_CHECK {
            return None;
        }
        self.assess_block()
    }

    /// At the end of the stream: assesses the windows since the last
    /// assessment when there was none yet and they are at least
    /// [`MIN_WINDOWS_AT_END`]. Returns the status when the finding changed.
    pub fn finish(&mut self) -> Option<&WiringStatus> {
        if self.status.is_some() || self.windows < MIN_WINDOWS_AT_END {
            return None;
        }
        self.assess_block()
    }

    fn assess_block(&mut self) -> Option<&WiringStatus> {
        let n = f64::from(self.windows);
        let mean = Phasors {
            voltage: self.sums.voltage.map(|v| v.map(|v| v / n)),
            current: self.sums.current.map(|i| i.map(|i| i / n)),
        };
        self.sums = Phasors::default();
        self.windows = 0;
        let next = assess(&mean);
        let changed = match &self.status {
            Some(previous) => !previous.same_finding(&next),
            None => next.reason.is_fault(),
        };
        self.status = Some(next);
        if changed {
            self.status.as_ref()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PhaseMetrics;

    /// A clean window holding `phasors` (every phase present).
    fn window_of(phasors: &Phasors) -> WindowMetrics {
        let phase = |k: usize| {
            let (v, i) = (phasors.voltage[k]?, phasors.current[k]?);
            Some(PhaseMetrics {
                v1_rms_v: v.norm(),
                v1_angle_deg: v.arg().to_degrees(),
                i1_rms_a: i.norm(),
                i1_angle_deg: i.arg().to_degrees(),
                ..PhaseMetrics::default()
            })
        };
        WindowMetrics {
            phases: [phase(0), phase(1), phase(2)],
            harmonic_orders: 40,
            ..WindowMetrics::default()
        }
    }

    #[test]
    fn the_check_reports_changes_of_finding_only() {
        let clean = window_of(&balanced(10.0, 10.0));
        let mut reversed = balanced(10.0, 10.0);
        reversed.current[0] = reversed.current[0].map(|i| -i);
        let reversed = window_of(&reversed);
        let mut check = WiringCheck::new();
        // A clean first assessment is no change worth an event.
        for _ in 0..WINDOWS_PER_CHECK {
            assert!(check.push(&clean).is_none());
        }
        assert_eq!(check.status().map(|s| s.reason), Some(WiringReason::Ok));
        // The fault, once per change, at the end of its block.
        let mut changes = Vec::new();
        for _ in 0..3 * WINDOWS_PER_CHECK {
            if let Some(s) = check.push(&reversed) {
                changes.push((s.reason, s.phase));
            }
        }
        assert_eq!(changes, [(WiringReason::ReversedClamp, Some(0))]);
        // Flagged windows (a gap) do not count; a PQ event's flag does not hide one.
        let mut gap = clean.clone();
        gap.flags = WindowFlags::GAP;
        let mut dip = clean.clone();
        dip.flags = WindowFlags::PQ_EVENT;
        for _ in 0..WINDOWS_PER_CHECK {
            assert!(check.push(&gap).is_none());
        }
        assert_eq!(
            check.status().map(|s| s.reason),
            Some(WiringReason::ReversedClamp)
        );
        let back: Vec<_> = (0..WINDOWS_PER_CHECK)
            .filter_map(|_| check.push(&dip).map(|s| s.reason))
            .collect();
        assert_eq!(back, [WiringReason::Ok]);
        // A short stream still gets a status at its end.
        let mut short = WiringCheck::new();
        for _ in 0..MIN_WINDOWS_AT_END - 1 {
            short.push(&reversed);
        }
        assert!(short.finish().is_none());
        short.push(&reversed);
        assert_eq!(
            short.finish().map(|s| s.reason),
            Some(WiringReason::ReversedClamp)
        );
    }

    /// Phasor of `rms` at `deg` degrees.
    fn p(rms: f64, deg: f64) -> Complex<f64> {
        Complex::from_polar(rms, deg.to_radians())
    }

    /// Three phases at 230 V positive sequence, currents `amps` lagging their
    /// own voltage by `lag` degrees.
    fn balanced(amps: f64, lag: f64) -> Phasors {
        let angles = [0.0, -120.0, 120.0];
        Phasors {
            voltage: angles.map(|a| Some(p(230.0, a))),
            current: angles.map(|a| Some(p(amps, a - lag))),
        }
    }

    fn finding(phasors: &Phasors) -> (WiringReason, Option<u8>) {
        let s = assess(phasors);
        (s.reason, s.phase)
    }

    #[test]
    fn a_clean_meter_and_an_all_phase_exporter_pass() {
        for lag in [0.0, 25.0, -20.0, 180.0, 160.0, -155.0] {
            let s = assess(&balanced(10.0, lag));
            assert_eq!(s.reason, WiringReason::Ok, "lag {lag}: {s}");
            assert_eq!(s.confidence, 1.0);
        }
        let single = Phasors {
            voltage: [Some(p(120.0, 0.0)), None, None],
            current: [Some(p(5.0, 180.0)), None, None],
        };
        assert_eq!(finding(&single), (WiringReason::Ok, None));
        // No load: the clamps cannot be judged, the voltages can.
        let s = assess(&balanced(0.0, 0.0));
        assert_eq!((s.reason, s.confidence), (WiringReason::Ok, 0.5));
    }

    #[test]
    fn swapped_phase_order_is_negative_sequence() {
        // L2 and L3 swapped, each clamp still with its own voltage.
        let mut m = balanced(10.0, 10.0);
        m.voltage.swap(1, 2);
        m.current.swap(1, 2);
        let s = assess(&m);
        assert_eq!((s.reason, s.phase), (WiringReason::NegativeSequence, None));
        // Pure negative sequence: positive component 0, confidence 1.
        assert!((s.confidence - 1.0).abs() < 1e-9, "{s}");
    }

    #[test]
    fn a_reversed_clamp_is_found_on_its_phase() {
        let mut m = balanced(10.0, 20.0);
        m.current[1] = m.current[1].map(|i| -i);
        let s = assess(&m);
        assert_eq!(
            (s.reason, s.phase),
            (WiringReason::ReversedClamp, Some(1)),
            "{s}"
        );
        // Exactly opposite the others' lag: full confidence.
        assert!((s.confidence - 1.0).abs() < 1e-9, "{s}");
        // Reversed on an exporter: the odd one imports.
        let mut m = balanced(10.0, 180.0);
        m.current[2] = m.current[2].map(|i| -i);
        assert_eq!(finding(&m), (WiringReason::ReversedClamp, Some(2)));
    }

    #[test]
    fn a_clamp_on_the_wrong_phase_names_its_phase() {
        // Meter L1's clamp on grid L2: its current sits at −120°, on V2.
        let mut m = balanced(10.0, 0.0);
        m.current[0] = Some(p(10.0, -120.0));
        let s = assess(&m);
        assert_eq!(
            (s.reason, s.phase),
            (WiringReason::ClampOnWrongPhase, Some(0)),
            "{s}"
        );
        // Exactly on V2.
        assert!((s.confidence - 1.0).abs() < 1e-9, "{s}");
        assert!(s.detail.contains("L2 voltage"), "{s}");
        // With a 25° load lag: 25° from V2, 145° (35° off axis) from its own.
        let mut m = balanced(10.0, 25.0);
        m.current[0] = Some(p(10.0, -145.0));
        let s = assess(&m);
        assert_eq!(
            (s.reason, s.phase),
            (WiringReason::ClampOnWrongPhase, Some(0)),
            "{s}"
        );
        assert!((s.confidence - (1.0 - 25.0 / 60.0)).abs() < 1e-9, "{s}");
    }

    #[test]
    fn missing_voltage_and_empty_clamp() {
        let mut m = balanced(10.0, 0.0);
        m.voltage[2] = Some(p(0.0, 0.0));
        m.current[2] = Some(p(0.0, 0.0));
        let s = assess(&m);
        assert_eq!(
            (s.reason, s.phase),
            (WiringReason::MissingVoltage, Some(2)),
            "{s}"
        );
        assert_eq!(s.confidence, 1.0);
        let mut m = balanced(10.0, 0.0);
        m.current[1] = Some(p(0.1, 30.0));
        let s = assess(&m);
        assert_eq!(
            (s.reason, s.phase),
            (WiringReason::EmptyClamp, Some(1)),
            "{s}"
        );
        // 0.1 A against a limit of 2 % of 10 A = 0.2 A.
        assert!((s.confidence - 0.5).abs() < 1e-9, "{s}");
    }

    #[test]
    fn voltage_far_from_every_nominal() {
        // 160 V: 26 % above 127 V, 20 % below 200 V.
        let mut m = balanced(10.0, 0.0);
        m.voltage = m.voltage.map(|v| v.map(|v| v * (160.0 / 230.0)));
        let s = assess(&m);
        assert_eq!(
            (s.reason, s.phase),
            (WiringReason::VoltageOffNominal, None),
            "{s}"
        );
        assert!((s.confidence - 1.0).abs() < 1e-9, "{s}");
        // One phase off (a wrong ratio on its input) is named.
        let mut m = balanced(10.0, 0.0);
        // 161 V: 19.5 % below 200 V.
        m.voltage[1] = m.voltage[1].map(|v| v * 0.7);
        assert_eq!(finding(&m), (WiringReason::VoltageOffNominal, Some(1)));
        // 120 V and 400 V: one is a nominal, the other is not.
        assert_eq!(nearest_nominal(120.0), (120.0, 0.0));
        let (nominal, distance) = nearest_nominal(400.0);
        assert_eq!(nominal, 347.0);
        assert!((distance - (400.0 / 347.0 - 1.0)).abs() < 1e-12);
        let none = Phasors {
            voltage: [Some(p(0.5, 0.0)); 3],
            current: [Some(p(1.0, 0.0)); 3],
        };
        assert_eq!(finding(&none), (WiringReason::Unchecked, None));
    }
}
