//! What the flickermeter adds to records: `Pinst` slots and the flags of
//! flicker values.

use serde::{Deserialize, Serialize};

use super::flag_set::flag_set;

flag_set! {
    /// Reasons to trust a flicker value less (kept apart from window flags).
    pub struct FlickerFlags;
    /// The filters were still settling (after a start, a gap or a return of
    /// the voltage): the value is not a measurement yet.
    SETTLING = 0;
    /// Samples were lost inside the interval.
    GAP = 1;
    /// The interval is not fully covered (stream started or ended inside
    /// it, or a gap); the value is over what was seen.
    INCOMPLETE = 2;
    /// The voltage was absent (below 10 % of nominal) for part of it.
    NO_VOLTAGE = 3;
    /// Non-finite samples were seen (the filters restarted after them).
    INVALID_SAMPLES = 4;
}

/// `Pinst` over one 10 ms slot (clock-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PinstValue {
    /// Start of the slot, ns since the epoch.
    pub time_unix_ns: i64,
    /// Mean `Pinst` over the slot.
    pub mean: f64,
    /// Highest `Pinst` in the slot.
    pub max: f64,
    pub flags: FlickerFlags,
}
