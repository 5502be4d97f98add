//! A meter's energy registers as its published records leave them, and
//! the node whose records they are: what a node taking the meter over
//! carries on from.

use serde::{Deserialize, Serialize};

use super::{EnergyCounters, Record};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterRegisters {
    /// The node whose records these are.
    pub node: String,
    pub energy: EnergyCounters,
    /// Meter time up to which windows were published, ns.
    pub covered_until_ns: i64,
}

impl MeterRegisters {
    /// The registers a window or latch record leaves behind.
    pub fn after(record: &Record, node: &str) -> Option<Self> {
        let (end_ns, energy) = match record {
            Record::Window(row) => (row.metrics.end_unix_ns, &row.energy),
            Record::Latch(row) => (row.window.end_unix_ns, &row.energy),
            _ => return None,
        };
        Some(MeterRegisters {
            node: node.to_string(),
            energy: energy.as_ref()?.clone(),
            covered_until_ns: end_ns,
        })
    }

    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| anyhow::anyhow!("encoding meter registers: {e}"))
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| anyhow::anyhow!("meter registers: {e}"))
    }
}
