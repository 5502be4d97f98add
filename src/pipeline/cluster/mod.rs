//! Cluster mode on NATS JetStream: meter leases for ingest nodes and the
//! writer node that reads the records stream into the outputs.

pub mod lease;
pub mod local;
pub mod writer;
