//! IEC 61000-4-30 §4.7 flagging: a window that overlaps a dip, swell or
//! interruption carries [`WindowFlags::PQ_EVENT`] (not the gap flag). RVCs
//! do not flag.

use crate::model::pq_event::{PqEvent, PqEventKind};
use crate::model::window::WindowFlags;

/// `event` is a dip, swell or interruption touching `[start_unix_ns, end_unix_ns)`.
pub fn overlaps(event: &PqEvent, start_unix_ns: i64, end_unix_ns: i64) -> bool {
    event.kind != PqEventKind::Rvc
        && event.start_unix_ns < end_unix_ns
        && (event.end_unix_ns > start_unix_ns || event.start_unix_ns >= start_unix_ns)
}

/// [`WindowFlags::PQ_EVENT`] if any of `events` overlaps the window, else none.
pub fn window_flags(events: &[PqEvent], start_unix_ns: i64, end_unix_ns: i64) -> WindowFlags {
    if events
        .iter()
        .any(|e| overlaps(e, start_unix_ns, end_unix_ns))
    {
        WindowFlags::PQ_EVENT
    } else {
        WindowFlags::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pq_event::{PhaseSet, PqEventFlags};

    fn event(kind: PqEventKind, start: i64, end: i64) -> PqEvent {
        PqEvent {
            kind,
            start_unix_ns: start,
            end_unix_ns: end,
            duration_s: (end - start) as f64 * 1e-9,
            extreme_v: 100.0,
            extreme_pct_udin: 43.5,
            delta_u_max_v: None,
            delta_u_max_pct_udin: None,
            delta_u_ss_v: None,
            delta_u_ss_pct_udin: None,
            phases: PhaseSet::of(0),
            flags: PqEventFlags::NONE,
        }
    }

    #[test]
    fn half_open_overlap_and_rvc_ignored() {
        let dip = event(PqEventKind::Dip, 100, 200);
        assert!(overlaps(&dip, 150, 160));
        assert!(overlaps(&dip, 0, 101));
        assert!(!overlaps(&dip, 0, 100));
        assert!(!overlaps(&dip, 200, 300));
        assert!(overlaps(&event(PqEventKind::Swell, 250, 250), 200, 300));
        let rvc = event(PqEventKind::Rvc, 100, 200);
        assert_eq!(window_flags(&[rvc], 0, 1000), WindowFlags::NONE);
        assert_eq!(window_flags(&[rvc, dip], 0, 1000), WindowFlags::PQ_EVENT);
    }
}
