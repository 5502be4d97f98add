//! The meter stream source (`smartmeter_server`, `smartmeter_client`):
//! meters dial in on port 54322 (or the sink dials their command ports),
//! each connection is read by its own task and hands what it decodes to the
//! runner's window workers, whose records go through the record log to the
//! outputs, so results and per-meter state survive reconnects, restarts
//! and kill -9.
//!
//! Shutdown (the cancel token: SIGINT/SIGTERM in the CLI) stops accepting,
//! sends `stop` to every meter and drains its tail; the runner then lets the
//! workers finish every device and closes the outputs and the log.

pub mod config;
pub mod connection;
pub mod leases;
pub mod metrics;
pub mod registry;
pub mod warn_limit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::backoff::Backoff;
use crate::model::run_report::{ConnectionCounts, RunReport};
use crate::source::component::{
    Durability, EngineSpec, MeterStates, Source, SourceContext, SourceEnd, SourceMetrics,
};
use config::{MeterLinkConfig, Network};
use connection::{handle_connection, ConnectionContext, ConnectionEnd, PendingGuard};
use leases::ClusterLeases;
use metrics::SinkMetrics;
use registry::{DropReason, Registry};

/// A sink whose sockets are bound, ready to run: the meter server (or
/// client) source.
pub struct StreamSink {
    link: MeterLinkConfig,
    listener: Option<TcpListener>,
    networks: Vec<Network>,
    registry: Arc<Registry>,
    forget_after: Duration,
    /// Cluster mode: the meter leases of this ingest node.
    cluster: Option<ClusterLeases>,
}

/// Which way meters reach the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// Meters dial in (`smartmeter_server`).
    Server,
    /// The sink dials the meters' command ports (`smartmeter_client`).
    Client,
}

impl StreamSink {
    /// Binds the stream server port (a server source). `forget_after`: how
    /// long a meter may be gone before it leaves the registry and the
    /// state. Needs a tokio runtime.
    pub async fn bind(
        link: MeterLinkConfig,
        role: LinkRole,
        forget_after: Duration,
        cluster: Option<ClusterLeases>,
    ) -> anyhow::Result<Self> {
        let listener = match role {
            LinkRole::Client => None,
            LinkRole::Server => Some(
                TcpListener::bind(link.listen)
                    .await
                    .with_context(|| format!("listening for meters on {}", link.listen))?,
            ),
        };
        Ok(StreamSink {
            networks: link.networks()?,
            link,
            listener,
            registry: Arc::new(Registry::default()),
            forget_after,
            cluster,
        })
    }

    /// Where meters dial in (server sources).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Every meter's counters and the server's.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// The window workers this sink needs.
    pub fn engine_spec(&self) -> EngineSpec {
        EngineSpec {
            workers: self.link.worker_count(),
            queue_depth: self.link.queue_depth,
            sample_limit: self.link.stop_after_samples,
        }
    }

    /// Takes meters until `cx.cancel` fires, then asks every meter to stop
    /// and drains its tail; the runner then drains the engine.
    pub async fn serve(mut self, cx: SourceContext) -> anyhow::Result<SourceEnd> {
        let workers = cx
            .engine
            .clone()
            .context("the stream sink runs without window workers")?;
        let cancel = cx.cancel.clone();
        let forgetter = spawn_forgetter(
            Arc::clone(&self.registry),
            Arc::clone(&cx.meters),
            self.forget_after,
        );
        let summaries = spawn_refusal_summaries(Arc::clone(&self.registry));
        let renewer_stop = CancellationToken::new();
        let renewer = self
            .cluster
            .as_ref()
            .map(|cluster| Arc::clone(&cluster.leases).spawn_renewer(renewer_stop.clone()));
        let context = Arc::new(ConnectionContext {
            link: self.link.clone(),
            registry: Arc::clone(&self.registry),
            workers,
            cluster: self.cluster.clone(),
            meters: Arc::clone(&cx.meters),
        });
        drop(cx);

        let connections = match self.listener.take() {
            Some(listener) => self.accept(listener, &context, &cancel).await,
            None => self.dial(&context, &cancel).await,
        };
        tracing::info!("stopping: meters asked to stop, draining their tails");
        let mut connections = connections;
        while connections.join_next().await.is_some() {}
        drop(context);
        forgetter.abort();
        let _ = forgetter.await;
        summaries.abort();
        let _ = summaries.await;

        let server = &self.registry.server;
        let report = RunReport {
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
            ..RunReport::default()
        };
        // Everything is published once the outputs are closed: only then
        // may the meters move to another node.
        let leases = self.cluster.as_ref().map(|c| Arc::clone(&c.leases));
        let after_outputs = async move {
            renewer_stop.cancel();
            if let Some(renewer) = renewer {
                let _ = renewer.await;
            }
            if let Some(leases) = leases {
                leases.release_all().await;
            }
        }
        .boxed();
        Ok(SourceEnd {
            report,
            after_outputs: Some(after_outputs),
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

/// Forgets meters gone longer than `after`: their counters leave the
/// registry and `/metrics`, their state leaves the next snapshot.
fn spawn_forgetter(
    registry: Arc<Registry>,
    meters: Arc<dyn MeterStates>,
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
            let evicted = meters.evict_idle(now_ns, max_idle_ns);
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

/// How often a stopped burst of refused peers is summarised in the log.
const REFUSAL_SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// Summarises refused peers the log left out once their burst is over.
fn spawn_refusal_summaries(registry: Arc<Registry>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(REFUSAL_SUMMARY_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            registry.summarise_refusals();
        }
    })
}

impl Source for StreamSink {
    fn origin(&self) -> String {
        match self.local_addr() {
            Some(address) => format!("stream server {address}"),
            None => format!("meter command ports {}", self.link.connect.join(", ")),
        }
    }

    fn durability(&self) -> Durability {
        Durability::Log
    }

    fn engine(&self) -> Option<EngineSpec> {
        Some(self.engine_spec())
    }

    fn metrics(&self) -> Option<Arc<dyn SourceMetrics>> {
        Some(Arc::new(SinkMetrics {
            registry: Arc::clone(&self.registry),
            leases: self.cluster.as_ref().map(|c| Arc::clone(&c.leases)),
        }))
    }

    fn started(&self) -> Vec<String> {
        vec![match self.local_addr() {
            Some(addr) => format!("meterflow sink: listening for meters on {addr}"),
            None => "meterflow sink: connecting to the meters' command ports".to_string(),
        }]
    }

    fn stopping(&self) -> Option<&'static str> {
        Some("stopping: asking every meter to stop, then flushing the outputs")
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<'static, anyhow::Result<SourceEnd>> {
        self.serve(cx).boxed()
    }
}
