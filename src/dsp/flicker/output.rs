//! What the flickermeter hands out, and why a value deserves less trust.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use serde::{Deserialize, Serialize};

/// Reasons to trust a flicker value less (kept apart from window flags).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlickerFlags(u8);

impl FlickerFlags {
    pub const NONE: FlickerFlags = FlickerFlags(0);
    /// The filters were still settling (after a start, a gap or a return of
    /// the voltage): the value is not a measurement yet.
    pub const SETTLING: FlickerFlags = FlickerFlags(1);
    /// Samples were lost inside the interval.
    pub const GAP: FlickerFlags = FlickerFlags(1 << 1);
    /// The interval is not fully covered (stream started or ended inside
    /// it, or a gap); the value is over what was seen.
    pub const INCOMPLETE: FlickerFlags = FlickerFlags(1 << 2);
    /// The voltage was absent (below 10 % of nominal) for part of it.
    pub const NO_VOLTAGE: FlickerFlags = FlickerFlags(1 << 3);
    /// Non-finite samples were seen (the filters restarted after them).
    pub const INVALID_SAMPLES: FlickerFlags = FlickerFlags(1 << 4);

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Self {
        FlickerFlags(bits)
    }

    pub fn contains(self, other: FlickerFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_clean(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for FlickerFlags {
    type Output = FlickerFlags;
    fn bitor(self, rhs: FlickerFlags) -> FlickerFlags {
        FlickerFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for FlickerFlags {
    fn bitor_assign(&mut self, rhs: FlickerFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for FlickerFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 5] = [
            "SETTLING",
            "GAP",
            "INCOMPLETE",
            "NO_VOLTAGE",
            "INVALID_SAMPLES",
        ];
        let names: Vec<&str> = NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect();
        write!(f, "FlickerFlags({})", names.join("|"))
    }
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

/// A severity over a clock-aligned interval: `Pst` (10 min) or `Plt` (2 h).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeverityValue {
    /// Interval start (a 10-min or 2-h tick), ns since the epoch.
    pub start_unix_ns: i64,
    /// Interval end, ns since the epoch.
    pub end_unix_ns: i64,
    pub value: f64,
    /// `Pst`: `Pinst` values classified; `Plt`: `Pst` values combined.
    pub count: u32,
    pub flags: FlickerFlags,
}

/// One result of [`FlickerMeter`](super::FlickerMeter).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FlickerOutput {
    /// Only with `keep_pinst`.
    Pinst(PinstValue),
    Pst(SeverityValue),
    Plt(SeverityValue),
}
