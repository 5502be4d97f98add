//! The fleet overview's numbers for one device: energy, mean and peak P,
//! worst THD, how much of the span has data, and how much of it is flagged.

use super::device::{chart_specs, DeviceData, Source};

/// One row of the fleet table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStats {
    pub energy_import_wh: Option<f64>,
    pub energy_export_wh: Option<f64>,
    pub mean_p_w: Option<f64>,
    pub peak_p_w: Option<f64>,
    pub worst_thd_v_pct: Option<f64>,
    pub worst_thd_i_pct: Option<f64>,
    /// Share of `[from, to)` covered by rows, 0..=1.
    pub completeness: f64,
    /// Share of windows flagged (gaps, resyncs, no zero crossing...), 0..=1.
    pub flagged: Option<f64>,
    /// `events` rows of kind `gap`.
    pub gaps: usize,
    pub pq_events: Option<usize>,
    /// The last `wiring` events row's message (`reversed_clamp L2
    /// (confidence 1.00): …`); `None` when the checks found nothing to say.
    pub wiring: Option<String>,
}

/// The last `wiring` row of a device's `events` rows.
fn last_wiring(events: &super::read::Frame) -> Option<String> {
    let kinds = events.text("kind");
    let messages = events.text("message");
    kinds
        .iter()
        .zip(messages)
        .rfind(|(kind, _)| *kind == "wiring")
        .map(|(_, message)| message.clone())
}

fn finite_max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
}

/// Seconds of `[from, to)` covered by rows `[start, end)`, overlaps counted once.
pub fn covered_s(starts: &[i64], ends: &[i64], from: i64, to: i64) -> f64 {
    let mut covered: i128 = 0;
    let mut reach = from;
    for (&s, &e) in starts.iter().zip(ends) {
        let (s, e) = (s.max(reach).max(from), e.min(to));
        if e > s {
            covered += i128::from(e - s);
            reach = e;
        }
    }
    covered as f64 / 1e9
}

pub fn device_stats(data: &DeviceData, from: i64, to: i64) -> DeviceStats {
    let frame = &data.frame;
    let specs = chart_specs(data.source);
    let series = |chart: &str, label: &str| {
        specs
            .iter()
            .find(|c| c.id == chart)
            .and_then(|c| c.series.iter().find(|s| s.label == label))
            .map(|s| s.expr.eval(frame))
    };
    let last = |values: &[f64]| values.iter().rev().copied().find(|v| v.is_finite());
    let energy = |label| {
        series("energy", label)
            .and_then(|(v, _, _)| last(&v))
            .filter(|_| !frame.is_empty())
    };
    let (mean_p_w, peak_p_w) = match series("power", "P") {
        Some((values, _, hi)) => {
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            let mean =
                (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64);
            let peak = finite_max(hi.unwrap_or(values).into_iter());
            (mean, peak)
        }
        None => (None, None),
    };
    // Flagged windows (partial cycles, gaps) give meaningless THD; skip them.
    let flags = frame.number("flagged");
    let clean = |i: usize| flags.get(i).is_none_or(|f| f.is_nan() || *f <= 0.0);
    let worst = |stem: &str| {
        finite_max(["l1", "l2", "l3"].iter().flat_map(|p| {
            let name = format!("{stem}_{p}_pct");
            let column = frame.number(&name);
            let read = column
                .iter()
                .enumerate()
                .filter(|(i, _)| clean(*i))
                .map(|(_, v)| *v);
            // Files whose statistics gave the maximum were not read.
            read.chain(frame.maxima.get(&name).copied())
                .collect::<Vec<f64>>()
        }))
    };
    let empty = Vec::new();
    let ends = frame.times.get("end").unwrap_or(&empty);
    let span_s = ((to - from) as f64 / 1e9).max(1e-9);
    let completeness = (covered_s(&frame.time, ends, from, to) / span_s).clamp(0.0, 1.0);
    let flagged = match data.source {
        Source::Aggregates(_) => {
            let windows: f64 = frame
                .number("windows")
                .iter()
                .filter(|v| v.is_finite())
                .sum();
            let flagged: f64 = frame
                .number("flagged_windows")
                .iter()
                .filter(|v| v.is_finite())
                .sum();
            (windows > 0.0).then(|| flagged / windows)
        }
        _ => {
            let flags = frame.number("flagged");
            (!flags.is_empty())
                .then(|| flags.iter().filter(|&&f| f > 0.0).count() as f64 / flags.len() as f64)
        }
    };
    DeviceStats {
        energy_import_wh: energy("import"),
        energy_export_wh: energy("export"),
        mean_p_w,
        peak_p_w,
        worst_thd_v_pct: worst("thd_v"),
        worst_thd_i_pct: worst("thd_i"),
        completeness,
        flagged,
        gaps: data
            .events
            .text("kind")
            .iter()
            .filter(|k| *k == "gap")
            .count(),
        pq_events: data.pq_events.as_ref().map(|p| p.start_ns.len()),
        wiring: last_wiring(&data.events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_overlaps_once_and_clips() {
        // [0,10) and [5,15) overlap; [20,30) is clipped to the span's end at 25.
        let covered = covered_s(&[0, 5, 20], &[10, 15, 30], 0, 25);
        assert_eq!(covered * 1e9, 20.0);
    }
}
