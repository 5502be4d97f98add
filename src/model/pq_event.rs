//! What the power-quality detector hands out: events and, optionally, every
//! half-cycle RMS value.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use serde::{Deserialize, Serialize};

use super::flag_set::flag_set;

/// The four event kinds of IEC 61000-4-30 §5.4 and §5.11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PqEventKind {
    Dip,
    Swell,
    Interruption,
    Rvc,
}

impl PqEventKind {
    /// Lower-case name, as written to tables.
    pub fn name(self) -> &'static str {
        match self {
            PqEventKind::Dip => "dip",
            PqEventKind::Swell => "swell",
            PqEventKind::Interruption => "interruption",
            PqEventKind::Rvc => "rvc",
        }
    }
}

/// Phases L1..L3 as bits 0..2 (bit k = phase k + 1).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PhaseSet(u8);

impl PhaseSet {
    pub const NONE: PhaseSet = PhaseSet(0);

    /// The set holding only phase index `k` (0 = L1).
    pub fn of(k: usize) -> PhaseSet {
        PhaseSet(if k < 3 { 1 << k } else { 0 })
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> PhaseSet {
        PhaseSet(bits & 0b111)
    }

    pub fn contains(self, k: usize) -> bool {
        k < 3 && self.0 & (1 << k) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Phase indices in the set, ascending.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..3).filter(move |&k| self.contains(k))
    }

    /// "L1,L3" style list, as written to tables (static, for column getters).
    pub fn label(self) -> &'static str {
        const LABELS: [&str; 8] = ["", "L1", "L2", "L1,L2", "L3", "L1,L3", "L2,L3", "L1,L2,L3"];
        LABELS[usize::from(self.0 & 0b111)]
    }

    /// "L1,L3" style list, as written to tables.
    pub fn names(self) -> String {
        self.indices()
            .map(|k| format!("L{}", k + 1))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl BitOr for PhaseSet {
    type Output = PhaseSet;
    fn bitor(self, rhs: PhaseSet) -> PhaseSet {
        PhaseSet(self.0 | rhs.0)
    }
}

impl BitOrAssign for PhaseSet {
    fn bitor_assign(&mut self, rhs: PhaseSet) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for PhaseSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhaseSet({})", self.names())
    }
}

flag_set! {
    /// Why an event's times or values are less certain than usual.
    pub struct PqEventFlags;
    /// Already in progress at the first value after the stream start or a
    /// gap: the true start is earlier.
    OPEN_AT_START = 0;
    /// Still open when the stream ended (end of data or disconnect): the
    /// true end is later.
    OPEN_AT_END = 1;
    /// Still open when samples were lost: closed at the last sample before
    /// the gap.
    GAP = 2;
    /// Some of its half-cycle values used extrapolated cycle timing (the
    /// reference had no zero crossings, e.g. during an interruption).
    EXTRAPOLATED_TIMING = 3;
}

/// One dip, swell, interruption or rapid voltage change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PqEvent {
    pub kind: PqEventKind,
    /// Start of the half-cycle value that crossed the threshold, ns since the epoch.
    pub start_unix_ns: i64,
    /// Start of the half-cycle value that ended it (or the last sample's end
    /// when closed by a gap or the stream end), ns since the epoch.
    pub end_unix_ns: i64,
    pub duration_s: f64,
    /// Dip and interruption: residual voltage (lowest `Urms(1/2)` on any
    /// channel); swell: highest; RVC: the value farthest from the mean before. V.
    pub extreme_v: f64,
    pub extreme_pct_udin: f64,
    /// RVC only: largest |`Urms(1/2)` − mean before|, V.
    pub delta_u_max_v: Option<f64>,
    pub delta_u_max_pct_udin: Option<f64>,
    /// RVC only: mean after − mean before (signed), V; `None` when the
    /// stream ended or broke before a new steady state.
    pub delta_u_ss_v: Option<f64>,
    pub delta_u_ss_pct_udin: Option<f64>,
    /// Channels that crossed the threshold (RVC: that departed from their mean).
    pub phases: PhaseSet,
    pub flags: PqEventFlags,
}

/// One `Urms(1/2)` value: RMS over one cycle, refreshed every half cycle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HalfCycleRms {
    /// Start of the cycle (a zero crossing of the reference, or half way
    /// between two), ns since the epoch.
    pub start_unix_ns: i64,
    pub end_unix_ns: i64,
    /// Per phase L1..L3, V; `None` for a phase without voltage (or only
    /// non-finite samples).
    pub v_rms_v: [Option<f64>; 3],
    /// The cycle's bounds were extrapolated (no crossings on the reference).
    pub extrapolated: bool,
}
