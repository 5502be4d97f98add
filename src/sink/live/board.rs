//! The live view's state, shared between the output that feeds it, the
//! engine's raw tap and the endpoint that reads it: every meter by name.
//! A meter the view has not heard of for [`LiveBoard::forget_after`] is
//! dropped with its buffers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::model::{DeviceInfo, Record};
use crate::wire::SampleBlock;

use super::meter::MeterLive;

/// How long a silent meter stays on the board: longer than the trend ring,
/// so a meter that drops out for a few minutes keeps its history.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Every meter the live view knows, and which node it is.
pub struct LiveBoard {
    meters: Mutex<BTreeMap<Arc<str>, MeterLive>>,
    /// The cluster node serving this board, in cluster mode.
    pub node: Option<String>,
    pub forget_after: Duration,
}

/// Wall-clock time, ns since the epoch.
pub fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl LiveBoard {
    pub fn new(node: Option<String>, forget_after: Duration) -> Self {
        LiveBoard {
            meters: Mutex::new(BTreeMap::new()),
            node,
            forget_after,
        }
    }

    /// The meters, locked (readers copy what they need and let go).
    pub fn meters(&self) -> MutexGuard<'_, BTreeMap<Arc<str>, MeterLive>> {
        self.meters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meter<'a>(
        meters: &'a mut BTreeMap<Arc<str>, MeterLive>,
        device: &DeviceInfo,
        now: Instant,
    ) -> &'a mut MeterLive {
        let now_ns = unix_now_ns();
        let meter = meters
            .entry(Arc::clone(&device.name))
            .or_insert_with(|| MeterLive::new(device.clone(), now, now_ns));
        meter.seen(now, now_ns);
        meter
    }

    /// Takes what a record says about its meter.
    pub fn record(&self, record: &Record) {
        let now = Instant::now();
        let mut meters = self.meters();
        match record {
            Record::Window(row) => Self::meter(&mut meters, &row.device, now).window(row),
            Record::Event(row) => Self::meter(&mut meters, &row.device, now).event(row),
            Record::PqEvent(row) => Self::meter(&mut meters, &row.device, now).pq_event(row),
            Record::DeviceFinished(name) => {
                if let Some(meter) = meters.get_mut(name) {
                    meter.finished();
                    meter.last_seen = now;
                }
            }
            _ => {}
        }
    }

    /// Takes a meter's newest samples (the engine's tap, not the record log:
    /// the waveform is for looking at, not for keeping).
    pub fn samples(&self, device: &DeviceInfo, block: &SampleBlock) {
        let now = Instant::now();
        Self::meter(&mut self.meters(), device, now).samples(block);
    }

    /// Drops the meters not heard of for `forget_after` at `now`; returns how many.
    pub fn forget_silent(&self, now: Instant) -> usize {
        let mut meters = self.meters();
        let before = meters.len();
        meters.retain(|_, meter| now.duration_since(meter.last_seen) < self.forget_after);
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
        assert_eq!(board.meters().len(), 1);
        assert_eq!(board.forget_silent(heard + Duration::from_secs(61)), 1);
        assert!(board.meters().is_empty());
    }
}
