//! Who is connected and what each meter has sent: the one-live-connection-
//! per-name rule, the per-meter counters behind `/metrics`, and the count of
//! peers dropped, by reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::warn_limit::{WarnLimit, WarnVerdict};
use crate::source::component::EngineCounters;
use crate::wire::WireStats;

/// Why a peer was dropped (a label in `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// More streaming connections than `max_connections`.
    TooManyConnections,
    /// More connections without an info line than `max_pending`.
    TooManyPending,
    /// The source address is outside `allow_networks`.
    NetworkNotAllowed,
    /// No info line within the info timeout (or garbage instead).
    NoInfoLine,
    /// A name that cannot be a meter's (empty, too long, odd characters).
    BadName,
    /// The name is not in `allow_names`.
    NameNotAllowed,
    /// The name already streams on another connection.
    Duplicate,
    /// The meter refused `sample` or never answered it.
    Handshake,
    /// Silent for longer than the idle timeout while streaming.
    Idle,
    /// A read or write failed.
    Io,
    /// Cluster mode: another node streams this meter (holds its lease).
    LeaseHeld,
    /// Cluster mode: the lease store (NATS) did not answer.
    LeaseUnavailable,
}

impl DropReason {
    pub const ALL: [DropReason; 12] = [
        DropReason::TooManyConnections,
        DropReason::TooManyPending,
        DropReason::NetworkNotAllowed,
        DropReason::NoInfoLine,
        DropReason::BadName,
        DropReason::NameNotAllowed,
        DropReason::Duplicate,
        DropReason::Handshake,
        DropReason::Idle,
        DropReason::Io,
        DropReason::LeaseHeld,
        DropReason::LeaseUnavailable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::TooManyConnections => "too_many_connections",
            DropReason::TooManyPending => "too_many_pending",
            DropReason::NetworkNotAllowed => "network_not_allowed",
            DropReason::NoInfoLine => "no_info_line",
            DropReason::BadName => "bad_name",
            DropReason::NameNotAllowed => "name_not_allowed",
            DropReason::Duplicate => "duplicate_name",
            DropReason::Handshake => "handshake",
            DropReason::Idle => "idle",
            DropReason::Io => "io",
            DropReason::LeaseHeld => "lease_held",
            DropReason::LeaseUnavailable => "lease_unavailable",
        }
    }
}

/// One meter's counters, over all its connections.
#[derive(Debug, Default)]
pub struct MeterCounters {
    pub connected: AtomicU64,
    pub connections: AtomicU64,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Samples into the engine and windows out, counted by the engine.
    pub engine: Arc<EngineCounters>,
    pub gaps: AtomicU64,
    pub lost_chunks: AtomicU64,
    pub resyncs: AtomicU64,
    pub bad_lengths: AtomicU64,
    pub meter_warnings: AtomicU64,
    /// When the last connection of this meter ended, s since the epoch.
    pub last_seen_unix_s: AtomicU64,
}

impl MeterCounters {
    /// Adds what the decoder counted since `before`.
    pub fn add_wire(&self, before: &WireStats, now: &WireStats) {
        self.frames
            .fetch_add(now.data_frames - before.data_frames, Relaxed);
        self.bytes
            .fetch_add(now.payload_bytes - before.payload_bytes, Relaxed);
        self.gaps.fetch_add(now.gaps - before.gaps, Relaxed);
        self.lost_chunks
            .fetch_add(now.lost_chunks - before.lost_chunks, Relaxed);
        // A corrupt packet number is a resync too (nothing was lost).
        let resyncs = now.resyncs + now.sequence_glitches;
        self.resyncs.fetch_add(
            resyncs - (before.resyncs + before.sequence_glitches),
            Relaxed,
        );
        self.bad_lengths
            .fetch_add(now.bad_lengths - before.bad_lengths, Relaxed);
    }
}

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub accepted: AtomicU64,
    pub pending: AtomicU64,
    pub streaming: AtomicU64,
    pub peak_streaming: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl ServerCounters {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Relaxed)
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|d| d.load(Relaxed)).sum()
    }
}

/// The live connections by meter name and every meter's counters.
#[derive(Debug, Default)]
pub struct Registry {
    live: Mutex<BTreeMap<String, u64>>,
    meters: Mutex<BTreeMap<String, Arc<MeterCounters>>>,
    next_connection: AtomicU64,
    pub server: ServerCounters,
    /// Keeps a burst of refused peers from flooding the log.
    refusals: WarnLimit,
}

/// A name held by one connection; released when dropped.
#[derive(Debug)]
pub struct Claim {
    registry: Arc<Registry>,
    name: String,
    connection: u64,
    pub counters: Arc<MeterCounters>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.get(&self.name) == Some(&self.connection) {
            live.remove(&self.name);
        }
        self.counters.connected.store(0, Relaxed);
        self.counters.last_seen_unix_s.store(now_unix_s(), Relaxed);
        self.registry.server.streaming.fetch_sub(1, Relaxed);
    }
}

impl Claim {
    pub fn connection(&self) -> u64 {
        self.connection
    }
}

impl Registry {
    /// Counts a dropped peer.
    pub fn dropped(&self, reason: DropReason) {
        self.server.dropped[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts a dropped peer and logs it, the first few of a burst only
    /// (then one line with how many were left out; `/metrics` has them all).
    pub fn refuse(&self, peer: SocketAddr, reason: DropReason, detail: &dyn std::fmt::Display) {
        self.dropped(reason);
        match self.refusals.check() {
            WarnVerdict::Log { left_out } => {
                if left_out > 0 {
                    tracing::warn!(left_out, "{left_out} more dropped peers were not logged");
                }
                tracing::warn!(%peer, reason = reason.label(), "peer dropped: {detail}");
            }
            WarnVerdict::Quiet => {
                tracing::debug!(%peer, reason = reason.label(), "peer dropped: {detail}");
            }
        }
    }

    /// Says how many refused peers were not logged once their burst is over
    /// (called periodically: a burst that stops has no next refusal to say it).
    pub fn summarise_refusals(&self) {
        if let Some(left_out) = self.refusals.overdue() {
            tracing::warn!(left_out, "{left_out} more dropped peers were not logged");
        }
    }

    /// Takes `name` for a new connection, unless another one streams under it.
    pub fn claim(self: &Arc<Self>, name: &str) -> Option<Claim> {
        let connection = self.next_connection.fetch_add(1, Relaxed);
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if live.contains_key(name) {
                return None;
            }
            live.insert(name.to_string(), connection);
        }
        let counters = Arc::clone(
            self.meters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(name.to_string())
                .or_default(),
        );
        counters.connected.store(1, Relaxed);
        counters.connections.fetch_add(1, Relaxed);
        let streaming = self.server.streaming.fetch_add(1, Relaxed) + 1;
        self.server.peak_streaming.fetch_max(streaming, Relaxed);
        Some(Claim {
            registry: Arc::clone(self),
            name: name.to_string(),
            connection,
            counters,
        })
    }

    /// Forgets meters that are not connected and were last seen more than
    /// `max_idle_s` ago; returns their names.
    pub fn forget_idle(&self, max_idle_s: u64) -> Vec<String> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_unix_s();
        let idle: Vec<String> = meters
            .iter()
            .filter(|(name, c)| {
                !live.contains_key(name.as_str())
                    && c.connected.load(Relaxed) == 0
                    && now.saturating_sub(c.last_seen_unix_s.load(Relaxed)) > max_idle_s
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &idle {
            meters.remove(name);
        }
        idle
    }

    /// Every meter seen, with its counters.
    pub fn meters(&self) -> Vec<(String, Arc<MeterCounters>)> {
        self.meters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, counters)| (name.clone(), Arc::clone(counters)))
            .collect()
    }

    /// Sum of one counter over all meters.
    pub fn total(&self, counter: impl Fn(&MeterCounters) -> &AtomicU64) -> u64 {
        self.meters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|m| counter(m).load(Relaxed))
            .sum()
    }
}

/// What [`valid_meter_name`] takes, for error messages.
pub const METER_NAME_RULE: &str =
    "a meter name is 1 to 64 of A-Z a-z 0-9 . _ - and does not start with a dot";

/// Whether a meter name can be used as an identity (it names files and
/// metric labels): 1–64 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub fn valid_meter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_streams_on_one_connection_at_a_time() {
        let registry = Arc::new(Registry::default());
        let first = registry.claim("smartmeter001").unwrap();
        assert!(registry.claim("smartmeter001").is_none());
        let other = registry.claim("smartmeter002").unwrap();
        assert_eq!(registry.server.streaming.load(Relaxed), 2);
        drop(first);
        let again = registry.claim("smartmeter001").unwrap();
        assert_eq!(again.counters.connections.load(Relaxed), 2);
        assert_eq!(registry.server.peak_streaming.load(Relaxed), 2);
        drop((again, other));
        assert_eq!(registry.server.streaming.load(Relaxed), 0);
    }

    #[test]
    fn meters_gone_long_enough_are_forgotten_and_streaming_ones_kept() {
        let registry = Arc::new(Registry::default());
        let streaming = registry.claim("streaming").unwrap();
        drop(registry.claim("gone").unwrap());
        drop(registry.claim("recent").unwrap());
        let an_hour_ago = now_unix_s() - 3600;
        for (name, counters) in registry.meters() {
            if name == "gone" {
                counters.last_seen_unix_s.store(an_hour_ago, Relaxed);
            }
        }
        // `streaming` never had a last-seen time: a live claim keeps it anyway.
        assert_eq!(registry.forget_idle(60), ["gone"]);
        let names: Vec<String> = registry.meters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["recent", "streaming"]);
        drop(streaming);
        assert!(registry.forget_idle(60).is_empty());
    }

    #[test]
    fn meter_names_are_checked() {
        assert!(valid_meter_name("smartmeter001"));
        assert!(valid_meter_name("lab-3.phase_a"));
        for bad in ["", ".hidden", "../etc", "a b", "x\"y", &"m".repeat(65)] {
            assert!(!valid_meter_name(bad), "{bad:?}");
        }
    }
}
