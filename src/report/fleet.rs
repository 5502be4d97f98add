//! The fleet overview of a large report: which devices get all their
//! charts (those that need attention most), and the fleet's total power
//! per pixel column. Nobody scrolls through a thousand devices' charts; the
//! table shows every device, with a sparkline, and the page draws the rest
//! only for the few worth a look.

use super::charts::Line;
use super::reduce::{envelope, resolution_ns, Bucket, Rows};
use super::stats::DeviceStats;

/// Devices drawn with all their charts unless `--detail` says otherwise;
/// a report of at most this many shows every device in full.
pub const DEFAULT_DETAIL: usize = 20;

/// The order in which devices need a look: least data first, then the most
/// flagged windows, gaps, power-quality events and the worst THD-I; names
/// break ties so the choice is stable.
pub fn attention_order(stats: &[(&str, &DeviceStats)]) -> Vec<usize> {
    let key = |s: &DeviceStats| {
        (
            // Tenths of a percent: coverage that differs by rounding is equal.
            (s.completeness * 1000.0).round() as i64,
            -((s.flagged.unwrap_or(0.0) * 1000.0).round() as i64),
            -(s.gaps as i64),
            -(s.pq_events.unwrap_or(0) as i64),
            -((s.worst_thd_i_pct.unwrap_or(0.0) * 100.0).round() as i64),
        )
    };
    let mut order: Vec<usize> = (0..stats.len()).collect();
    order.sort_by(|&a, &b| {
        key(stats[a].1)
            .cmp(&key(stats[b].1))
            .then_with(|| stats[a].0.cmp(stats[b].0))
    });
    order
}

/// The sum over devices of their per-column P, on the common axis: per
/// pixel column the sum of the means, and of the minima and maxima (a band
/// that contains the true extremes of the total). Columns are summed where
/// they hold data, so a meter that is missing lowers the total there.
pub fn total(lines: &[&Line], from: i64, to: i64, columns: usize) -> Option<Line> {
    let span = (to - from).max(1) as i128;
    let column = |t: i64| ((i128::from(t - from) * columns as i128) / span) as usize;
    // Per column: summed mean, lo, hi, time sum, count.
    let mut sums = vec![(0.0f64, 0.0f64, 0.0f64, 0i128, 0u64); columns];
    for bucket in lines.iter().flat_map(|l| l.segments.iter().flatten()) {
        let Some(s) = sums.get_mut(column(bucket.t_ns)) else {
            continue;
        };
        s.0 += bucket.mean;
        s.1 += bucket.lo;
        s.2 += bucket.hi;
        s.3 += i128::from(bucket.t_ns);
        s.4 += 1;
    }
    let buckets: Vec<Bucket> = sums
        .iter()
        .filter(|s| s.4 > 0)
        .map(|s| Bucket {
            t_ns: (s.3 / i128::from(s.4)) as i64,
            mean: s.0,
            lo: s.1,
            hi: s.2,
        })
        .collect();
    if buckets.is_empty() {
        return None;
    }
    let time: Vec<i64> = buckets.iter().map(|b| b.t_ns).collect();
    let value: Vec<f64> = buckets.iter().map(|b| b.mean).collect();
    let lo: Vec<f64> = buckets.iter().map(|b| b.lo).collect();
    let hi: Vec<f64> = buckets.iter().map(|b| b.hi).collect();
    // Columns are about as far apart as the devices' rows; three missing
    // in a row make a gap, as on every chart.
    let gap_ns = resolution_ns(&time).saturating_mul(3).max(1);
    let rows = Rows {
        time: &time,
        value: &value,
        lo: Some(&lo),
        hi: Some(&hi),
    };
    Some(Line {
        label: format!("P, sum of {} meters", lines.len()),
        segments: envelope(rows, from, to, columns, gap_ns),
        apart: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(completeness: f64, gaps: usize) -> DeviceStats {
        DeviceStats {
            energy_import_wh: None,
            energy_export_wh: None,
            mean_p_w: None,
            peak_p_w: None,
            worst_thd_v_pct: None,
            worst_thd_i_pct: None,
            completeness,
            flagged: None,
            gaps,
            pq_events: None,
            wiring: None,
        }
    }

    #[test]
    fn least_data_and_most_gaps_come_first() {
        let (a, b, c, d) = (stats(1.0, 0), stats(0.9, 0), stats(1.0, 2), stats(0.9, 0));
        let order = attention_order(&[("a", &a), ("b", &b), ("c", &c), ("d", &d)]);
        assert_eq!(order, vec![1, 3, 2, 0]);
    }

    #[test]
    fn totals_add_columns_of_every_meter() {
        let bucket = |t: i64, v: f64| Bucket {
            t_ns: t,
            mean: v,
            lo: v - 1.0,
            hi: v + 1.0,
        };
        let one = Line {
            label: "P".into(),
            segments: vec![vec![bucket(0, 100.0), bucket(10, 200.0)]],
            apart: Vec::new(),
        };
        let two = Line {
            label: "P".into(),
            segments: vec![vec![bucket(1, 50.0), bucket(11, 25.0)]],
            apart: Vec::new(),
        };
        // Two columns of 10 ns: {0, 1} and {10, 11}.
        let sum = total(&[&one, &two], 0, 20, 2).unwrap();
        assert_eq!(sum.segments.len(), 1);
        let b = &sum.segments[0];
        assert_eq!((b[0].mean, b[0].lo, b[0].hi), (150.0, 148.0, 152.0));
        assert_eq!((b[1].mean, b[1].t_ns), (225.0, 10));
    }
}
