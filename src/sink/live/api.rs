//! The JSON the live view answers with: the fleet (one line per meter), one
//! meter in full, one meter's last cycles. SI units throughout; times are
//! ns since the epoch.

use serde::Serialize;

use crate::model::latch::LatchWindow;
use crate::model::wiring::finding_of;
use crate::model::{EnergyCounters, EnergyFlow, EventRowKind, PqEvent, WindowFlags, WindowMetrics};

use super::board::{lock, LiveBoard};
use super::meter::{latch_total, DataQuality, MeterLive, TrendPoint};
use crate::model::clock::unix_now_ns;

const HOUR_NS: i64 = 3_600_000_000_000;

/// One phase of a meter now. A latch meter's phase has what its layout
/// carries (P and Q of `p,q`, V and I of `v,i_RMS`); the rest is `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PhaseNow {
    pub v_rms_v: Option<f64>,
    pub i_rms_a: Option<f64>,
    pub p_w: Option<f64>,
    /// Fundamental reactive power; a `p,q` meter's as it defines it.
    pub q_var: Option<f64>,
    pub s_va: Option<f64>,
    pub pf: Option<f64>,
    /// θ_v1 − θ_i1, degrees; positive when the current lags.
    pub angle_deg: Option<f64>,
    pub thd_v_pct: Option<f64>,
    pub thd_i_pct: Option<f64>,
}

/// A meter in the fleet list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterNow {
    pub name: String,
    /// Channel layout, e.g. `v,i,v,i,v,i`.
    pub layout: &'static str,
    /// A latch layout (`p,q`, `v,i_RMS`): the meter averaged, so there is
    /// no waveform, frequency, THD, S, PF or phasor.
    pub latch: bool,
    pub connected: bool,
    pub connected_since_unix_ns: i64,
    /// Its stream ended and its last windows are in.
    pub stream_ended: bool,
    /// End of the last window, when there was one.
    pub last_window_end_unix_ns: Option<i64>,
    /// Seconds from the end of the last window to when this was answered.
    pub last_window_age_s: Option<f64>,
    /// Flags of the last window (`gap`, `resync` …), empty when clean.
    pub last_window_flags: Vec<&'static str>,
    pub p_total_w: Option<f64>,
    pub q_total_var: Option<f64>,
    pub s_total_va: Option<f64>,
    pub pf_total: Option<f64>,
    pub frequency_hz: Option<f64>,
    /// L1, L2, L3; `null` for phases the meter does not carry.
    pub phases: [Option<PhaseNow>; 3],
    pub energy: Option<EnergyFlow>,
    pub last_pq_event: Option<PqEvent>,
    /// The wiring checks' last status (the reason of the last `wiring`
    /// events row); `null` until they report one.
    pub wiring: Option<String>,
    /// What that status found, reason and phase (`reversed_clamp L2`).
    pub wiring_finding: Option<String>,
    /// Whether that finding is a fault (not `ok`, not `unchecked`).
    pub wiring_fault: bool,
    /// PQ events that started in the hour before now (of the recent ones kept).
    pub pq_events_last_hour: usize,
    pub quality: DataQuality,
}

/// Every meter, and which node answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    pub node: Option<String>,
    pub time_unix_ns: i64,
    pub meters: Vec<MeterNow>,
}

/// One event of a meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventNow {
    pub time_unix_ns: i64,
    pub kind: EventRowKind,
    pub lost_samples: Option<u64>,
    pub message: String,
}

/// One meter in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterDetail {
    pub node: Option<String>,
    #[serde(flatten)]
    pub now: MeterNow,
    /// The last window as the engine computed it.
    pub last_window: Option<WindowMetrics>,
    /// The last window of a latch meter (instead of `last_window`).
    pub last_latch_window: Option<LatchWindow>,
    pub energy_registers: Option<EnergyCounters>,
    /// The last 10 minutes, one point a second (the last unflagged window of each second).
    pub trend: Vec<TrendPoint>,
    pub events: Vec<EventNow>,
    pub pq_events: Vec<PqEvent>,
}

/// One channel's last samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSamples {
    pub name: &'static str,
    pub unit: &'static str,
    pub samples: Vec<f32>,
}

/// A meter's last cycles, sample-exact: sample k of every channel is at
/// `start_unix_ns + (first_index + k) / rate_hz`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waveform {
    pub node: Option<String>,
    pub name: String,
    pub rate_hz: u32,
    /// The stream's `startTs`, ns since the epoch.
    pub start_unix_ns: i64,
    /// Index since `startTs` of the first sample below.
    pub first_index: u64,
    /// Time of the first sample below.
    pub first_unix_ns: i64,
    pub channels: Vec<ChannelSamples>,
}

fn flag_names(flags: WindowFlags) -> Vec<&'static str> {
    use crate::model::WindowFlags as F;
    [
        (F::GAP, "gap"),
        (F::NO_ZERO_CROSSING, "no_zero_crossing"),
        (F::RESYNC, "resync"),
        (F::INVALID_SAMPLES, "invalid_samples"),
        (F::TRUNCATED, "truncated"),
        (F::PQ_EVENT, "pq_event"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

/// A meter's line of the fleet, copied from it (under its lock: numbers and a name).
pub(super) fn meter_now(meter: &MeterLive, now_unix_ns: i64) -> MeterNow {
    let last = match (&meter.last_window, &meter.last_latch) {
        (Some(row), _) => Some(of_window(&row.metrics)),
        (None, Some(row)) => Some(of_latch(&row.window)),
        (None, None) => None,
    };
    let finding = meter.wiring.as_deref().map(finding_of);
    MeterNow {
        name: meter.device.name.to_string(),
        layout: meter.device.measures.as_str(),
        latch: meter.device.measures.is_latch(),
        connected: meter.connected,
        connected_since_unix_ns: meter.connected_since_unix_ns,
        stream_ended: meter.stream_ended,
        last_window_end_unix_ns: last.as_ref().map(|l| l.end_unix_ns),
        last_window_age_s: last
            .as_ref()
            .map(|l| (now_unix_ns - l.end_unix_ns) as f64 / 1e9),
        last_window_flags: last
            .as_ref()
            .map(|l| flag_names(l.flags))
            .unwrap_or_default(),
        p_total_w: last.as_ref().and_then(|l| l.p_total_w),
        q_total_var: last.as_ref().and_then(|l| l.q_total_var),
        s_total_va: last.as_ref().and_then(|l| l.s_total_va),
        pf_total: last.as_ref().and_then(|l| l.pf_total),
        frequency_hz: last.as_ref().and_then(|l| l.frequency_hz),
        phases: last.as_ref().map_or([None; 3], |l| l.phases),
        energy: meter.energy.as_ref().map(|e| e.total),
        last_pq_event: meter.pq_events.back().map(|row| row.event),
        wiring: meter.wiring.clone(),
        wiring_finding: finding.map(|(finding, _)| finding.to_owned()),
        wiring_fault: finding.is_some_and(|(_, fault)| fault),
        pq_events_last_hour: meter
            .pq_events
            .iter()
            .filter(|row| now_unix_ns - row.event.start_unix_ns <= HOUR_NS)
            .count(),
        quality: meter.quality,
    }
}

/// What the fleet line shows of a meter's last window, waveform or latch.
struct LastWindow {
    end_unix_ns: i64,
    flags: WindowFlags,
    p_total_w: Option<f64>,
    q_total_var: Option<f64>,
    s_total_va: Option<f64>,
    pf_total: Option<f64>,
    frequency_hz: Option<f64>,
    phases: [Option<PhaseNow>; 3],
}

fn of_window(w: &WindowMetrics) -> LastWindow {
    LastWindow {
        end_unix_ns: w.end_unix_ns,
        flags: w.flags,
        p_total_w: Some(w.p_total_w),
        q_total_var: Some(w.q1_total_var),
        s_total_va: Some(w.s_total_va),
        pf_total: w.pf_total,
        frequency_hz: w.frequency_hz,
        phases: w.phases.map(|p| {
            p.map(|p| PhaseNow {
                v_rms_v: Some(p.v_rms_v),
                i_rms_a: Some(p.i_rms_a),
                p_w: Some(p.p_w),
                q_var: Some(p.q1_var),
                s_va: Some(p.s_va),
                pf: p.pf,
                angle_deg: Some(p.angle_deg),
                thd_v_pct: p.thd_v_pct,
                thd_i_pct: p.thd_i_pct,
            })
        }),
    }
}

/// A latch window has what the meter averaged; nothing is derived from it
/// (S = V·I of RMS values averaged apart is not the window's S).
fn of_latch(w: &LatchWindow) -> LastWindow {
    LastWindow {
        end_unix_ns: w.end_unix_ns,
        flags: w.flags,
        p_total_w: latch_total(w, |p| p.p_w),
        q_total_var: latch_total(w, |p| p.q_var),
        s_total_va: None,
        pf_total: None,
        frequency_hz: None,
        phases: w.phases.map(|p| {
            p.map(|p| PhaseNow {
                v_rms_v: p.v_rms_v,
                i_rms_a: p.i_rms_a,
                p_w: p.p_w,
                q_var: p.q_var,
                s_va: None,
                pf: None,
                angle_deg: None,
                thd_v_pct: None,
                thd_i_pct: None,
            })
        }),
    }
}

impl LiveBoard {
    /// Every meter now, by name.
    pub fn fleet(&self) -> Fleet {
        let now = unix_now_ns();
        Fleet {
            node: self.node.clone(),
            time_unix_ns: now,
            meters: self
                .cells()
                .iter()
                .map(|cell| meter_now(&lock(cell), now))
                .collect(),
        }
    }

    /// Meter `name` in full; `None` when the view does not know it.
    pub fn meter_detail(&self, name: &str) -> Option<MeterDetail> {
        let now = unix_now_ns();
        let cell = self.cell(name)?;
        let meter = lock(&cell);
        Some(MeterDetail {
            node: self.node.clone(),
            now: meter_now(&meter, now),
            last_window: meter.last_window.as_ref().map(|row| row.metrics.clone()),
            last_latch_window: meter.last_latch.as_ref().map(|row| row.window.clone()),
            energy_registers: meter.energy.clone(),
            trend: meter.trend.iter().copied().collect(),
            events: meter
                .events
                .iter()
                .map(|row| EventNow {
                    time_unix_ns: row.time_unix_ns,
                    kind: row.kind,
                    lost_samples: row.lost_samples,
                    message: row.message.clone(),
                })
                .collect(),
            pq_events: meter.pq_events.iter().map(|row| row.event).collect(),
        })
    }

    /// Meter `name`'s last cycles; `None` when the view does not know it.
    pub fn waveform(&self, name: &str) -> Option<Waveform> {
        let cell = self.cell(name)?;
        let meter = lock(&cell);
        let wave = &meter.waveform;
        let first_index = wave.first_index();
        let offset_ns = if wave.rate == 0 {
            0
        } else {
            (i128::from(first_index) * 1_000_000_000 / i128::from(wave.rate)) as i64
        };
        let layout = meter.device.measures.channels();
        Some(Waveform {
            node: self.node.clone(),
            name: name.to_owned(),
            rate_hz: wave.rate,
            start_unix_ns: wave.start_unix_ns,
            first_index,
            first_unix_ns: wave.start_unix_ns.saturating_add(offset_ns),
            channels: wave
                .channels
                .iter()
                .zip(layout)
                .map(|(samples, channel)| ChannelSamples {
                    name: channel.name,
                    unit: channel.si_unit,
                    samples: samples.iter().copied().collect(),
                })
                .collect(),
        })
    }
}
