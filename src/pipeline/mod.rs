//! Wiring sources to sinks: pipeline files, the per-device path through the
//! engine, the shared outputs, and the ways a pipeline runs (batch over
//! files, live from meters, telemetry adapters, and the long-running
//! stream sink).

pub mod batch;
pub mod batch_request;
pub mod cluster;
pub mod config;
pub mod device;
pub mod inspect;
pub mod limits;
pub mod live;
pub mod out_dir;
pub mod outputs;
pub mod prometheus;
pub mod record_log;
pub mod reference;
pub mod runner;
pub mod service;
pub mod sources;
pub mod state;
pub mod telemetry;
pub mod topology;
pub mod workers;

pub use config::PipelineConfig;
