//! The threads that compute windows. Connection tasks only read and split
//! frames; every connection's chunks go, in order, to one worker (the least
//! loaded when it started) over a bounded channel, so a slow worker makes its connections stop
//! reading their sockets instead of piling up memory.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::model::latency::LatencyRecorder;
use crate::model::run_report::DeviceSummary;
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::device::DeviceProcessor;
use crate::source::capture::{CaptureVisitor, SessionDescription};
use crate::source::component::RecordHandle;
use crate::source::decoder::{BlockFeed, Decoded};
use crate::source::event::SourceEvent;
use crate::wire::samples::{sample_time, SampleBlock};

use super::state::StateStore;
use crate::source::component::{EngineCounters, EngineLane, Job, WindowEngine};

/// What the workers share.
pub struct WorkerContext {
    pub config: PipelineConfig,
    /// Where the devices' records go (through the record log).
    pub records: Arc<dyn RecordHandle>,
    /// Per-meter state, derived from the records the log holds.
    pub state: Arc<StateStore>,
    /// From the arrival of a window's last chunk to its rows being handed to the sinks.
    pub window_latency: LatencyRecorder,
    /// Samples taken per session at most (the rest of a stream is dropped).
    pub sample_limit: Option<u64>,
}

/// The running workers.
pub struct WorkerPool {
    senders: Vec<mpsc::Sender<Job>>,
    /// Bytes per second of the streams each worker holds.
    loads: Arc<[std::sync::atomic::AtomicU64]>,
    threads: Vec<std::thread::JoinHandle<Vec<DeviceSummary>>>,
    capacity: usize,
}

impl WorkerPool {
    pub fn start(
        count: usize,
        queue_depth: usize,
        context: Arc<WorkerContext>,
    ) -> anyhow::Result<Self> {
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            let (sender, receiver) = mpsc::channel(queue_depth);
            let context = Arc::clone(&context);
            let thread = std::thread::Builder::new()
                .name(format!("meterflow-worker-{index}"))
                .spawn(move || Worker::new(context).run(receiver))
                .context("starting a window worker thread")?;
            senders.push(sender);
            threads.push(thread);
        }
        Ok(WorkerPool {
            loads: senders.iter().map(|_| Default::default()).collect(),
            senders,
            threads,
            capacity: queue_depth,
        })
    }

    /// Jobs waiting in each worker's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.senders
            .iter()
            .map(|s| self.capacity - s.capacity())
            .collect()
    }

    /// Lets the workers finish what is queued (every connection must have
    /// ended first) and returns the summaries of every session.
    pub fn finish(self) -> Vec<DeviceSummary> {
        drop(self.senders);
        let mut summaries = Vec::new();
        for thread in self.threads {
            match thread.join() {
                Ok(done) => summaries.extend(done),
                Err(_) => {
                    tracing::error!("a window worker panicked; its meters' last windows are lost")
                }
            }
        }
        summaries
    }
}

impl WindowEngine for WorkerPool {
    /// The queue of the worker with the least load (in bytes per second of
    /// the streams it holds); the lane gives the load back when dropped.
    fn assign(&self, load: u64) -> EngineLane {
        let index = self
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.load(Relaxed))
            .map_or(0, |(k, _)| k);
        self.loads[index].fetch_add(load, Relaxed);
        EngineLane {
            sender: self.senders[index].clone(),
            held: Box::new(LoadShare {
                loads: Arc::clone(&self.loads),
                index,
                load,
            }),
        }
    }
}

/// A session's share of its worker's load, given back when it ends.
struct LoadShare {
    loads: Arc<[std::sync::atomic::AtomicU64]>,
    index: usize,
    load: u64,
}

impl Drop for LoadShare {
    fn drop(&mut self) {
        self.loads[self.index].fetch_sub(self.load, Relaxed);
    }
}

/// One session on a worker.
struct Session {
    feed: BlockFeed,
    device: Device,
}

/// The device processor of a session, and what it resumes after.
struct Device {
    processor: Option<DeviceProcessor>,
    name: String,
    counters: Arc<EngineCounters>,
    /// Blocks before this meter time were already covered by an earlier run.
    resume_after_ns: Option<i64>,
    skipped_samples: u64,
    /// Samples past this index are the tail a stop drained (a demo run's
    /// meters asked for a set length): left out.
    sample_limit: Option<u64>,
}

impl CaptureVisitor for Device {
    fn session_start(&mut self, _: &SessionDescription) {}

    fn block(&mut self, block: &SampleBlock) {
        let Some(processor) = self.processor.as_mut() else {
            return;
        };
        if let Some(resume) = self.resume_after_ns {
            let end = sample_time(
                block.start_unix_ns,
                block.rate,
                block.first_index + block.len() as u64,
            );
            if end <= resume {
                // Already in the outputs (a meter whose clock went back, a replay).
                self.skipped_samples += block.len() as u64;
                return;
            }
            self.resume_after_ns = None;
        }
        if let Some(limit) = self.sample_limit {
            let end = block.first_index + block.len() as u64;
            if block.first_index >= limit {
                return;
            }
            if end > limit {
                let mut head = block.clone();
                let keep = (limit - block.first_index) as usize;
                head.channels.iter_mut().for_each(|c| c.truncate(keep));
                self.counters.samples.fetch_add(keep as u64, Relaxed);
                processor.block(&head);
                return;
            }
        }
        self.counters.samples.fetch_add(block.len() as u64, Relaxed);
        processor.block(block);
    }

    fn event(&mut self, event: SourceEvent) {
        if let Some(processor) = self.processor.as_mut() {
            processor.event(&event);
        }
    }
}

struct Worker {
    context: Arc<WorkerContext>,
    sessions: HashMap<u64, Session>,
    summaries: Vec<DeviceSummary>,
}

impl Worker {
    fn new(context: Arc<WorkerContext>) -> Self {
        Worker {
            context,
            sessions: HashMap::new(),
            summaries: Vec::new(),
        }
    }

    fn run(mut self, mut jobs: mpsc::Receiver<Job>) -> Vec<DeviceSummary> {
        while let Some(job) = jobs.blocking_recv() {
            match job {
                Job::Start {
                    connection,
                    description,
                    counters,
                } => self.start(connection, *description, counters),
                Job::Items {
                    connection,
                    items,
                    arrived,
                } => self.items(connection, items, arrived),
                Job::End { connection } => self.end(connection),
            }
        }
        // Connections that never said goodbye (a failed task): finish them too.
        let open: Vec<u64> = self.sessions.keys().copied().collect();
        for connection in open {
            self.end(connection);
        }
        self.summaries
    }

    fn start(
        &mut self,
        connection: u64,
        description: SessionDescription,
        counters: Arc<EngineCounters>,
    ) {
        let context = &self.context;
        let name = description.device.clone();
        let saved = context.state.get(&name);
        let processor =
            match DeviceProcessor::new(&description, &context.config, Arc::clone(&context.records))
            {
                Ok(processor) => Some(processor),
                Err(error) => {
                    tracing::error!(meter = %name, "cannot process this stream: {error:#}");
                    None
                }
            };
        let mut device = Device {
            processor,
            name,
            counters,
            resume_after_ns: None,
            skipped_samples: 0,
            sample_limit: context.sample_limit,
        };
        context.state.note_session(&device.name);
        if let (Some(saved), Some(processor)) = (saved, device.processor.as_mut()) {
            tracing::info!(
                meter = %device.name,
                imported_wh = saved.energy.total.import_wh,
                "continuing energy registers from the record log"
            );
            processor.restore_energy(saved.energy);
            device.resume_after_ns = saved.covered_until_ns;
        }
        let mut feed = BlockFeed::default();
        feed.start(&description, &mut device);
        self.sessions.insert(connection, Session { feed, device });
    }

    fn items(&mut self, connection: u64, items: Vec<Decoded>, arrived: Instant) {
        let Some(session) = self.sessions.get_mut(&connection) else {
            return;
        };
        let windows_before = session.device.processor.as_ref().map_or(0, |p| p.windows());
        session.feed.apply_all(items, &mut session.device);
        let windows = session.device.processor.as_ref().map_or(0, |p| p.windows());
        let new_windows = windows - windows_before;
        if new_windows > 0 {
            self.context
                .window_latency
                .record_many(arrived.elapsed(), new_windows);
            session
                .device
                .counters
                .windows
                .fetch_add(new_windows, Relaxed);
        }
    }

    fn end(&mut self, connection: u64) {
        let Some(mut session) = self.sessions.remove(&connection) else {
            return;
        };
        let device = &mut session.device;
        let Some(processor) = device.processor.take() else {
            return;
        };
        let summary = processor.finish();
        if device.skipped_samples > 0 {
            tracing::warn!(
                meter = %device.name,
                samples = device.skipped_samples,
                "samples before the checkpoint's coverage were left out (already in the outputs)"
            );
        }
        let mut summary = summary;
        summary.lost_samples = summary.lost_samples.max(session.feed.lost_samples());
        self.summaries.push(summary);
    }
}
