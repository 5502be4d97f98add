//! Cluster mode's side of the outputs: the `[cluster]` settings, the record
//! subjects and message bodies, and the publisher an ingest node runs.

pub mod batch;
pub mod config;
pub mod connect;
pub mod output;
pub mod registers;
pub mod subjects;

pub use batch::RecordBatch;
pub use config::ClusterConfig;
pub use output::{JetStreamOutput, PublishCounters};
pub use registers::MeterRegisters;
