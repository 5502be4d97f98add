//! Cluster mode's transport on NATS JetStream, shared by the ingest node's
//! publisher (`sink::jetstream`), the writer node's consumer
//! (`source::jetstream`) and the meter leases (`pipeline::cluster`): the
//! `[cluster]` settings, the record subjects, the record batches on the
//! wire, the connections, and the registers a meter's messages leave.

pub mod batch;
pub mod config;
pub mod connect;
pub mod registers;
pub mod subjects;
