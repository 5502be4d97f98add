//! The packet deliverer: fans each packet out to the configured targets.
//!
//! Every target gets its own lane: an ordered queue (a bounded part in
//! memory, the rest in the target's on-disk [`Spool`]) and its own task. So
//! a slow or dead target never holds up the pipeline or the other targets;
//! [`Deliverer::send`] only appends to the lanes and returns.
//!
//! A lane's queue is always "spool, then memory" in age order. A packet
//! stays at the front of the queue until its target has it, so a failed
//! delivery never reorders or drops anything: the lane moves the memory
//! part to the spool (so a crash loses nothing), waits with exponential
//! backoff, and tries the same packet again. After a restart the spool is
//! sent first.
//!
//! A [`DeliveryConfig`] in TOML (every table optional):
//! ```toml
//! stdout = false
//! [ndjson]
//! dir = "out/packets"          # prefix, max_file_bytes, max_file_age_secs
//! [http]
//! url = "https://example.invalid/packets"
//! headers = { Authorization = "Bearer …" }
//! timeout_ms = 10000           # max_attempts, backoff_initial_ms, backoff_max_ms
//! [mqtt]
//! host = "127.0.0.1"           # port, topic = "betterfleet/{device_id}", client_id, …
//! [spool]
//! dir = "spool"                # segment_max_bytes, fsync_interval_ms, memory_queue
//! [retry]
//! initial_backoff_ms = 500     # max_backoff_ms
//! ```

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::http::{backoff_delay, HttpConfig, HttpTarget};
use super::model::Packet;
use super::mqtt::{MqttConfig, MqttTarget};
use super::ndjson::{NdjsonConfig, NdjsonTarget};
use super::spool::{Spool, SpoolFull, SpoolOptions};
use super::stdout::StdoutTarget;
use super::target::{DeliveryError, PacketTarget};

fn default_spool_dir() -> PathBuf {
    PathBuf::from("spool")
}
fn default_segment_max_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_fsync_interval_ms() -> u64 {
    1000
}
fn default_memory_queue() -> usize {
    64
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

/// Where undeliverable packets wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Each target spools to `<dir>/<target name>/`.
    #[serde(default = "default_spool_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// Longest time a spooled packet waits for fsync.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// Packets a lane keeps in memory before it writes them to the spool.
    #[serde(default = "default_memory_queue")]
    pub memory_queue: usize,
    /// Cap on the packets waiting in one target's spool, bytes; packets
    /// beyond it are dropped for that target, counted and logged.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

fn default_spool_max_bytes() -> u64 {
    1 << 30
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: default_spool_dir(),
            segment_max_bytes: default_segment_max_bytes(),
            fsync_interval_ms: default_fsync_interval_ms(),
            memory_queue: default_memory_queue(),
            max_bytes: default_spool_max_bytes(),
        }
    }
}

/// How long a lane waits before trying a down target again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

/// The delivery targets (each optional, any combination) and how
/// undeliverable packets are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default)]
    pub ndjson: Option<NdjsonConfig>,
    /// Also print every packet as one line on standard output.
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub http: Option<HttpConfig>,
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

impl DeliveryConfig {
    /// Each target's name and where it sends, as a summary says it.
    pub fn places(&self) -> Vec<(String, String)> {
        let mut places = Vec::new();
        if let Some(ndjson) = &self.ndjson {
            places.push((
                "ndjson".into(),
                format!("NDJSON files in {}", ndjson.dir.display()),
            ));
        }
        if let Some(http) = &self.http {
            places.push(("http".into(), http.url.clone()));
        }
        if let Some(mqtt) = &self.mqtt {
            places.push((
                "mqtt".into(),
                format!("mqtt://{}:{} {}", mqtt.host, mqtt.port, mqtt.topic),
            ));
        }
        if self.stdout {
            places.push(("stdout".into(), "standard output".into()));
        }
        places
    }
}

/// What one target has done so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetStats {
    pub target: String,
    /// Packets the target has acknowledged.
    pub delivered: u64,
    /// Packets waiting in the spool on disk.
    pub spooled: u64,
    /// Packets waiting in memory.
    pub queued_in_memory: u64,
    /// Packets the target refused for good (kept in `rejected.ndjson`).
    pub rejected: u64,
    /// Failed delivery attempts (each followed by a backoff).
    pub failed_attempts: u64,
    /// Packets dropped because the spool was at its byte cap.
    pub overflowed: u64,
}

/// The counts in words, e.g. `12 delivered, 3 spooled, 0 in memory, 0 rejected, 1 failed attempt`.
impl std::fmt::Display for TargetStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attempts = if self.failed_attempts == 1 {
            "attempt"
        } else {
            "attempts"
        };
        write!(
            f,
            "{} delivered, {} spooled, {} in memory, {} rejected, {} failed {attempts}",
            self.delivered,
            self.spooled,
            self.queued_in_memory,
            self.rejected,
            self.failed_attempts
        )?;
        if self.overflowed > 0 {
            write!(f, ", {} dropped at the spool's byte cap", self.overflowed)?;
        }
        Ok(())
    }
}

struct LaneQueue {
    memory: VecDeque<Bytes>,
    memory_cap: usize,
    spool: Spool,
    /// While the target is down, new packets go straight to disk.
    target_down: bool,
    /// Packets dropped at the spool's byte cap, and whether it is full now.
    overflowed: u64,
    full: bool,
}

impl LaneQueue {
    /// Appends at the end of the queue.
    fn push(&mut self, packet: Bytes) -> Result<()> {
        if self.target_down || self.memory.len() >= self.memory_cap {
            self.spill()?;
            self.spool_or_drop(&packet)
        } else {
            self.memory.push_back(packet);
            Ok(())
        }
    }

    /// Moves the memory part to the end of the spool (order kept).
    fn spill(&mut self) -> Result<()> {
        while let Some(packet) = self.memory.front().cloned() {
            self.spool_or_drop(&packet)?;
            self.memory.pop_front();
        }
        Ok(())
    }

    /// Appends to the spool; past its byte cap the packet is dropped and
    /// counted, with one log line when that starts and one when it ends.
    fn spool_or_drop(&mut self, packet: &[u8]) -> Result<()> {
        match self.spool.append(packet) {
            Err(error) if error.downcast_ref::<SpoolFull>().is_some() => {
                if !self.full {
                    tracing::error!("{error}: new packets for this target are dropped and counted");
                }
                self.full = true;
                self.overflowed += 1;
                Ok(())
            }
            Err(error) => Err(error),
            Ok(()) => {
                if self.full {
                    tracing::warn!(spool = %self.spool.dir().display(), "spool below its byte cap again");
                }
                self.full = false;
                Ok(())
            }
        }
    }

    /// The oldest packet, left in place.
    fn front(&mut self) -> Result<Option<Bytes>> {
        if !self.spool.is_empty() {
            if let Some(packet) = self.spool.peek()? {
                return Ok(Some(packet));
            }
        }
        Ok(self.memory.front().cloned())
    }

    /// Removes the oldest packet (it was delivered or rejected).
    fn pop_front(&mut self) -> Result<()> {
        if !self.spool.is_empty() {
            self.spool.ack()
        } else {
            self.memory.pop_front();
            Ok(())
        }
    }
}

struct LaneShared {
    name: String,
    queue: Mutex<LaneQueue>,
    wake: Notify,
    spooled: Arc<AtomicU64>,
    in_memory: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    failed_attempts: AtomicU64,
    rejected_file: PathBuf,
}

impl LaneShared {
    /// A poisoned lock only means a panic elsewhere; the queue itself is
    /// still consistent, so keep going.
    fn lock(&self) -> MutexGuard<'_, LaneQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note_memory(&self, queue: &LaneQueue) {
        self.in_memory
            .store(queue.memory.len() as u64, Ordering::Relaxed);
    }

    fn stats(&self) -> TargetStats {
        TargetStats {
            target: self.name.clone(),
            delivered: self.delivered.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            queued_in_memory: self.in_memory.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            overflowed: self.lock().overflowed,
        }
    }

    fn keep_rejected(&self, packet: &Bytes) -> Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.rejected_file)
            .with_context(|| format!("opening {}", self.rejected_file.display()))?;
        let mut line = packet.to_vec();
        line.push(b'\n');
        file.write_all(&line)
            .with_context(|| format!("writing {}", self.rejected_file.display()))
    }
}

struct Lane {
    shared: Arc<LaneShared>,
    task: JoinHandle<()>,
}

/// Sends packets to every configured target; see the module docs.
pub struct Deliverer {
    lanes: Vec<Lane>,
    runtime: tokio::runtime::Handle,
    spool: SpoolConfig,
    retry: RetryConfig,
    /// `Some(deadline)` once shutdown has begun.
    shutdown: watch::Sender<Option<Instant>>,
}

impl Deliverer {
    /// Starts a lane for every target in `config`. `device_id` is the
    /// gateway's UUID (fills the MQTT topic template). Must be called inside
    /// a tokio runtime; the lanes run on it.
    pub fn start(config: &DeliveryConfig, device_id: Uuid) -> Result<Self> {
        let mut deliverer = Self::without_targets(config)?;
        if let Some(ndjson) = &config.ndjson {
            deliverer.add_target(NdjsonTarget::new(ndjson.clone())?)?;
        }
        if config.stdout {
            deliverer.add_target(StdoutTarget::new())?;
        }
        if let Some(http) = &config.http {
            deliverer.add_target(HttpTarget::new(http.clone())?)?;
        }
        if let Some(mqtt) = &config.mqtt {
            deliverer.add_target(MqttTarget::new(mqtt, device_id)?)?;
        }
        Ok(deliverer)
    }

    /// A deliverer with no targets yet (see [`Self::add_target`]); only the
    /// spool and retry settings of `config` are used.
    pub fn without_targets(config: &DeliveryConfig) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the packet deliverer must be started inside a tokio runtime")?;
        let (shutdown, _) = watch::channel(None);
        Ok(Self {
            lanes: Vec::new(),
            runtime,
            spool: config.spool.clone(),
            retry: config.retry.clone(),
            shutdown,
        })
    }

    /// Adds a target with its own lane and spool (`<spool dir>/<name>`);
    /// packets it missed in an earlier run are sent first.
    pub fn add_target<T: PacketTarget>(&mut self, target: T) -> Result<()> {
        let name = target.name().to_owned();
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            bail!("delivery target name {name:?} cannot name a spool folder");
        }
        if self.lanes.iter().any(|l| l.shared.name == name) {
            bail!("two delivery targets are both named {name:?}");
        }
        let dir = self.spool.dir.join(&name);
        let spool = Spool::open(
            &dir,
            SpoolOptions {
                segment_max_bytes: self.spool.segment_max_bytes.max(1),
                fsync_interval: Duration::from_millis(self.spool.fsync_interval_ms),
                max_bytes: self.spool.max_bytes,
            },
        )
        .with_context(|| format!("opening the spool of target {name}"))?;
        if !spool.is_empty() {
            tracing::info!(target_name = %name, spooled = spool.len(), "resuming spooled packets");
        }
        let shared = Arc::new(LaneShared {
            spooled: spool.pending_counter(),
            rejected_file: dir.join("rejected.ndjson"),
            queue: Mutex::new(LaneQueue {
                memory: VecDeque::new(),
                memory_cap: self.spool.memory_queue,
                spool,
                target_down: false,
                overflowed: 0,
                full: false,
            }),
            wake: Notify::new(),
            in_memory: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            name,
        });
        let lane = LaneRunner {
            target,
            shared: Arc::clone(&shared),
            shutdown: self.shutdown.subscribe(),
            initial_backoff: Duration::from_millis(self.retry.initial_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(self.retry.max_backoff_ms.max(1)),
            maintain_every: Duration::from_millis(self.spool.fsync_interval_ms.clamp(10, 1000)),
        };
        let task = self.runtime.spawn(lane.run());
        self.lanes.push(Lane { shared, task });
        Ok(())
    }

    /// The targets' names, in the order they were added.
    pub fn targets(&self) -> Vec<String> {
        self.lanes.iter().map(|l| l.shared.name.clone()).collect()
    }

    /// Queues one packet for every target. Never waits for a target; fails
    /// only when a packet can be neither kept in memory nor spooled (e.g. the
    /// disk is full), so the caller knows it was not kept.
    pub fn send(&self, packet: &Packet) -> Result<()> {
        let json = serde_json::to_vec(packet).context("serialising a packet")?;
        self.send_serialized(Bytes::from(json))
    }

    /// [`Self::send`] for each packet, in order; stops at the first failure.
    pub fn send_all(&self, packets: &[Packet]) -> Result<()> {
        packets.iter().try_for_each(|p| self.send(p))
    }

    /// [`Self::send`] for a packet already serialised (one JSON document
    /// without newlines).
    pub fn send_serialized(&self, packet: Bytes) -> Result<()> {
        if packet.contains(&b'\n') {
            bail!("a serialised packet must be a single line");
        }
        let mut failed = Vec::new();
        for lane in &self.lanes {
            let mut queue = lane.shared.lock();
            match queue.push(packet.clone()) {
                Ok(()) => {}
                Err(e) => failed.push(format!("{}: {e:#}", lane.shared.name)),
            }
            lane.shared.note_memory(&queue);
            drop(queue);
            lane.shared.wake.notify_one();
        }
        if !failed.is_empty() {
            bail!("packet could not be queued for {}", failed.join("; "));
        }
        Ok(())
    }

    /// Per-target counters.
    pub fn stats(&self) -> Vec<TargetStats> {
        self.lanes.iter().map(|l| l.shared.stats()).collect()
    }

    /// Whether every packet sent so far was delivered or is in a spool
    /// (no lane holds one only in memory).
    pub fn settled(&self) -> bool {
        self.lanes
            .iter()
            .all(|l| l.shared.in_memory.load(Ordering::Relaxed) == 0)
    }

    /// Moves every packet held only in memory to its lane's spool and
    /// syncs the spools: after this, everything sent survives a crash.
    pub fn persist(&self) -> Result<()> {
        for lane in &self.lanes {
            let mut queue = lane.shared.lock();
            queue
                .spill()
                .and_then(|()| queue.spool.sync())
                .with_context(|| format!("spooling the packets of {}", lane.shared.name))?;
            lane.shared.note_memory(&queue);
        }
        Ok(())
    }

    /// Packets waiting in all spools together.
    pub fn spooled(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| l.shared.spooled.load(Ordering::Relaxed))
            .sum()
    }

    /// Delivers what it can within `drain_timeout`, spools the rest (sent on
    /// the next start), closes the targets and returns the final counters.
    pub async fn shutdown(mut self, drain_timeout: Duration) -> Result<Vec<TargetStats>> {
        // Nobody may be subscribed any more (all lanes ended): that is fine.
        let _ = self.shutdown.send(Some(Instant::now() + drain_timeout));
        let mut errors = Vec::new();
        for lane in self.lanes.iter_mut().map(|l| &mut l.task) {
            if let Err(e) = lane.await {
                errors.push(format!("a delivery lane failed: {e}"));
            }
        }
        let stats = self.stats();
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        Ok(stats)
    }
}

/// One target's task.
struct LaneRunner<T> {
    target: T,
    shared: Arc<LaneShared>,
    shutdown: watch::Receiver<Option<Instant>>,
    initial_backoff: Duration,
    max_backoff: Duration,
    maintain_every: Duration,
}

/// Resolves once shutdown has begun and its deadline has passed.
async fn deadline_passed(shutdown: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *shutdown.borrow_and_update();
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        if shutdown.changed().await.is_err() {
            // The deliverer is gone without a shutdown: stop now.
            return;
        }
    }
}

impl<T: PacketTarget> LaneRunner<T> {
    async fn run(mut self) {
        let name = self.shared.name.clone();
        let mut failures: u32 = 0;
        let mut last_maintain = Instant::now();
        loop {
            if self.shutdown.has_changed().is_err() {
                // The deliverer was dropped without `shutdown`: keep what is
                // queued on disk and stop.
                break;
            }
            let shutting_down = self.shutdown.borrow().is_some();
            if last_maintain.elapsed() >= self.maintain_every {
                last_maintain = Instant::now();
                self.maintain().await;
            }
            let front = {
                let mut queue = self.shared.lock();
                queue.front()
            };
            let packet = match front {
                Ok(Some(packet)) => packet,
                Ok(None) if shutting_down => break,
                Ok(None) => {
                    tokio::select! {
                        _ = self.shared.wake.notified() => {}
                        _ = tokio::time::sleep(self.maintain_every) => {}
                        _ = self.shutdown.changed() => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(target_name = %name, error = %format!("{e:#}"), "cannot read the spool; retrying");
                    failures = failures.saturating_add(1);
                    if self.pause(failures).await {
                        break;
                    }
                    continue;
                }
            };

            let result = tokio::select! {
                biased;
                result = self.target.deliver(&packet) => result,
                _ = deadline_passed(&mut self.shutdown) => break,
            };
            match result {
                Ok(()) => {
                    self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                    self.after_front_done(&name, failures > 0);
                    failures = 0;
                }
                Err(DeliveryError::Rejected(e)) => {
                    tracing::error!(target_name = %name, error = %format!("{e:#}"), "packet rejected; kept in rejected.ndjson");
                    if let Err(keep) = self.shared.keep_rejected(&packet) {
                        tracing::error!(target_name = %name, error = %format!("{keep:#}"), "could not keep a rejected packet; retrying");
                        failures = failures.saturating_add(1);
                        if self.pause(failures).await {
                            break;
                        }
                        continue;
                    }
                    self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                    self.after_front_done(&name, false);
                }
                Err(DeliveryError::Unavailable(e)) => {
                    self.shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                    {
                        let mut queue = self.shared.lock();
                        if !queue.target_down {
                            tracing::warn!(target_name = %name, error = %format!("{e:#}"), "target down; spooling its packets");
                            queue.target_down = true;
                        } else {
                            tracing::debug!(target_name = %name, error = %format!("{e:#}"), "target still down");
                        }
                        if let Err(spill) = queue.spill() {
                            tracing::error!(target_name = %name, error = %format!("{spill:#}"), "cannot spool; packets stay in memory");
                        }
                        self.shared.note_memory(&queue);
                    }
                    if self.pause(failures).await {
                        break;
                    }
                }
            }
        }
        self.finish().await;
    }

    fn after_front_done(&self, name: &str, was_failing: bool) {
        let mut queue = self.shared.lock();
        if let Err(e) = queue.pop_front() {
            tracing::error!(target_name = %name, error = %format!("{e:#}"), "cannot advance the spool; the packet may be sent twice");
        }
        if was_failing || queue.target_down {
            if queue.target_down {
                tracing::info!(target_name = %name, spooled = queue.spool.len(), "target back; sending spooled packets");
            }
            queue.target_down = false;
        }
        self.shared.note_memory(&queue);
    }

    /// Exponential backoff; `true` when the shutdown deadline came first.
    async fn pause(&mut self, failures: u32) -> bool {
        let delay = backoff_delay(self.initial_backoff, self.max_backoff, failures);
        if self.shutdown.borrow().is_some() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => false,
                _ = deadline_passed(&mut self.shutdown) => true,
            }
        } else {
            // A shutdown that starts during the pause must not wait out a
            // long backoff: retry once right away.
            tokio::select! {
                _ = tokio::time::sleep(delay) => false,
                _ = self.shutdown.changed() => false,
            }
        }
    }

    async fn maintain(&mut self) {
        if let Err(e) = self.target.maintain().await {
            tracing::warn!(target_name = %self.shared.name, error = %format!("{e:#}"), "target upkeep failed");
        }
        let mut queue = self.shared.lock();
        if let Err(e) = queue.spool.sync_if_due() {
            tracing::error!(target_name = %self.shared.name, error = %format!("{e:#}"), "spool fsync failed");
        }
    }

    /// Moves what is left to disk and closes the target.
    async fn finish(mut self) {
        let name = self.shared.name.clone();
        {
            let mut queue = self.shared.lock();
            if let Err(e) = queue.spill() {
                tracing::error!(target_name = %name, lost = queue.memory.len(), error = %format!("{e:#}"), "cannot spool at shutdown: these packets are lost");
            }
            if let Err(e) = queue.spool.sync() {
                tracing::error!(target_name = %name, error = %format!("{e:#}"), "spool fsync at shutdown failed");
            }
            self.shared.note_memory(&queue);
            if !queue.spool.is_empty() {
                tracing::warn!(target_name = %name, spooled = queue.spool.len(), "packets left in the spool; they are sent on the next start");
            }
        }
        if let Err(e) = self.target.close().await {
            tracing::warn!(target_name = %name, error = %format!("{e:#}"), "closing the target failed");
        }
    }
}
