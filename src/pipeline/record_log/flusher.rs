//! The background thread that makes appends durable every flush interval,
//! or sooner when the buffer fills up.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{lock, RecordLog};

#[derive(Debug, Default)]
struct WakeState {
    early: bool,
    stop: bool,
}

/// How appends and `close` reach the flusher thread.
#[derive(Debug, Default)]
pub struct Wake {
    state: Mutex<WakeState>,
    changed: Condvar,
}

impl Wake {
    /// Asks for a flush now (the buffer is filling up).
    pub fn early(&self) {
        lock(&self.state).early = true;
        self.changed.notify_one();
    }

    pub fn stop(&self) {
        lock(&self.state).stop = true;
        self.changed.notify_all();
    }

    fn restart(&self) {
        *lock(&self.state) = WakeState::default();
    }

    /// Sleeps for `interval` or until woken; `false` once stopped.
    fn wait(&self, interval: Duration) -> bool {
        let deadline = Instant::now() + interval;
        let mut state = lock(&self.state);
        while !state.stop && !state.early {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        state.early = false;
        !state.stop
    }
}

/// The running flusher; stopping or dropping it ends the thread after a
/// last flush.
#[derive(Debug)]
pub struct Flusher {
    log: Arc<RecordLog>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub(super) fn spawn(log: &Arc<RecordLog>) -> anyhow::Result<Self> {
        log.wake.restart();
        let shared = Arc::clone(log);
        let thread = std::thread::Builder::new()
            .name("record-log-flush".into())
            .spawn(move || run(&shared))
            .map_err(|e| anyhow::anyhow!("starting the record log flusher: {e}"))?;
        Ok(Flusher {
            log: Arc::clone(log),
            thread: Some(thread),
        })
    }

    /// Ends the thread and flushes once more; returns the durable seq.
    pub fn stop(mut self) -> anyhow::Result<u64> {
        self.join();
        self.log.flush()
    }

    fn join(&mut self) {
        self.log.wake.stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the record log flusher thread panicked");
            }
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.join();
    }
}

/// Flushes every interval until stopped; a failure is logged when it starts
/// and when it ends, and counted by the log on every attempt.
fn run(log: &RecordLog) {
    let interval = log.config().flush_interval();
    let mut failing = false;
    loop {
        let running = log.wake.wait(interval);
        match log.flush() {
            Ok(_) if failing => {
                failing = false;
                tracing::warn!("record log writes again");
            }
            Ok(_) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!("record log flush failed, appends are held in memory: {error:#}");
            }
            Err(_) => {}
        }
        if !running {
            break;
        }
    }
}
