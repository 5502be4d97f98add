//! The one record type between the stages: what sources and the engine
//! produce and what the record log carries to every output.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    AggregateRow, DeviceInfo, EventRow, HalfCycleRow, IntervalReadings, LatchRow, MpptRecord,
    PinstRow, PqEventRow, Reading, SensorInterval, WindowRow,
};
use crate::wire::SampleBlock;

/// Samples of one device for the raw waveform archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawBlock {
    pub device: DeviceInfo,
    pub block: SampleBlock,
}

/// A computed or received result on its way to the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// A basic (10/12-cycle) window of a waveform stream.
    Window(WindowRow),
    /// A window of a latch-mode (`p,q`, `v,i_RMS`) stream.
    Latch(LatchRow),
    /// Windows folded over an interval.
    Aggregate(AggregateRow),
    /// Something that happened to a stream (gap, resync, connect, lost results).
    Event(EventRow),
    /// A dip, swell, interruption or RVC (with `[dsp.pq]`).
    PqEvent(PqEventRow),
    /// A half-cycle RMS value (with `[dsp.pq] keep_half_cycle`).
    HalfCycle(HalfCycleRow),
    /// A flicker `Pinst` slot (with `[dsp.pq.flicker] keep_pinst`).
    Pinst(PinstRow),
    /// Samples for the raw archive (only when it is on).
    Raw(RawBlock),
    /// A device's stream ended: outputs may finish its files now.
    DeviceFinished(Arc<str>),
    /// One meter's packet-interval reading.
    Sensor(SensorInterval),
    /// What a telemetry adapter accepted, in one piece (table rows).
    Telemetry(TelemetryBatch),
    /// A telemetry device's readings of one packet interval.
    Readings(IntervalReadings),
    /// How far a writer node has taken a cluster message into its log
    /// (outputs ignore it; the writer's state folds it).
    Consumed(ConsumedMark),
}

/// A cluster message taken into a writer's record log: in the log itself,
/// so after kill -9 the writer knows exactly which redelivered messages and
/// records it already has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumedMark {
    /// The message's sequence in the JetStream stream.
    pub stream_seq: u64,
    /// The publishing node's record log, and the subject.
    pub origin: String,
    pub subject: String,
    /// The highest of the publishing node's seqs in the message.
    pub origin_seq: u64,
}

impl Record {
    /// The device the record belongs to, when it belongs to one.
    pub fn device(&self) -> Option<&str> {
        match self {
            Record::Window(row) => Some(&row.device.name),
            Record::Latch(row) => Some(&row.device.name),
            Record::Aggregate(row) => Some(&row.device.name),
            Record::Event(row) => Some(&row.device.name),
            Record::PqEvent(row) => Some(&row.device.name),
            Record::HalfCycle(row) => Some(&row.device.name),
            Record::Pinst(row) => Some(&row.device.name),
            Record::Raw(raw) => Some(&raw.device.name),
            Record::DeviceFinished(name) => Some(name),
            Record::Sensor(sensor) => Some(&sensor.meter_name),
            Record::Readings(r) => Some(&r.readings.name),
            Record::Telemetry(_) | Record::Consumed(_) => None,
        }
    }
}
/// What an adapter accepted, in one piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TelemetryBatch {
    Readings(Vec<Reading>),
    /// MPPT records: `tel_mppt` rows, and readings made from them.
    Mppt(Vec<MpptRecord>),
}
