//! Many devices at once: a fixed set of worker threads, each owning the
//! engines of the devices hashed to it, fed through bounded crossbeam
//! channels. A device always lands on the same worker, so its blocks stay
//! in order; the bound is the backpressure (a full queue blocks `submit`).

use std::collections::HashMap;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use super::energy::EnergyCounters;
use super::engine::{DeviceEngine, EngineError, OwnedOutput};
use super::EngineConfig;
use crate::wire::SampleBlock;

/// Caller's name for a device.
pub type DeviceId = u64;

/// One output of one device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    Output {
        device: DeviceId,
        output: OwnedOutput,
    },
    /// The device's block was refused; its engine keeps its state.
    Error {
        device: DeviceId,
        error: EngineError,
    },
}

/// Why the pool could not take work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the worker thread has stopped")]
    WorkerGone,
    #[error("could not start a worker thread: {0}")]
    Spawn(String),
    #[error(transparent)]
    Config(#[from] EngineError),
}

enum Job {
    Block(DeviceId, SampleBlock),
    Finish(DeviceId),
    Restore(DeviceId, EnergyCounters),
}

/// Worker pool over per-device engines.
pub struct EnginePool {
    queues: Vec<Sender<Job>>,
    workers: Vec<JoinHandle<HashMap<DeviceId, EnergyCounters>>>,
}

impl EnginePool {
    /// `workers` threads (at least 1), each with a queue of `queue_blocks`
    /// blocks; every output goes to `events` (keep it drained, or the
    /// workers and then `submit` block).
    pub fn new(
        config: EngineConfig,
        workers: usize,
        queue_blocks: usize,
        events: Sender<DeviceEvent>,
    ) -> Result<Self, PoolError> {
        config
            .validate()
            .map_err(|e| PoolError::Spawn(e.to_string()))?;
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        for index in 0..workers.max(1) {
            let (tx, rx) = bounded::<Job>(queue_blocks.max(1));
            let events = events.clone();
            let config = config.clone();
            let handle = std::thread::Builder::new()
                .name(format!("dsp-worker-{index}"))
                .spawn(move || {
                    let mut devices = Devices::default();
                    for job in rx {
                        run_job(&config, &mut devices, job, &events);
                    }
                    // Queue closed: flush every device.
                    let mut energies = HashMap::new();
                    for (device, mut engine) in devices.engines {
                        engine.finish(&mut |o| {
                            let _ = events.send(DeviceEvent::Output {
                                device,
                                output: o.to_owned_output(),
                            });
                        });
                        energies.insert(device, engine.energy().clone());
                    }
                    energies
                })
                .map_err(|e| PoolError::Spawn(e.to_string()))?;
            queues.push(tx);
            handles.push(handle);
        }
        Ok(EnginePool {
            queues,
            workers: handles,
        })
    }

    fn queue(&self, device: DeviceId) -> Result<&Sender<Job>, PoolError> {
        // Fibonacci hashing spreads sequential ids over the workers.
        let slot = (device.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % self.queues.len();
        self.queues.get(slot).ok_or(PoolError::WorkerGone)
    }

    /// Queues a block of `device` (blocks while the worker's queue is full).
    pub fn submit(&self, device: DeviceId, block: SampleBlock) -> Result<(), PoolError> {
        self.queue(device)?
            .send(Job::Block(device, block))
            .map_err(|_| PoolError::WorkerGone)
    }

    /// Ends `device`'s stream: its partial window is emitted, its engine dropped.
    pub fn finish_device(&self, device: DeviceId) -> Result<(), PoolError> {
        self.queue(device)?
            .send(Job::Finish(device))
            .map_err(|_| PoolError::WorkerGone)
    }

    /// Restores saved energy counters before (or while) `device` streams.
    pub fn restore_energy(
        &self,
        device: DeviceId,
        counters: EnergyCounters,
    ) -> Result<(), PoolError> {
        self.queue(device)?
            .send(Job::Restore(device, counters))
            .map_err(|_| PoolError::WorkerGone)
    }

    /// Finishes every device, stops the workers, returns the final energy
    /// counters of the devices still open.
    pub fn shutdown(self) -> Result<HashMap<DeviceId, EnergyCounters>, PoolError> {
        drop(self.queues);
        let mut all = HashMap::new();
        for worker in self.workers {
            let energies = worker.join().map_err(|_| PoolError::WorkerGone)?;
            all.extend(energies);
        }
        Ok(all)
    }
}

/// One worker's devices; counters restored before a device's first block
/// wait in `pending`.
#[derive(Default)]
struct Devices {
    engines: HashMap<DeviceId, DeviceEngine>,
    pending: HashMap<DeviceId, EnergyCounters>,
}

fn run_job(config: &EngineConfig, devices: &mut Devices, job: Job, events: &Sender<DeviceEvent>) {
    let engines = &mut devices.engines;
    match job {
        Job::Block(device, block) => {
            let engine = match engines.get_mut(&device) {
                Some(engine) => engine,
                None => match DeviceEngine::for_block(config, &block) {
                    Ok(mut engine) => {
                        if let Some(counters) = devices.pending.remove(&device) {
                            engine.restore_energy(counters);
                        }
                        engines.entry(device).or_insert(engine)
                    }
                    Err(error) => {
                        let _ = events.send(DeviceEvent::Error { device, error });
                        return;
                    }
                },
            };
            let result = engine.push_block(&block, &mut |o| {
                let _ = events.send(DeviceEvent::Output {
                    device,
                    output: o.to_owned_output(),
                });
            });
            if let Err(error) = result {
                let _ = events.send(DeviceEvent::Error { device, error });
            }
        }
        Job::Finish(device) => {
            if let Some(mut engine) = engines.remove(&device) {
                engine.finish(&mut |o| {
                    let _ = events.send(DeviceEvent::Output {
                        device,
                        output: o.to_owned_output(),
                    });
                });
            }
        }
        Job::Restore(device, counters) => match engines.get_mut(&device) {
            Some(engine) => engine.restore_energy(counters),
            None => {
                devices.pending.insert(device, counters);
            }
        },
    }
}
