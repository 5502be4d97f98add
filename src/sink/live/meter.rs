//! What the live view keeps of one meter: its last window and energy, a
//! bounded ring of the last ten minutes at one point a second, its recent
//! events and PQ events, and the last cycles of every channel. Every buffer
//! has a fixed size, so a fleet's memory is bounded by its meter count.

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;

use crate::model::latch::{LatchPhase, LatchWindow};
use crate::model::{
    DeviceInfo, EnergyCounters, EventRow, EventRowKind, LatchRow, PqEventRow, WindowFlags,
    WindowMetrics, WindowRow,
};
use crate::wire::SampleBlock;

/// Points of the trend ring: ten minutes at one a second.
pub const RING_POINTS: usize = 600;
/// Events and PQ events kept per meter.
pub const RECENT_EVENTS: usize = 32;
/// Seconds of samples the waveform buffer holds per channel (five cycles
/// at 50 Hz, six at 60 Hz).
pub const WAVEFORM_SECONDS: f64 = 0.1;

const NS_PER_S: i64 = 1_000_000_000;
/// The `kind` of the events rows the wiring checks write.
const WIRING_EVENT: &str = "wiring";

/// One second of the trend ring: the last unflagged window that ended in
/// that second (a flagged one, the partial first window say, would set the
/// charts' axes with values that are not the meter's). A latch window
/// carries what its layout has: P (`p,q`) or V and I (`v,i_RMS`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrendPoint {
    /// The second, s since the epoch (meter time).
    pub t_unix_s: i64,
    pub p_total_w: Option<f64>,
    pub frequency_hz: Option<f64>,
    /// Per phase L1..L3; `None` for phases the meter does not carry.
    pub v_rms_v: [Option<f64>; 3],
    pub i_rms_a: [Option<f64>; 3],
    pub thd_v_pct: [Option<f64>; 3],
    pub thd_i_pct: [Option<f64>; 3],
}

impl TrendPoint {
    fn of(window: &WindowMetrics) -> Self {
        let phases = &window.phases;
        TrendPoint {
            t_unix_s: window.end_unix_ns.div_euclid(NS_PER_S),
            p_total_w: Some(window.p_total_w),
            frequency_hz: window.frequency_hz,
            v_rms_v: phases.map(|p| p.map(|p| p.v_rms_v)),
            i_rms_a: phases.map(|p| p.map(|p| p.i_rms_a)),
            thd_v_pct: phases.map(|p| p.and_then(|p| p.thd_v_pct)),
            thd_i_pct: phases.map(|p| p.and_then(|p| p.thd_i_pct)),
        }
    }

    fn of_latch(window: &LatchWindow) -> Self {
        let phases = &window.phases;
        TrendPoint {
            t_unix_s: window.end_unix_ns.div_euclid(NS_PER_S),
            p_total_w: latch_total(window, |p| p.p_w),
            frequency_hz: None,
            v_rms_v: phases.map(|p| p.and_then(|p| p.v_rms_v)),
            i_rms_a: phases.map(|p| p.and_then(|p| p.i_rms_a)),
            thd_v_pct: [None; 3],
            thd_i_pct: [None; 3],
        }
    }
}

/// The sum over a latch window's phases of what `read` takes, when every
/// phase carries it (P and Q of `p,q`; nothing of `v,i_RMS`).
pub fn latch_total(window: &LatchWindow, read: fn(&LatchPhase) -> Option<f64>) -> Option<f64> {
    let mut phases = window.phases.iter().flatten().peekable();
    phases.peek()?;
    phases.map(read).sum()
}

/// The last samples of every channel, contiguous: a gap empties it, so
/// what it holds is always sample-exact.
#[derive(Debug, Clone, Default)]
pub struct WaveformBuffer {
    pub rate: u32,
    pub start_unix_ns: i64,
    /// Index (since `startTs`) of the sample after the last one held.
    pub next_index: u64,
    pub channels: Vec<VecDeque<f32>>,
}

impl WaveformBuffer {
    /// Samples per channel it holds at most at `rate`.
    pub fn capacity(rate: u32) -> usize {
        ((f64::from(rate) * WAVEFORM_SECONDS).ceil() as usize).max(1)
    }

    fn push(&mut self, block: &SampleBlock) {
        let continues = self.rate == block.rate
            && self.start_unix_ns == block.start_unix_ns
            && self.next_index == block.first_index
            && block.gap_before == 0
            && self.channels.len() == block.channels.len();
        let capacity = Self::capacity(block.rate);
        if !continues {
            // The only allocation: a stream (re)starts. Every later block
            // fits the buffers as they are (old samples leave first).
            self.rate = block.rate;
            self.start_unix_ns = block.start_unix_ns;
            self.channels = (0..block.channels.len())
                .map(|_| VecDeque::with_capacity(capacity))
                .collect();
        }
        let len = block.len();
        let keep = len.min(capacity);
        for (buffer, samples) in self.channels.iter_mut().zip(&block.channels) {
            let excess = (buffer.len() + keep).saturating_sub(capacity);
            buffer.drain(..excess);
            buffer.extend(&samples[len - keep..]);
        }
        self.next_index = block.first_index + len as u64;
    }

    /// Samples held per channel.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, VecDeque::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index (since `startTs`) of the first sample held.
    pub fn first_index(&self) -> u64 {
        self.next_index - self.len() as u64
    }
}

/// Counters of what went wrong with a meter's data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DataQuality {
    pub windows: u64,
    /// Windows with any flag (gap, resync, invalid samples, PQ event …).
    pub flagged_windows: u64,
    pub gaps: u64,
    pub lost_samples: u64,
    pub resyncs: u64,
    pub invalid_samples: u64,
    pub pq_events: u64,
}

/// Everything the live view keeps of one meter.
#[derive(Debug, Clone)]
pub struct MeterLive {
    pub device: DeviceInfo,
    /// Connected now: not since a `disconnect` event or the end of its stream.
    pub connected: bool,
    /// Its last `connect` event, or when the view first heard of it since
    /// its stream last ended, ns since the epoch.
    pub connected_since_unix_ns: i64,
    /// Its stream ended and every window of it is in (until it streams again).
    pub stream_ended: bool,
    pub last_window: Option<WindowRow>,
    /// The last window of a latch layout (`p,q`, `v,i_RMS`): the meter
    /// averaged, so it has no waveform window (and `last_window` is `None`).
    pub last_latch: Option<LatchRow>,
    pub energy: Option<EnergyCounters>,
    pub trend: VecDeque<TrendPoint>,
    pub events: VecDeque<EventRow>,
    pub pq_events: VecDeque<PqEventRow>,
    pub waveform: WaveformBuffer,
    pub quality: DataQuality,
    /// The reason of its last `wiring` events row (the wiring checks' status).
    pub wiring: Option<String>,
    /// When the view last heard of the meter (forgetting is by this).
    pub last_seen: Instant,
}

impl MeterLive {
    pub fn new(device: DeviceInfo, now: Instant, now_unix_ns: i64) -> Self {
        MeterLive {
            device,
            connected: true,
            connected_since_unix_ns: now_unix_ns,
            stream_ended: false,
            last_window: None,
            last_latch: None,
            energy: None,
            trend: VecDeque::with_capacity(RING_POINTS),
            events: VecDeque::with_capacity(RECENT_EVENTS),
            pq_events: VecDeque::with_capacity(RECENT_EVENTS),
            waveform: WaveformBuffer::default(),
            quality: DataQuality::default(),
            wiring: None,
            last_seen: now,
        }
    }

    pub fn window(&mut self, row: &WindowRow) {
        self.counted(row.metrics.flags, || TrendPoint::of(&row.metrics));
        if let Some(energy) = &row.energy {
            self.energy = Some(energy.clone());
        }
        self.last_window = Some(row.clone());
        self.last_latch = None;
    }

    pub fn latch(&mut self, row: &LatchRow) {
        self.counted(row.window.flags, || TrendPoint::of_latch(&row.window));
        if let Some(energy) = &row.energy {
            self.energy = Some(energy.clone());
        }
        self.last_latch = Some(row.clone());
        self.last_window = None;
    }

    /// Counts a window with `flags`; an unflagged one is the trend's point of its second.
    fn counted(&mut self, flags: WindowFlags, point: impl FnOnce() -> TrendPoint) {
        self.quality.windows += 1;
        if !flags.is_clean() {
            self.quality.flagged_windows += 1;
        }
        if flags.contains(WindowFlags::INVALID_SAMPLES) {
            self.quality.invalid_samples += 1;
        }
        if flags.is_clean() {
            let point = point();
            match self.trend.back_mut() {
                Some(last) if last.t_unix_s == point.t_unix_s => *last = point,
                _ => push_bounded(&mut self.trend, point, RING_POINTS),
            }
        }
    }

    pub fn event(&mut self, row: &EventRow) {
        match row.kind {
            EventRowKind::Connect => {
                self.connected = true;
                self.connected_since_unix_ns = row.time_unix_ns;
            }
            EventRowKind::Disconnect => self.connected = false,
            EventRowKind::Gap => {
                self.quality.gaps += 1;
                self.quality.lost_samples += row.lost_samples.unwrap_or(0);
            }
            EventRowKind::Resync => self.quality.resyncs += 1,
            // The wiring checks' status changes arrive as `wiring` rows; by
            // name, so the view needs no change when that kind lands.
            kind if kind.as_str() == WIRING_EVENT => self.wiring = Some(row.message.clone()),
            _ => {}
        }
        push_bounded(&mut self.events, row.clone(), RECENT_EVENTS);
    }

    pub fn pq_event(&mut self, row: &PqEventRow) {
        self.quality.pq_events += 1;
        push_bounded(&mut self.pq_events, row.clone(), RECENT_EVENTS);
    }

    /// The view hears of the meter: one whose stream had ended streams
    /// again (a disconnected one only finishes its last windows).
    pub fn seen(&mut self, now: Instant, now_unix_ns: i64) {
        if self.stream_ended {
            self.stream_ended = false;
            self.connected = true;
            self.connected_since_unix_ns = now_unix_ns;
        }
        self.last_seen = now;
    }

    pub fn samples(&mut self, block: &SampleBlock) {
        self.waveform.push(block);
    }

    /// The stream ended: the meter is gone until it connects again.
    pub fn finished(&mut self) {
        self.connected = false;
        self.stream_ended = true;
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, capacity: usize) {
    if queue.len() == capacity {
        queue.pop_front();
    }
    queue.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Measures;

    fn block(first_index: u64, gap_before: u64, values: std::ops::Range<u32>) -> SampleBlock {
        let mut block = SampleBlock::new(Measures::SinglePhase, 100, 0);
        block.first_index = first_index;
        block.gap_before = gap_before;
        for channel in &mut block.channels {
            channel.extend(values.clone().map(|v| v as f32));
        }
        block
    }

    #[test]
    fn waveform_keeps_the_last_samples_and_restarts_after_a_gap() {
        // 100 Hz: the buffer holds 10 samples.
        let mut wave = WaveformBuffer::default();
        wave.push(&block(0, 0, 0..7));
        wave.push(&block(7, 0, 7..15));
        assert_eq!(wave.len(), 10);
        assert_eq!(wave.first_index(), 5);
        let held: Vec<f32> = wave.channels[0].iter().copied().collect();
        assert_eq!(held, (5..15).map(|v| v as f32).collect::<Vec<_>>());
        // Samples lost: what came before is no longer contiguous with what follows.
        wave.push(&block(20, 5, 20..23));
        assert_eq!((wave.len(), wave.first_index()), (3, 20));
    }

    #[test]
    fn a_disconnected_meter_finishes_its_windows_and_a_new_stream_reconnects_it() {
        let device = DeviceInfo::new("m", 1, Measures::SinglePhase);
        let mut meter = MeterLive::new(device.clone(), Instant::now(), 5);
        let event = |kind, time_unix_ns| EventRow {
            device: device.clone(),
            time_unix_ns,
            kind,
            lost_chunks: None,
            lost_samples: None,
            bytes: None,
            message: String::new(),
        };
        meter.event(&event(EventRowKind::Connect, 10));
        assert_eq!((meter.connected, meter.connected_since_unix_ns), (true, 10));
        meter.event(&event(EventRowKind::Disconnect, 20));
        // The tail's windows arrive after the disconnect: still gone.
        meter.seen(Instant::now(), 30);
        assert!(!meter.connected && !meter.stream_ended);
        meter.finished();
        assert!(!meter.connected && meter.stream_ended);
        // Records of a new stream (a source without connect events).
        meter.seen(Instant::now(), 40);
        assert!(meter.connected && !meter.stream_ended);
        assert_eq!(meter.connected_since_unix_ns, 40);
    }

    #[test]
    fn the_trend_ring_is_bounded_and_keeps_one_point_a_second() {
        let mut meter = MeterLive::new(
            DeviceInfo::new("m", 1, Measures::SinglePhase),
            Instant::now(),
            0,
        );
        let mut row = WindowRow {
            device: meter.device.clone(),
            metrics: Default::default(),
            energy: None,
        };
        // Five windows a second for 700 s.
        for k in 0..3500i64 {
            row.metrics.end_unix_ns = k * NS_PER_S / 5 + 1;
            row.metrics.p_total_w = k as f64;
            meter.window(&row);
        }
        assert_eq!(meter.trend.len(), RING_POINTS);
        let last = meter.trend.back().copied();
        assert_eq!(
            last.map(|p| (p.t_unix_s, p.p_total_w)),
            Some((699, Some(3499.0)))
        );
        assert_eq!(meter.trend.front().map(|p| p.t_unix_s), Some(100));
        // A flagged window is no point of the trend.
        row.metrics.end_unix_ns = 700 * NS_PER_S + 1;
        row.metrics.flags = WindowFlags::TRUNCATED;
        meter.window(&row);
        assert_eq!(meter.trend.back().map(|p| p.t_unix_s), Some(699));
        assert_eq!(meter.quality.flagged_windows, 1);
    }
}
