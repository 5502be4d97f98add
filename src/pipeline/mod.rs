//! Wiring sources to sinks: pipeline files, the per-device path through the
//! engine, the shared outputs, and the ways a pipeline runs (batch over
//! files, live from meters, telemetry adapters, and the long-running
//! stream sink).

pub mod backoff;
pub mod batch;
pub mod batch_request;
pub mod bounds;
pub mod cluster;
pub mod config;
pub mod device;
pub mod input_claims;
pub mod inspect;
pub mod limits;
pub mod live;
pub mod out_dir;
pub mod outputs;
pub mod prometheus;
pub mod record_log;
pub mod reference;
pub mod runner;
pub mod server;
pub mod sources;
pub mod telemetry;
pub mod topology;

pub use config::PipelineConfig;
