//! Sinks: where computed energy data leaves meterflow.

pub mod packet;
pub mod parquet;
