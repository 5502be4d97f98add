//! What /metrics and /healthz read about the log: counters, health, and a
//! point-in-time summary.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Counters bumped outside the append lock.
#[derive(Debug, Default)]
pub struct Counters {
    pub flushes: AtomicU64,
    pub flush_errors: AtomicU64,
    pub overflows: AtomicU64,
}

/// Whether the last flush worked, and why not.
#[derive(Debug)]
pub struct Health {
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }
}

impl Health {
    pub fn ok(&self) {
        if !self.healthy.swap(true, Relaxed) {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    pub fn fail(&self, error: &anyhow::Error) {
        self.healthy.store(false, Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{error:#}"));
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One consumer's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    pub name: String,
    pub acked_seq: u64,
    /// Entries appended after its ack.
    pub lag: u64,
}

/// The log at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLogStats {
    /// Bytes of all segment files.
    pub bytes_on_disk: u64,
    pub segments: usize,
    /// Entries and payload bytes appended since open.
    pub appended_entries: u64,
    pub appended_bytes: u64,
    /// Appended bytes (with entry headers) not yet durable.
    pub buffered_bytes: u64,
    /// Flushes that wrote something, and those that failed.
    pub flushes: u64,
    pub flush_errors: u64,
    /// Appends refused with `AppendError::Full`.
    pub overflows: u64,
    /// Every entry up to this seq is on disk and fsynced.
    pub durable_seq: u64,
    /// The seq the last append got (0 before any).
    pub last_seq: u64,
    /// Seq of the oldest entry still on disk.
    pub first_retained_seq: Option<u64>,
    pub snapshot_seq: u64,
    pub healthy: bool,
    pub consumers: Vec<ConsumerStats>,
}
