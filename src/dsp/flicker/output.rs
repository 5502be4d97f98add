//! What the flickermeter hands out.

use serde::{Deserialize, Serialize};

use super::Lamp;
use crate::model::flicker::{FlickerFlags, PinstValue};

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
    /// The lamp the value was weighted with.
    pub lamp: Lamp,
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
