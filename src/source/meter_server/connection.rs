//! One meter connection on the sink, in its own task: the info line within
//! the info timeout, the allowlist and one-connection-per-name checks, the
//! `sample` handshake with the settings chosen for that meter, then reading
//! and splitting frames in place and handing them, in batches, to the meter's
//! worker. Every way out is one log line and, for a dropped peer, a count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::source::decoder::{SessionEnd, StreamCounters};
use crate::source::meter_session::{greet, SessionError};

use super::config::MeterLinkConfig;
use super::leases::{ClusterLeases, LeaseError, MeterLeases};
use super::registry::{valid_meter_name, DropReason, Registry};
use crate::source::component::{Job, MeterStates, WindowEngine};

/// Items handed to a worker at once, at most: bounds what one connection
/// holds in flight (≤ 64 chunks of ≤ 64 KiB) beside its read buffer.
const MAX_BATCH: usize = 64;

/// What connections share.
pub struct ConnectionContext {
    pub link: MeterLinkConfig,
    pub registry: Arc<Registry>,
    pub workers: Arc<dyn WindowEngine>,
    /// Cluster mode: meters are leased fleet-wide.
    pub cluster: Option<ClusterLeases>,
    pub meters: Arc<dyn MeterStates>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// It streamed (then stopped, disconnected, or was stopped at shutdown).
    Streamed { meter: String, samples: u64 },
    /// It was dropped before or while streaming.
    Dropped(DropReason),
    /// The sink stopped before the peer introduced itself.
    Cancelled,
}

/// Runs one connection to its end. `ask` sends `info` first (a client
/// connection to a command port; a dialing meter speaks first).
pub async fn handle_connection<S>(
    stream: S,
    peer: SocketAddr,
    context: Arc<ConnectionContext>,
    cancel: CancellationToken,
    ask: bool,
    pending: PendingGuard,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite,
{
    let registry = &context.registry;
    let drop_peer = |reason: DropReason, detail: &dyn std::fmt::Display| {
        registry.refuse(peer, reason, detail);
        ConnectionEnd::Dropped(reason)
    };

    let greeted = tokio::select! {
        greeted = greet(stream, context.link.info_timeout(), ask) => greeted,
        _ = cancel.cancelled() => return ConnectionEnd::Cancelled,
    };
    drop(pending);
    let greeted = match greeted {
        Ok(greeted) => greeted,
        Err(error) => return drop_peer(DropReason::NoInfoLine, &error),
    };
    let name = greeted.info().name.clone();
    if !valid_meter_name(&name) {
        return drop_peer(DropReason::BadName, &format_args!("meter name {name:?}"));
    }
    if !context.link.name_allowed(&name) {
        return drop_peer(
            DropReason::NameNotAllowed,
            &format_args!("meter {name} is not in allow_names"),
        );
    }
    let streaming = registry
        .server
        .streaming
        .load(std::sync::atomic::Ordering::Relaxed);
    if streaming as usize >= context.link.max_connections {
        return drop_peer(
            DropReason::TooManyConnections,
            &format_args!("meter {name}: {streaming} meters already streaming"),
        );
    }
    // The name is taken only by a peer that answered `sample`: one that
    // only says a meter's name and never streams cannot hold it (it is
    // dropped as `handshake` when its answer does not come in time).
    let settings = context.link.session_settings(&name);
    let cancel_pause = cancel.clone();
    let mut stream = match greeted.start(&settings, cancel).await {
        Ok(stream) => stream,
        Err(error) => {
            return drop_peer(
                DropReason::Handshake,
                &format_args!("meter {name}: {error}"),
            )
        }
    };
    let Some(claim) = registry.claim(&name) else {
        return drop_peer(
            DropReason::Duplicate,
            &format_args!("meter {name} already streams on another connection; that one keeps it"),
        );
    };
    let lease = match &context.cluster {
        Some(ClusterLeases { leases, .. }) => match leases.acquire(&name).await {
            Ok(registers) => {
                if let Some(registers) = registers {
                    context.meters.adopt(
                        &name,
                        registers.energy,
                        registers.covered_until_ns,
                        &registers.node,
                        leases.node(),
                    );
                }
                leases
                    .revision(&name)
                    .map(|revision| (Arc::clone(leases), revision))
            }
            Err(error @ LeaseError::Held(_)) => {
                return drop_peer(
                    DropReason::LeaseHeld,
                    &format_args!("meter {name}: {error}"),
                )
            }
            Err(error @ LeaseError::Unreachable(_)) => {
                return drop_peer(
                    DropReason::LeaseUnavailable,
                    &format_args!("meter {name}: {error}"),
                )
            }
        },
        None => None,
    };
    let _release = lease.map(|(leases, revision)| ReleaseLease {
        leases,
        meter: name.clone(),
        revision,
        after: context
            .cluster
            .as_ref()
            .map_or(std::time::Duration::ZERO, |c| c.release_after),
    });
    tracing::info!(
        meter = %name,
        %peer,
        rate = stream.answer().samplingrate,
        measures = %stream.answer().measures,
        "meter connected"
    );

    let answer = stream.answer();
    let load = u64::from(answer.samplingrate) * answer.bytes_per_sample() as u64;
    let lease = context.workers.assign(load);
    let worker = &lease.sender;
    let connection = claim.connection();
    let counters = Arc::clone(&claim.counters);
    let start = Job::Start {
        connection,
        description: Box::new(stream.description().clone()),
        counters: Arc::clone(&counters.engine),
    };
    if worker.send(start).await.is_err() {
        tracing::error!(meter = %name, "the window workers are gone; closing");
        return ConnectionEnd::Dropped(DropReason::Io);
    }

    let mut counted = StreamCounters::default();
    let mut failure = None;
    let pause = context.link.read_pause();
    // When the last pause began: data read right after it may have waited
    // in the socket since then, so that is when it is taken to have arrived.
    let mut paused_at: Option<Instant> = None;
    loop {
        let (first, arrived) = match stream.next_ready() {
            Ok(Some(item)) => (item, paused_at.unwrap_or_else(Instant::now)),
            Ok(None) => match stream.next().await {
                Ok(Some(item)) => (item, Instant::now()),
                Ok(None) => break,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            },
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        let mut items = Vec::with_capacity(8);
        items.push(first);
        while items.len() < MAX_BATCH {
            match stream.next_ready() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        counted = add_counters(&counters, &counted, stream.counters());
        let job = Job::Items {
            connection,
            items,
            arrived,
        };
        // Waits while the worker is behind: the socket is not read meanwhile.
        if worker.send(job).await.is_err() || failure.is_some() {
            break;
        }
        if !pause.is_zero() {
            paused_at = Some(Instant::now());
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = cancel_pause.cancelled() => {}
            }
        }
    }
    if let Some(error) = &failure {
        // The session still ends in the `events` table, with the reason.
        let why = match error {
            SessionError::Idle(_) => SessionEnd::Idle,
            _ => SessionEnd::ReadFailed,
        };
        let items = stream.abandon(why);
        let job = Job::Items {
            connection,
            items,
            arrived: Instant::now(),
        };
        let _ = worker.send(job).await;
    }
    let _ = worker.send(Job::End { connection }).await;
    add_counters(&counters, &counted, stream.counters());
    let report = stream.finish();
    drop(claim);
    match failure {
        Some(error) => {
            let reason = match error {
                SessionError::Idle(_) => DropReason::Idle,
                _ => DropReason::Io,
            };
            drop_peer(reason, &format_args!("meter {name}: {error}"))
        }
        None => {
            tracing::info!(
                meter = %name,
                %peer,
                samples = report.samples,
                end = ?report.end,
                lost_chunks = report.wire.lost_chunks,
                "meter disconnected"
            );
            ConnectionEnd::Streamed {
                meter: name,
                samples: report.samples,
            }
        }
    }
}

/// Adds what the decoder counted since `before` to the meter's counters;
/// returns `now`, the next `before`.
fn add_counters(
    counters: &super::registry::MeterCounters,
    before: &StreamCounters,
    now: StreamCounters,
) -> StreamCounters {
    counters.add_wire(&before.wire, &now.wire);
    let warnings = now.meter_warnings - before.meter_warnings;
    if warnings > 0 {
        counters
            .meter_warnings
            .fetch_add(warnings, std::sync::atomic::Ordering::Relaxed);
    }
    now
}

/// Gives the meter's lease up when the connection ends, once its last
/// records had time to be published (so the registers in the cluster are
/// final when another node takes the meter).
struct ReleaseLease {
    leases: Arc<dyn MeterLeases>,
    meter: String,
    revision: u64,
    after: std::time::Duration,
}

impl Drop for ReleaseLease {
    fn drop(&mut self) {
        let (leases, meter, revision, after) = (
            Arc::clone(&self.leases),
            std::mem::take(&mut self.meter),
            self.revision,
            self.after,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(after).await;
                leases.release(&meter, revision).await;
            });
        }
    }
}

/// Counts a connection as pending (no info line yet) while it lives.
pub struct PendingGuard(Arc<Registry>);

impl PendingGuard {
    /// Counts one more pending connection.
    pub fn new(registry: &Arc<Registry>) -> Self {
        registry
            .server
            .pending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PendingGuard(Arc::clone(registry))
    }

    /// Counts one more pending connection, unless `max` are pending already.
    pub fn try_new(registry: &Arc<Registry>, max: usize) -> Option<Self> {
        let guard = Self::new(registry);
        let pending = registry
            .server
            .pending
            .load(std::sync::atomic::Ordering::Relaxed);
        (pending <= max as u64).then_some(guard)
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0
            .server
            .pending
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
