//! What the engine computed for one window of a latch-mode stream (`p,q`,
//! `v,i_RMS`): the rows of the `latch` table.

use serde::{Deserialize, Serialize};

use super::window::WindowFlags;

/// What a latch stream says about one phase; quantities it does not carry are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatchPhase {
    /// Mean active power, W.
    pub p_w: Option<f64>,
    /// Mean reactive power as the meter defines it, var.
    pub q_var: Option<f64>,
    /// RMS of the RMS voltages, V.
    pub v_rms_v: Option<f64>,
    /// RMS of the RMS currents, A.
    pub i_rms_a: Option<f64>,
    /// P × duration, Wh (`p,q` only).
    pub energy_wh: Option<f64>,
}

/// One fixed window of a latch stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatchWindow {
    pub start_unix_ns: i64,
    pub end_unix_ns: i64,
    pub first_sample: u64,
    pub sample_count: u64,
    pub duration_s: f64,
    pub flags: WindowFlags,
    pub phases: [Option<LatchPhase>; 3],
}
