//! What a device's outputs need from its PQ and flicker results besides the
//! rows: event counts per packet interval (passthrough measurands) and in
//! total (the summary), and `Pst` / `Plt` for the aggregate rows.

use serde_json::Value;

use crate::dsp::flicker::{FlickerBook, FlickerOutput, FlickerValue};
use crate::dsp::EngineConfig;
use crate::model::aggregate::Aggregate;
use crate::model::flicker::FlickerFlags;
use crate::model::pq_counts::PqEventCounts;
use crate::model::pq_event::PqEvent;

/// Passthrough key of the worst phase's latest `Pst` (title-cased: `Pst`).
pub const PST_KEY: &str = "pst";

/// One device's PQ tallies; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct PqTally {
    /// `[dsp.pq]` is on: packets carry the counts, zeros included.
    enabled: bool,
    totals: PqEventCounts,
    interval: PqEventCounts,
    /// Largest measured (not settling) `Pst` closed in the packet interval.
    interval_pst: Option<f64>,
    book: FlickerBook,
}

impl PqTally {
    pub fn new(config: &EngineConfig) -> Self {
        PqTally {
            enabled: config.pq_config().is_some(),
            ..PqTally::default()
        }
    }

    /// Whether `[dsp.pq.flicker]` is on (a 2-h aggregate is then worth keeping).
    pub fn flicker_enabled(config: &EngineConfig) -> bool {
        config.pq_config().is_some_and(|pq| pq.flicker.enabled)
    }

    pub fn event(&mut self, event: &PqEvent) {
        self.totals.add(event);
        self.interval.add(event);
    }

    pub fn flicker(&mut self, value: &FlickerValue) {
        self.book.push(value);
        if let FlickerOutput::Pst(pst) = value.output {
            if !pst.flags.contains(FlickerFlags::SETTLING) && pst.value.is_finite() {
                self.interval_pst = Some(self.interval_pst.map_or(pst.value, |v| v.max(pst.value)));
            }
        }
    }

    /// `Pst` / `Plt` of the aggregate's own interval, when there are any.
    pub fn fill(&mut self, aggregate: &mut Aggregate) {
        self.book.fill(aggregate);
    }

    /// Passthrough measurands of the packet interval that just ended (event
    /// counts, and `Pst` when one closed in it); empty without `[dsp.pq]`.
    pub fn take_passthrough(&mut self) -> Vec<(String, Value)> {
        let counts = std::mem::take(&mut self.interval);
        let pst = self.interval_pst.take();
        if !self.enabled {
            return Vec::new();
        }
        let mut out: Vec<(String, Value)> = counts
            .passthrough()
            .iter()
            .map(|&(key, n)| (key.to_string(), Value::from(n)))
            .collect();
        if let Some(pst) = pst {
            out.push((PST_KEY.to_string(), Value::from(pst)));
        }
        out
    }

    /// Events of each kind since the device started.
    pub fn totals(&self) -> PqEventCounts {
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::flicker::SeverityValue;
    use crate::dsp::pq::PqConfig;
    use crate::model::pq_event::{PhaseSet, PqEventFlags, PqEventKind};

    fn dip() -> PqEvent {
        PqEvent {
            kind: PqEventKind::Dip,
            start_unix_ns: 0,
            end_unix_ns: 1,
            duration_s: 1e-9,
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

    fn pst(value: f64, flags: FlickerFlags) -> FlickerValue {
        FlickerValue {
            phase: 0,
            output: FlickerOutput::Pst(SeverityValue {
                start_unix_ns: 0,
                end_unix_ns: 600_000_000_000,
                value,
                count: 1,
                flags,
                lamp: crate::dsp::flicker::Lamp::V230,
            }),
        }
    }

    #[test]
    fn packets_carry_counts_per_interval_and_measured_pst() {
        let config = EngineConfig {
            pq: Some(PqConfig::default()),
            ..EngineConfig::default()
        };
        let mut tally = PqTally::new(&config);
        tally.event(&dip());
        tally.event(&dip());
        tally.flicker(&pst(0.9, FlickerFlags::SETTLING));
        let first = tally.take_passthrough();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0], ("voltage_dips".to_string(), Value::from(2)));
        tally.flicker(&pst(0.4, FlickerFlags::INCOMPLETE));
        let second = tally.take_passthrough();
        assert_eq!(second[0].1, Value::from(0));
        assert_eq!(second[4], ("pst".to_string(), Value::from(0.4)));
        assert_eq!(tally.totals().dips, 2);
        // With power quality off packets stay as they were.
        let mut off = PqTally::new(&EngineConfig {
            pq: None,
            ..EngineConfig::default()
        });
        off.event(&dip());
        assert!(off.take_passthrough().is_empty());
    }
}
