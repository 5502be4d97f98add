//! The data-quality strip of a device (where there is data, which rows are
//! flagged, stream events by kind) and its power-quality event timeline.

use plotters::style::RGBColor;

use super::charts::{Span, StripRow, EVENT_MIN_PX, PLOT_COLUMNS};
use super::device::{DeviceData, PqEvents, Source};

/// Legend of the quality strip.
pub fn quality_classes() -> Vec<(String, RGBColor)> {
    [
        ("data", RGBColor(44, 160, 44)),
        ("flagged", RGBColor(255, 127, 14)),
        ("gap / lost samples", RGBColor(214, 39, 40)),
        ("connect", RGBColor(31, 119, 180)),
        ("disconnect", RGBColor(110, 110, 110)),
        ("other event", RGBColor(148, 103, 189)),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect()
}

/// Merges `[start, end)` intervals closer than `join_ns` into spans.
fn merged(intervals: impl Iterator<Item = (i64, i64)>, join_ns: i64, class: usize) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for (start, end) in intervals {
        match spans.last_mut() {
            Some(last) if start - last.end_ns <= join_ns => last.end_ns = last.end_ns.max(end),
            _ => spans.push(Span {
                start_ns: start,
                end_ns: end.max(start),
                class,
            }),
        }
    }
    spans
}

/// Events folded so each pixel column holds at most one mark per class.
fn event_marks(times: &[i64], classes: &[usize], from: i64, to: i64) -> Vec<Span> {
    let pixel = ((to - from) / PLOT_COLUMNS as i64).max(1);
    let mut seen = std::collections::HashSet::new();
    times
        .iter()
        .zip(classes)
        .filter(|(&t, &c)| seen.insert(((t - from) / pixel, c)))
        .map(|(&t, &class)| Span {
            start_ns: t,
            end_ns: t,
            class,
        })
        .collect()
}

/// The rows of the quality strip: data, flagged, events.
pub fn quality_rows(data: &DeviceData, from: i64, to: i64) -> Vec<StripRow> {
    let frame = &data.frame;
    let pixel = ((to - from) / PLOT_COLUMNS as i64).max(1);
    let empty = Vec::new();
    let ends = frame.times.get("end").unwrap_or(&empty);
    let rows = || frame.time.iter().copied().zip(ends.iter().copied());
    let flagged: Vec<bool> = match data.source {
        Source::Aggregates(_) => frame
            .number("flagged_windows")
            .iter()
            .map(|&f| f > 0.0)
            .collect(),
        _ => frame.number("flagged").iter().map(|&f| f > 0.0).collect(),
    };
    let flagged_rows = rows().zip(flagged).filter(|(_, f)| *f).map(|(r, _)| r);
    let kinds = data.events.text("kind");
    let classes: Vec<usize> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| match k.as_str() {
            "gap" => 2,
            "connect" => 3,
            "disconnect" => 4,
            _ if data
                .events
                .number("lost_samples")
                .get(i)
                .is_some_and(|n| *n > 0.0) =>
            {
                2
            }
            _ => 5,
        })
        .collect();
    vec![
        StripRow {
            label: "data".into(),
            spans: merged(rows(), pixel, 0),
            min_px: 1,
        },
        StripRow {
            label: "flagged".into(),
            spans: merged(flagged_rows, pixel, 1),
            min_px: 1,
        },
        StripRow {
            label: "events".into(),
            spans: event_marks(&data.events.time, &classes, from, to),
            min_px: EVENT_MIN_PX,
        },
    ]
}

/// The timeline of power-quality events: one row per kind, the kinds as legend.
pub fn pq_rows(events: &PqEvents) -> (Vec<StripRow>, Vec<(String, RGBColor)>) {
    const COLORS: [RGBColor; 6] = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(110, 110, 110),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(44, 160, 44),
    ];
    let mut kinds: Vec<String> = events.kind.clone();
    kinds.sort();
    kinds.dedup();
    let rows = kinds
        .iter()
        .enumerate()
        .map(|(k, kind)| StripRow {
            label: kind.clone(),
            spans: (0..events.kind.len())
                .filter(|&i| &events.kind[i] == kind)
                .map(|i| Span {
                    start_ns: events.start_ns[i],
                    end_ns: events.end_ns[i],
                    class: k,
                })
                .collect(),
            min_px: EVENT_MIN_PX,
        })
        .collect();
    let legend = kinds
        .iter()
        .enumerate()
        .map(|(k, kind)| (kind.clone(), COLORS[k % COLORS.len()]))
        .collect();
    (rows, legend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_intervals_merge_and_far_ones_do_not() {
        let spans = merged([(0, 10), (10, 20), (25, 30), (100, 110)].into_iter(), 5, 0);
        let bounds: Vec<(i64, i64)> = spans.iter().map(|s| (s.start_ns, s.end_ns)).collect();
        assert_eq!(bounds, vec![(0, 30), (100, 110)]);
    }
}
