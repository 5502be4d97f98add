//! Waveform synthesis for the virtual meter: what a SmartMeter would measure on
//! a configured grid connection, plus the analytic ground truth of it.
//!
//! Every value is a pure function of (config, seed, sample index): nothing is
//! accumulated from sample to sample, so chunking, seeking and hour-long runs
//! all give the same bits. Phase comes from the analytic integral of the
//! frequency, computed in f64; only the emitted values are f32.
//!
//! Signal model, per phase k with angle α_k and fundamental phase x(t) = 2π∫f:
//! - voltage  v_k = Σ_h √2·V1·g_k·m_h · sin(h·(x + α_k) + φ_h)
//! - current  i_k = Σ_h √2·I1·g_k·m_h · sin(h·(x + α_k − θ) + φ_h)
//!
//! with h = 1 the fundamental (m = 1, φ = 0), θ the current's lag, g_k the
//! imbalance factor. Harmonic phases are relative to their own fundamental, so
//! a load's current shape shifts as a whole when θ changes.

use std::f64::consts::{SQRT_2, TAU};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;

use serde::{Deserialize, Serialize};

use super::disturbance::{self, Disturbance};
use super::modulation::{check_modulations, Modulator, VoltageModulation};
use super::replay::{self, ReplayKey, ReplayTable};
use super::wiring::{ChannelSource, WiringConfig};
use crate::wire::layout::{Measures, Phase, Quantity, MAX_WAVEFORM_RATE};

/// Highest harmonic order accepted (IEC 61557-12 goes to 50; leave headroom
/// for 32 kHz streams).
pub const MAX_HARMONIC_ORDER: u32 = 100;

/// Samples computed side by side in `fill` (see `fill_waveform`).
const BLOCK: usize = 16;

/// Most channels of any layout (`Measures::channels`).
const MAX_CHANNELS: usize = 6;

/// Currents travel in mA on the wire.
const MA_PER_A: f64 = 1000.0;

/// One harmonic component of a voltage or current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Harmonic {
    /// Harmonic order, 2..=[`MAX_HARMONIC_ORDER`].
    pub order: u32,
    /// RMS relative to the fundamental's RMS (0.05 = 5 %).
    pub magnitude: f64,
    /// Phase in degrees, relative to the fundamental of the same signal
    /// (in the harmonic's own time scale: sin(h·x + φ)).
    #[serde(default)]
    pub phase_deg: f64,
}

/// A load change at a point in time; fields left out keep their value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadStep {
    /// Seconds since sample 0; applies from the first sample at or after it.
    pub at_s: f64,
    /// New fundamental current RMS, A.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_rms_a: Option<f64>,
    /// New lag of the current fundamental behind the voltage, degrees.
    /// Beyond ±90° the load exports power.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_angle_deg: Option<f64>,
}

/// What the virtual meter sees on its terminals. Lives in TOML/JSON configs
/// and next to test captures, so every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// RMS of the voltage fundamental, V (harmonics add to the total RMS).
    pub voltage_rms_v: f64,
    /// Fundamental frequency at t = 0, Hz.
    pub frequency_hz: f64,
    /// Slow linear frequency drift, Hz per second.
    pub frequency_drift_hz_per_s: f64,
    /// Amplitude of a slow sinusoidal frequency wander, Hz (0 = off).
    pub frequency_wander_hz: f64,
    /// Period of the frequency wander, s.
    pub frequency_wander_period_s: f64,
    /// RMS of the current fundamental, A.
    pub current_rms_a: f64,
    /// Lag of the current fundamental behind the voltage, degrees
    /// (positive = inductive; beyond ±90° the load exports).
    pub current_angle_deg: f64,
    /// Angle of each phase L1, L2, L3, degrees (positive sequence by default).
    pub phase_angles_deg: [f64; 3],
    /// Per-phase factor on the voltage amplitude (1 = balanced).
    pub voltage_imbalance: [f64; 3],
    /// Per-phase factor on the current amplitude (1 = balanced).
    pub current_imbalance: [f64; 3],
    /// Voltage harmonics; orders must be distinct.
    pub voltage_harmonics: Vec<Harmonic>,
    /// Current harmonics; orders must be distinct.
    pub current_harmonics: Vec<Harmonic>,
    /// Gaussian noise RMS on each voltage sample, V (0 = exact).
    pub voltage_noise_rms_v: f64,
    /// Gaussian noise RMS on each current sample, A (0 = exact).
    pub current_noise_rms_a: f64,
    /// Load changes over time, in any order (ties apply in list order).
    pub load_steps: Vec<LoadStep>,
    /// Voltage dips, swells, interruptions and steps per phase.
    pub disturbances: Vec<Disturbance>,
    /// Seed of the noise; (seed, sample index) fully determine it.
    pub seed: u64,
    /// RMS modulations of the voltage (flicker), see [`VoltageModulation`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub voltage_modulations: Vec<VoltageModulation>,
    /// Installation mistakes: what the meter's inputs are really connected to
    /// (the grid above is what the conductors carry; the truth is what the
    /// meter then measures).
    #[serde(skip_serializing_if = "WiringConfig::is_correct")]
    pub wiring: WiringConfig,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            voltage_rms_v: 230.0,
            frequency_hz: 50.0,
            frequency_drift_hz_per_s: 0.0,
            frequency_wander_hz: 0.0,
            frequency_wander_period_s: 60.0,
            current_rms_a: 10.0,
            current_angle_deg: 0.0,
            phase_angles_deg: [0.0, -120.0, 120.0],
            voltage_imbalance: [1.0; 3],
            current_imbalance: [1.0; 3],
            voltage_harmonics: Vec::new(),
            current_harmonics: Vec::new(),
            voltage_noise_rms_v: 0.0,
            current_noise_rms_a: 0.0,
            load_steps: Vec::new(),
            disturbances: Vec::new(),
            seed: 0,
            voltage_modulations: Vec::new(),
            wiring: WiringConfig::default(),
        }
    }
}

/// Why a signal configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    #[error("sampling rate must be at least 1 Hz")]
    ZeroRate,
    #[error("{field} must be finite and {requirement}, got {}", crate::model::number::compact_number(*.value))]
    BadValue {
        field: &'static str,
        requirement: &'static str,
        value: f64,
    },
    #[error("{signal} harmonic order {order} is out of range (2..={MAX_HARMONIC_ORDER})")]
    BadHarmonicOrder { signal: &'static str, order: u32 },
    #[error("{signal} harmonic order {order} is listed twice")]
    DuplicateHarmonic { signal: &'static str, order: u32 },
    #[error("wiring: {reason}")]
    BadWiring { reason: &'static str },
    #[error("disturbance {index}: {reason}")]
    BadDisturbance { index: usize, reason: &'static str },
}

fn check(
    field: &'static str,
    value: f64,
    requirement: &'static str,
    ok: impl Fn(f64) -> bool,
) -> Result<(), SignalError> {
    if value.is_finite() && ok(value) {
        Ok(())
    } else {
        Err(SignalError::BadValue {
            field,
            requirement,
            value,
        })
    }
}

fn non_negative(field: &'static str, value: f64) -> Result<(), SignalError> {
    check(field, value, ">= 0", |v| v >= 0.0)
}

fn finite(field: &'static str, value: f64) -> Result<(), SignalError> {
    check(field, value, "a number", |_| true)
}

fn check_harmonics(signal: &'static str, list: &[Harmonic]) -> Result<(), SignalError> {
    for (i, h) in list.iter().enumerate() {
        if h.order < 2 || h.order > MAX_HARMONIC_ORDER {
            return Err(SignalError::BadHarmonicOrder {
                signal,
                order: h.order,
            });
        }
        if list[..i].iter().any(|o| o.order == h.order) {
            return Err(SignalError::DuplicateHarmonic {
                signal,
                order: h.order,
            });
        }
        non_negative("harmonic magnitude", h.magnitude)?;
        finite("harmonic phase_deg", h.phase_deg)?;
    }
    Ok(())
}

/// The load-dependent part of the signal at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LoadState {
    current_rms_a: f64,
    angle_deg: f64,
    /// Per-phase factor on the voltage (disturbances).
    voltage_scale: [f64; 3],
}

impl SignalConfig {
    /// Reads a signal file: TOML or JSON by extension, else whichever parses.
    pub fn load(path: &Path) -> anyhow::Result<SignalConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading signal file {}", path.display()))?;
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let config = match ext.as_deref() {
            Some("json") => serde_json::from_str(&text)
                .with_context(|| format!("parsing {} as JSON", path.display()))?,
            Some("toml") => toml::from_str(&text)
                .with_context(|| format!("parsing {} as TOML", path.display()))?,
            _ => match toml::from_str(&text) {
                Ok(config) => config,
                Err(toml_error) => serde_json::from_str(&text).map_err(|json_error| {
                    anyhow::anyhow!(
                        "{} is neither TOML ({toml_error}) nor JSON ({json_error})",
                        path.display()
                    )
                })?,
            },
        };
        Ok(config)
    }

    /// Refuses values that would make the signal or its truth meaningless.
    pub fn validate(&self) -> Result<(), SignalError> {
        non_negative("voltage_rms_v", self.voltage_rms_v)?;
        check("frequency_hz", self.frequency_hz, "> 0", |v| v > 0.0)?;
        finite("frequency_drift_hz_per_s", self.frequency_drift_hz_per_s)?;
        finite("frequency_wander_hz", self.frequency_wander_hz)?;
        finite("frequency_wander_period_s", self.frequency_wander_period_s)?;
        if self.frequency_wander_hz != 0.0 {
            check(
                "frequency_wander_period_s",
                self.frequency_wander_period_s,
                "> 0 when frequency_wander_hz is set",
                |v| v > 0.0,
            )?;
        }
        non_negative("current_rms_a", self.current_rms_a)?;
        finite("current_angle_deg", self.current_angle_deg)?;
        for k in 0..3 {
            finite("phase_angles_deg", self.phase_angles_deg[k])?;
            non_negative("voltage_imbalance", self.voltage_imbalance[k])?;
            non_negative("current_imbalance", self.current_imbalance[k])?;
        }
        check_harmonics("voltage", &self.voltage_harmonics)?;
        check_harmonics("current", &self.current_harmonics)?;
        non_negative("voltage_noise_rms_v", self.voltage_noise_rms_v)?;
        non_negative("current_noise_rms_a", self.current_noise_rms_a)?;
        check_modulations(&self.voltage_modulations)?;
        for step in &self.load_steps {
            non_negative("load step at_s", step.at_s)?;
            if let Some(i) = step.current_rms_a {
                non_negative("load step current_rms_a", i)?;
            }
            if let Some(a) = step.current_angle_deg {
                finite("load step current_angle_deg", a)?;
            }
        }
        self.wiring.validate()?;
        disturbance::validate(&self.disturbances)
    }

    /// Instantaneous frequency at `t_s`, Hz.
    pub fn frequency_at(&self, t_s: f64) -> f64 {
        let mut f = self.frequency_hz + self.frequency_drift_hz_per_s * t_s;
        if self.frequency_wander_hz != 0.0 {
            let (sin, _) = sin_cos_cycles(frac(t_s / self.frequency_wander_period_s));
            f += self.frequency_wander_hz * sin;
        }
        f
    }

    /// Cycles of the fundamental elapsed since t = 0: the exact integral of
    /// [`frequency_at`](Self::frequency_at), so drift never makes phase jumps.
    pub fn cycles_at(&self, t_s: f64) -> f64 {
        self.frequency_hz * t_s + self.modulation_cycles(t_s)
    }

    /// The drift and wander part of [`cycles_at`](Self::cycles_at).
    fn modulation_cycles(&self, t_s: f64) -> f64 {
        let mut c = 0.0;
        if self.frequency_drift_hz_per_s != 0.0 {
            c += 0.5 * self.frequency_drift_hz_per_s * t_s * t_s;
        }
        if self.frequency_wander_hz != 0.0 {
            let period = self.frequency_wander_period_s;
            let (_, cos) = sin_cos_cycles(frac(t_s / period));
            c += self.frequency_wander_hz * period / TAU * (1.0 - cos);
        }
        c
    }

    fn has_modulation(&self) -> bool {
        self.frequency_drift_hz_per_s != 0.0 || self.frequency_wander_hz != 0.0
    }

    /// The load in force at `t_s`: for each field the latest step at or
    /// before `t_s` (ties: the later one in the list), else the base value.
    fn load_at(&self, t_s: f64) -> LoadState {
        let mut current = (f64::NEG_INFINITY, self.current_rms_a);
        let mut angle = (f64::NEG_INFINITY, self.current_angle_deg);
        for step in self.load_steps.iter().filter(|s| s.at_s <= t_s) {
            if let Some(i) = step.current_rms_a {
                if step.at_s >= current.0 {
                    current = (step.at_s, i);
                }
            }
            if let Some(a) = step.current_angle_deg {
                if step.at_s >= angle.0 {
                    angle = (step.at_s, a);
                }
            }
        }
        LoadState {
            current_rms_a: current.1,
            angle_deg: angle.1,
            voltage_scale: disturbance::voltage_scale_at(self, t_s),
        }
    }

    /// Analytic per-phase values at `t_s` (noise ignored). Load steps apply
    /// from their `at_s` on.
    pub fn truth_at(&self, t_s: f64) -> Truth {
        self.truth_with(t_s, self.load_at(t_s))
    }

    fn truth_with(&self, t_s: f64, load: LoadState) -> Truth {
        let sources = self.wiring.sources();
        let phases = sources.map(|source| self.phase_truth(source, load));
        let p_total_w: f64 = phases.iter().map(|p| p.p_w).sum();
        let s_total_va: f64 = phases.iter().map(|p| p.s_va).sum();
        Truth {
            t_s,
            frequency_hz: self.frequency_at(t_s),
            phases,
            p_total_w,
            q1_total_var: phases.iter().map(|p| p.q1_var).sum(),
            s_total_va,
            pf_total: ratio(p_total_w, s_total_va),
        }
    }

    /// What one meter phase measures when its inputs are on `source`: the
    /// voltage of grid phase a at α_a, the current of grid phase b at α_b − θ
    /// (negated when reversed), so order h is displaced by h·(α_a − α_b + θ)
    /// (+ 180° reversed) plus the harmonics' own phases.
    fn phase_truth(&self, source: ChannelSource, load: LoadState) -> PhaseTruth {
        let v1 = source.voltage.map_or(0.0, |a| {
            self.voltage_rms_v * self.voltage_imbalance[a] * load.voltage_scale[a]
        });
        let i1 = source
            .current
            .map_or(0.0, |b| load.current_rms_a * self.current_imbalance[b]);
        let sum_sq = |list: &[Harmonic]| list.iter().map(|h| h.magnitude * h.magnitude).sum();
        let v_h2: f64 = sum_sq(&self.voltage_harmonics);
        let i_h2: f64 = sum_sq(&self.current_harmonics);
        // A missing input has no angle of its own: the other one's stands.
        let offset = match (source.voltage, source.current) {
            (Some(a), Some(b)) => self.phase_angles_deg[a] - self.phase_angles_deg[b],
            _ => 0.0,
        };
        let reversal = if source.reversed { 180.0 } else { 0.0 };
        let theta = load.angle_deg + offset + reversal;
        let (mut p, mut q) = (v1 * i1 * cos_deg(theta), v1 * i1 * sin_deg(theta));
        let q1 = q;
        // Only orders present in both signals carry power.
        for vh in &self.voltage_harmonics {
            if let Some(ih) = self.current_harmonics.iter().find(|c| c.order == vh.order) {
                let vi = v1 * vh.magnitude * i1 * ih.magnitude;
                let delta =
                    f64::from(vh.order) * (load.angle_deg + offset) + reversal + vh.phase_deg
                        - ih.phase_deg;
                p += vi * cos_deg(delta);
                q += vi * sin_deg(delta);
            }
        }
        let v_rms = v1 * (1.0 + v_h2).sqrt();
        let i_rms = i1 * (1.0 + i_h2).sqrt();
        let s = v_rms * i_rms;
        let thd = |amp: f64, h2: f64| if amp > 0.0 { h2.sqrt() * 100.0 } else { 0.0 };
        PhaseTruth {
            v_rms_v: v_rms,
            i_rms_a: i_rms,
            v1_rms_v: v1,
            i1_rms_a: i1,
            angle_deg: normalize_deg(theta),
            p_w: p,
            q1_var: q1,
            q_budeanu_var: q,
            n_var: (s * s - p * p).max(0.0).sqrt(),
            s_va: s,
            pf: ratio(p, s),
            dpf: cos_deg(theta),
            thd_v_pct: thd(v1, v_h2),
            thd_i_pct: thd(i1, i_h2),
        }
    }
}

/// P/S with 0 for a dead phase instead of NaN.
fn ratio(p: f64, s: f64) -> f64 {
    if s > 0.0 {
        p / s
    } else {
        0.0
    }
}

/// Reduce before converting so multiples of 90°/120° stay exact.
fn deg_to_rad(deg: f64) -> f64 {
    deg.rem_euclid(360.0).to_radians()
}

fn cos_deg(deg: f64) -> f64 {
    deg_to_rad(deg).cos()
}

fn sin_deg(deg: f64) -> f64 {
    deg_to_rad(deg).sin()
}

/// Angle in (-180, 180].
fn normalize_deg(deg: f64) -> f64 {
    let a = deg.rem_euclid(360.0);
    if a > 180.0 {
        a - 360.0
    } else {
        a
    }
}

/// Analytic values of one phase (SI units, currents in A).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhaseTruth {
    /// Total RMS voltage (fundamental and harmonics), V.
    pub v_rms_v: f64,
    /// Total RMS current, A.
    pub i_rms_a: f64,
    /// Fundamental voltage RMS, V.
    pub v1_rms_v: f64,
    /// Fundamental current RMS, A.
    pub i1_rms_a: f64,
    /// θ_v1 − θ_i1 in (-180, 180], degrees; positive when the current lags.
    pub angle_deg: f64,
    /// Active power Σ Vh·Ih·cos θh, W.
    pub p_w: f64,
    /// Fundamental reactive power V1·I1·sin θ1 (IEEE 1459), var.
    pub q1_var: f64,
    /// Σ Vh·Ih·sin θh over all orders: what the meter's `p,q` latch sends, var.
    pub q_budeanu_var: f64,
    /// Nonactive power sqrt(S² − P²), VA.
    pub n_var: f64,
    /// Apparent power V_rms·I_rms, VA.
    pub s_va: f64,
    /// P / S (0 when S = 0).
    pub pf: f64,
    /// Displacement power factor cos θ1.
    pub dpf: f64,
    /// Voltage THD, percent of the fundamental.
    pub thd_v_pct: f64,
    /// Current THD, percent of the fundamental (0 with no current).
    pub thd_i_pct: f64,
}

/// Ground truth of the configured signal at one time, noise ignored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Seconds since sample 0.
    pub t_s: f64,
    /// Instantaneous frequency, Hz.
    pub frequency_hz: f64,
    /// L1, L2, L3 (index = [`Phase::index`]), whatever the layout carries.
    pub phases: [PhaseTruth; 3],
    pub p_total_w: f64,
    pub q1_total_var: f64,
    /// Arithmetic sum of the phase S, VA.
    pub s_total_va: f64,
    /// P_total / S_total.
    pub pf_total: f64,
}

impl Truth {
    pub fn phase(&self, phase: Phase) -> &PhaseTruth {
        &self.phases[phase.index()]
    }
}

/// Per-channel constants, fixed for the whole stream.
#[derive(Debug, Clone, Copy)]
struct ChannelPlan {
    /// Phase index, also the noise stream key.
    phase: usize,
    /// Takes the second value of the phase's Gaussian pair (current-like).
    second: bool,
}

/// Everything that is constant between two load steps.
#[derive(Debug, Clone)]
struct Segment {
    /// First sample index of the segment.
    start: u64,
    /// Waveforms: per channel, per order, (sin coefficient, cos coefficient)
    /// in wire units. Latch layouts: empty.
    coeffs: Vec<f64>,
    /// Latch layouts: the value per channel, wire units. Waveforms: empty.
    latch: Vec<f64>,
    /// Noise standard deviation per channel, wire units.
    sigma: Vec<f64>,
    /// The load, for [`SignalGenerator::truth_at_sample`].
    load: LoadState,
}

/// Deterministic sample source for one meter: (config, index) → samples.
#[derive(Debug, Clone)]
pub struct SignalGenerator {
    config: SignalConfig,
    measures: Measures,
    rate: u32,
    rate_f: f64,
    index: u64,
    plans: Vec<ChannelPlan>,
    /// Distinct harmonic orders, ascending, starting with 1.
    orders: Vec<u32>,
    /// Scratch: (cos hx, sin hx) per order for one block of samples; kept
    /// here so `fill` never allocates.
    powers: Vec<([f64; BLOCK], [f64; BLOCK])>,
    segments: Vec<Segment>,
    /// Any sigma > 0: only then is the noise hash computed.
    noisy: bool,
    /// Phases with a noisy channel: only their Gaussian pairs are drawn.
    noise_phases: [bool; 3],
    modulated: bool,
    /// RMS modulation of the voltages, when configured.
    modulator: Option<Modulator>,
    /// Seed run through the mixer once, so seeds 0, 1, 2 are unrelated.
    seed_key: u64,
    /// Samples after which the waveform repeats exactly, when it does within
    /// [`replay::MAX_PERIOD`]: segments are then replayed from a table.
    period: Option<u64>,
    /// The table of the segment last replayed, and that segment's index.
    replaying: Option<(usize, Arc<ReplayTable>)>,
}

impl SignalGenerator {
    /// Checks `config` and precomputes all per-segment coefficients.
    /// `rate` is samples per second (the caller checks firmware limits).
    pub fn new(config: SignalConfig, measures: Measures, rate: u32) -> Result<Self, SignalError> {
        config.validate()?;
        if rate == 0 {
            return Err(SignalError::ZeroRate);
        }
        let rate_f = f64::from(rate);
        let plans: Vec<ChannelPlan> = measures
            .channels()
            .iter()
            .map(|c| ChannelPlan {
                phase: c.phase.index(),
                second: matches!(
                    c.quantity,
                    Quantity::Current | Quantity::ReactivePower | Quantity::CurrentRms
                ),
            })
            .collect();
        let mut orders = vec![1u32];
        orders.extend(config.voltage_harmonics.iter().map(|h| h.order));
        orders.extend(config.current_harmonics.iter().map(|h| h.order));
        orders.sort_unstable();
        orders.dedup();

        let mut segments: Vec<Segment> = Vec::new();
        for (start, load) in segment_loads(&config, rate_f) {
            let seg = build_segment(&config, measures, rate, &orders, start, load);
            match segments.last_mut() {
                Some(last) if last.start == start => *last = seg,
                _ => segments.push(seg),
            }
        }
        let mut noise_phases = [false; 3];
        for seg in &segments {
            for (plan, &sigma) in plans.iter().zip(&seg.sigma) {
                noise_phases[plan.phase] |= sigma > 0.0;
            }
        }
        let noisy = noise_phases.iter().any(|&b| b);
        // Drift and wander make the phase non-periodic; latch values are
        // constant per segment already.
        let period = (!config.has_modulation() && !measures.is_latch())
            .then(|| replay::repeat_period(config.frequency_hz, rate))
            .flatten();
        Ok(SignalGenerator {
            period,
            replaying: None,
            modulated: config.has_modulation(),
            modulator: Modulator::new(&config, measures, rate),
            seed_key: mix64(config.seed ^ 0x6a09_e667_f3bc_c908),
            config,
            measures,
            rate,
            rate_f,
            index: 0,
            plans,
            powers: vec![([0.0; BLOCK], [0.0; BLOCK]); orders.len()],
            orders,
            segments,
            noisy,
            noise_phases,
        })
    }

    pub fn config(&self) -> &SignalConfig {
        &self.config
    }

    pub fn measures(&self) -> Measures {
        self.measures
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Floats per sample.
    pub fn channel_count(&self) -> usize {
        self.plans.len()
    }

    /// Index of the next sample `fill` will write.
    pub fn sample_index(&self) -> u64 {
        self.index
    }

    /// Makes `index` the next sample; values do not depend on history.
    pub fn seek(&mut self, index: u64) {
        self.index = index;
    }

    /// Time of sample `index`, s (how the meter stamps it: n / rate).
    pub fn time_of(&self, index: u64) -> f64 {
        index as f64 / self.rate_f
    }

    /// Analytic truth at `t_s`, noise ignored.
    pub fn truth_at(&self, t_s: f64) -> Truth {
        self.config.truth_at(t_s)
    }

    /// Analytic truth for sample `index`, with exactly the load `fill` used.
    pub fn truth_at_sample(&self, index: u64) -> Truth {
        let seg = &self.segments[self.segment_of(index)];
        self.config.truth_with(self.time_of(index), seg.load)
    }

    /// Writes the next `out.len() / channel_count()` samples, interleaved in
    /// wire order and wire units (currents in mA), and advances. A trailing
    /// partial sample in `out` is left untouched. Returns the samples written.
    pub fn fill(&mut self, out: &mut [f32]) -> usize {
        let nch = self.plans.len();
        let count = out.len() / nch;
        let start = self.index;
        let end = start.saturating_add(count as u64);
        let mut n = start;
        while n < end {
            let seg_idx = self.segment_of(n);
            let seg_end = self
                .segments
                .get(seg_idx + 1)
                .map_or(end, |s| s.start.min(end));
            let range = (n - start) as usize * nch..(seg_end - start) as usize * nch;
            if self.measures.is_latch() {
                self.fill_latch(seg_idx, n, &mut out[range]);
            } else if let Some(period) = self.period {
                self.fill_replayed(seg_idx, period, n, &mut out[range]);
            } else {
                self.fill_waveform(seg_idx, n, &mut out[range]);
            }
            n = seg_end;
        }
        self.index = end;
        count
    }

    /// Hands the next `count` samples to `push` as little-endian f32 views
    /// of the replay tables and advances, when they are replayed as they are
    /// (a periodic waveform with neither modulation nor noise): the bytes of
    /// [`Self::fill`] + `put_f32le`, without copying them. False, and nothing
    /// taken, otherwise.
    pub fn replayed_bytes(&mut self, count: u64, push: &mut dyn FnMut(Bytes)) -> bool {
        let Some(period) = self.period else {
            return false;
        };
        if self.modulator.is_some() || self.noisy {
            return false;
        }
        let bytes_per_sample = self.plans.len() * 4;
        let end = self.index.saturating_add(count);
        let mut n = self.index;
        while n < end {
            let seg_idx = self.segment_of(n);
            let seg_end = self
                .segments
                .get(seg_idx + 1)
                .map_or(end, |s| s.start.min(end));
            let table = self.replay_table(seg_idx, period);
            let entries = table.wire_bytes.len() / bytes_per_sample;
            let mut at = (n % table.period as u64) as usize;
            // Below `count`, which the caller's buffer bounds.
            let mut left = (seg_end - n) as usize;
            while left > 0 {
                let take = left.min(entries - at);
                push(
                    table
                        .wire_bytes
                        .slice(at * bytes_per_sample..(at + take) * bytes_per_sample),
                );
                left -= take;
                at = (at + take) % table.period;
            }
            n = seg_end;
        }
        self.index = end;
        true
    }

    /// Latch values are constant within a segment; only noise varies.
    fn fill_latch(&self, seg_idx: usize, first: u64, out: &mut [f32]) {
        let seg = &self.segments[seg_idx];
        for (n, frame) in (first..).zip(out.chunks_exact_mut(self.plans.len())) {
            let mut values = [0.0f64; MAX_CHANNELS];
            let v = &mut values[..frame.len()];
            v.copy_from_slice(&seg.latch);
            if let Some(m) = &self.modulator {
                m.apply(v, n);
            }
            if self.noisy {
                self.add_noise(v, &seg.sigma, n);
            }
            for (o, &x) in frame.iter_mut().zip(v.iter()) {
                *o = x as f32;
            }
        }
    }

    /// Waveform samples of one segment, `BLOCK` at a time (see [`Self::synthesize`]).
    fn fill_waveform(&mut self, seg_idx: usize, first: u64, out: &mut [f32]) {
        let nch = self.plans.len();
        for (b, block) in out.chunks_mut(BLOCK * nch).enumerate() {
            let base = first + (b * BLOCK) as u64;
            let values = self.synthesize(seg_idx, base, block.len() / nch);
            for (j, frame) in block.chunks_exact_mut(nch).enumerate() {
                let mut v = values[j];
                self.emit(seg_idx, base + j as u64, &mut v[..nch], frame);
            }
        }
    }

    /// Samples of one segment of a periodic signal: entry n mod period of the
    /// segment's table, with modulation and noise applied on top.
    fn fill_replayed(&mut self, seg_idx: usize, period: u64, first: u64, out: &mut [f32]) {
        let table = self.replay_table(seg_idx, period);
        let nch = self.plans.len();
        let period = table.period;
        let mut at = (first % period as u64) as usize;
        if self.modulator.is_none() && !self.noisy {
            let mut rest = out;
            while !rest.is_empty() {
                let take = rest.len().min((period - at) * nch);
                let (head, tail) = rest.split_at_mut(take);
                head.copy_from_slice(&table.wire[at * nch..at * nch + take]);
                rest = tail;
                at = 0;
            }
            return;
        }
        for (n, frame) in (first..).zip(out.chunks_exact_mut(nch)) {
            let mut v = [0.0f64; MAX_CHANNELS];
            v[..nch].copy_from_slice(&table.values[at * nch..(at + 1) * nch]);
            self.emit(seg_idx, n, &mut v[..nch], frame);
            at += 1;
            if at == period {
                at = 0;
            }
        }
    }

    /// The replay table of segment `seg_idx`: the one in hand, a live one of
    /// another generator with the same waveform, or a new one.
    fn replay_table(&mut self, seg_idx: usize, period: u64) -> Arc<ReplayTable> {
        if let Some((idx, table)) = &self.replaying {
            if *idx == seg_idx {
                return table.clone();
            }
        }
        let key = ReplayKey {
            frequency_bits: self.config.frequency_hz.to_bits(),
            rate: self.rate,
            channels: self.plans.len(),
            orders: self.orders.clone(),
            coeff_bits: self.segments[seg_idx]
                .coeffs
                .iter()
                .map(|c| c.to_bits())
                .collect(),
        };
        // period <= MAX_PERIOD, so it fits.
        let period = period as usize;
        let table = replay::shared_table(key, period, |period| {
            let nch = self.plans.len();
            let mut values = Vec::with_capacity(period * nch);
            for base in (0..period).step_by(BLOCK) {
                let block = self.synthesize(seg_idx, base as u64, BLOCK.min(period - base));
                for v in &block[..BLOCK.min(period - base)] {
                    values.extend_from_slice(&v[..nch]);
                }
            }
            values
        });
        self.replaying = Some((seg_idx, table.clone()));
        table
    }

    /// Modulation and noise of sample `n` on `values`, then into `frame` as f32.
    #[inline]
    fn emit(&self, seg_idx: usize, n: u64, values: &mut [f64], frame: &mut [f32]) {
        if let Some(m) = &self.modulator {
            m.apply(values, n);
        }
        if self.noisy {
            self.add_noise(values, &self.segments[seg_idx].sigma, n);
        }
        for (o, &x) in frame.iter_mut().zip(values.iter()) {
            *o = x as f32;
        }
    }

    /// The undisturbed waveform values of samples `base..base + m` (m <= `BLOCK`)
    /// of one segment, per sample per channel: the per-sample chains (phase,
    /// sin/cos, e^{i·h·x} by complex multiplication, the Σ a·sin(hx) + b·cos(hx)
    /// per channel) of neighbouring samples run side by side and vectorize.
    /// Each sample's arithmetic is the same wherever it sits in a block, so
    /// chunking never changes a bit.
    #[allow(clippy::needless_range_loop)] // index form is what vectorizes
    fn synthesize(&mut self, seg_idx: usize, base: u64, m: usize) -> [[f64; MAX_CHANNELS]; BLOCK] {
        let per_channel = 2 * self.orders.len();
        let mut sin1 = [0.0f64; BLOCK];
        let mut cos1 = [0.0f64; BLOCK];
        for j in 0..m {
            (sin1[j], cos1[j]) = sin_cos_cycles(self.fundamental_cycles(base + j as u64));
        }
        let (mut wr, mut wi) = (cos1, sin1);
        let mut p = 1;
        for (slot, &h) in self.powers.iter_mut().zip(&self.orders) {
            while p < h {
                for j in 0..BLOCK {
                    let re = wr[j] * cos1[j] - wi[j] * sin1[j];
                    wi[j] = wr[j] * sin1[j] + wi[j] * cos1[j];
                    wr[j] = re;
                }
                p += 1;
            }
            *slot = (wr, wi);
        }
        let seg = &self.segments[seg_idx];
        let mut values = [[0.0f64; MAX_CHANNELS]; BLOCK];
        for (c, coef) in seg.coeffs.chunks_exact(per_channel).enumerate() {
            let mut acc = [0.0f64; BLOCK];
            for (ab, (re, im)) in coef.chunks_exact(2).zip(&self.powers) {
                for j in 0..BLOCK {
                    acc[j] += ab[0] * im[j] + ab[1] * re[j];
                }
            }
            for j in 0..BLOCK {
                values[j][c] = acc[j];
            }
        }
        values
    }

    /// Adds each channel's seeded Gaussian noise to sample `n`. One pair per
    /// phase: voltage-like and current-like channels of a phase take its two
    /// independent values, so a phase's noise is the same in every layout.
    #[inline]
    fn add_noise(&self, values: &mut [f64], sigma: &[f64], n: u64) {
        let mut pairs = [(0.0, 0.0); 3];
        for (k, pair) in pairs.iter_mut().enumerate() {
            if self.noise_phases[k] {
                *pair = gaussian_pair(self.seed_key, n, k);
            }
        }
        for ((v, plan), &s) in values.iter_mut().zip(&self.plans).zip(sigma) {
            if s != 0.0 {
                let pair = pairs[plan.phase];
                *v += s * if plan.second { pair.1 } else { pair.0 };
            }
        }
    }

    /// Fundamental phase of sample `n` in cycles, in [0, 1). Each part is
    /// reduced on its own so long runs keep full precision.
    #[inline]
    fn fundamental_cycles(&self, n: u64) -> f64 {
        let nf = n as f64;
        let mut c = frac(self.config.frequency_hz * nf / self.rate_f);
        if self.modulated {
            c = frac(c + frac(self.config.modulation_cycles(nf / self.rate_f)));
        }
        c
    }

    fn segment_of(&self, n: u64) -> usize {
        // segments[0].start == 0, so the partition point is at least 1.
        self.segments.partition_point(|s| s.start <= n).max(1) - 1
    }
}

/// The first sample index whose time n / rate is at or after `t_s`, matching
/// `truth_at(n / rate)` exactly.
pub(crate) fn first_index_at_or_after(t_s: f64, rate_f: f64) -> u64 {
    let mut n = (t_s * rate_f).ceil().max(0.0) as u64;
    while n > 0 && ((n - 1) as f64 / rate_f) >= t_s {
        n -= 1;
    }
    while n < u64::MAX && (n as f64 / rate_f) < t_s {
        n += 1;
    }
    n
}

/// (start index, load) per segment, ascending; equal starts: the last wins.
/// A segment starts at each load step and disturbance edge, with the load
/// in force at its first sample.
fn segment_loads(config: &SignalConfig, rate_f: f64) -> Vec<(u64, LoadState)> {
    let steps = config.load_steps.iter().map(|s| s.at_s);
    let mut starts: Vec<u64> = steps
        .chain(disturbance::change_times(&config.disturbances))
        .map(|t| first_index_at_or_after(t, rate_f))
        .collect();
    starts.push(0);
    starts.sort_unstable();
    starts.dedup();
    starts
        .into_iter()
        .map(|n| (n, config.load_at(n as f64 / rate_f)))
        .collect()
}

fn harmonic_of(list: &[Harmonic], order: u32) -> Option<(f64, f64)> {
    if order == 1 {
        return Some((1.0, 0.0));
    }
    list.iter()
        .find(|h| h.order == order)
        .map(|h| (h.magnitude, h.phase_deg))
}

fn build_segment(
    config: &SignalConfig,
    measures: Measures,
    rate: u32,
    orders: &[u32],
    start: u64,
    load: LoadState,
) -> Segment {
    let channels = measures.channels();
    let truth = config.truth_with(0.0, load);
    let sources = config.wiring.sources();
    let mut coeffs = Vec::new();
    let mut latch = Vec::new();
    let mut sigma = Vec::with_capacity(channels.len());
    // A latch value averages one output period of the 32 kHz clock.
    let averaged = f64::from((MAX_WAVEFORM_RATE / rate).max(1)).sqrt();
    let (sv, si) = (config.voltage_noise_rms_v, config.current_noise_rms_a);
    for ch in channels {
        let k = ch.phase.index();
        let pt = &truth.phases[k];
        let source = sources[k];
        let alpha_of = |phase: Option<usize>| config.phase_angles_deg[phase.unwrap_or(k)];
        let sign = if source.reversed { -1.0 } else { 1.0 };
        // Waveform amplitude (peak, wire units), harmonic list, angle shift.
        let wave = match ch.quantity {
            Quantity::Voltage => {
                sigma.push(sv);
                Some((
                    SQRT_2 * pt.v1_rms_v,
                    &config.voltage_harmonics,
                    alpha_of(source.voltage),
                ))
            }
            Quantity::Current => {
                sigma.push(si * MA_PER_A);
                // A reversed clamp negates the whole waveform.
                Some((
                    sign * SQRT_2 * pt.i1_rms_a * MA_PER_A,
                    &config.current_harmonics,
                    alpha_of(source.current) - load.angle_deg,
                ))
            }
            Quantity::ActivePower | Quantity::ReactivePower => {
                let (v, i) = (pt.v_rms_v, pt.i_rms_a);
                sigma.push((v * v * si * si + i * i * sv * sv).sqrt() / averaged);
                latch.push(if ch.quantity == Quantity::ActivePower {
                    pt.p_w
                } else {
                    pt.q_budeanu_var
                });
                None
            }
            Quantity::VoltageRms => {
                sigma.push(sv / averaged);
                latch.push(pt.v_rms_v);
                None
            }
            Quantity::CurrentRms => {
                sigma.push(si * MA_PER_A / averaged);
                latch.push(pt.i_rms_a * MA_PER_A);
                None
            }
        };
        if let Some((peak, list, shift_deg)) = wave {
            for &h in orders {
                let (a, b) = match harmonic_of(list, h) {
                    Some((m, phi)) => {
                        let beta = deg_to_rad(f64::from(h) * shift_deg + phi);
                        let amp = peak * m;
                        (amp * beta.cos(), amp * beta.sin())
                    }
                    None => (0.0, 0.0),
                };
                coeffs.push(a);
                coeffs.push(b);
            }
        }
    }
    Segment {
        start,
        coeffs,
        latch,
        sigma,
        load,
    }
}

/// x − trunc(x) without a libm call (baseline x86-64 has no `roundsd`);
/// beyond 2^52 an f64 has no fraction left.
#[inline]
pub(super) fn frac(x: f64) -> f64 {
    const NO_FRACTION: f64 = (1u64 << 52) as f64;
    if x.abs() < NO_FRACTION {
        let f = x - (x as i64) as f64;
        if f < 0.0 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0
    }
}

/// sin and cos of 2π·u for u in cycles: the quarter-cycle reduction is exact
/// in cycles, then the Taylor series on |r| ≤ π/4 to degree 15/16 (the first
/// left-out term is below 5e-17). Faster than `f64::sin_cos` (no libm call,
/// no range reduction) and independent of the platform's libm.
#[inline]
pub(super) fn sin_cos_cycles(u: f64) -> (f64, f64) {
    // (-1)^k / (2k+1)! and (-1)^(k+1) / (2k+2)!.
    const S1: f64 = -1.0 / 6.0;
    const S2: f64 = 1.0 / 120.0;
    const S3: f64 = -1.0 / 5_040.0;
    const S4: f64 = 1.0 / 362_880.0;
    const S5: f64 = -1.0 / 39_916_800.0;
    const S6: f64 = 1.0 / 6_227_020_800.0;
    const S7: f64 = -1.0 / 1_307_674_368_000.0;
    const C1: f64 = 1.0 / 24.0;
    const C2: f64 = -1.0 / 720.0;
    const C3: f64 = 1.0 / 40_320.0;
    const C4: f64 = -1.0 / 3_628_800.0;
    const C5: f64 = 1.0 / 479_001_600.0;
    const C6: f64 = -1.0 / 87_178_291_200.0;
    const C7: f64 = 1.0 / 20_922_789_888_000.0;
    let u = frac(u);
    let t = 4.0 * u + 0.5;
    let q = t as i64; // u in [0, 1): t >= 0, so this is floor
    let r = TAU * (u - q as f64 * 0.25);
    let z = r * r;
    let sin = r + r * z * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * (S6 + z * S7))))));
    let cos = 1.0 - 0.5 * z
        + z * z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * (C6 + z * C7))))));
    // Quadrant q: (sin, cos), (cos, −sin), (−sin, −cos), (−cos, sin). Bit
    // selects instead of a match: noise draws random quadrants, and the
    // mispredicted branches cost more than the polynomials.
    let q = q as u64;
    let swap = 0u64.wrapping_sub(q & 1);
    let (sb, cb) = (sin.to_bits(), cos.to_bits());
    let a = (sb & !swap) | (cb & swap);
    let b = (cb & !swap) | (sb & swap);
    (
        f64::from_bits(a ^ ((q & 2) << 62)),
        f64::from_bits(b ^ (((q + 1) & 2) << 62)),
    )
}

/// ln(x) for x in (0, 1] without a libm call: exponent from the bits, atanh
/// series on the mantissa folded into [√½, √2] (error < 1e-12, plenty for
/// noise).
#[inline]
fn ln_unit(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let z2 = z * z;
    // Σ z^k / (2k+1) to k = 6, Estrin-style so the terms run in parallel.
    let series = (1.0 + z * (1.0 / 3.0))
        + z2 * ((1.0 / 5.0 + z * (1.0 / 7.0))
            + z2 * ((1.0 / 9.0 + z * (1.0 / 11.0)) + z2 * (1.0 / 13.0)));
    e as f64 * std::f64::consts::LN_2 + 2.0 * s * series
}

/// SplitMix64's finalizer: a cheap bijective 64-bit mixer.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Two independent N(0, 1) values for (seed, sample, phase): counter-based,
/// so any chunking or seek gives the same stream. Box–Muller.
#[inline]
fn gaussian_pair(seed_key: u64, n: u64, phase: usize) -> (f64, f64) {
    const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
    let key = seed_key ^ mix64(n.wrapping_mul(4).wrapping_add(phase as u64));
    let h1 = mix64(key);
    let h2 = mix64(key.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let u1 = (((h1 >> 11) as i64) as f64 + 1.0) * TWO_POW_M53; // (0, 1]: ln is finite
    let u2 = ((h2 >> 11) as i64) as f64 * TWO_POW_M53;
    let r = (-2.0 * ln_unit(u1)).sqrt();
    let (s, c) = sin_cos_cycles(u2);
    (r * c, r * s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::layout::Phase::{L1, L2, L3};

    const RATE: u32 = 8000;

    fn harmonics(list: &[(u32, f64, f64)]) -> Vec<Harmonic> {
        list.iter()
            .map(|&(order, magnitude, phase_deg)| Harmonic {
                order,
                magnitude,
                phase_deg,
            })
            .collect()
    }

    fn generate(config: &SignalConfig, measures: Measures, rate: u32, samples: usize) -> Vec<f32> {
        let mut gen = SignalGenerator::new(config.clone(), measures, rate).unwrap();
        let mut out = vec![0.0f32; samples * measures.channel_count()];
        assert_eq!(gen.fill(&mut out), samples);
        assert_eq!(gen.sample_index(), samples as u64);
        out
    }

    fn column(data: &[f32], nch: usize, c: usize) -> Vec<f64> {
        data.chunks_exact(nch).map(|f| f64::from(f[c])).collect()
    }

    fn rms(x: &[f64]) -> f64 {
        (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
    }

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    /// One second of three-phase samples: each phase's mean v·i and RMS
    /// against the truth at t = 0, P within 1e-4 of S, RMS within 1e-5.
    fn assert_samples_carry_truth(config: &SignalConfig, what: &str) {
        let data = generate(config, Measures::ThreePhase, RATE, RATE as usize);
        let truth = config.truth_at(0.0);
        for (k, t) in truth.phases.iter().enumerate() {
            let v = column(&data, 6, 2 * k);
            let i = column(&data, 6, 2 * k + 1);
            let p = v.iter().zip(&i).map(|(v, i)| v * i / 1000.0).sum::<f64>() / v.len() as f64;
            let what = format!("{what} L{}", k + 1);
            assert!(
                (p - t.p_w).abs() <= 1e-4 * t.s_va,
                "{what}: {p} vs {}",
                t.p_w
            );
            assert!((rms(&v) - t.v_rms_v).abs() <= 1e-5 * t.v_rms_v, "{what}");
            assert!(
                (rms(&i) / 1000.0 - t.i_rms_a).abs() <= 1e-5 * t.i_rms_a,
                "{what}"
            );
        }
    }

    /// Everything switched on: harmonics, drift, wander, noise, steps.
    fn busy_config() -> SignalConfig {
        SignalConfig {
            frequency_drift_hz_per_s: 0.05,
            frequency_wander_hz: 0.2,
            frequency_wander_period_s: 0.7,
            current_angle_deg: 25.0,
            voltage_imbalance: [1.0, 0.98, 1.01],
            current_imbalance: [1.0, 1.2, 0.7],
            voltage_harmonics: harmonics(&[(3, 0.03, 10.0), (5, 0.02, -40.0)]),
            current_harmonics: harmonics(&[(3, 0.3, 0.0), (5, 0.1, 90.0), (7, 0.05, 0.0)]),
            voltage_noise_rms_v: 0.5,
            current_noise_rms_a: 0.01,
            load_steps: vec![
                LoadStep {
                    at_s: 0.3,
                    current_rms_a: Some(25.0),
                    current_angle_deg: None,
                },
                LoadStep {
                    at_s: 0.9,
                    current_rms_a: None,
                    current_angle_deg: Some(150.0),
                },
            ],
            seed: 42,
            ..SignalConfig::default()
        }
    }

    #[test]
    fn chunked_fill_is_bit_identical_to_one_shot() {
        let config = busy_config();
        for measures in [
            Measures::ThreePhase,
            Measures::Phase(L2),
            Measures::RmsLatch,
        ] {
            let rate = if measures.is_latch() { 50 } else { RATE };
            let one_shot = generate(&config, measures, rate, 10_000);
            let mut gen = SignalGenerator::new(config.clone(), measures, rate).unwrap();
            let nch = gen.channel_count();
            let mut chunked = Vec::new();
            let mut buf = vec![0.0f32; 42 * nch];
            while chunked.len() < one_shot.len() {
                let want = (one_shot.len() - chunked.len()).min(buf.len());
                gen.fill(&mut buf[..want]);
                chunked.extend_from_slice(&buf[..want]);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&chunked), bits(&one_shot), "{measures}");

            // Seeking back reproduces the same values too.
            gen.seek(1234);
            let mut tail = vec![0.0f32; 100 * nch];
            gen.fill(&mut tail);
            assert_eq!(bits(&tail), bits(&one_shot[1234 * nch..1334 * nch]));
            assert_eq!(gen.sample_index(), 1334);
        }
    }

    #[test]
    fn every_layout_fits_the_frame_buffer() {
        for m in Measures::ALL {
            assert!(m.channel_count() <= MAX_CHANNELS);
        }
    }

    #[test]
    fn sin_cos_cycles_is_accurate() {
        let mut worst = 0.0f64;
        for i in 0..=200_000u32 {
            let u = f64::from(i) / 200_000.0 - 0.5;
            let (s, c) = sin_cos_cycles(u);
            let (es, ec) = (TAU * u).sin_cos();
            worst = worst.max((s - es).abs()).max((c - ec).abs());
        }
        assert!(worst < 1e-15, "worst {worst:e}");
        assert_eq!(sin_cos_cycles(0.25), (1.0, 0.0));
        assert_eq!(sin_cos_cycles(0.5), (0.0, -1.0));
        assert_eq!(sin_cos_cycles(0.75), (-1.0, 0.0));
        assert_eq!(frac(-0.25), 0.75);
        for i in 1..=100_000u32 {
            let x = f64::from(i) / 100_000.0;
            for x in [x, x * 1e-10, x.powi(7)] {
                let err = (ln_unit(x) - x.ln()).abs() / x.ln().abs().max(1.0);
                assert!(err < 1e-12, "ln {x}: {} vs {}", ln_unit(x), x.ln());
            }
        }
        assert_eq!(ln_unit(1.0), 0.0);
        assert_eq!(frac(3.5), 0.5);
    }

    #[test]
    fn partial_trailing_sample_is_left_alone() {
        let mut gen =
            SignalGenerator::new(SignalConfig::default(), Measures::ThreePhase, RATE).unwrap();
        let mut out = vec![7.0f32; 6 * 3 + 4];
        assert_eq!(gen.fill(&mut out), 3);
        assert_eq!(&out[18..], &[7.0; 4]);
        assert_eq!(gen.sample_index(), 3);
    }

    #[test]
    fn pure_sine_rms_matches_config_and_currents_are_ma() {
        let config = SignalConfig::default();
        let data = generate(&config, Measures::ThreePhase, RATE, RATE as usize);
        for k in 0..3 {
            let v = column(&data, 6, 2 * k);
            let i = column(&data, 6, 2 * k + 1);
            assert!(rel(rms(&v), 230.0) < 1e-5, "V rms {}", rms(&v));
            assert!(rel(rms(&i), 10_000.0) < 1e-5, "I rms {} mA", rms(&i));
            let peak = i.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(rel(peak, 10_000.0 * SQRT_2) < 1e-3, "peak {peak} mA");
        }
        // L1 starts at a positive-going zero crossing; L2 lags by 120°.
        assert_eq!(data[0], 0.0);
        let expected_l2 = (SQRT_2 * 230.0 * (-120f64).to_radians().sin()) as f32;
        assert!((data[2] - expected_l2).abs() < 1e-3);
    }

    #[test]
    fn active_power_from_samples_matches_truth() {
        let base = SignalConfig {
            voltage_imbalance: [1.0, 0.97, 1.02],
            current_imbalance: [1.0, 0.5, 1.5],
            ..SignalConfig::default()
        };
        let with_harmonics = SignalConfig {
            voltage_harmonics: harmonics(&[(3, 0.05, 30.0), (5, 0.04, 0.0), (11, 0.01, 0.0)]),
            current_harmonics: harmonics(&[(3, 0.4, -60.0), (5, 0.2, 45.0), (7, 0.1, 0.0)]),
            ..base.clone()
        };
        for (config, angle) in [
            (&base, 0.0),
            (&base, 30.0),
            (&with_harmonics, 30.0),
            (&with_harmonics, -20.0),
            (&with_harmonics, 135.0), // exporting load
        ] {
            let config = SignalConfig {
                current_angle_deg: angle,
                ..config.clone()
            };
            assert_samples_carry_truth(&config, &format!("angle {angle}"));
            let truth = config.truth_at(0.0);
            if angle > 90.0 {
                assert!(truth.p_total_w < 0.0);
            }
        }
    }

    #[test]
    fn wiring_faults_have_hand_worked_truth_and_samples_agree() {
        use super::super::wiring::WiringConfig;
        let faulty = |wiring: WiringConfig| SignalConfig {
            current_angle_deg: 20.0,
            wiring,
            ..SignalConfig::default()
        };
        let vi = 230.0 * 10.0;
        // (config, per meter phase: (V1, I1, angle), hand-worked).
        let cases = [
            (
                faulty(WiringConfig {
                    reversed_clamps: vec![2],
                    ..WiringConfig::default()
                }),
                [
                    (230.0, 10.0, 20.0),
                    (230.0, 10.0, -160.0),
                    (230.0, 10.0, 20.0),
                ],
            ),
            (
                // Meter L3's clamp on grid L1: V3 at +120°, I1 at −20°.
                faulty(WiringConfig {
                    clamp_phases: vec![1, 2, 1],
                    ..WiringConfig::default()
                }),
                [
                    (230.0, 10.0, 20.0),
                    (230.0, 10.0, 20.0),
                    (230.0, 10.0, 140.0),
                ],
            ),
            (
                faulty(WiringConfig {
                    swapped_phase_order: true,
                    ..WiringConfig::default()
                }),
                [(230.0, 10.0, 20.0); 3],
            ),
            (
                faulty(WiringConfig {
                    missing_voltages: vec![3],
                    empty_clamps: vec![1],
                    ..WiringConfig::default()
                }),
                [(230.0, 0.0, 20.0), (230.0, 10.0, 20.0), (0.0, 10.0, 20.0)],
            ),
        ];
        for (config, expected) in &cases {
            let truth = config.truth_at(0.0);
            for (k, &(v1, i1, angle)) in expected.iter().enumerate() {
                let t = &truth.phases[k];
                let what = format!("{:?} L{}", config.wiring, k + 1);
                assert!((t.v1_rms_v - v1).abs() < 1e-12, "{what}");
                assert!((t.i1_rms_a - i1).abs() < 1e-12, "{what}");
                assert!(
                    (t.angle_deg - angle).abs() < 1e-9,
                    "{what}: {}",
                    t.angle_deg
                );
                let p = v1 * i1 * angle.to_radians().cos();
                assert!((t.p_w - p).abs() < 1e-9 * vi, "{what}: {} vs {p}", t.p_w);
            }
        }
        // Swapped order: meter L2 shows grid L3's voltage, at +120°.
        let swapped = &cases[2].0;
        let data = generate(swapped, Measures::ThreePhase, RATE, 1);
        let expected_l2 = SQRT_2 * 230.0 * 120f64.to_radians().sin();
        assert!(
            (f64::from(data[2]) - expected_l2).abs() < 1e-3,
            "{}",
            data[2]
        );
        // With harmonics the samples still carry the truth's P and RMS.
        for (config, _) in &cases {
            let config = SignalConfig {
                voltage_harmonics: harmonics(&[(3, 0.05, 30.0), (5, 0.04, 0.0)]),
                current_harmonics: harmonics(&[(3, 0.4, -60.0), (5, 0.2, 45.0)]),
                ..config.clone()
            };
            assert_samples_carry_truth(&config, &format!("{:?}", config.wiring));
        }
    }

    #[test]
    fn truth_definitions() {
        let config = SignalConfig {
            current_angle_deg: 30.0,
            voltage_harmonics: harmonics(&[(3, 0.05, 0.0), (5, 0.04, 0.0)]),
            current_harmonics: harmonics(&[(5, 0.3, 0.0)]),
            ..SignalConfig::default()
        };
        let t = config.truth_at(1.5);
        let l1 = t.phase(L1);
        assert!((l1.thd_v_pct - (0.05f64.powi(2) + 0.04f64.powi(2)).sqrt() * 100.0).abs() < 1e-12);
        assert!((l1.thd_i_pct - 30.0).abs() < 1e-12);
        assert!(
            (l1.q1_var - 230.0 * 10.0 * 0.5).abs() < 1e-9,
            "lagging current: Q1 > 0"
        );
        assert!((l1.pf - l1.p_w / l1.s_va).abs() < 1e-15);
        assert!((l1.dpf - 30f64.to_radians().cos()).abs() < 1e-15);
        assert_eq!(l1.angle_deg, 30.0);
        assert!((t.p_total_w - 3.0 * l1.p_w).abs() < 1e-9);
        assert_eq!(t.frequency_hz, 50.0);
        let leading = SignalConfig {
            current_angle_deg: -30.0,
            ..config.clone()
        };
        assert!(leading.truth_at(0.0).phases[2].q1_var < 0.0);
        let json = serde_json::to_string(&t).unwrap();
        // serde_json's default float parser may be off by an ulp.
        let back: Truth = serde_json::from_str(&json).unwrap();
        for (a, b) in back.phases.iter().zip(&t.phases) {
            assert!(rel(a.p_w, b.p_w) < 1e-14 && rel(a.q_budeanu_var, b.q_budeanu_var) < 1e-14);
            assert!(rel(a.thd_v_pct, b.thd_v_pct) < 1e-14 && rel(a.pf, b.pf) < 1e-14);
        }
        assert_eq!(back.t_s, t.t_s);
    }

    #[test]
    fn single_phase_layouts_emit_only_their_phase() {
        let config = busy_config();
        let all = generate(&config, Measures::ThreePhase, RATE, 2000);
        for (measures, k) in [
            (Measures::SinglePhase, 0),
            (Measures::Phase(L1), 0),
            (Measures::Phase(L2), 1),
            (Measures::Phase(L3), 2),
        ] {
            let one = generate(&config, measures, RATE, 2000);
            assert_eq!(one.len(), 2 * 2000);
            for (frame, full) in one.chunks_exact(2).zip(all.chunks_exact(6)) {
                assert_eq!(frame, &full[2 * k..2 * k + 2], "{measures}");
            }
        }
    }

    #[test]
    fn latch_layouts_emit_the_truth() {
        let config = SignalConfig {
            current_angle_deg: 40.0,
            current_imbalance: [1.0, 0.5, 2.0],
            voltage_harmonics: harmonics(&[(3, 0.05, 20.0)]),
            current_harmonics: harmonics(&[(3, 0.3, 0.0)]),
            load_steps: vec![LoadStep {
                at_s: 1.0,
                current_rms_a: Some(3.0),
                current_angle_deg: Some(-170.0),
            }],
            ..SignalConfig::default()
        };
        let pq = generate(&config, Measures::PowerLatch, 50, 100);
        let rms = generate(&config, Measures::RmsLatch, 50, 100);
        for (n, (pq, rms)) in pq.chunks_exact(6).zip(rms.chunks_exact(6)).enumerate() {
            let t = config.truth_at(n as f64 / 50.0);
            for k in 0..3 {
                let pt = &t.phases[k];
                assert_eq!(pq[k], pt.p_w as f32);
                assert_eq!(pq[3 + k], pt.q_budeanu_var as f32);
                assert_eq!(rms[k], pt.v_rms_v as f32);
                assert_eq!(rms[3 + k], (pt.i_rms_a * 1000.0) as f32);
            }
        }
        // Before the step the load imports, after it exports.
        assert!(pq[0] > 0.0);
        assert!(pq[50 * 6] < 0.0);
        assert_eq!(rms[50 * 6 + 3], (3.0 * 1.09f64.sqrt() * 1000.0) as f32);
    }

    #[test]
    fn seeded_noise_is_reproducible_with_the_configured_rms() {
        let noisy = SignalConfig {
            voltage_noise_rms_v: 2.0,
            current_noise_rms_a: 0.05,
            seed: 7,
            ..SignalConfig::default()
        };
        let clean = SignalConfig {
            voltage_noise_rms_v: 0.0,
            current_noise_rms_a: 0.0,
            ..noisy.clone()
        };
        let n = 100_000;
        let a = generate(&noisy, Measures::ThreePhase, RATE, n);
        let b = generate(&noisy, Measures::ThreePhase, RATE, n);
        assert_eq!(a, b);
        let other_seed = generate(
            &SignalConfig {
                seed: 8,
                ..noisy.clone()
            },
            Measures::ThreePhase,
            RATE,
            n,
        );
        assert_ne!(a, other_seed);
        let exact = generate(&clean, Measures::ThreePhase, RATE, n);
        let noise: Vec<f32> = a.iter().zip(&exact).map(|(x, y)| x - y).collect();
        for c in 0..6 {
            let col = column(&noise, 6, c);
            let expected = if c % 2 == 0 { 2.0 } else { 50.0 }; // V, mA
            assert!(rel(rms(&col), expected) < 0.03, "ch {c}: {}", rms(&col));
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            assert!(mean.abs() < 0.02 * expected, "ch {c} mean {mean}");
        }
        // v and i of a phase share one hash but must be uncorrelated.
        let (nv, ni) = (column(&noise, 6, 0), column(&noise, 6, 1));
        let corr = nv.iter().zip(&ni).map(|(a, b)| a * b).sum::<f64>()
            / (nv.len() as f64 * rms(&nv) * rms(&ni));
        assert!(corr.abs() < 0.02, "corr {corr}");

        // Latch noise is much smaller (averaged) but reproducible.
        let latch_a = generate(&noisy, Measures::PowerLatch, 50, 500);
        let latch_b = generate(&noisy, Measures::PowerLatch, 50, 500);
        assert_eq!(latch_a, latch_b);
        let p = column(&latch_a, 6, 0);
        let sd = rms(&p.iter().map(|x| x - 2300.0).collect::<Vec<_>>());
        let expected = (230.0f64.powi(2) * 0.05f64.powi(2) + 100.0 * 4.0).sqrt() / 640f64.sqrt();
        assert!(rel(sd, expected) < 0.15, "latch sd {sd} vs {expected}");
    }

    #[test]
    fn drift_and_wander_are_phase_continuous() {
        let config = SignalConfig {
            frequency_drift_hz_per_s: 0.5,
            frequency_wander_hz: 0.3,
            frequency_wander_period_s: 0.25,
            ..SignalConfig::default()
        };
        let n = 4 * RATE as usize;
        let data = generate(&config, Measures::SinglePhase, RATE, n);
        let v = column(&data, 2, 0);
        // Against the analytic integral, computed independently here.
        for (idx, &x) in v.iter().enumerate().step_by(97) {
            let t = idx as f64 / f64::from(RATE);
            let cycles =
                50.0 * t + 0.25 * t * t + 0.3 * 0.25 / TAU * (1.0 - (TAU * t / 0.25).cos());
            let expected = SQRT_2 * 230.0 * (TAU * cycles).sin();
            assert!(
                (x - expected).abs() < 1e-3,
                "sample {idx}: {x} vs {expected}"
            );
        }
        // No step anywhere: the slope never exceeds the highest frequency's.
        let f_max = 50.0 + 0.5 * 4.0 + 0.3;
        let max_step = SQRT_2 * 230.0 * TAU * f_max / f64::from(RATE) * 1.001;
        assert!(v.windows(2).all(|w| (w[1] - w[0]).abs() <= max_step));
        assert!((config.truth_at(2.0).frequency_hz - 51.0).abs() < 1e-12);
    }

    #[test]
    fn an_hour_in_has_no_accumulated_phase_error() {
        let config = SignalConfig::default();
        let mut gen = SignalGenerator::new(config, Measures::SinglePhase, RATE).unwrap();
        // 1 h, then a quarter cycle later: a zero crossing, then the crest.
        gen.seek(3600 * u64::from(RATE));
        let mut out = [0.0f32; 2 * 41];
        gen.fill(&mut out);
        assert!(out[0].abs() < 1e-6, "{}", out[0]);
        assert!((f64::from(out[2 * 40]) - SQRT_2 * 230.0).abs() < 1e-4);
    }

    #[test]
    fn load_steps_switch_at_the_right_sample() {
        let step_at = |at_s: f64| SignalConfig {
            load_steps: vec![LoadStep {
                at_s,
                current_rms_a: Some(20.0),
                current_angle_deg: Some(60.0),
            }],
            ..SignalConfig::default()
        };
        let before = generate(&SignalConfig::default(), Measures::ThreePhase, RATE, 2000);
        let after = generate(
            &SignalConfig {
                current_rms_a: 20.0,
                current_angle_deg: 60.0,
                ..SignalConfig::default()
            },
            Measures::ThreePhase,
            RATE,
            2000,
        );
        // 0.1 s is exactly sample 800; 0.10001 s falls between 800 and 801.
        for (at_s, first) in [(0.1, 800), (0.10001, 801), (0.0, 0)] {
            let config = step_at(at_s);
            let data = generate(&config, Measures::ThreePhase, RATE, 2000);
            for n in [first.max(1) - 1, first, first + 1, 1999] {
                let expect = if n < first { &before } else { &after };
                assert_eq!(
                    &data[n * 6..n * 6 + 6],
                    &expect[n * 6..n * 6 + 6],
                    "at {at_s}, n {n}"
                );
            }
            let gen = SignalGenerator::new(config.clone(), Measures::ThreePhase, RATE).unwrap();
            assert_eq!(gen.truth_at_sample(first as u64).phases[0].i1_rms_a, 20.0);
            assert_eq!(
                gen.truth_at_sample(first as u64),
                config.truth_at(first as f64 / 8000.0)
            );
            if first > 0 {
                assert_eq!(
                    gen.truth_at_sample(first as u64 - 1).phases[0].i1_rms_a,
                    10.0
                );
            }
        }
    }

    #[test]
    fn steps_in_any_order_and_partial() {
        let config = SignalConfig {
            load_steps: vec![
                LoadStep {
                    at_s: 2.0,
                    current_rms_a: None,
                    current_angle_deg: Some(90.0),
                },
                LoadStep {
                    at_s: 1.0,
                    current_rms_a: Some(5.0),
                    current_angle_deg: Some(10.0),
                },
            ],
            ..SignalConfig::default()
        };
        let load = |t: f64| {
            let p = config.truth_at(t).phases[0];
            (p.i1_rms_a, p.angle_deg)
        };
        assert_eq!(load(0.5), (10.0, 0.0));
        assert_eq!(load(1.5), (5.0, 10.0));
        assert_eq!(load(2.5), (5.0, 90.0));
        let gen = SignalGenerator::new(config, Measures::RmsLatch, 10).unwrap();
        assert_eq!(gen.truth_at_sample(25).phases[0].angle_deg, 90.0);
        assert_eq!(gen.truth_at_sample(15).phases[0].i1_rms_a, 5.0);
    }

    #[test]
    fn config_serde_defaults_and_validation() {
        let empty: SignalConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, SignalConfig::default());
        let partial: SignalConfig = serde_json::from_str(
            r#"{"voltage_rms_v": 120, "frequency_hz": 60,
                "current_harmonics": [{"order": 3, "magnitude": 0.2}],
                "load_steps": [{"at_s": 1.5, "current_angle_deg": 120}]}"#,
        )
        .unwrap();
        assert_eq!(partial.frequency_hz, 60.0);
        assert_eq!(partial.current_harmonics[0].phase_deg, 0.0);
        assert_eq!(partial.load_steps[0].current_rms_a, None);
        assert!(serde_json::from_str::<SignalConfig>(r#"{"voltage_rms": 1}"#).is_err());
        let busy = busy_config();
        let json = serde_json::to_string(&busy).unwrap();
        assert_eq!(serde_json::from_str::<SignalConfig>(&json).unwrap(), busy);

        let bad = |c: SignalConfig| SignalGenerator::new(c, Measures::ThreePhase, RATE).is_err();
        assert!(bad(SignalConfig {
            frequency_hz: 0.0,
            ..SignalConfig::default()
        }));
        assert!(bad(SignalConfig {
            voltage_rms_v: f64::NAN,
            ..SignalConfig::default()
        }));
        assert!(bad(SignalConfig {
            voltage_harmonics: harmonics(&[(1, 0.1, 0.0)]),
            ..SignalConfig::default()
        }));
        assert!(bad(SignalConfig {
            current_harmonics: harmonics(&[(3, 0.1, 0.0), (3, 0.2, 0.0)]),
            ..SignalConfig::default()
        }));
        assert!(bad(SignalConfig {
            frequency_wander_hz: 0.1,
            frequency_wander_period_s: 0.0,
            ..SignalConfig::default()
        }));
        assert_eq!(
            SignalGenerator::new(SignalConfig::default(), Measures::ThreePhase, 0).err(),
            Some(SignalError::ZeroRate)
        );
    }

    /// 50 Hz at 8 kHz repeats every 160 samples, so it is replayed: every
    /// sample against the analytic waveform with libm's sin, at the start,
    /// across a load step and an hour in (|error| <= 1e-4 V, 1e-2 mA; f32
    /// steps there are 3e-5 V and 1e-3 mA).
    #[test]
    fn periodic_signals_replay_the_analytic_waveform() {
        let config = SignalConfig {
            current_angle_deg: 30.0,
            voltage_harmonics: harmonics(&[(5, 0.04, 15.0)]),
            load_steps: vec![LoadStep {
                at_s: 0.5,
                current_rms_a: Some(4.0),
                current_angle_deg: None,
            }],
            ..SignalConfig::default()
        };
        let mut gen = SignalGenerator::new(config.clone(), Measures::ThreePhase, RATE).unwrap();
        assert_eq!(gen.period, Some(160));
        for start in [0u64, 3000, 3600 * u64::from(RATE) + 17] {
            gen.seek(start);
            let mut out = vec![0f32; 6 * 2000];
            gen.fill(&mut out);
            assert!(gen.replaying.is_some());
            for (j, frame) in out.chunks_exact(6).enumerate() {
                let n = start + j as u64;
                // 50·n / 8000 cycles = n / 160, reduced in integers.
                let x = TAU * (n % 160) as f64 / 160.0;
                let current = if n >= 4000 { 4.0 } else { 10.0 };
                for k in 0..3 {
                    let a = config.phase_angles_deg[k].to_radians();
                    let v = SQRT_2
                        * 230.0
                        * ((x + a).sin() + 0.04 * (5.0 * (x + a) + 15f64.to_radians()).sin());
                    let i = SQRT_2 * current * 1000.0 * (x + a - 30f64.to_radians()).sin();
                    let (gv, gi) = (f64::from(frame[2 * k]), f64::from(frame[2 * k + 1]));
                    assert!(
                        (gv - v).abs() <= 1e-4,
                        "sample {n} L{}: {gv} V vs {v}",
                        k + 1
                    );
                    assert!(
                        (gi - i).abs() <= 1e-2,
                        "sample {n} L{}: {gi} mA vs {i}",
                        k + 1
                    );
                }
            }
        }
    }

    /// Replay applies disturbances, wiring faults, modulation and noise as
    /// synthesis does: the same config synthesised sample by sample agrees
    /// to within f32 rounding (the two compute the phase of sample n ≥ 160
    /// with different rounding, 1e-13 apart), and bit for bit in the first period.
    #[test]
    fn replay_agrees_with_synthesis_under_every_disturbance() {
        let config = SignalConfig {
            voltage_modulations: vec![VoltageModulation {
                shape: super::super::modulation::ModulationShape::Sinusoidal,
                frequency_hz: 8.8,
                delta_v_pct: 2.0,
                phases: [true, false, true],
                start_s: 0.1,
                end_s: None,
            }],
            disturbances: vec![Disturbance {
                at_s: 0.4,
                duration_s: Some(0.2),
                phases: vec![2],
                level_pct: Some(40.0),
                level_v: None,
            }],
            wiring: WiringConfig {
                reversed_clamps: vec![3],
                ..WiringConfig::default()
            },
            frequency_drift_hz_per_s: 0.0,
            frequency_wander_hz: 0.0,
            ..busy_config()
        };
        let mut replayed =
            SignalGenerator::new(config.clone(), Measures::ThreePhase, RATE).unwrap();
        let mut synthesized = replayed.clone();
        synthesized.period = None;
        assert_eq!(replayed.period, Some(160));
        let mut a = vec![0f32; 6 * 10_000];
        let mut b = a.clone();
        // Odd chunk sizes: replay wraps its table mid-chunk.
        for (ca, cb) in a.chunks_mut(6 * 97).zip(b.chunks_mut(6 * 97)) {
            replayed.fill(ca);
            synthesized.fill(cb);
        }
        assert!(synthesized.replaying.is_none());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a[..6 * 160]), bits(&b[..6 * 160]));
        for (n, (fa, fb)) in a.chunks_exact(6).zip(b.chunks_exact(6)).enumerate() {
            for (c, (x, y)) in fa.iter().zip(fb).enumerate() {
                let scale = if c % 2 == 0 { 400.0 } else { 60_000.0 };
                assert!(
                    (x - y).abs() <= 1e-6 * scale,
                    "sample {n} channel {c}: {x} vs {y}"
                );
            }
        }
    }

    /// The byte path gives exactly the bytes of `fill` + `put_f32le`, across
    /// load steps and table wraps, and declines what it cannot replay as is.
    #[test]
    fn appended_replay_bytes_are_the_filled_samples() {
        let config = SignalConfig {
            voltage_noise_rms_v: 0.0,
            current_noise_rms_a: 0.0,
            frequency_drift_hz_per_s: 0.0,
            frequency_wander_hz: 0.0,
            ..busy_config()
        };
        let mut bytes_gen =
            SignalGenerator::new(config.clone(), Measures::ThreePhase, RATE).unwrap();
        let mut fill_gen = bytes_gen.clone();
        use bytes::BytesMut;
        let (mut got, mut want) = (BytesMut::new(), BytesMut::new());
        // Runs longer than a table's repeats too, so they wrap.
        for count in [333usize, 5000, 1, 4096, 777].into_iter().cycle().take(30) {
            let mut chunk = vec![0f32; 6 * count];
            assert!(
                bytes_gen.replayed_bytes(count as u64, &mut |part| got.extend_from_slice(&part))
            );
            fill_gen.fill(&mut chunk);
            crate::wire::frame::put_f32le(&mut want, &chunk);
        }
        assert_eq!(bytes_gen.sample_index(), 6 * (333 + 5000 + 1 + 4096 + 777));
        assert_eq!(got, want);
        let mut noisy = SignalGenerator::new(busy_config(), Measures::ThreePhase, RATE).unwrap();
        let mut untouched = BytesMut::new();
        assert!(!noisy.replayed_bytes(10, &mut |part| untouched.extend_from_slice(&part)));
        assert!(untouched.is_empty() && noisy.sample_index() == 0);
    }

    /// Meters that differ only in their seed read one table; their noise
    /// still differs. Drifting signals are not periodic and are synthesised.
    #[test]
    fn meters_with_one_waveform_share_its_table() {
        let noisy = |seed| SignalConfig {
            voltage_noise_rms_v: 0.5,
            seed,
            ..SignalConfig::default()
        };
        let mut a = SignalGenerator::new(noisy(1), Measures::ThreePhase, RATE).unwrap();
        let mut b = SignalGenerator::new(noisy(2), Measures::ThreePhase, RATE).unwrap();
        let (mut xa, mut xb) = (vec![0f32; 600], vec![0f32; 600]);
        a.fill(&mut xa);
        b.fill(&mut xb);
        let table = |g: &SignalGenerator| g.replaying.as_ref().map(|(_, t)| t.clone());
        let (ta, tb) = (table(&a).unwrap(), table(&b).unwrap());
        assert!(Arc::ptr_eq(&ta, &tb));
        assert_ne!(xa, xb);
        let drifting = SignalConfig {
            frequency_drift_hz_per_s: 0.01,
            ..SignalConfig::default()
        };
        let mut c = SignalGenerator::new(drifting, Measures::ThreePhase, RATE).unwrap();
        c.fill(&mut xa);
        assert!(c.period.is_none() && c.replaying.is_none());
    }

    /// Release timing: `cargo test --release --lib meter::signal -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn generation_speed() {
        let config = SignalConfig {
            current_angle_deg: 20.0,
            voltage_harmonics: harmonics(&[(3, 0.03, 0.0), (5, 0.02, 0.0), (7, 0.01, 0.0)]),
            current_harmonics: harmonics(&[(3, 0.3, 0.0), (5, 0.1, 0.0), (7, 0.05, 0.0)]),
            ..SignalConfig::default()
        };
        for (label, config) in [
            ("3 harmonics", config.clone()),
            (
                "3 harmonics + noise",
                SignalConfig {
                    voltage_noise_rms_v: 0.5,
                    current_noise_rms_a: 0.01,
                    ..config.clone()
                },
            ),
            ("pure sine", SignalConfig::default()),
        ] {
            let mut gen = SignalGenerator::new(config, Measures::ThreePhase, RATE).unwrap();
            // Wire-sized chunks (42 samples = 1008 bytes); best of 5 runs of
            // 60 s of signal, as the machine may be shared.
            let mut buf = [0.0f32; 42 * 6];
            let samples = 60 * RATE as usize;
            let mut best = f64::INFINITY;
            let mut checksum = 0.0f32;
            for _ in 0..5 {
                let start = std::time::Instant::now();
                for _ in 0..samples / 42 {
                    gen.fill(&mut buf);
                    checksum += buf[5];
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            let rate = samples as f64 / best;
            println!(
                "{label}: {:.1} M samples/s = {:.0} ns/sample ({:.0}x real time at 8 kHz, 6 ch), checksum {checksum}",
                rate / 1e6,
                1e9 / rate,
                rate / f64::from(RATE)
            );
        }
    }
}
