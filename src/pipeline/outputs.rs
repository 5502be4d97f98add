//! What a run's outputs report when they close (the topology builds and
//! runs them: see `topology`).

pub use crate::sink::output::OutputSummary as OutputsSummary;
pub use crate::sink::packet::PacketCollector;
