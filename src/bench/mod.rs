//! The benchmark harnesses behind `meterflow bench`: batch speed over a
//! generated capture, the stream sink under real-time virtual meters, and
//! a local cluster with its own nats-server. Each prints what it measured.

pub mod batch;
pub mod cluster;
pub mod nats;
pub mod proc_stats;
pub mod sink;
