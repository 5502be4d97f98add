//! What a telemetry adapter took in and turned away. The normalised reading
//! it produces is [`crate::model::Reading`].

use std::sync::atomic::{AtomicU64, Ordering};

/// What an adapter took in and turned away. Shared by the adapter's tasks;
/// every rejection is logged with its reason, the stream goes on.
#[derive(Debug, Default)]
pub struct IngestCounts {
    accepted: AtomicU64,
    rejected: AtomicU64,
    readings: AtomicU64,
}

impl IngestCounts {
    /// An item (line, body, CBOR item) accepted with the readings it gave.
    pub fn accept(&self, readings: usize) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.readings.fetch_add(readings as u64, Ordering::Relaxed);
    }

    /// An item rejected: counted and logged, never fatal.
    pub fn reject(&self, source: &str, where_: &str, reason: &dyn std::fmt::Display) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%source, at = %where_, "rejected: {reason}");
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    pub fn readings(&self) -> u64 {
        self.readings.load(Ordering::Relaxed)
    }
}
