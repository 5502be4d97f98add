//! Holds each phase's latest `Pst` and `Plt` until the aggregate of the same
//! interval is written: the flickermeter closes an interval a little before
//! the window aggregator does, so the values wait here to join its row.

use super::output::{FlickerOutput, FlickerValue, SeverityValue};
use crate::model::aggregate::Aggregate;

/// Pending `Pst` / `Plt` per phase; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct FlickerBook {
    pst: [Option<SeverityValue>; 3],
    plt: [Option<SeverityValue>; 3],
}

impl FlickerBook {
    /// Keeps a `Pst` or `Plt`; `Pinst` is not aggregated.
    pub fn push(&mut self, value: &FlickerValue) {
        let k = usize::from(value.phase);
        if k >= 3 {
            return;
        }
        match value.output {
            FlickerOutput::Pst(v) => self.pst[k] = Some(v),
            FlickerOutput::Plt(v) => self.plt[k] = Some(v),
            FlickerOutput::Pinst(_) => {}
        }
    }

    /// Fills `aggregate`'s `Pst` (10-min interval) or `Plt` (2-h interval)
    /// from the values of exactly its interval, and ORs in their flags.
    pub fn fill(&mut self, aggregate: &mut Aggregate) {
        let span = (aggregate.start_unix_ns, aggregate.end_unix_ns);
        let mut flags = aggregate.flicker_flags;
        let mut lamp = aggregate.flicker_lamp_v;
        let mut take = |pending: &mut [Option<SeverityValue>; 3], into: &mut [Option<f64>; 3]| {
            for (slot, value) in pending.iter_mut().zip(into.iter_mut()) {
                if let Some(v) = slot.filter(|v| (v.start_unix_ns, v.end_unix_ns) == span) {
                    *value = Some(v.value);
                    flags |= v.flags;
                    lamp = Some(v.lamp.volts());
                    *slot = None;
                }
            }
        };
        take(&mut self.pst, &mut aggregate.pst);
        take(&mut self.plt, &mut aggregate.plt);
        aggregate.flicker_flags = flags;
        aggregate.flicker_lamp_v = lamp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flicker::FlickerFlags;

    fn severity(start: i64, end: i64, value: f64) -> SeverityValue {
        SeverityValue {
            start_unix_ns: start,
            end_unix_ns: end,
            value,
            count: 1,
            flags: FlickerFlags::SETTLING,
            lamp: crate::dsp::flicker::Lamp::V120,
        }
    }

    #[test]
    fn values_join_only_the_aggregate_of_their_interval() {
        let mut book = FlickerBook::default();
        book.push(&FlickerValue {
            phase: 1,
            output: FlickerOutput::Pst(severity(0, 600, 0.7)),
        });
        book.push(&FlickerValue {
            phase: 1,
            output: FlickerOutput::Plt(severity(0, 7200, 0.6)),
        });
        let mut packet = Aggregate {
            start_unix_ns: 0,
            end_unix_ns: 5,
            ..Aggregate::default()
        };
        book.fill(&mut packet);
        assert_eq!((packet.pst, packet.plt), ([None; 3], [None; 3]));
        let mut ten = Aggregate {
            start_unix_ns: 0,
            end_unix_ns: 600,
            ..Aggregate::default()
        };
        book.fill(&mut ten);
        assert_eq!(ten.pst, [None, Some(0.7), None]);
        assert_eq!(ten.plt, [None; 3]);
        assert_eq!(ten.flicker_flags, FlickerFlags::SETTLING);
        assert_eq!(ten.flicker_lamp_v, Some(120));
        let mut two_hours = Aggregate {
            start_unix_ns: 0,
            end_unix_ns: 7200,
            ..Aggregate::default()
        };
        book.fill(&mut two_hours);
        assert_eq!(two_hours.plt, [None, Some(0.6), None]);
    }
}
