//! The charts, drawn by plotters into SVG strings: time series with their
//! min/max envelopes, the harmonic spectrum, the data-quality strip and the
//! power-quality event timeline. Each SVG gets a `<title>` and a `data-chart`
//! id so the page, its tests and the PNG export can name it.

use chrono_tz::Tz;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::compact::compact_svg;
use super::error::{ReportError, Result};
use super::reduce::Bucket;
use super::timeaxis::{axis_description, format_time, ticks};

/// Chart size, px (two side by side on a 1280 px window); the plot area is
/// about `WIDTH - 90` columns wide.
pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 240;
const STRIP_HEIGHT: u32 = 150;
/// A strip chart's left margin, row labels and legend margin, px; the plot
/// area is what is left of `WIDTH`.
const STRIP_MARGIN: u32 = 8;
const STRIP_LABELS_PX: u32 = 96;
const STRIP_LEGEND_PX: u32 = 130;
const STRIP_PLOT_PX: u32 = WIDTH - STRIP_MARGIN - STRIP_LABELS_PX - STRIP_LEGEND_PX;
/// Pixel columns of the plot area: what series are reduced to.
pub const PLOT_COLUMNS: usize = (WIDTH - 90) as usize;

const FONT: &str = "sans-serif";
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// An f64 axis with ticks where we put them (round local times, row
/// centres); plotters' own `WithKeyPoints` lacks a label formatter for f64.
struct Ticked {
    inner: RangedCoordf64,
    keys: Vec<f64>,
}

fn ticked(range: Range<f64>, keys: Vec<f64>) -> Ticked {
    Ticked {
        inner: range.into(),
        keys,
    }
}

impl Ranged for Ticked {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }
}

/// One finished chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Unique within its device: `power`, `voltage`, `spectrum`, `quality`...
    pub id: String,
    pub title: String,
    pub svg: String,
    pub width: u32,
    pub height: u32,
    /// The value axis of a time chart or sparkline, bottom to top.
    pub y_range: Option<(f64, f64)>,
}

/// One line of a time chart: reduced segments (split at gaps), and the
/// values of flagged rows, drawn apart and left out of the axis range.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub segments: Vec<Vec<Bucket>>,
    /// Flagged rows per pixel column (see `report::flagged`).
    pub apart: Vec<Bucket>,
}

/// The time axis shared by a device's charts.
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    pub from: i64,
    pub to: i64,
    pub zone: Tz,
}

impl TimeAxis {
    fn x(&self, t_ns: i64) -> f64 {
        (t_ns - self.from) as f64 / 1e9
    }

    fn span_s(&self) -> f64 {
        ((self.to - self.from) as f64 / 1e9).max(1e-3)
    }
}

fn chart_error(chart: &str) -> impl Fn(String) -> ReportError + '_ {
    move |message| ReportError::Chart {
        chart: chart.to_string(),
        message,
    }
}

/// Draws into an SVG of `width` × `height` and names it.
fn svg_chart(
    id: &str,
    title: &str,
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<Chart> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| chart_error(id)(e.to_string()))?;
        draw(&root).map_err(chart_error(id))?;
        root.present().map_err(|e| chart_error(id)(e.to_string()))?;
    }
    Ok(Chart {
        id: id.to_string(),
        title: title.to_string(),
        svg: name_svg(&compact_svg(&svg, FONT), id, title),
        width,
        height,
        y_range: None,
    })
}

/// Adds `<title>`, `data-chart` and `role` to plotters' root `<svg>`.
fn name_svg(svg: &str, id: &str, title: &str) -> String {
    let title = escape(title);
    match svg
        .find("<svg")
        .and_then(|s| svg[s..].find('>').map(|e| s + e))
    {
        Some(end) => format!(
            "{} data-chart=\"{}\" role=\"img\" aria-label=\"{title}\">\n<title>{title}</title>{}",
            &svg[..end],
            escape(id),
            &svg[end + 1..]
        ),
        None => svg.to_string(),
    }
}

/// Text safe inside XML/HTML elements and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Decimals that tell ticks `range` apart.
fn decimals(range: f64) -> usize {
    if !(range.is_finite() && range > 0.0) {
        return 1;
    }
    (2.0 - range.log10().floor()).clamp(0.0, 6.0) as usize
}

fn time_ticks(axis: &TimeAxis, max: usize) -> (Vec<f64>, &'static str) {
    let ticks = ticks(axis.from, axis.to, axis.zone, max);
    (
        ticks.at_ns.iter().map(|&t| axis.x(t)).collect(),
        ticks.format,
    )
}

/// The smallest value axis, as a share of the largest magnitude on it: a
/// steady 10 A spans at least 9.95–10.05 A, so noise in the fifth digit
/// stays a flat line instead of filling the chart.
const MIN_RELATIVE_SPAN: f64 = 0.01;

/// Lowest and highest value of `buckets`; `None` when there is none.
fn extremes<'a>(buckets: impl Iterator<Item = &'a Bucket>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for bucket in buckets {
        lo = lo.min(bucket.lo.min(bucket.mean));
        hi = hi.max(bucket.hi.max(bucket.mean));
    }
    (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}

/// The value axis of `lines`: from the values on the lines (flagged values
/// drawn apart only when nothing else is there), padded, and at least
/// [`MIN_RELATIVE_SPAN`] of the largest magnitude wide; `None` without values.
fn value_range(lines: &[Line]) -> Option<(f64, f64)> {
    let (lo, hi) = extremes(lines.iter().flat_map(|l| l.segments.iter().flatten()))
        .or_else(|| extremes(lines.iter().flat_map(|l| l.apart.iter())))?;
    let pad = (hi - lo) * 0.06;
    let (lo, hi) = (lo - pad, hi + pad);
    let least = (MIN_RELATIVE_SPAN * lo.abs().max(hi.abs())).max(2e-3);
    if hi - lo >= least {
        return Some((lo, hi));
    }
    let middle = (lo + hi) / 2.0;
    Some((middle - least / 2.0, middle + least / 2.0))
}

/// The flagged rows of `lines` as spans of pixel columns `[start, end)`, s
/// on `axis`: neighbouring columns joined, each at least
/// [`APART_MIN_COLUMNS`] wide so one flagged window shows.
fn apart_spans(lines: &[Line], axis: &TimeAxis) -> Vec<(f64, f64)> {
    let column_s = axis.span_s() / PLOT_COLUMNS as f64;
    let least_s = column_s * APART_MIN_COLUMNS;
    let mut columns: Vec<i64> = lines
        .iter()
        .flat_map(|l| l.apart.iter())
        .map(|b| (axis.x(b.t_ns) / column_s).floor() as i64)
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for c in columns {
        match spans.last_mut() {
            Some(last) if last.1 == c => last.1 = c + 1,
            _ => spans.push((c, c + 1)),
        }
    }
    spans
        .into_iter()
        .map(|(a, b)| {
            let start = (a as f64 * column_s).clamp(0.0, (axis.span_s() - least_s).max(0.0));
            let end = (b as f64 * column_s).min(axis.span_s());
            (start, end.max(start + least_s))
        })
        .collect()
}

/// The narrowest shade behind flagged rows, pixel columns.
const APART_MIN_COLUMNS: f64 = 4.0;

/// The shade behind flagged rows and its legend colour.
const APART_SHADE: RGBColor = RGBColor(255, 127, 14);

/// A time chart: per line its mean, and a translucent band from each pixel
/// column's minimum to its maximum. Flagged rows are a shaded column with
/// a hollow mark per line where the value is inside the axis.
pub fn time_chart(
    id: &str,
    title: &str,
    unit: &str,
    axis: &TimeAxis,
    lines: &[Line],
) -> Result<Option<Chart>> {
    let Some((y0, y1)) = value_range(lines) else {
        return Ok(None);
    };
    let (key_points, format) = time_ticks(axis, 8);
    let zone = axis.zone;
    let from = axis.from;
    let y_decimals = decimals(y1 - y0);
    let apart = apart_spans(lines, axis);
    let mut chart = svg_chart(id, title, WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(ticked(0f64..axis.span_s(), key_points), y0..y1)
            .map_err(|e| e.to_string())?;
        let x_label = |x: &f64| format_time(from + (x * 1e9) as i64, zone, format);
        let y_label = |y: &f64| format!("{y:.y_decimals$}");
        chart
            .configure_mesh()
            .x_desc(axis_description(from, zone))
            .y_desc(unit)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .y_labels(6)
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 12))
            .draw()
            .map_err(|e| e.to_string())?;
        if !apart.is_empty() {
            chart
                .draw_series(apart.iter().map(|&(a, b)| {
                    Rectangle::new([(a, y0), (b, y1)], APART_SHADE.mix(0.25).filled())
                }))
                .map_err(|e| e.to_string())?
                .label("flagged (not on the axis)")
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 14, y + 4)], APART_SHADE.mix(0.4).filled())
                });
        }
        for (k, line) in lines.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let marks = line
                .apart
                .iter()
                .filter(|b| (y0..=y1).contains(&b.mean))
                .map(|b| Circle::new((axis.x(b.t_ns), b.mean), 3, color.stroke_width(1)));
            chart.draw_series(marks).map_err(|e| e.to_string())?;
            for segment in &line.segments {
                if segment.iter().any(|b| b.hi > b.lo) && segment.len() > 1 {
                    let band: Vec<(f64, f64)> = segment
                        .iter()
                        .map(|b| (axis.x(b.t_ns), b.hi))
                        .chain(segment.iter().rev().map(|b| (axis.x(b.t_ns), b.lo)))
                        .collect();
                    chart
                        .draw_series(std::iter::once(Polygon::new(
                            band,
                            color.mix(0.22).filled(),
                        )))
                        .map_err(|e| e.to_string())?;
                }
            }
            let mut labelled = false;
            for segment in &line.segments {
                let points: Vec<(f64, f64)> =
                    segment.iter().map(|b| (axis.x(b.t_ns), b.mean)).collect();
                let drawn = if points.len() == 1 {
                    chart.draw_series(std::iter::once(Circle::new(points[0], 2, color.filled())))
                } else {
                    chart.draw_series(LineSeries::new(points, color.stroke_width(1)))
                }
                .map_err(|e| e.to_string())?;
                if !labelled {
                    labelled = true;
                    drawn.label(line.label.as_str()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                    });
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 11))
            .draw()
            .map_err(|e| e.to_string())
    })?;
    chart.y_range = Some((y0, y1));
    Ok(Some(chart))
}

/// Sparkline size, px: a cell of the fleet table.
pub const SPARK_WIDTH: u32 = 180;
pub const SPARK_HEIGHT: u32 = 30;

/// A line without axes for a table cell: the mean and its min/max band on
/// `axis`, scaled to the line's own range (the cell's numbers give the scale).
pub fn sparkline(id: &str, title: &str, axis: &TimeAxis, line: &Line) -> Result<Option<Chart>> {
    let lines = std::slice::from_ref(line);
    let Some((y0, y1)) = value_range(lines) else {
        return Ok(None);
    };
    let color = PALETTE[0];
    let mut chart = svg_chart(id, title, SPARK_WIDTH, SPARK_HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(2)
            .build_cartesian_2d(0f64..axis.span_s(), y0..y1)
            .map_err(|e| e.to_string())?;
        for segment in &line.segments {
            if segment.len() > 1 && segment.iter().any(|b| b.hi > b.lo) {
                let band: Vec<(f64, f64)> = segment
                    .iter()
                    .map(|b| (axis.x(b.t_ns), b.hi))
                    .chain(segment.iter().rev().map(|b| (axis.x(b.t_ns), b.lo)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        color.mix(0.25).filled(),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            let points: Vec<(f64, f64)> =
                segment.iter().map(|b| (axis.x(b.t_ns), b.mean)).collect();
            if points.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(points[0], 1, color.filled())))
            } else {
                chart.draw_series(LineSeries::new(points, color.stroke_width(1)))
            }
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    chart.y_range = Some((y0, y1));
    Ok(Some(chart))
}

/// One channel's mean harmonic magnitudes, % of its fundamental, orders 2..=H.
#[derive(Debug, Clone)]
pub struct Spectrum {
    pub channel: String,
    pub percent: Vec<f64>,
}

/// Bars per order and channel.
pub fn spectrum_chart(id: &str, title: &str, spectra: &[Spectrum]) -> Result<Option<Chart>> {
    let orders = spectra.iter().map(|s| s.percent.len()).max().unwrap_or(0);
    let top = spectra
        .iter()
        .flat_map(|s| s.percent.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if orders == 0 || spectra.is_empty() {
        return Ok(None);
    }
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let width = 0.8 / spectra.len() as f64;
    let chart = svg_chart(id, title, WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(1.5f64..(orders as f64 + 1.5), 0f64..top)
            .map_err(|e| e.to_string())?;
        let x_label = |x: &f64| format!("{}", x.round() as i64);
        let y_decimals = decimals(top);
        let y_label = |y: &f64| format!("{y:.y_decimals$}");
        chart
            .configure_mesh()
            .x_desc("harmonic order")
            .y_desc("% of fundamental")
            .x_labels(orders.min(20))
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, spectrum) in spectra.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let bars = spectrum
                .percent
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| {
                    let order = i as f64 + 2.0;
                    let left = order - 0.4 + k as f64 * width;
                    Rectangle::new([(left, 0.0), (left + width, v)], color.filled())
                });
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(spectrum.channel.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 10, y + 4)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 11))
            .draw()
            .map_err(|e| e.to_string())
    })?;
    Ok(Some(chart))
}

/// A coloured span on one row of a strip chart.
#[derive(Debug, Clone)]
pub struct Span {
    pub start_ns: i64,
    pub end_ns: i64,
    /// Index into the strip's legend.
    pub class: usize,
}

/// One row of a strip chart and the legend entries its spans use.
#[derive(Debug, Clone)]
pub struct StripRow {
    pub label: String,
    pub spans: Vec<Span>,
    /// The narrowest a span is drawn, px: 1 for coverage (a wider one would
    /// hide short gaps), [`EVENT_MIN_PX`] for events (a 10 ms RVC is visible).
    pub min_px: u32,
}

/// The narrowest an event is drawn on a strip, px.
pub const EVENT_MIN_PX: u32 = 4;

/// Rows of coloured spans over time (data coverage, flagged windows,
/// stream events; or power-quality events by kind). `classes` names the
/// colours; spans narrower than their row's `min_px` are widened to it.
pub fn strip_chart(
    id: &str,
    title: &str,
    axis: &TimeAxis,
    rows: &[StripRow],
    classes: &[(String, RGBColor)],
) -> Result<Chart> {
    let (key_points, format) = time_ticks(axis, 8);
    let zone = axis.zone;
    let from = axis.from;
    let n = rows.len().max(1);
    let height = STRIP_HEIGHT
        .max(70 + 26 * n as u32)
        .max(50 + 16 * classes.len() as u32);
    let pixel_s = axis.span_s() / f64::from(STRIP_PLOT_PX);
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    svg_chart(id, title, WIDTH, height, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(STRIP_MARGIN)
            .margin_right(STRIP_LEGEND_PX)
            .x_label_area_size(36)
            .y_label_area_size(STRIP_LABELS_PX)
            .build_cartesian_2d(
                ticked(0f64..axis.span_s(), key_points),
                ticked(0f64..n as f64, (0..n).map(|i| i as f64 + 0.5).collect()),
            )
            .map_err(|e| e.to_string())?;
        let x_label = |x: &f64| format_time(from + (x * 1e9) as i64, zone, format);
        let y_label = |y: &f64| {
            let row = y.floor() as usize;
            labels.get(row).cloned().unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_desc(axis_description(from, zone))
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (r, row) in rows.iter().enumerate() {
            let least_s = pixel_s * f64::from(row.min_px.max(1));
            let rects = row.spans.iter().filter_map(|span| {
                let color = classes.get(span.class)?.1;
                let x1 = axis.x(span.end_ns).min(axis.span_s());
                // At the axis' end a short span grows to the left.
                let x0 = axis
                    .x(span.start_ns)
                    .min(x1)
                    .min(axis.span_s() - least_s)
                    .max(0.0);
                let x1 = x1.max(x0 + least_s);
                let y = r as f64;
                Some(Rectangle::new(
                    [(x0, y + 0.15), (x1, y + 0.85)],
                    color.filled(),
                ))
            });
            chart.draw_series(rects).map_err(|e| e.to_string())?;
        }
        // The legend sits in the right margin, clear of the rows.
        for (k, (name, color)) in classes.iter().enumerate() {
            let (x, y) = (WIDTH as i32 - 122, 34 + 16 * k as i32);
            root.draw(&Rectangle::new([(x, y), (x + 10, y + 10)], color.filled()))
                .map_err(|e| e.to_string())?;
            root.draw(&Text::new(name.as_str(), (x + 14, y), (FONT, 11)))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_named_svgs() {
        let axis = TimeAxis {
            from: 0,
            to: 60_000_000_000,
            zone: chrono_tz::UTC,
        };
        let bucket = |t: i64, v: f64| Bucket {
            t_ns: t,
            mean: v,
            lo: v - 1.0,
            hi: v + 1.0,
        };
        let line = Line {
            label: "V L1".into(),
            segments: vec![vec![bucket(0, 230.0), bucket(30_000_000_000, 231.0)]],
            apart: Vec::new(),
        };
        let chart = time_chart("voltage", "Voltage <RMS>", "V", &axis, &[line])
            .unwrap()
            .unwrap();
        assert!(chart.svg.starts_with("<svg"));
        assert!(chart.svg.contains("<title>Voltage &lt;RMS&gt;</title>"));
        assert!(chart.svg.contains("data-chart=\"voltage\""));
        assert!(chart.svg.contains("<polygon"), "the min/max band is drawn");
        assert!(time_chart("empty", "Empty", "V", &axis, &[])
            .unwrap()
            .is_none());
    }

    #[test]
    fn flagged_values_do_not_set_the_axis_and_steady_values_get_a_span() {
        let at = |t: i64, v: f64| Bucket {
            t_ns: t,
            mean: v,
            lo: v,
            hi: v,
        };
        // THD 2..5 % on the line, a partial window's 100 % apart.
        let thd = Line {
            label: "THD".into(),
            segments: vec![vec![at(1, 2.0), at(2, 5.0)]],
            apart: vec![at(0, 100.0)],
        };
        // Padded by 6 % of the 3 % range on each side.
        let (lo, hi) = value_range(std::slice::from_ref(&thd)).unwrap();
        assert!((lo - (2.0 - 0.18)).abs() < 1e-12 && (hi - (5.0 + 0.18)).abs() < 1e-12);
        // Only flagged values: they make the axis rather than no chart.
        let only = Line {
            segments: Vec::new(),
            ..thd
        };
        let (lo, hi) = value_range(&[only]).unwrap();
        assert!(lo < 100.0 && hi > 100.0);
        // 10 A ± 0.1 mA: 1 % of 10 A wide, centred.
        let steady = Line {
            label: "I".into(),
            segments: vec![vec![at(1, 9.9999), at(2, 10.0001)]],
            apart: Vec::new(),
        };
        let (lo, hi) = value_range(&[steady]).unwrap();
        assert!((hi - lo - 0.1).abs() < 1e-3, "{lo}..{hi}");
        assert!(((lo + hi) / 2.0 - 10.0).abs() < 1e-9);
    }
}
