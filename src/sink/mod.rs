//! Sinks: where computed energy data leaves meterflow.

pub mod atomic_file;
pub mod jetstream;
pub mod live;
pub mod output;
pub mod packet;
pub mod parquet;
