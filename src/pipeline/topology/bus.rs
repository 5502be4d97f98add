//! Where records enter the topology: each gets its seq (from the record log
//! when there is one), updates the per-meter state the log's snapshots
//! carry, and goes to every output's queue in seq order.
//!
//! With a log, a full queue drops the record for that output (the output
//! reads it back from the log), and a full log blocks the emitters: the
//! engine stops taking chunks, connections stop reading their sockets and
//! the meters buffer (what they then drop shows up as gaps). Without a log
//! (batch runs), queues block instead, so nothing is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::{Sender, TrySendError};

use crate::model::{DeviceInfo, EventRow, Record};
use crate::pipeline::record_log::{AppendError, RecordLog};
use crate::pipeline::state::StateStore;
use crate::sink::live::LiveBoard;
use crate::wire::SampleBlock;

use super::codec;
use crate::source::component::RecordHandle;

/// A record on its way to one output.
pub type Entry = (u64, Arc<Record>);

/// How long an emitter waits before trying a full log again.
const FULL_LOG_RETRY: Duration = Duration::from_millis(20);

/// Counters of the bus, for `/metrics`.
#[derive(Debug, Default)]
pub struct BusCounters {
    pub records: AtomicU64,
    /// Times an emitter had to wait because the log was full.
    pub log_full_waits: AtomicU64,
    /// Records refused for good (too large for the log, log closed).
    pub refused: AtomicU64,
    /// Spans of lost results recorded (one per meter and crash).
    pub lost_result_spans: AtomicU64,
}

struct Lanes {
    senders: Vec<Sender<Entry>>,
    /// Seq of the last record (without a log: counted here).
    last_seq: u64,
}

/// The entry point of records; share as `Arc<RecordBus>`.
pub struct RecordBus {
    lanes: Mutex<Lanes>,
    log: Option<Arc<RecordLog>>,
    state: Option<Arc<StateStore>>,
    raw: bool,
    /// The live view's board: the engine hands it each block's last cycles.
    live: Option<Arc<LiveBoard>>,
    closed: AtomicBool,
    /// Whether the last append found the log full (for one log line per change).
    log_full: AtomicBool,
    pub counters: BusCounters,
}

impl RecordBus {
    pub(super) fn new(
        senders: Vec<Sender<Entry>>,
        log: Option<Arc<RecordLog>>,
        state: Option<Arc<StateStore>>,
        raw: bool,
        live: Option<Arc<LiveBoard>>,
    ) -> Self {
        let last_seq = log.as_ref().map_or(0, |log| log.last_seq());
        RecordBus {
            lanes: Mutex::new(Lanes { senders, last_seq }),
            log,
            state,
            raw,
            live,
            closed: AtomicBool::new(false),
            log_full: AtomicBool::new(false),
            counters: BusCounters::default(),
        }
    }

    /// Whether raw sample blocks are wanted (the raw archive is on).
    pub fn wants_raw(&self) -> bool {
        self.raw
    }

    /// Shows a device's newest samples on the live view, when there is one
    /// (past the record log: the waveform is for looking at, not keeping).
    pub fn tap_samples(&self, device: &DeviceInfo, block: &SampleBlock) {
        if let Some(live) = &self.live {
            live.samples(device, block);
        }
    }

    /// Hands a record to every output. Blocks while the log is full. An
    /// error means the record was not kept (already logged and counted).
    pub fn emit(&self, record: Record) -> anyhow::Result<u64> {
        let loss = self.state.as_ref().and_then(|s| s.loss_before(&record));
        if let Some(loss) = loss {
            self.record_loss(loss)?;
        }
        self.emit_one(record)
    }

    /// Hands on a `lost_results` row: counted, logged, written.
    pub fn record_loss(&self, loss: EventRow) -> anyhow::Result<u64> {
        self.counters.lost_result_spans.fetch_add(1, Relaxed);
        tracing::warn!(meter = %loss.device.name, "{}", loss.message);
        self.emit_one(Record::Event(loss))
    }

    fn emit_one(&self, record: Record) -> anyhow::Result<u64> {
        let payload = match &self.log {
            Some(_) => Some(codec::encode(&record)?),
            None => None,
        };
        let record = Arc::new(record);
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let seq = match (&self.log, &payload) {
            (Some(log), Some(payload)) => self.append(log, payload)?,
            _ => lanes.last_seq + 1,
        };
        lanes.last_seq = seq;
        self.counters.records.fetch_add(1, Relaxed);
        if let Some(state) = &self.state {
            state.apply(&record);
        }
        for sender in &lanes.senders {
            let entry = (seq, Arc::clone(&record));
            if self.log.is_some() {
                match sender.try_send(entry) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    // The output reads it back from the log.
                    Err(TrySendError::Full(_)) => {}
                }
            } else {
                let _ = sender.send(entry);
            }
        }
        Ok(seq)
    }

    /// Appends, waiting while the log is full (backpressure).
    fn append(&self, log: &RecordLog, payload: &[u8]) -> anyhow::Result<u64> {
        let mut waited = false;
        loop {
            match log.append(payload) {
                Ok(seq) => {
                    if waited && self.log_full.swap(false, Relaxed) {
                        tracing::warn!("record log takes records again; the engine goes on");
                    }
                    return Ok(seq);
                }
                Err(AppendError::Full) if !self.closed.load(Relaxed) => {
                    if !waited {
                        waited = true;
                        self.counters.log_full_waits.fetch_add(1, Relaxed);
                    }
                    if !self.log_full.swap(true, Relaxed) {
                        tracing::warn!(
                            "record log full: the engine waits and sockets stop being read until it drains"
                        );
                    }
                    std::thread::sleep(FULL_LOG_RETRY);
                }
                Err(error) => {
                    self.counters.refused.fetch_add(1, Relaxed);
                    tracing::error!("a record was not kept: {error}");
                    return Err(error.into());
                }
            }
        }
    }

    /// Returns once every record through `seq` is on disk in the record log
    /// (at once without a log: nothing is kept beyond the outputs then).
    pub fn make_durable(&self, seq: u64) -> anyhow::Result<()> {
        if let Some(log) = &self.log {
            if log.durable_seq() < seq {
                log.flush().context("flushing the record log")?;
            }
        }
        Ok(())
    }

    /// The seq of the last record emitted.
    pub fn last_seq(&self) -> u64 {
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_seq
    }

    /// The state as of the last record, with that record's seq (taken
    /// together, so a snapshot never misses or doubles a record).
    pub(super) fn state_at(&self) -> Option<(u64, Vec<u8>)> {
        let state = self.state.as_ref()?;
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        match state.encode() {
            Ok(bytes) => Some((lanes.last_seq, bytes)),
            Err(error) => {
                tracing::error!("encoding the meter state: {error:#}");
                None
            }
        }
    }

    /// Stops waiting on a full log (shutdown) and closes the queues.
    pub(super) fn close(&self) {
        self.closed.store(true, Relaxed);
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .senders
            .clear();
    }
}

impl RecordHandle for RecordBus {
    fn emit(&self, record: Record) -> anyhow::Result<u64> {
        RecordBus::emit(self, record)
    }

    fn make_durable(&self, seq: u64) -> anyhow::Result<()> {
        RecordBus::make_durable(self, seq)
    }

    fn last_seq(&self) -> u64 {
        RecordBus::last_seq(self)
    }

    fn wants_raw(&self) -> bool {
        RecordBus::wants_raw(self)
    }

    fn tap_samples(&self, device: &DeviceInfo, block: &SampleBlock) {
        RecordBus::tap_samples(self, device, block)
    }
}
