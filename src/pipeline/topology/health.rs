//! Health of every output, as `/healthz` and `/metrics` report it: one log
//! line when an output starts failing and one when it recovers, never one
//! per record or per device.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::source::component::SourceHealth;

/// One output's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputHealth {
    /// Why it is failing, while it is.
    pub failing: Option<String>,
    /// Failures so far (each followed by a backoff and a retry).
    pub errors: u64,
    /// Why it is degraded while still accepting records.
    pub degraded: Option<String>,
    /// Record seq through which it has made everything durable.
    pub durable_seq: u64,
}

/// The health of every output of a topology.
#[derive(Debug, Default)]
pub struct HealthBoard {
    outputs: Mutex<BTreeMap<&'static str, OutputHealth>>,
}

impl HealthBoard {
    fn with<T>(&self, name: &'static str, f: impl FnOnce(&mut OutputHealth) -> T) -> T {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        f(outputs.entry(name).or_default())
    }

    pub fn register(&self, name: &'static str) {
        self.with(name, |_| ());
    }

    /// Counts a failure; logs only when the output was healthy before.
    pub fn fail(&self, name: &'static str, error: &anyhow::Error) {
        let reason = format!("{error:#}");
        let started = self.with(name, |h| {
            h.errors += 1;
            let started = h.failing.is_none();
            h.failing = Some(reason.clone());
            started
        });
        if started {
            tracing::error!(
                output = name,
                "output failing, its records wait in the record log: {reason}"
            );
        }
    }

    /// Marks the output healthy; logs only when it was failing.
    pub fn ok(&self, name: &'static str, durable_seq: u64, degraded: Option<String>) {
        let recovered = self.with(name, |h| {
            h.durable_seq = h.durable_seq.max(durable_seq);
            h.degraded = degraded;
            h.failing.take().is_some()
        });
        if recovered {
            tracing::warn!(output = name, "output recovered");
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, OutputHealth> {
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `output: reason` of every failing output.
    pub fn failures(&self) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter_map(|(name, h)| h.failing.map(|reason| format!("output {name}: {reason}")))
            .collect()
    }
}

impl SourceHealth for HealthBoard {
    fn register(&self, name: &'static str) {
        HealthBoard::register(self, name)
    }

    fn fail(&self, name: &'static str, error: &anyhow::Error) {
        HealthBoard::fail(self, name, error)
    }

    fn ok(&self, name: &'static str, position: u64, degraded: Option<String>) {
        HealthBoard::ok(self, name, position, degraded)
    }
}
