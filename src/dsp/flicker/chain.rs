//! Blocks 1–4 at the decimated rate: each input is the mean square of one
//! decimation block (block 2's squaring is done at the input rate, see
//! `decimator`). Dividing the squared signal by its slowly updated mean is
//! block 1's scaling to the RMS reference, moved after the squaring (the
//! same thing: scaling by c before squaring is scaling by c² after).

use std::f64::consts::TAU;

use super::iir::{Biquad, BiquadState};
use super::weighting::{self, SECTIONS};
use super::Lamp;

/// Time constant of the RMS reference (block 1's 1-min adaptation), s.
pub const REFERENCE_TIME_CONSTANT_S: f64 = 27.3;
/// Time constant of the voltage-presence detector, s (about one cycle).
const PRESENCE_TIME_CONSTANT_S: f64 = 0.02;
/// Sinusoidal modulation at 8.8 Hz that gives a maximum `Pinst` of 1
/// (IEC 61000-4-15 Ed. 2, Tables 1a/1b), ΔV/V.
fn reference_modulation(lamp: Lamp) -> f64 {
    match lamp {
        Lamp::V230 => 0.250e-2,
        Lamp::V120 => 0.321e-2,
    }
}
const REFERENCE_MODULATION_HZ: f64 = 8.8;

/// Fixed coefficients of one channel's chain.
#[derive(Debug, Clone)]
pub struct ChainDesign {
    sections: [Biquad; SECTIONS],
    smoothing: Biquad,
    /// Makes the reference modulation's maximum `Pinst` exactly 1.
    scale: f64,
    /// Per-sample weight of the first-order reference and presence trackers.
    reference_alpha: f64,
    presence_alpha: f64,
}

impl ChainDesign {
    /// `rate_hz` is the decimated rate; `droop(f)` the decimator's gain at f Hz.
    pub fn new(
        rate_hz: f64,
        nominal_frequency_hz: f64,
        lamp: Lamp,
        droop: impl Fn(f64) -> f64,
    ) -> ChainDesign {
        let sections = weighting::design(rate_hz, nominal_frequency_hz, lamp);
        let smoothing = weighting::smoothing(rate_hz);
        let f = REFERENCE_MODULATION_HZ;
        // (1 + d/2·sin)² carries d·sin: amplitude d into block 3.
        let amplitude = reference_modulation(lamp)
            * droop(f)
            * weighting::digital_magnitude_at(&sections, f, rate_hz);
        // Squared: mean A²/2 plus A²/2 at 2f, which the smoothing lets through in part.
        let ripple = smoothing.magnitude(TAU * 2.0 * f / rate_hz);
        let peak = amplitude * amplitude / 2.0 * (1.0 + ripple);
        ChainDesign {
            sections,
            smoothing,
            scale: 1.0 / peak,
            reference_alpha: 1.0 - (-1.0 / (REFERENCE_TIME_CONSTANT_S * rate_hz)).exp(),
            presence_alpha: 1.0 - (-1.0 / (PRESENCE_TIME_CONSTANT_S * rate_hz)).exp(),
        }
    }
}

/// Running state of one channel's chain.
#[derive(Debug, Clone, Default)]
pub struct ChainState {
    /// Mean square the input is scaled by (block 1).
    reference: f64,
    /// Fast mean square, to notice a vanished voltage.
    presence: f64,
    sections: [BiquadState; SECTIONS],
    smoothing: BiquadState,
}

impl ChainState {
    /// Starts at steady state for a signal whose mean square is `mean_square`:
    /// the high-pass has already removed the mean, so no start-up transient.
    pub fn start(design: &ChainDesign, mean_square: f64) -> ChainState {
        let mut state = ChainState {
            reference: mean_square,
            presence: mean_square,
            ..ChainState::default()
        };
        // High-pass in steady state for a constant input of 1: y = 0, and
        // s1 = b1·x − a1·y = b1 (transposed form, b0 = −b1).
        state.sections[0].s1 = design.sections[0].b1;
        state
    }

    /// Fast mean square (presence detector), V².
    pub fn presence(&self) -> f64 {
        self.presence
    }

    /// One block mean square in, `Pinst` out.
    #[inline]
    pub fn step(&mut self, design: &ChainDesign, mean_square: f64) -> f64 {
        self.reference += design.reference_alpha * (mean_square - self.reference);
        self.presence += design.presence_alpha * (mean_square - self.presence);
        let mut x = mean_square / self.reference;
        for (section, state) in design.sections.iter().zip(self.sections.iter_mut()) {
            x = section.step(state, x);
        }
        design.smoothing.step(&mut self.smoothing, x * x) * design.scale
    }
}
