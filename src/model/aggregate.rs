//! Windows folded over one interval (150/180 cycles, 10 min, the packet
//! interval, 2 h): the rows of the `aggregates` table.

use serde::{Deserialize, Serialize};

use super::energy::EnergyFlow;
use super::flicker::FlickerFlags;

/// Mean (or RMS) with extremes over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean, or root mean square for RMS quantities.
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

/// One phase over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseAggregate {
    pub v_rms_v: Stat,
    pub i_rms_a: Stat,
    pub p_w: Stat,
    pub q1_var: Stat,
    pub s_va: Stat,
    /// ΣP / ΣS.
    pub pf: Option<f64>,
    /// RMS of the window THDs, percent.
    pub thd_v_pct: Option<f64>,
    pub thd_i_pct: Option<f64>,
    /// Underdeviation of the voltage, percent of Udin; `None` without Udin.
    pub v_under_pct: Option<f64>,
    /// Overdeviation of the voltage, percent of Udin; `None` without Udin.
    pub v_over_pct: Option<f64>,
    pub energy: EnergyFlow,
}

/// Windows folded over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Start of the interval (clock-aligned ones: the tick), ns since the epoch.
    pub start_unix_ns: i64,
    /// End of the interval, ns since the epoch.
    pub end_unix_ns: i64,
    pub windows: u32,
    /// Windows carrying any flag.
    pub flagged_windows: u32,
    /// Windows flagged for overlapping a dip, swell or interruption.
    pub pq_flagged_windows: u32,
    pub phases: [Option<PhaseAggregate>; 3],
    pub p_total_w: Stat,
    pub q1_total_var: Stat,
    pub s_total_va: Stat,
    pub pf_total: Option<f64>,
    pub energy_total: EnergyFlow,
    /// Mean of the window frequencies, with extremes.
    pub frequency_hz: Option<Stat>,
    /// Flicker `Pst` per phase (10-min intervals, with `[dsp.pq.flicker]`).
    pub pst: [Option<f64>; 3],
    /// Flicker `Plt` per phase (2-h intervals, with `[dsp.pq.flicker]`).
    pub plt: [Option<f64>; 3],
    /// Why `pst` / `plt` deserve less trust (settling, gaps, incomplete).
    pub flicker_flags: FlickerFlags,
    /// The IEC 61000-4-15 lamp `pst` / `plt` were weighted with, V (120 or
    /// 230); `None` without them.
    #[serde(default)]
    pub flicker_lamp_v: Option<u16>,
}
