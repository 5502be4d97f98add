//! The long-running stream sink: meters dial in on port 54322 (or the sink
//! dials their command ports), each connection is read by its own task,
//! windows are computed on a pool of worker threads, and their records go
//! through the record log to the outputs (the topology), so results and
//! per-meter state survive reconnects, restarts and kill -9.
//!
//! Shutdown (the cancel token: SIGINT/SIGTERM in the CLI) stops accepting,
//! sends `stop` to every meter and drains its tail, lets the workers finish
//! every device, then closes the topology (outputs drained and closed, a
//! last state snapshot, the log closed).

pub mod config;
pub mod connection;
pub mod metrics;
pub mod registry;
pub mod state;
pub mod warn_limit;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::cluster::LeaseBook;
use super::config::{PipelineConfig, SourceConfig};
use super::run_report::{ConnectionCounts, RunReport};
use super::topology::{Durable, Publish, Topology};
use crate::sink::jetstream::PublishCounters;
use config::{MeterLinkConfig, Network};
use connection::{handle_connection, ConnectionContext, ConnectionEnd, PendingGuard};
use metrics::{serve_metrics, SinkObserver};
use registry::{DropReason, Registry};
use state::StateStore;
use workers::{WorkerContext, WorkerPool};

/// A sink whose sockets are bound, ready to run.
pub struct StreamSink {
    link: MeterLinkConfig,
    listener: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
    networks: Vec<Network>,
    registry: Arc<Registry>,
    state: Arc<StateStore>,
    topology: Topology,
    worker_context: Arc<WorkerContext>,
    workers: Arc<WorkerPool>,
    forget_after: Duration,
    started: Instant,
    stopping: CancellationToken,
    /// Cluster mode: the meter leases and the publisher's counters.
    leases: Option<Arc<LeaseBook>>,
    published: Option<Arc<PublishCounters>>,
    publish_interval: Option<Duration>,
}

impl StreamSink {
    /// Binds the stream server and metrics ports, restores the state and
    /// starts the outputs and workers. Needs a tokio runtime.
    pub async fn bind(config: PipelineConfig) -> anyhow::Result<Self> {
        Self::bind_with(config, true).await
    }

    /// [`Self::bind`]; `durable: false` runs without the record log and
    /// keeps the meter state in memory (a demo run, not a service).
    pub async fn bind_with(config: PipelineConfig, durable: bool) -> anyhow::Result<Self> {
        config.validate()?;
        let (link, client) = match &config.source {
            SourceConfig::SmartmeterServer(link) => (link.clone(), false),
            SourceConfig::SmartmeterClient(link) => (link.clone(), true),
            _ => anyhow::bail!(
                "the stream sink needs a smartmeter_server or smartmeter_client source"
            ),
        };
        let listener = if client {
            None
        } else {
            Some(
                TcpListener::bind(link.listen)
                    .await
                    .with_context(|| format!("listening for meters on {}", link.listen))?,
            )
        };
        let service = &config.service;
        let metrics_listener = if service.metrics {
            Some(
                TcpListener::bind(service.metrics_listen)
                    .await
                    .with_context(|| format!("serving metrics on {}", service.metrics_listen))?,
            )
        } else {
            None
        };
        let state = Arc::new(if durable {
            StateStore::open(&service.state_dir)?
        } else {
            StateStore::in_memory()
        });
        let source = match &listener {
            Some(listener) => format!(
                "stream server {}",
                listener
                    .local_addr()
                    .context("reading the listen address")?
            ),
            None => format!("meter command ports {}", link.connect.join(", ")),
        };
        // Cluster mode: records go to JetStream, meters are leased fleet-wide.
        let node = config
            .cluster
            .as_ref()
            .map(|c| c.node_name(&default_node_name(&link)))
            .unwrap_or_default();
        let cluster = config
            .cluster
            .clone()
            .map(|c| (c, Arc::new(PublishCounters::default())));
        let leases = match &config.cluster {
            Some(_) if !durable => {
                anyhow::bail!("cluster mode needs the record log (a service sink, not a demo run)")
            }
            Some(cluster) => Some(LeaseBook::start(cluster, &node).await?),
            None => None,
        };
        let topology = Topology::start(
            &config,
            &source,
            durable.then(|| Durable {
                log: config.record_log(),
                state: Arc::clone(&state),
                publish: cluster.as_ref().map(|(cluster, counters)| Publish {
                    cluster: cluster.clone(),
                    node: node.clone(),
                    counters: Arc::clone(counters),
                }),
                crash_loses_results: true,
            }),
        )?;
        let worker_context = Arc::new(WorkerContext {
            config: config.clone(),
            records: topology.bus(),
            state: Arc::clone(&state),
            window_latency: Default::default(),
        });
        let workers = Arc::new(WorkerPool::start(
            link.worker_count(),
            link.queue_depth,
            Arc::clone(&worker_context),
        )?);
        Ok(StreamSink {
            networks: link.networks()?,
            link,
            listener,
            metrics_listener,
            registry: Arc::new(Registry::default()),
            state,
            topology,
            worker_context,
            workers,
            forget_after: service.forget_meters_after(),
            started: Instant::now(),
            stopping: CancellationToken::new(),
            leases,
            publish_interval: cluster.as_ref().map(|(c, _)| c.publish_interval()),
            published: cluster.map(|(_, counters)| counters),
        })
    }

    /// Where meters dial in (server sources).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Meters whose state the checkpoint restored.
    pub fn restored_meters(&self) -> usize {
        self.state.len()
    }

    pub fn observer(&self) -> SinkObserver {
        SinkObserver {
            registry: Arc::clone(&self.registry),
            workers: Arc::downgrade(&self.workers),
            worker_context: Arc::downgrade(&self.worker_context),
            health: self.topology.health(),
            bus: Arc::downgrade(&self.topology.bus()),
            log: self.topology.log().as_ref().map(Arc::downgrade),
            packets: self.topology.packets(),
            started: self.started,
            stopping: self.stopping.clone(),
            cluster: self.leases.clone().zip(self.published.clone()),
        }
    }

    /// Runs until `cancel` fires, then shuts down in order (module docs).
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<RunReport> {
        let metrics_stop = CancellationToken::new();
        let metrics_task = self.metrics_listener.take().map(|listener| {
            tokio::spawn(serve_metrics(
                listener,
                self.observer(),
                metrics_stop.clone(),
            ))
        });
        let forgetter = spawn_forgetter(
            Arc::clone(&self.registry),
            Arc::clone(&self.state),
            self.forget_after,
        );
        let renewer_stop = CancellationToken::new();
        let renewer = self
            .leases
            .as_ref()
            .map(|leases| leases.spawn_renewer(renewer_stop.clone()));
        let context = Arc::new(ConnectionContext {
            link: self.link.clone(),
            registry: Arc::clone(&self.registry),
            workers: Arc::clone(&self.workers),
            leases: self.leases.clone(),
            state: Arc::clone(&self.state),
            // The meter's last records must be published first.
            lease_release_after: self
                .publish_interval
                .map_or(Duration::ZERO, |every| every * 3 + Duration::from_secs(1)),
        });

        let connections = match self.listener.take() {
            Some(listener) => self.accept(listener, &context, &cancel).await,
            None => self.dial(&context, &cancel).await,
        };
        self.stopping.cancel();
        tracing::info!("stopping: meters asked to stop, draining their tails");
        let mut connections = connections;
        while connections.join_next().await.is_some() {}
        drop(context);

        let workers = Arc::try_unwrap(self.workers)
            .map_err(|_| anyhow::anyhow!("a connection still holds the window workers"))?;
        let mut sessions = tokio::task::spawn_blocking(move || workers.finish())
            .await
            .context("window workers")?;
        sessions.sort_by(|a, b| a.device.cmp(&b.device));
        forgetter.abort();
        let _ = forgetter.await;
        drop(self.worker_context);
        let topology = self.topology;
        let outputs = tokio::task::spawn_blocking(move || topology.close())
            .await
            .context("output threads")??;
        // Everything is published: the meters may move to another node now.
        renewer_stop.cancel();
        if let Some(renewer) = renewer {
            let _ = renewer.await;
        }
        if let Some(leases) = &self.leases {
            leases.release_all().await;
        }
        metrics_stop.cancel();
        if let Some(task) = metrics_task {
            match task.await {
                Ok(Err(error)) => tracing::warn!(%error, "metrics endpoint"),
                Err(error) => tracing::warn!(%error, "metrics endpoint task"),
                Ok(Ok(())) => {}
            }
        }
        let server = &self.registry.server;
        Ok(RunReport {
            devices: sessions,
            outputs,
            connections: Some(ConnectionCounts {
                accepted: server.accepted.load(std::sync::atomic::Ordering::Relaxed),
                peak_streaming: server
                    .peak_streaming
                    .load(std::sync::atomic::Ordering::Relaxed),
                dropped: DropReason::ALL
                    .iter()
                    .map(|r| (r.label(), server.dropped(*r)))
                    .filter(|(_, n)| *n > 0)
                    .collect(),
            }),
            checkpoint: Some(self.state.path()),
            elapsed_s: self.started.elapsed().as_secs_f64(),
            ..RunReport::default()
        })
    }

    /// Accepts meters until cancelled; returns the connections still running.
    async fn accept(
        &self,
        listener: TcpListener,
        context: &Arc<ConnectionContext>,
        cancel: &CancellationToken,
    ) -> JoinSet<ConnectionEnd> {
        let mut connections = JoinSet::new();
        loop {
            let (socket, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, go on.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                _ = cancel.cancelled() => break,
            };
            self.registry
                .server
                .accepted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !self.networks.is_empty() && !self.networks.iter().any(|n| n.contains(peer.ip())) {
                self.registry.refuse(
                    peer,
                    DropReason::NetworkNotAllowed,
                    &"not in allow_networks",
                );
                continue;
            }
            let Some(pending) = PendingGuard::try_new(&self.registry, self.link.max_pending) else {
                self.registry.refuse(
                    peer,
                    DropReason::TooManyPending,
                    &format_args!(
                        "{} connections wait for their info line",
                        self.link.max_pending
                    ),
                );
                continue;
            };
            let _ = socket.set_nodelay(true);
            connections.spawn(handle_connection(
                socket,
                peer,
                Arc::clone(context),
                cancel.child_token(),
                false,
                pending,
            ));
        }
        connections
    }

    /// Keeps a connection to every meter's command port until cancelled.
    async fn dial(
        &self,
        context: &Arc<ConnectionContext>,
        cancel: &CancellationToken,
    ) -> JoinSet<ConnectionEnd> {
        let mut connections = JoinSet::new();
        for address in self.link.connect_addresses() {
            connections.spawn(keep_dialing(address, Arc::clone(context), cancel.clone()));
        }
        cancel.cancelled().await;
        connections
    }
}

/// One meter's command port: connect, stream, and after a failure or a
/// disconnect wait (doubling from `backoff_min_s` to `backoff_max_s`) and retry.
async fn keep_dialing(
    address: String,
    context: Arc<ConnectionContext>,
    cancel: CancellationToken,
) -> ConnectionEnd {
    let (min, max) = context.link.backoff();
    let mut backoff = Backoff::new(min, max);
    // A short backoff to a dead address would log many lines a second.
    let failures = warn_limit::WarnLimit::standard();
    let mut last = ConnectionEnd::Dropped(DropReason::Io);
    while !cancel.is_cancelled() {
        let connect =
            tokio::time::timeout(context.link.info_timeout(), TcpStream::connect(&address));
        let attempt = tokio::select! {
            attempt = connect => attempt,
            _ = cancel.cancelled() => break,
        };
        match attempt {
            Ok(Ok(socket)) => {
                let peer = socket
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let _ = socket.set_nodelay(true);
                last = handle_connection(
                    socket,
                    peer,
                    Arc::clone(&context),
                    cancel.child_token(),
                    true,
                    PendingGuard::new(&context.registry),
                )
                .await;
                if matches!(last, ConnectionEnd::Streamed { .. }) {
                    backoff.reset();
                }
            }
            Ok(Err(error)) => dial_failed(&failures, &address, &error),
            Err(_) => dial_failed(&failures, &address, &"connecting timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = cancel.cancelled() => break,
        }
    }
    last
}

/// Logs a failed dial, rate-limited per address.
fn dial_failed(failures: &warn_limit::WarnLimit, address: &str, error: &dyn std::fmt::Display) {
    match failures.check() {
        warn_limit::WarnVerdict::Log { left_out } => {
            if left_out > 0 {
                tracing::warn!(meter = %address, left_out, "{left_out} more failed connects were not logged");
            }
            tracing::warn!(meter = %address, %error, "cannot connect");
        }
        warn_limit::WarnVerdict::Quiet => {
            tracing::debug!(meter = %address, %error, "cannot connect");
        }
    }
}

/// A node's name when `cluster.node` is not set: host and listen port.
fn default_node_name(link: &MeterLinkConfig) -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    match link.listen.port() {
        // Ports picked by the OS (tests) say nothing: tell processes apart.
        0 => format!("{host}-pid{}", std::process::id()),
        port => format!("{host}-{port}"),
    }
}

/// Forgets meters gone longer than `after`: their counters leave the
/// registry and `/metrics`, their state leaves the next snapshot.
fn spawn_forgetter(
    registry: Arc<Registry>,
    state: Arc<StateStore>,
    after: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = (after / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let forgotten = registry.forget_idle(after.as_secs());
            let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
            let max_idle_ns = i64::try_from(after.as_nanos()).unwrap_or(i64::MAX);
            let evicted = state.evict_idle(now_ns, max_idle_ns);
            if !forgotten.is_empty() || !evicted.is_empty() {
                tracing::info!(
                    meters = forgotten.len().max(evicted.len()),
                    after_s = after.as_secs(),
                    "forgot meters gone longer than service.forget_meters_after_s"
                );
            }
        }
    })
}
