//! The live view's state, shared between the output that feeds it, the
//! engine's raw tap and the endpoint that reads it: every meter by name.
//! A meter the view has not heard of for [`LiveBoard::forget_after`] is
//! dropped with its buffers.
//!
//! Each meter has its own lock, and the map of them is behind a read-write
//! lock written only to add or forget a meter: the tap (every block) and
//! the window path of one meter never wait for another meter, and readers
//! (the page's stream, `/metrics`) hold one meter at a time, only to copy
//! it; they render after letting go.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::model::{DeviceInfo, Record};
use crate::wire::SampleBlock;

use super::meter::MeterLive;
use crate::model::clock::unix_now_ns;

/// How long a silent meter stays on the board: longer than the trend ring,
/// so a meter that drops out for a few minutes keeps its history.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// One meter's state behind its own lock.
pub type MeterCell = Arc<Mutex<MeterLive>>;

/// Every meter the live view knows, and which node it is.
pub struct LiveBoard {
    meters: RwLock<BTreeMap<Arc<str>, MeterCell>>,
    /// The cluster node serving this board, in cluster mode.
    pub node: Option<String>,
    pub forget_after: Duration,
}

/// A meter's state, locked (a writer that panicked left it whole enough to show).
pub fn lock(cell: &MeterCell) -> MutexGuard<'_, MeterLive> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveBoard {
    pub fn new(node: Option<String>, forget_after: Duration) -> Self {
        LiveBoard {
            meters: RwLock::new(BTreeMap::new()),
            node,
            forget_after,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Arc<str>, MeterCell>> {
        self.meters.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Arc<str>, MeterCell>> {
        self.meters.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every meter by name, to lock one at a time (the map's lock is let go).
    pub fn cells(&self) -> Vec<MeterCell> {
        self.read().values().map(Arc::clone).collect()
    }

    /// Meter `name`, when the view knows it.
    pub fn cell(&self, name: &str) -> Option<MeterCell> {
        self.read().get(name).map(Arc::clone)
    }

    /// How many meters the view shows.
    pub fn meter_count(&self) -> usize {
        self.read().len()
    }

    /// Runs `update` on `device`'s meter, adding it when new: the map is
    /// only read unless the meter is new, and only that meter is locked.
    fn update(&self, device: &DeviceInfo, update: impl FnOnce(&mut MeterLive)) {
        let now = Instant::now();
        let now_ns = unix_now_ns();
        let known = self.read().get(&device.name).map(Arc::clone);
        let cell = known.unwrap_or_else(|| {
            let mut meters = self.write();
            Arc::clone(meters.entry(Arc::clone(&device.name)).or_insert_with(|| {
                Arc::new(Mutex::new(MeterLive::new(device.clone(), now, now_ns)))
            }))
        });
        let mut meter = lock(&cell);
        meter.seen(now, now_ns);
        update(&mut meter);
    }

    /// Takes what a record says about its meter.
    pub fn record(&self, record: &Record) {
        match record {
            Record::Window(row) => self.update(&row.device, |m| m.window(row)),
            Record::Latch(row) => self.update(&row.device, |m| m.latch(row)),
            Record::Event(row) => self.update(&row.device, |m| m.event(row)),
            Record::PqEvent(row) => self.update(&row.device, |m| m.pq_event(row)),
            Record::DeviceFinished(name) => {
                if let Some(cell) = self.cell(name) {
                    let mut meter = lock(&cell);
                    meter.finished();
                    meter.last_seen = Instant::now();
                }
            }
            _ => {}
        }
    }

    /// Takes a meter's newest samples (the engine's tap, not the record log:
    /// the waveform is for looking at, not for keeping).
    pub fn samples(&self, device: &DeviceInfo, block: &SampleBlock) {
        self.update(device, |m| m.samples(block));
    }

    /// Drops the meters not heard of for `forget_after` at `now`; returns
    /// how many. The map is written only when there is one to drop.
    pub fn forget_silent(&self, now: Instant) -> usize {
        let silent =
            |cell: &MeterCell| now.duration_since(lock(cell).last_seen) >= self.forget_after;
        if !self.read().values().any(silent) {
            return 0;
        }
        let mut meters = self.write();
        let before = meters.len();
        meters.retain(|_, cell| !silent(cell));
        before - meters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WindowRow;
    use crate::wire::Measures;

    #[test]
    fn a_silent_meter_is_forgotten_with_its_buffers() {
        let board = LiveBoard::new(None, Duration::from_secs(60));
        let device = DeviceInfo::new("quiet", 1, Measures::SinglePhase);
        board.record(&Record::Window(WindowRow {
            device: device.clone(),
            metrics: Default::default(),
            energy: None,
        }));
        let heard = Instant::now();
        assert_eq!(board.forget_silent(heard + Duration::from_secs(59)), 0);
        assert_eq!(board.meter_count(), 1);
        assert_eq!(board.forget_silent(heard + Duration::from_secs(61)), 1);
        assert_eq!(board.meter_count(), 0);
    }
}
