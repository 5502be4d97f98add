//! Wiring sources to sinks: configuration, the running topology, shutdown.

pub mod demo;
