//! The rows of the meter tables: a device and what the engine computed.

use serde::{Deserialize, Serialize};

use super::{
    Aggregate, DeviceInfo, EnergyCounters, HalfCycleRms, LatchWindow, PinstValue, PqEvent,
    WindowMetrics,
};

/// One window of one device, ready for the `windows` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    pub device: DeviceInfo,
    pub metrics: WindowMetrics,
    /// The device's energy registers right after this window (what
    /// `DeviceEngine::energy` reports then); `None` leaves those columns null.
    pub energy: Option<EnergyCounters>,
}

/// One latch window of one device, ready for the `latch` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatchRow {
    pub device: DeviceInfo,
    pub window: LatchWindow,
    /// The device's energy registers right after this window (what
    /// `DeviceEngine::energy` reports then); `None` leaves those columns null.
    pub energy: Option<EnergyCounters>,
}

/// Which interval an aggregate covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalKind {
    /// 150/180 cycles (15 basic windows, ≈ 3 s), restarting at each 10-min tick.
    Cycles150,
    /// Clock-aligned 10 minutes.
    TenMinutes,
    /// The BetterFleet packet interval.
    Packet,
    /// Clock-aligned 2 hours (the flicker `Plt` interval).
    TwoHours,
}

/// One interval of one device, ready for the `aggregates` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateRow {
    pub device: DeviceInfo,
    pub kind: IntervalKind,
    pub aggregate: Aggregate,
}

/// One dip, swell, interruption or RVC of one device, for the `pq_events` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PqEventRow {
    pub device: DeviceInfo,
    pub event: PqEvent,
    /// The Udin its percentages are of, V.
    pub udin_v: f64,
    /// Whether that Udin was inferred from the meter's first second rather
    /// than given (`[dsp] declared_voltage_v`).
    pub udin_inferred: bool,
}

/// One `Urms(1/2)` value of one device, for the opt-in `half_cycle` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HalfCycleRow {
    pub device: DeviceInfo,
    pub value: HalfCycleRms,
}

/// One 10-ms `Pinst` slot of one voltage channel, for the opt-in `pinst` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinstRow {
    pub device: DeviceInfo,
    /// Phase index, 0 = L1.
    pub phase: u8,
    pub value: PinstValue,
}

/// What kind of event a row records (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventRowKind {
    /// Chunks never arrived (packet numbers jumped).
    Gap,
    /// Bytes that were neither frame nor line were skipped.
    Resync,
    /// A packet number went backwards (not a restart at 0).
    SequenceBackwards,
    /// A chunk of a partial sample was dropped.
    BadDataLength,
    /// An over-long or non-UTF-8 Info line was dropped.
    BadInfoLine,
    /// The stream ended inside a frame or line.
    Truncated,
    Connect,
    Disconnect,
    /// A meter log line at warning or error level, or one reporting lost samples.
    MeterWarning,
    /// Any other meter log line worth keeping.
    MeterLog,
    /// Results of this span were computed but lost (the sink was killed
    /// before they were durable): `time` is where the gap starts.
    LostResults,
    /// Samples outside the meter's physical range, or NaN/inf: the windows
    /// holding them are flagged and left out of the energy registers.
    InvalidSamples,
    /// The wiring checks' finding changed (a fault found, or gone): the
    /// message holds the reason, phase and confidence.
    Wiring,
    /// The meter's Udin or nominal frequency was inferred from its first
    /// second, or could not be (then power quality is off for it).
    Nominal,
}

/// One event of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub device: DeviceInfo,
    /// When it was noticed (or happened, if known), ns since the epoch.
    pub time_unix_ns: i64,
    pub kind: EventRowKind,
    pub lost_chunks: Option<u64>,
    pub lost_samples: Option<u64>,
    /// Bytes skipped or dropped (resyncs, bad lengths, truncation).
    pub bytes: Option<u64>,
    pub message: String,
}

impl IntervalKind {
    /// Value of the `interval` column.
    pub fn as_str(self) -> &'static str {
        match self {
            IntervalKind::Cycles150 => "3s",
            IntervalKind::TenMinutes => "10min",
            IntervalKind::Packet => "packet",
            IntervalKind::TwoHours => "2h",
        }
    }
}

impl EventRowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventRowKind::Gap => "gap",
            EventRowKind::Resync => "resync",
            EventRowKind::SequenceBackwards => "sequence_backwards",
            EventRowKind::BadDataLength => "bad_data_length",
            EventRowKind::BadInfoLine => "bad_info_line",
            EventRowKind::Truncated => "truncated",
            EventRowKind::Connect => "connect",
            EventRowKind::Disconnect => "disconnect",
            EventRowKind::MeterWarning => "meter_warning",
            EventRowKind::MeterLog => "meter_log",
            EventRowKind::LostResults => "lost_results",
            EventRowKind::InvalidSamples => "invalid_samples",
            EventRowKind::Wiring => "wiring",
            EventRowKind::Nominal => "nominal",
        }
    }
}
