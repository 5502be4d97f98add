//! What the engine computed for one basic window (10/12 cycles, ~200 ms):
//! the rows of the `windows` and `harmonics` tables.

use serde::{Deserialize, Serialize};

use super::flag_set::flag_set;

flag_set! {
    /// Why a window's values deserve less trust (IEC 61000-4-30 flagging).
    pub struct WindowFlags;
    /// Samples were lost inside or right next to the window.
    GAP = 0;
    /// A fixed 200 ms window: the reference voltage has no usable crossings.
    NO_ZERO_CROSSING = 1;
    /// A partial window while synchronisation was lost or (re)acquired.
    RESYNC = 2;
    /// Non-finite samples (NaN, inf), counted as 0; no energy is counted.
    INVALID_SAMPLES = 3;
    /// Cut short by the end of the stream.
    TRUNCATED = 4;
    /// Overlaps a voltage dip, swell or interruption (IEC 61000-4-30 §4.7).
    PQ_EVENT = 5;
}

/// How the harmonic subgroups of [`WindowMetrics`] are formed: the engine's
/// own description, written to output metadata.
pub const HARMONIC_GROUPING: &str = "IEC 61000-4-7 harmonic subgroup (bins N*h-1..N*h+1)";

/// How the interharmonic subgroups of [`WindowMetrics`] are formed.
pub const INTERHARMONIC_GROUPING: &str =
    "IEC 61000-4-7 interharmonic centred subgroup h = 0..H-1 (bins N*h+2..N*h+N-2)";

/// Metrics of one phase in one window, SI units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseMetrics {
    pub v_rms_v: f64,
    pub i_rms_a: f64,
    /// Active power mean(v·i), W.
    pub p_w: f64,
    /// Apparent power V·I, VA.
    pub s_va: f64,
    /// Nonactive power sqrt(S² − P²), var (IEEE 1459 N; not Q).
    pub n_var: f64,
    /// Fundamental RMS voltage from the DFT bin, V.
    pub v1_rms_v: f64,
    /// Fundamental RMS current from the DFT bin, A.
    pub i1_rms_a: f64,
    /// θ_v1 − θ_i1 in (−180, 180], degrees; positive when the current lags.
    pub angle_deg: f64,
    /// Angle of the voltage fundamental against the window's reference (the
    /// first phase with a voltage), in (−180, 180], degrees: L2 sits near
    /// −120° in positive sequence. For wiring checks.
    #[serde(default)]
    pub v1_angle_deg: f64,
    /// Angle of the current fundamental against the same reference, degrees.
    #[serde(default)]
    pub i1_angle_deg: f64,
    /// Fundamental reactive power V1·I1·sin θ, var; positive when the current lags.
    pub q1_var: f64,
    /// P / S, signed with P; `None` when S = 0.
    pub pf: Option<f64>,
    /// cos θ; `None` without a fundamental voltage or current.
    pub dpf: Option<f64>,
    pub thd_v_pct: Option<f64>,
    pub thd_i_pct: Option<f64>,
    /// P × measured duration, Wh (0 when the window holds invalid samples).
    pub energy_wh: f64,
}

/// Voltage unbalance from the fundamental phasors (symmetrical components).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Unbalance {
    /// |V_negative| / |V_positive|.
    pub u2: f64,
    /// |V_zero| / |V_positive|.
    pub u0: f64,
}

/// Everything computed for one basic window of one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowMetrics {
    /// Window start, ns since the epoch (`startTs + position / rate`).
    pub start_unix_ns: i64,
    /// Window end (exclusive), ns since the epoch.
    pub end_unix_ns: i64,
    /// Index of the first sample the window owns (since `startTs`).
    pub first_sample: u64,
    /// Samples the window owns (its DFT length).
    pub sample_count: u64,
    /// Measured duration, s (gaps excluded by construction).
    pub duration_s: f64,
    /// Whole cycles of the fundamental (0 for fixed windows).
    pub cycles: u32,
    /// Cycles / duration of those cycles, Hz.
    pub frequency_hz: Option<f64>,
    pub flags: WindowFlags,
    /// L1, L2, L3; `None` for phases the layout does not carry.
    pub phases: [Option<PhaseMetrics>; 3],
    /// RMS of v1−v2, v2−v3, v3−v1, V (three-phase layouts only).
    pub line_to_line_v: [Option<f64>; 3],
    /// Σ P over the phases present, W.
    pub p_total_w: f64,
    /// Σ Q1, var.
    pub q1_total_var: f64,
    /// Arithmetic Σ S, VA.
    pub s_total_va: f64,
    /// P_total / S_total.
    pub pf_total: Option<f64>,
    /// Σ phase energy of the window, Wh.
    pub energy_total_wh: f64,
    /// Three-phase layouts only.
    pub unbalance: Option<Unbalance>,
    /// H actually used for THD (orders at/above Nyquist left out; 0 = no spectrum).
    pub harmonic_orders: u32,
    /// G_1..G_H per channel in wire order, when `keep_harmonic_subgroups` is on.
    pub harmonic_subgroups: Vec<Vec<f64>>,
    /// Interharmonic centred subgroups C_isg,0..C_isg,H−1 (index h: between
    /// harmonics h and h + 1) per channel in wire order, with the harmonic
    /// subgroups; a channel's list is empty below 4 cycles per window.
    #[serde(default)]
    pub interharmonic_subgroups: Vec<Vec<f64>>,
}
