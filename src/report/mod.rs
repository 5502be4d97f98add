//! The HTML report of a dataset (`meterflow report`): one self-contained
//! page with, per device, power, voltage, current, frequency, THD and
//! energy over time, the harmonic spectrum, a data-quality strip and
//! power-quality events, and a fleet overview linking to each device.
//!
//! Files: `scan` finds tables and partitions, `read` reads columns by name,
//! `device` picks the table that fits the chart width and loads a device,
//! `reduce` folds rows into per-pixel min/max envelopes, `stats` and
//! `quality` and `spectrum` derive what is shown, `charts` draws with
//! plotters (SVG), `page` assembles the HTML, `png` rasterises charts.

pub mod charts;
pub mod device;
pub mod error;
pub mod page;
pub mod png;
pub mod quality;
pub mod read;
pub mod reduce;
pub mod scan;
pub mod spectrum;
pub mod stats;
pub mod timeaxis;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use rayon::prelude::*;

use charts::{spectrum_chart, strip_chart, time_chart, Line, TimeAxis, PLOT_COLUMNS};
use device::{chart_specs, DeviceData};
pub use error::{ReportError, Result};
use page::{anchor, DeviceSection, PageInfo};
use reduce::{envelope, resolution_ns, Rows};
use scan::Dataset;

/// What to report on and where to put it.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// A dataset root, or a run's output folder holding `parquet/`.
    pub dataset: PathBuf,
    /// Devices to include; empty for all.
    pub devices: Vec<String>,
    /// Span, ns since the epoch; open ends are taken from the data.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Zone of the time labels.
    pub zone: Tz,
    /// The HTML file to write.
    pub out: PathBuf,
    /// Where to write each chart as PNG, if wanted.
    pub png_dir: Option<PathBuf>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    pub out: PathBuf,
    pub bytes: u64,
    pub devices: usize,
    pub charts: usize,
    /// Charts per id (`power`, `quality`, ...), over all devices.
    pub charts_by_id: BTreeMap<String, usize>,
    /// Devices per source description (`windows (10/12 cycles)`, `10 min aggregates`...).
    pub sources: BTreeMap<&'static str, usize>,
    pub from: i64,
    pub to: i64,
    pub pngs: Vec<PathBuf>,
    /// The fleet table's numbers per device.
    pub stats: BTreeMap<String, stats::DeviceStats>,
    /// Chart titles per device, in page order.
    pub titles: BTreeMap<String, Vec<String>>,
}

/// Reads the dataset, draws every chart and writes the page (and PNGs).
pub fn write_report(options: &ReportOptions) -> Result<ReportSummary> {
    let dataset = Dataset::open(&options.dataset)?;
    let devices = select_devices(&dataset, &options.devices, &options.dataset)?;
    let (from, to, extents) = span(&dataset, &devices, options.from, options.to)?;
    let zone = options.zone;
    let sections: Vec<DeviceSection> = devices
        .par_iter()
        .zip(extents.par_iter())
        .map(|(name, extent)| {
            // A device covering little of a span found in the data (captures
            // of different times) gets its own axis, so its lines are visible.
            let own = extent
                .map(|(a, b)| (a.max(from), b.min(to)))
                .filter(|(a, b)| b > a && (b - a) < (to - from) / 2);
            let axis = TimeAxis {
                from: own.map_or(from, |o| o.0),
                to: own.map_or(to, |o| o.1),
                zone,
            };
            section(&dataset, name, axis, (from, to))
        })
        .collect::<Result<_>>()?;
    let info = PageInfo {
        dataset: options.dataset.display().to_string(),
        from,
        to,
        zone,
    };
    let html = page::page(&info, &sections);
    if let Some(parent) = options.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ReportError::io("create folder", parent, e))?;
    }
    std::fs::write(&options.out, html.as_bytes())
        .map_err(|e| ReportError::io("write", &options.out, e))?;
    let pngs = match &options.png_dir {
        Some(dir) => write_pngs(&sections, dir)?,
        None => Vec::new(),
    };
    let mut charts_by_id = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for s in &sections {
        *sources.entry(s.source.describe()).or_insert(0) += 1;
        for c in &s.charts {
            *charts_by_id.entry(c.id.clone()).or_insert(0) += 1;
        }
    }
    Ok(ReportSummary {
        out: options.out.clone(),
        bytes: html.len() as u64,
        devices: sections.len(),
        charts: charts_by_id.values().sum(),
        charts_by_id,
        sources,
        from,
        to,
        pngs,
        stats: sections
            .iter()
            .map(|s| (s.name.clone(), s.stats.clone()))
            .collect(),
        titles: sections
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.charts.iter().map(|c| c.title.clone()).collect(),
                )
            })
            .collect(),
    })
}

fn select_devices(dataset: &Dataset, wanted: &[String], path: &Path) -> Result<Vec<String>> {
    let all = dataset.devices();
    if wanted.is_empty() {
        return Ok(all);
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !all.contains(w))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ReportError::UnknownDevice {
            names: missing.join(", "),
            path: path.to_path_buf(),
            available: all.join(", "),
        });
    }
    Ok(all.into_iter().filter(|d| wanted.contains(d)).collect())
}

type Extents = Vec<Option<(i64, i64)>>;

/// The report span: the given ends, the others from the data; with the
/// data's extent per device when it was needed.
fn span(
    dataset: &Dataset,
    devices: &[String],
    from: Option<i64>,
    to: Option<i64>,
) -> Result<(i64, i64, Extents)> {
    let (from, to, extents) = match (from, to) {
        (Some(a), Some(b)) => (a, b, vec![None; devices.len()]),
        _ => {
            let extents: Extents = devices
                .par_iter()
                .map(|d| device::extent(dataset, d))
                .collect::<Result<_>>()?;
            let (lo, hi) = extents
                .iter()
                .flatten()
                .copied()
                .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
                .ok_or_else(|| {
                    ReportError::Options(format!(
                        "{} has no rows to report",
                        dataset.root.display()
                    ))
                })?;
            (from.unwrap_or(lo), to.unwrap_or(hi), extents)
        }
    };
    if from >= to {
        return Err(ReportError::Options(
            "the span is empty: --from must be before --to".into(),
        ));
    }
    Ok((from, to, extents))
}

/// The lines of one chart, reduced to the plot width.
fn lines(data: &DeviceData, spec: &device::ChartSpec, axis: &TimeAxis) -> Vec<Line> {
    let frame = &data.frame;
    // Three missing rows in a row make a gap; a single row has the whole span.
    let resolution = resolution_ns(&frame.time);
    let gap_ns = if resolution > 0 {
        resolution.saturating_mul(3)
    } else {
        axis.to - axis.from
    };
    spec.series
        .iter()
        .filter_map(|s| {
            let (value, lo, hi) = s.expr.eval(frame);
            if !value.iter().any(|v| v.is_finite()) {
                return None;
            }
            let rows = Rows {
                time: &frame.time,
                value: &value,
                lo: lo.as_deref(),
                hi: hi.as_deref(),
            };
            let segments = envelope(rows, axis.from, axis.to, PLOT_COLUMNS, gap_ns);
            Some(Line {
                label: s.label.clone(),
                segments,
            })
        })
        .collect()
}

/// One device's charts on `axis`; its numbers are over the report `span`.
fn section(
    dataset: &Dataset,
    name: &str,
    axis: TimeAxis,
    span: (i64, i64),
) -> Result<DeviceSection> {
    let (from, to) = (axis.from, axis.to);
    let data = device::load(dataset, name, from, to, PLOT_COLUMNS)?;
    let mut charts = Vec::new();
    for spec in chart_specs(data.source) {
        let title = format!("{name}: {}", spec.title);
        if let Some(chart) = time_chart(
            spec.id,
            &title,
            spec.unit,
            &axis,
            &lines(&data, &spec, &axis),
        )? {
            charts.push(chart);
        }
    }
    let spectra = spectrum::spectra(&data.harmonics);
    if let Some(chart) = spectrum_chart(
        "spectrum",
        &format!("{name}: Harmonic spectrum (mean)"),
        &spectra,
    )? {
        charts.push(chart);
    }
    charts.push(strip_chart(
        "quality",
        &format!("{name}: Data quality"),
        &axis,
        &quality::quality_rows(&data, from, to),
        &quality::quality_classes(),
    )?);
    if let Some(pq) = data.pq_events.as_ref().filter(|p| !p.rows.is_empty()) {
        let (rows, legend) = quality::pq_rows(pq);
        charts.push(strip_chart(
            "pq_events",
            &format!("{name}: Power-quality events"),
            &axis,
            &rows,
            &legend,
        )?);
    }
    Ok(DeviceSection {
        name: name.to_string(),
        source: data.source,
        rows: data.frame.len(),
        stats: stats::device_stats(&data, span.0, span.1),
        charts,
        pq_events: data.pq_events,
    })
}

fn write_pngs(sections: &[DeviceSection], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io("create folder", dir, e))?;
    let writer = png::PngWriter::new(2.0);
    let jobs: Vec<(&DeviceSection, &charts::Chart)> = sections
        .iter()
        .flat_map(|s| s.charts.iter().map(move |c| (s, c)))
        .collect();
    jobs.par_iter()
        .map(|(s, c)| writer.write(c, dir, &format!("{}-{}", anchor(&s.name), c.id)))
        .collect()
}
