//! The ingest node's output: records published to the cluster's JetStream
//! stream (the transport itself is `crate::nats`).

pub mod output;
