//! The HTML report of a dataset (`meterflow report`): one self-contained
//! page with, per device, power, voltage, current, frequency, THD and
//! energy over time, the harmonic spectrum, a data-quality strip and
//! power-quality events, and a fleet overview linking to each device.
//!
//! Files: `scan` finds tables and partitions, `read` reads columns by name,
//! `device` picks the table that fits the chart width and loads a device,
//! `reduce` folds rows into per-pixel min/max envelopes, `flagged` says
//! which rows are drawn apart, `stats` and `quality` and `spectrum` derive
//! what is shown, `fleet` picks the devices drawn in full and sums the
//! fleet, `charts` draws with plotters (SVG), `compact` strips what plotters
//! repeats, `pq_table` lays out the power-quality events, `page` assembles
//! the HTML, `png` rasterises charts.

pub mod charts;
pub mod compact;
pub mod device;
pub mod error;
pub mod flagged;
pub mod fleet;
pub mod page;
pub mod pages;
pub mod png;
pub mod pq_table;
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

use charts::{
    sparkline, spectrum_chart, strip_chart, time_chart, Chart, Line, TimeAxis, PLOT_COLUMNS,
    SPARK_WIDTH,
};
use device::{chart_specs, Depth, DeviceData};
pub use error::{ReportError, Result};
pub use fleet::DEFAULT_DETAIL;
use page::{anchor, DeviceSection, FleetRow, Overview, PageInfo};
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
    /// Devices drawn with all their charts: every device when there are at
    /// most this many, else the fleet table with a sparkline per device and
    /// full charts for this many, those needing attention most.
    pub detail: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    pub out: PathBuf,
    /// Damaged files left out of the report (named on the page and in the log).
    pub skipped_files: Vec<PathBuf>,
    pub bytes: u64,
    pub devices: usize,
    /// Devices drawn with all their charts.
    pub detailed: usize,
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
    /// The value axis (bottom, top) of each time chart, per device and chart id.
    pub y_ranges: BTreeMap<String, BTreeMap<String, (f64, f64)>>,
    /// Titles of the fleet's own charts.
    pub fleet_titles: Vec<String>,
    /// Seconds spent per phase (`scan`, `span`, `overview`, `devices`,
    /// `page`, `png`), for the figures the example prints.
    pub phases: Vec<(&'static str, f64)>,
}

/// Reads the dataset, draws every chart and writes the page (and PNGs).
pub fn write_report(options: &ReportOptions) -> Result<ReportSummary> {
    let mut phases = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &'static str| {
        let now = std::time::Instant::now();
        phases.push((name, (now - clock).as_secs_f64()));
        clock = now;
    };
    let dataset = Dataset::open(&options.dataset)?;
    prepare_folders(options)?;
    let devices = select_devices(&dataset, &options.devices, &options.dataset)?;
    lap("scan");
    let (from, to, extents) = span(&dataset, &devices, options.from, options.to)?;
    lap("span");
    let zone = options.zone;
    let report_axis = TimeAxis { from, to, zone };
    // Which devices get all their charts, and the fleet overview.
    let (chosen, overview): (Vec<usize>, Overview) = if devices.len() > options.detail {
        let summaries: Vec<Summary> = devices
            .par_iter()
            .map(|name| summarise(&dataset, name, &report_axis))
            .collect::<Result<_>>()?;
        let ranked: Vec<(&str, &stats::DeviceStats)> = summaries
            .iter()
            .map(|s| (s.name.as_str(), &s.stats))
            .collect();
        let chosen: Vec<usize> = fleet::attention_order(&ranked)
            .into_iter()
            .take(options.detail)
            .collect();
        let overview = fleet_overview(summaries, &chosen, &report_axis, options.detail)?;
        (chosen, overview)
    } else {
        ((0..devices.len()).collect(), Overview::default())
    };
    lap("overview");
    let sections: Vec<DeviceSection> = chosen
        .par_iter()
        .map(|&k| {
            // A device covering little of a span found in the data (captures
            // of different times) gets its own axis, so its lines are visible.
            let own = extents[k]
                .map(|(a, b)| (a.max(from), b.min(to)))
                .filter(|(a, b)| b > a && (b - a) < (to - from) / 2);
            let axis = TimeAxis {
                from: own.map_or(from, |o| o.0),
                to: own.map_or(to, |o| o.1),
                zone,
            };
            section(&dataset, &devices[k], axis, (from, to))
        })
        .collect::<Result<_>>()?;
    lap("devices");
    let overview = if overview.rows.is_empty() {
        Overview {
            rows: sections
                .iter()
                .map(|s| FleetRow {
                    name: s.name.clone(),
                    stats: s.stats.clone(),
                    sparkline: None,
                    detailed: true,
                })
                .collect(),
            ..Overview::default()
        }
    } else {
        overview
    };
    let info = PageInfo {
        dataset: options.dataset.display().to_string(),
        from,
        to,
        zone,
        skipped: dataset
            .skipped
            .list()
            .into_iter()
            .map(|(path, reason)| (path.display().to_string(), reason))
            .collect(),
    };
    let html = page::page(&info, &overview, &sections);
    std::fs::write(&options.out, html.as_bytes())
        .map_err(|e| ReportError::io("write", &options.out, e))?;
    lap("page");
    let pngs = match &options.png_dir {
        Some(dir) => write_pngs(&overview, &sections, dir)?,
        None => Vec::new(),
    };
    lap("png");
    let mut charts_by_id = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut titles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &overview.rows {
        if let Some(chart) = &row.sparkline {
            *charts_by_id.entry(chart.id.clone()).or_insert(0) += 1;
            titles
                .entry(row.name.clone())
                .or_default()
                .push(chart.title.clone());
        }
    }
    for chart in &overview.charts {
        *charts_by_id.entry(chart.id.clone()).or_insert(0) += 1;
    }
    for s in &sections {
        *sources.entry(s.source.describe()).or_insert(0) += 1;
        for c in &s.charts {
            *charts_by_id.entry(c.id.clone()).or_insert(0) += 1;
        }
        titles
            .entry(s.name.clone())
            .or_default()
            .extend(s.charts.iter().map(|c| c.title.clone()));
    }
    let y_ranges = sections
        .iter()
        .map(|s| {
            let ranges = s
                .charts
                .iter()
                .filter_map(|c| c.y_range.map(|r| (c.id.clone(), r)))
                .collect();
            (s.name.clone(), ranges)
        })
        .collect();
    let mut stats: BTreeMap<String, stats::DeviceStats> = overview
        .rows
        .iter()
        .map(|r| (r.name.clone(), r.stats.clone()))
        .collect();
    // A device read in full has its numbers from every column.
    stats.extend(sections.iter().map(|s| (s.name.clone(), s.stats.clone())));
    Ok(ReportSummary {
        out: options.out.clone(),
        skipped_files: info.skipped.iter().map(|(p, _)| PathBuf::from(p)).collect(),
        bytes: html.len() as u64,
        devices: devices.len(),
        detailed: sections.len(),
        charts: charts_by_id.values().sum(),
        charts_by_id,
        sources,
        from,
        to,
        pngs,
        stats,
        titles,
        y_ranges,
        fleet_titles: overview.charts.iter().map(|c| c.title.clone()).collect(),
        phases,
    })
}

/// What the fleet table shows of one device: its numbers and P.
struct Summary {
    name: String,
    stats: stats::DeviceStats,
    sparkline: Option<Chart>,
    /// P per pixel column on the report axis, for the fleet's total.
    power: Option<Line>,
}

/// Reads the summary columns of a device over the report span.
fn summarise(dataset: &Dataset, name: &str, axis: &TimeAxis) -> Result<Summary> {
    let data = device::load(
        dataset,
        name,
        (axis.from, axis.to),
        PLOT_COLUMNS,
        Depth::Summary,
    )?;
    let specs = chart_specs(data.source);
    let p = specs
        .iter()
        .find(|c| c.id == "power")
        .and_then(|c| c.series.iter().find(|s| s.label == "P"));
    let apart = flagged::rows_apart(&data);
    let line = |columns: usize| p.and_then(|p| series_line(&data, p, axis, columns, &apart));
    let spark = line(SPARK_WIDTH as usize);
    let sparkline = match &spark {
        Some(spark) => sparkline(
            "sparkline",
            &format!("{name}: active power over the span"),
            axis,
            spark,
        )?,
        None => None,
    };
    Ok(Summary {
        name: name.to_string(),
        stats: stats::device_stats(&data, axis.from, axis.to),
        sparkline,
        power: line(PLOT_COLUMNS),
    })
}

/// The fleet's charts and table; `chosen` are drawn in full below it.
fn fleet_overview(
    summaries: Vec<Summary>,
    chosen: &[usize],
    axis: &TimeAxis,
    detail: usize,
) -> Result<Overview> {
    let powers: Vec<&Line> = summaries.iter().filter_map(|s| s.power.as_ref()).collect();
    let mut charts = Vec::new();
    if let Some(total) = fleet::total(&powers, axis.from, axis.to, PLOT_COLUMNS) {
        if let Some(chart) = time_chart(
            "fleet_power",
            "Fleet: total active power",
            "W",
            axis,
            &[total],
        )? {
            charts.push(chart);
        }
    }
    let note = format!(
        "{} devices: every one has a row and a sparkline (mean P per pixel, min–max band, on the \
         report's span). All charts are drawn below for the {} that need attention most (least data, \
         then most flagged windows, gaps, power-quality events, worst THD-I); their names link there. \
         Any other: meterflow report DATASET --device NAME, or a larger --detail.",
        summaries.len(),
        chosen.len().min(detail),
    );
    let rows = summaries
        .into_iter()
        .enumerate()
        .map(|(k, s)| FleetRow {
            name: s.name,
            stats: s.stats,
            sparkline: s.sparkline,
            detailed: chosen.contains(&k),
        })
        .collect();
    Ok(Overview {
        charts,
        rows,
        note: Some(note),
    })
}

fn select_devices(dataset: &Dataset, wanted: &[String], path: &Path) -> Result<Vec<String>> {
    let all = dataset.devices()?;
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

/// One series reduced to `columns` pixel columns of `axis`, the rows in
/// `apart` (see [`flagged`]) folded separately; `None` without values.
fn series_line(
    data: &DeviceData,
    series: &device::SeriesSpec,
    axis: &TimeAxis,
    columns: usize,
    apart: &[bool],
) -> Option<Line> {
    let frame = &data.frame;
    // Three missing rows in a row make a gap; a single row has the whole span.
    let resolution = resolution_ns(&frame.time);
    let gap_ns = if resolution > 0 {
        resolution.saturating_mul(3)
    } else {
        axis.to - axis.from
    };
    let (value, lo, hi) = series.expr.eval(frame);
    if !value.iter().any(|v| v.is_finite()) {
        return None;
    }
    let no_rows_apart = vec![false; value.len()];
    let apart = if series.expr.is_cumulative() {
        &no_rows_apart
    } else {
        apart
    };
    let (on_line, set_apart) = flagged::split(&value, apart);
    let rows = |value: &[f64]| {
        let rows = Rows {
            time: &frame.time,
            value,
            lo: lo.as_deref(),
            hi: hi.as_deref(),
        };
        envelope(rows, axis.from, axis.to, columns, gap_ns)
    };
    Some(Line {
        label: series.label.clone(),
        segments: rows(&on_line),
        apart: rows(&set_apart).into_iter().flatten().collect(),
    })
}

/// The lines of one chart, reduced to the plot width.
fn lines(
    data: &DeviceData,
    spec: &device::ChartSpec,
    axis: &TimeAxis,
    apart: &[bool],
) -> Vec<Line> {
    spec.series
        .iter()
        .filter_map(|s| series_line(data, s, axis, PLOT_COLUMNS, apart))
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
    let data = device::load(dataset, name, (from, to), PLOT_COLUMNS, Depth::Full)?;
    let mut charts = Vec::new();
    let apart = flagged::rows_apart(&data);
    for spec in chart_specs(data.source) {
        let title = format!("{name}: {}", spec.title);
        if let Some(chart) = time_chart(
            spec.id,
            &title,
            spec.unit,
            &axis,
            &lines(&data, &spec, &axis, &apart),
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

/// Every chart of the page as PNG: the fleet's, then each section's
/// (sparklines are cells of a table, not figures).
/// Creates the page's folder and the PNG folder and makes sure a file can
/// be written into the latter, so a bad `--png-dir` fails before the page
/// is written rather than after.
fn prepare_folders(options: &ReportOptions) -> Result<()> {
    if let Some(parent) = options.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ReportError::io("create folder", parent, e))?;
    }
    if let Some(dir) = &options.png_dir {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::io("create folder", dir, e))?;
        let probe = dir.join(format!(".meterflow-write-check-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| ReportError::io("write into", dir, e))?;
        std::fs::remove_file(&probe).map_err(|e| ReportError::io("remove", &probe, e))?;
    }
    Ok(())
}

fn write_pngs(overview: &Overview, sections: &[DeviceSection], dir: &Path) -> Result<Vec<PathBuf>> {
    let writer = png::PngWriter::new(2.0);
    let mut jobs: Vec<(String, &Chart)> = overview
        .charts
        .iter()
        .map(|c| (format!("fleet-{}", c.id), c))
        .collect();
    jobs.extend(sections.iter().flat_map(|s| {
        s.charts
            .iter()
            .map(move |c| (format!("{}-{}", anchor(&s.name), c.id), c))
    }));
    jobs.par_iter()
        .map(|(stem, c)| writer.write(c, dir, stem))
        .collect()
}
