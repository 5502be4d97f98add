//! Long series reduced to what a chart can show: per pixel column the
//! mean, minimum and maximum of the rows falling in it, so peaks survive
//! and a day of windows costs as much as the chart is wide. Lines break
//! where the data has a gap rather than bridging it.

/// One pixel column (or one row, when there are fewer rows than columns).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Mean time of the rows in the column, ns.
    pub t_ns: i64,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Rows of one series: times with a value and, where the table has them,
/// each row's own extremes (aggregates carry min/max of their windows).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub time: &'a [i64],
    pub value: &'a [f64],
    pub lo: Option<&'a [f64]>,
    pub hi: Option<&'a [f64]>,
}

/// The median spacing of `time` (the series' resolution), ns; 0 for < 2 rows.
pub fn resolution_ns(time: &[i64]) -> i64 {
    let mut steps: Vec<i64> = time
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0)
        .collect();
    if steps.is_empty() {
        return 0;
    }
    let mid = steps.len() / 2;
    *steps.select_nth_unstable(mid).1
}

/// `rows` within `[from, to)` folded into at most `columns` buckets, split
/// into segments wherever consecutive rows are more than `gap_ns` apart.
/// NaN values (nulls) are skipped.
pub fn envelope(
    rows: Rows<'_>,
    from: i64,
    to: i64,
    columns: usize,
    gap_ns: i64,
) -> Vec<Vec<Bucket>> {
    let span = (to - from).max(1) as i128;
    let columns = columns.max(1);
    let mut segments: Vec<Vec<Bucket>> = Vec::new();
    let mut current: Vec<Bucket> = Vec::new();
    // Accumulator of the open column: index, count, sums, extremes.
    let mut open: Option<(usize, u64, i128, f64, f64, f64)> = None;
    let mut last_t: Option<i64> = None;
    let close = |open: &mut Option<(usize, u64, i128, f64, f64, f64)>, out: &mut Vec<Bucket>| {
        if let Some((_, n, t_sum, v_sum, lo, hi)) = open.take() {
            out.push(Bucket {
                t_ns: (t_sum / i128::from(n)) as i64,
                mean: v_sum / n as f64,
                lo,
                hi,
            });
        }
    };
    for (i, (&t, &v)) in rows.time.iter().zip(rows.value).enumerate() {
        if t < from || t >= to || v.is_nan() {
            continue;
        }
        let lo = rows
            .lo
            .and_then(|l| l.get(i))
            .copied()
            .filter(|x| !x.is_nan())
            .unwrap_or(v);
        let hi = rows
            .hi
            .and_then(|h| h.get(i))
            .copied()
            .filter(|x| !x.is_nan())
            .unwrap_or(v);
        if last_t.is_some_and(|p| t - p > gap_ns) {
            close(&mut open, &mut current);
            if !current.is_empty() {
                segments.push(std::mem::take(&mut current));
            }
        }
        last_t = Some(t);
        let column = ((i128::from(t - from) * columns as i128) / span) as usize;
        match &mut open {
            Some((c, n, t_sum, v_sum, l, h)) if *c == column => {
                *n += 1;
                *t_sum += i128::from(t);
                *v_sum += v;
                *l = l.min(lo);
                *h = h.max(hi);
            }
            _ => {
                close(&mut open, &mut current);
                open = Some((column, 1, i128::from(t), v, lo.min(v), hi.max(v)));
            }
        }
    }
    close(&mut open, &mut current);
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_mean_and_extremes() {
        // 1000 rows, 1 per ms, of a ramp with one spike; 10 columns of 100 rows.
        let time: Vec<i64> = (0..1000).map(|i| i * 1_000_000).collect();
        let mut value: Vec<f64> = (0..1000).map(f64::from).collect();
        value[555] = 1e6;
        let rows = Rows {
            time: &time,
            value: &value,
            lo: None,
            hi: None,
        };
        let segments = envelope(rows, 0, 1_000_000_000, 10, 2_000_000);
        assert_eq!(segments.len(), 1);
        let buckets = &segments[0];
        assert_eq!(buckets.len(), 10);
        // Column 0: rows 0..=99, mean 49.5, time 49.5 ms.
        assert_eq!(buckets[0].mean, 49.5);
        assert_eq!((buckets[0].lo, buckets[0].hi), (0.0, 99.0));
        assert_eq!(buckets[0].t_ns, 49_500_000);
        // The spike survives as column 5's maximum.
        assert_eq!(buckets[5].hi, 1e6);
        assert_eq!(buckets[5].lo, 500.0);
    }

    #[test]
    fn gaps_split_segments_and_nulls_are_skipped() {
        let time = [0, 1, 2, 10, 11];
        let value = [1.0, f64::NAN, 3.0, 4.0, 5.0];
        let lo = [0.5, 0.0, 2.0, 3.0, 4.0];
        let rows = Rows {
            time: &time,
            value: &value,
            lo: Some(&lo),
            hi: None,
        };
        let segments = envelope(rows, 0, 20, 100, 3);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].len(), 2);
        assert_eq!(segments[0][0].lo, 0.5);
        assert_eq!(segments[1][1].mean, 5.0);
        assert_eq!(resolution_ns(&time), 1);
    }
}
