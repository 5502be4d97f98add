//! Events per kind over an interval: aggregate columns and the packet's
//! passthrough counts.

use serde::{Deserialize, Serialize};

use super::pq_event::{PqEvent, PqEventKind};

/// How many events of each kind an interval holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PqEventCounts {
    pub dips: u32,
    pub swells: u32,
    pub interruptions: u32,
    pub rapid_voltage_changes: u32,
}

impl PqEventCounts {
    pub fn add(&mut self, event: &PqEvent) {
        let count = match event.kind {
            PqEventKind::Dip => &mut self.dips,
            PqEventKind::Swell => &mut self.swells,
            PqEventKind::Interruption => &mut self.interruptions,
            PqEventKind::Rvc => &mut self.rapid_voltage_changes,
        };
        *count = count.saturating_add(1);
    }

    /// Adds another interval's (or file's) counts.
    pub fn add_counts(&mut self, other: &PqEventCounts) {
        self.dips = self.dips.saturating_add(other.dips);
        self.swells = self.swells.saturating_add(other.swells);
        self.interruptions = self.interruptions.saturating_add(other.interruptions);
        self.rapid_voltage_changes = self
            .rapid_voltage_changes
            .saturating_add(other.rapid_voltage_changes);
    }

    pub fn total(&self) -> u32 {
        self.dips
            .saturating_add(self.swells)
            .saturating_add(self.interruptions)
            .saturating_add(self.rapid_voltage_changes)
    }

    /// Passthrough keys and counts for a packet; the packet builder
    /// title-cases them (`Voltage_Dips`, `Voltage_Swells`, `Interruptions`,
    /// `Rapid_Voltage_Changes`).
    pub fn passthrough(&self) -> [(&'static str, u32); 4] {
        [
            ("voltage_dips", self.dips),
            ("voltage_swells", self.swells),
            ("interruptions", self.interruptions),
            ("rapid_voltage_changes", self.rapid_voltage_changes),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pq_event::{PhaseSet, PqEventFlags};

    #[test]
    fn counts_by_kind() {
        let mut counts = PqEventCounts::default();
        for kind in [
            PqEventKind::Dip,
            PqEventKind::Interruption,
            PqEventKind::Dip,
        ] {
            counts.add(&PqEvent {
                kind,
                start_unix_ns: 0,
                end_unix_ns: 1,
                duration_s: 1e-9,
                extreme_v: 0.0,
                extreme_pct_udin: 0.0,
                delta_u_max_v: None,
                delta_u_max_pct_udin: None,
                delta_u_ss_v: None,
                delta_u_ss_pct_udin: None,
                phases: PhaseSet::of(0),
                flags: PqEventFlags::NONE,
            });
        }
        assert_eq!(counts.total(), 3);
        let mut twice = counts;
        twice.add_counts(&counts);
        assert_eq!((twice.dips, twice.interruptions, twice.total()), (4, 2, 6));
        assert_eq!(
            counts.passthrough(),
            [
                ("voltage_dips", 2),
                ("voltage_swells", 0),
                ("interruptions", 1),
                ("rapid_voltage_changes", 0)
            ]
        );
    }
}
