//! Low-rate telemetry beside the SmartMeters: rtl_433 JSON lines, MPPT
//! charge-controller datasets, AirLink BLE resources. Every adapter turns
//! its input into [`Reading`]s (and MPPT also into `tel_mppt` records) and
//! hands them on as [`TelemetryBatch`]es; a bad item is rejected, counted and logged,
//! and the stream goes on.

pub mod airlink;
pub mod http;
pub mod lines;
pub mod mppt;
pub mod reading;
pub mod rtl433;
pub mod time;

pub use reading::IngestCounts;

use crate::model::{Reading, TelemetryBatch};

impl TelemetryBatch {
    /// Every reading of the batch.
    pub fn readings(&self) -> Vec<Reading> {
        match self {
            TelemetryBatch::Readings(readings) => readings.clone(),
            TelemetryBatch::Mppt(records) => records.iter().flat_map(mppt::readings).collect(),
        }
    }
}

/// Where adapters send their batches (bounded: a slow sink slows intake).
pub type BatchSender = tokio::sync::mpsc::Sender<TelemetryBatch>;
