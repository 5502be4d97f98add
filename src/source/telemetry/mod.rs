//! Low-rate telemetry beside the SmartMeters: rtl_433 JSON lines, MPPT
//! charge-controller datasets, AirLink BLE resources. Every adapter turns
//! its input into [`Reading`]s (and MPPT also into `tel_mppt` records) and
//! hands them on as [`TelemetryBatch`]es; a bad item is rejected, counted and logged,
//! and the stream goes on.

pub mod airlink;
pub mod component;
pub mod config;
pub mod http;
pub mod inputs;
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

/// A batch on its way into the pipeline. An input that answers its sender
/// (an HTTP endpoint) asks to be told once the batch is kept: in the record
/// log and flushed to disk, so an acknowledged reading survives kill -9.
pub struct Submission {
    pub batch: TelemetryBatch,
    pub kept: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Submission {
    /// A batch whose input does not wait for it (files, stdin, MQTT).
    pub fn new(batch: TelemetryBatch) -> Self {
        Submission { batch, kept: None }
    }
}

/// Where adapters send their batches (bounded: a slow sink slows intake).
pub type BatchSender = tokio::sync::mpsc::Sender<Submission>;

/// Hands `batch` on and waits until the pipeline has kept it; `Err` with the
/// reason when it stopped first (then the sender must not be told "ok").
pub async fn submit_and_wait(
    batches: &BatchSender,
    batch: TelemetryBatch,
) -> Result<(), &'static str> {
    let (kept, was_kept) = tokio::sync::oneshot::channel();
    let submission = Submission {
        batch,
        kept: Some(kept),
    };
    batches
        .send(submission)
        .await
        .map_err(|_| "shutting down")?;
    was_kept
        .await
        .map_err(|_| "not kept: the pipeline failed to store it")
}
