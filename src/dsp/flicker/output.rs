//! What the flickermeter hands out, and why a value deserves less trust.

use serde::{Deserialize, Serialize};

use crate::dsp::flag_set::flag_set;

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

/// A flickermeter result of one voltage channel of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlickerValue {
    /// Phase index, 0 = L1.
    pub phase: u8,
    pub output: FlickerOutput,
}
