//! One MPPT charge controller data item, as a `tel_mppt` row holds it.

use serde::Serialize;

/// Most `pv` channels and `load` channels a data item may carry.
pub const MAX_PV: usize = 4;
pub const MAX_LOAD: usize = 2;

/// One volts/amps pair with its power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Channel {
    pub volts: f64,
    pub amps: f64,
    /// volts × amps, rounded to 4 decimals.
    pub watts: f64,
}

/// One data item of one MPPT, as a `tel_mppt` row holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct MpptRecord {
    pub mppt_id: String,
    pub pv: Vec<Channel>,
    pub battery: Channel,
    pub load: Vec<Channel>,
    pub status: MpptStatus,
    /// Who sent it: the name configured for the request's API key.
    pub sender: String,
    /// `time_local` in UTC, ns.
    pub time_event_ns: i64,
    /// `time_local`'s offset, `+07:00`.
    pub time_zone: String,
    /// When the request was processed, UTC ns.
    pub time_processing_ns: i64,
}

/// The decoded status, with the dataset's attribute names and values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MpptStatus {
    pub bus_connect: bool,
    pub input: &'static str,
    pub chgfet: &'static str,
    pub chgfet_antirev: &'static str,
    pub fet_antirev: &'static str,
    pub input_current: &'static str,
    pub load: &'static str,
    pub pv_input: &'static str,
    pub charging: &'static str,
    pub system: &'static str,
    pub standby: &'static str,
}
impl Channel {
    pub fn new(volts: f64, amps: f64) -> Self {
        Channel {
            volts,
            amps,
            watts: round4(volts * amps),
        }
    }
}

/// Rounds to 4 decimals, as the dataset stores `watts`.
pub fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
