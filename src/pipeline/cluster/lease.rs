//! Meter ownership across the cluster: a lease per meter in a JetStream KV
//! bucket, taken with compare-and-set when the meter connects, renewed
//! while it streams and released when it leaves. A lease a dead node no
//! longer renews expires with the bucket's TTL, and the meter can move on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::stream;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::model::meter_registers::MeterRegisters;
use crate::model::metric::Metric;
use crate::nats::config::ClusterConfig;
use crate::nats::{connect, registers, subjects};
use crate::source::meter_server::leases::{LeaseError, MeterLeases};

/// Lease requests a node keeps in flight at once.
const IN_FLIGHT: usize = 64;

/// Counters of the leases, for `/metrics`.
#[derive(Debug, Default)]
pub struct LeaseCounters {
    pub acquired: AtomicU64,
    /// Meters refused because another node holds them.
    pub refused: AtomicU64,
    /// Leases found taken by another node on renewal.
    pub lost: AtomicU64,
    /// Lease operations that failed (NATS unreachable, timeouts).
    pub errors: AtomicU64,
}

/// The lease and state buckets and the records stream.
struct Stores {
    leases: kv::Store,
    state: kv::Store,
    records: stream::Stream,
}

/// The leases this node holds.
pub struct LeaseBook {
    node: String,
    config: ClusterConfig,
    client: async_nats::Client,
    stores: OnceCell<Stores>,
    /// Meter → revision of its lease.
    held: Mutex<HashMap<String, u64>>,
    renew_failing: AtomicBool,
    pub counters: LeaseCounters,
}

impl LeaseBook {
    /// Connects in the background: the node starts even while NATS is down
    /// (it then refuses new meters until NATS is back).
    pub async fn start(config: &ClusterConfig, node: &str) -> anyhow::Result<Arc<Self>> {
        let client = connect::connect(config, &format!("meterflow leases {node}"), true).await?;
        Ok(Arc::new(LeaseBook {
            node: node.to_string(),
            config: config.clone(),
            client,
            stores: OnceCell::new(),
            held: Mutex::new(HashMap::new()),
            renew_failing: AtomicBool::new(false),
            counters: LeaseCounters::default(),
        }))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn held(&self) -> usize {
        self.lock().len()
    }

    async fn stores(&self) -> anyhow::Result<&Stores> {
        self.stores
            .get_or_try_init(|| async {
                let js = connect::context(&self.config, self.client.clone());
                anyhow::Ok(Stores {
                    leases: connect::lease_bucket(&self.config, &js).await?,
                    state: connect::state_bucket(&self.config, &js).await?,
                    records: connect::records_stream(&self.config, &js).await?,
                })
            })
            .await
    }

    async fn timed<T>(
        &self,
        what: &str,
        future: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let timeout = self.config.request_timeout();
        match tokio::time::timeout(timeout, future).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("{what}: no answer from NATS within {timeout:?}"),
        }
    }

    /// Takes `meter`'s lease (or confirms it is already this node's) and
    /// returns the registers its published records left.
    pub async fn acquire(&self, meter: &str) -> Result<Option<MeterRegisters>, LeaseError> {
        let result = self
            .timed("taking a lease", async {
                let Stores {
                    leases,
                    state,
                    records,
                } = self.stores().await?;
                let key = subjects::meter_token(meter);
                let revision = match leases.create(&key, self.node.clone().into()).await {
                    Ok(revision) => revision,
                    Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                        match leases.entry(key.clone()).await? {
                            Some(entry)
                                if entry.value.as_ref() == self.node.as_bytes()
                                    && entry.operation == kv::Operation::Put =>
                            {
                                // Ours from before a restart.
                                leases
                                    .update(&key, self.node.clone().into(), entry.revision)
                                    .await?
                            }
                            Some(entry) if entry.operation == kv::Operation::Put => {
                                return Ok(Err(String::from_utf8_lossy(&entry.value).into_owned()));
                            }
                            _ => leases.create(&key, self.node.clone().into()).await?,
                        }
                    }
                    Err(error) => return Err(error.into()),
                };
                let stored = match state.get(key.clone()).await? {
                    Some(bytes) => Some(MeterRegisters::decode(&bytes)?),
                    None => None,
                };
                let registers =
                    registers::last_published(&self.config, records, meter, stored).await?;
                Ok(Ok((key, revision, registers)))
            })
            .await;
        match result {
            Ok(Ok((_, revision, registers))) => {
                self.lock().insert(meter.to_string(), revision);
                self.counters.acquired.fetch_add(1, Relaxed);
                Ok(registers)
            }
            Ok(Err(holder)) => {
                self.counters.refused.fetch_add(1, Relaxed);
                Err(LeaseError::Held(holder))
            }
            Err(error) => {
                self.counters.errors.fetch_add(1, Relaxed);
                Err(LeaseError::Unreachable(error))
            }
        }
    }

    /// The revision of `meter`'s lease, while this node holds it.
    pub fn revision(&self, meter: &str) -> Option<u64> {
        self.lock().get(meter).copied()
    }

    /// Gives up every lease (at shutdown, after the last publish).
    pub async fn release_all(&self) {
        let held = self.held_now();
        futures::stream::iter(held)
            .for_each_concurrent(IN_FLIGHT, |(meter, revision)| async move {
                self.release(&meter, revision).await;
            })
            .await;
    }

    fn held_now(&self) -> Vec<(String, u64)> {
        self.lock().iter().map(|(m, r)| (m.clone(), *r)).collect()
    }

    /// Gives `meter` up, unless it was taken again since (`revision`
    /// changed): another node may take it at once.
    pub async fn release(&self, meter: &str, revision: u64) {
        {
            let mut held = self.lock();
            if held.get(meter) != Some(&revision) {
                return;
            }
            held.remove(meter);
        }
        let result = self
            .timed("releasing a lease", async {
                let leases = &self.stores().await?.leases;
                leases
                    .delete_expect_revision(subjects::meter_token(meter), Some(revision))
                    .await?;
                anyhow::Ok(())
            })
            .await;
        if let Err(error) = result {
            // It expires with the TTL instead.
            self.counters.errors.fetch_add(1, Relaxed);
            tracing::debug!(meter, "releasing the lease: {error:#}");
        }
    }

    /// Renews every held lease, a third of the TTL apart, until cancelled.
    pub fn spawn_renewer(
        self: &Arc<Self>,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let book = Arc::clone(self);
        tokio::spawn(async move {
            let every = (book.config.lease_ttl() / 3).max(Duration::from_millis(200));
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = cancel.cancelled() => break,
                }
                book.renew_all().await;
            }
        })
    }

    /// Renews the leases [`IN_FLIGHT`] at a time: one after another, a
    /// node of thousands of meters would not get round within a TTL.
    async fn renew_all(&self) {
        let renewed: Vec<(String, anyhow::Result<Option<u64>>)> =
            futures::stream::iter(self.held_now())
                .map(|(meter, revision)| async move {
                    let result = self.renew(&meter, revision).await;
                    (meter, result)
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
        let mut failed = None;
        for (meter, result) in renewed {
            match result {
                Ok(Some(revision)) => {
                    if let Some(r) = self.lock().get_mut(&meter) {
                        *r = revision;
                    }
                }
                Ok(None) => {
                    self.counters.lost.fetch_add(1, Relaxed);
                    self.lock().remove(&meter);
                    tracing::error!(
                        meter,
                        "another node took this meter's lease; it streams to two nodes"
                    );
                }
                Err(error) => {
                    self.counters.errors.fetch_add(1, Relaxed);
                    failed = Some(error);
                }
            }
        }
        match failed {
            Some(error) if !self.renew_failing.swap(true, Relaxed) => {
                tracing::warn!("renewing meter leases fails; they expire after {:?} unless NATS answers: {error:#}", self.config.lease_ttl());
            }
            None if self.renew_failing.swap(false, Relaxed) => {
                tracing::warn!("meter leases are renewed again");
            }
            _ => {}
        }
    }

    /// The new revision, or `None` when another node holds the lease now.
    async fn renew(&self, meter: &str, revision: u64) -> anyhow::Result<Option<u64>> {
        self.timed("renewing a lease", async {
            let leases = &self.stores().await?.leases;
            let key = subjects::meter_token(meter);
            if let Ok(revision) = leases
                .update(&key, self.node.clone().into(), revision)
                .await
            {
                return Ok(Some(revision));
            }
            match leases.entry(key.clone()).await? {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    if entry.value.as_ref() == self.node.as_bytes() {
                        Ok(Some(
                            leases
                                .update(&key, self.node.clone().into(), entry.revision)
                                .await?,
                        ))
                    } else {
                        Ok(None)
                    }
                }
                // Expired meanwhile (NATS was away): take it again.
                _ => Ok(Some(leases.create(&key, self.node.clone().into()).await?)),
            }
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MeterLeases for LeaseBook {
    fn node(&self) -> &str {
        LeaseBook::node(self)
    }

    fn acquire<'a>(
        &'a self,
        meter: &'a str,
    ) -> BoxFuture<'a, Result<Option<MeterRegisters>, LeaseError>> {
        LeaseBook::acquire(self, meter).boxed()
    }

    fn revision(&self, meter: &str) -> Option<u64> {
        LeaseBook::revision(self, meter)
    }

    fn release<'a>(&'a self, meter: &'a str, revision: u64) -> BoxFuture<'a, ()> {
        LeaseBook::release(self, meter, revision).boxed()
    }

    fn release_all(&self) -> BoxFuture<'_, ()> {
        LeaseBook::release_all(self).boxed()
    }

    fn spawn_renewer(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        LeaseBook::spawn_renewer(&self, stop)
    }

    /// The leases this node holds, takes, is refused and loses.
    fn metrics(&self) -> Vec<Metric> {
        let c = &self.counters;
        let node = self.node().to_string();
        vec![
            Metric::gauge(
                "meterflow_cluster_leases_held",
                "meter leases this node holds",
                self.held() as f64,
            ),
            Metric::counter(
                "meterflow_cluster_leases_acquired_total",
                "meter leases taken",
                c.acquired.load(Relaxed),
            ),
            Metric::counter(
                "meterflow_cluster_leases_refused_total",
                "meters refused: another node holds their lease",
                c.refused.load(Relaxed),
            ),
            Metric::counter(
                "meterflow_cluster_leases_lost_total",
                "leases found taken by another node on renewal",
                c.lost.load(Relaxed),
            ),
            Metric::counter(
                "meterflow_cluster_lease_errors_total",
                "lease operations NATS did not answer",
                c.errors.load(Relaxed),
            ),
        ]
        .into_iter()
        .map(|metric| metric.with("node", node.clone()))
        .collect()
    }
}
