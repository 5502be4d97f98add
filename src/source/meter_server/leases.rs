//! Cluster mode: a meter streams to one node at a time. The sink asks for
//! a meter's lease before it takes the stream and gives it back after the
//! meter's last records are published; the lease store itself (JetStream
//! KV) is the runner's (`pipeline::cluster::lease`).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::model::meter_registers::MeterRegisters;
use crate::model::metric::Metric;

/// Why a meter could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("node {0} holds the lease of this meter")]
    Held(String),
    #[error("the lease store is unreachable: {0:#}")]
    Unreachable(anyhow::Error),
}

/// The meter leases of this node.
pub trait MeterLeases: Send + Sync {
    /// This node's name in the cluster.
    fn node(&self) -> &str;

    /// Takes `meter`'s lease (or confirms it is already this node's) and
    /// returns the registers its published records left.
    fn acquire<'a>(
        &'a self,
        meter: &'a str,
    ) -> BoxFuture<'a, Result<Option<MeterRegisters>, LeaseError>>;

    /// The revision of `meter`'s lease, while this node holds it.
    fn revision(&self, meter: &str) -> Option<u64>;

    /// Gives `meter` up, unless it was taken again since (`revision` changed).
    fn release<'a>(&'a self, meter: &'a str, revision: u64) -> BoxFuture<'a, ()>;

    /// Gives up every lease (at shutdown, after the last publish).
    fn release_all(&self) -> BoxFuture<'_, ()>;

    /// Renews every held lease until `stop` fires.
    fn spawn_renewer(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()>;

    /// The leases held, taken, refused and lost, for `/metrics`.
    fn metrics(&self) -> Vec<Metric>;
}

/// The leases of a cluster ingest node, and how long after a disconnect a
/// meter's lease is given up (its last records must be published first).
#[derive(Clone)]
pub struct ClusterLeases {
    pub leases: Arc<dyn MeterLeases>,
    pub release_after: Duration,
}
