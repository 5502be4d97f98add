//! How far a writer node has read the cluster's stream, kept in its
//! state snapshots so a restart neither skips nor doubles a message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How far a writer node has read the cluster's stream: the last message
/// taken, and per (publishing log, subject) the highest seq taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamPositions {
    pub stream_seq: u64,
    pub taken: BTreeMap<String, BTreeMap<String, u64>>,
}

impl StreamPositions {
    /// The highest seq of `origin` on `subject` already taken.
    pub fn taken(&self, origin: &str, subject: &str) -> u64 {
        self.taken
            .get(origin)
            .and_then(|s| s.get(subject))
            .copied()
            .unwrap_or(0)
    }
}
