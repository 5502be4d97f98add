//! What seqs the record log lost (a segment deleted or damaged by hand, a
//! corrupt older entry) cost each meter: from the end of its last result
//! before a lost range to the start of its first result after it, in meter
//! time. Found at open by reading the log past every output's ack; each span
//! becomes a `lost_results` row.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::model::EventRow;
use crate::pipeline::record_log::RecordLog;
use crate::pipeline::state::{lost_results_row, result_span, StateStore};

use super::codec;

const WHY: &str = "the record log lost them (a segment was removed or damaged)";

/// Reads the entries after `after_seq` and returns one `lost_results` row per
/// meter and lost range after which the meter's results resume in the log.
/// A meter whose results do not resume is handed to `state`: its next
/// window records the span. Meters seen only after a lost range are not
/// known to have lost anything.
pub fn lost_result_rows(
    log: &RecordLog,
    lost: &[(u64, u64)],
    after_seq: u64,
    state: &StateStore,
) -> anyhow::Result<Vec<EventRow>> {
    // Per meter: end of its last result read so far.
    let mut covered: BTreeMap<String, i64> = BTreeMap::new();
    // Meters a lost range cut, with the end of their last result before it.
    let mut cut: BTreeMap<String, i64> = BTreeMap::new();
    let mut ranges = lost.iter().filter(|&&(_, to)| to > after_seq).peekable();
    let mut rows = Vec::new();
    for entry in log.read_from(after_seq) {
        let (seq, bytes) = entry.context("reading the record log for what it lost")?;
        while ranges.next_if(|&&(from, _)| from < seq).is_some() {
            cut_every_meter(&covered, &mut cut);
        }
        let record = match codec::decode(seq, &bytes) {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!("{error:#}");
                continue;
            }
        };
        let Some(span) = result_span(&record) else {
            continue;
        };
        let name = span.device.name.to_string();
        if let Some(since) = cut.remove(&name) {
            rows.extend(lost_results_row(span.device, since, span.start_ns, WHY));
        }
        let end = covered.entry(name).or_insert(span.end_ns);
        *end = (*end).max(span.end_ns);
    }
    if ranges.next().is_some() {
        cut_every_meter(&covered, &mut cut);
    }
    for (meter, since) in cut {
        state.mark_lost(&meter, since, WHY);
    }
    Ok(rows)
}

fn cut_every_meter(covered: &BTreeMap<String, i64>, cut: &mut BTreeMap<String, i64>) {
    for (meter, &end) in covered {
        cut.entry(meter.clone()).or_insert(end);
    }
}
