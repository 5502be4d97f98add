//! One device's data for the report: its time series from the finest table
//! that still fits the chart width (windows, 3 s or 10 min aggregates, or
//! latch windows), its events, harmonic spectrum and power-quality events.

use super::error::Result;
use super::read::{count_rows, read, Frame, Query};
use super::scan::Dataset;

/// Rows per pixel column up to which a finer table is still preferred.
const ROWS_PER_COLUMN: u64 = 8;
/// Basic windows in one 3 s aggregate (IEC 61000-4-30: 150/180 cycles).
const WINDOWS_PER_3S: u64 = 15;

/// Where a device's series come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Windows,
    Latch,
    /// The `aggregates` table at one `interval` value (`3s`, `10min`).
    Aggregates(&'static str),
}

impl Source {
    /// What the page says the charts show.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Windows => "windows (10/12 cycles)",
            Source::Latch => "latch windows",
            Source::Aggregates("3s") => "3 s aggregates",
            Source::Aggregates(_) => "10 min aggregates",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Source::Windows => "windows",
            Source::Latch => "latch",
            Source::Aggregates(_) => "aggregates",
        }
    }

    fn time_column(self) -> &'static str {
        match self {
            Source::Aggregates(_) => "interval_start",
            _ => "window_start",
        }
    }

    fn end_column(self) -> &'static str {
        match self {
            Source::Aggregates(_) => "interval_end",
            _ => "window_end",
        }
    }
}

/// How one plotted series is computed from the source's columns.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A column, with the table's own per-row extremes when it has them.
    Column {
        value: String,
        lo: Option<String>,
        hi: Option<String>,
    },
    /// The sum of columns (phases); NaN where all are null.
    Sum(Vec<String>),
    /// The running sum of per-interval amounts.
    RunningSum(String),
    /// The running sum of the imported (`export == false`: positive) or
    /// exported (negative, counted positive) part of each row's net energy,
    /// the row's columns (phases) summed first.
    RunningSplit { columns: Vec<String>, export: bool },
}

impl Expr {
    fn col(value: String) -> Self {
        Expr::Column {
            value,
            lo: None,
            hi: None,
        }
    }

    fn ranged(stem: &str, unit: &str) -> Self {
        Expr::Column {
            value: format!("{stem}{unit}"),
            lo: Some(format!("{stem}_min{unit}")),
            hi: Some(format!("{stem}_max{unit}")),
        }
    }

    fn columns(&self) -> Vec<String> {
        match self {
            Expr::Column { value, lo, hi } => [Some(value), lo.as_ref(), hi.as_ref()]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            Expr::Sum(names) | Expr::RunningSplit { columns: names, .. } => names.clone(),
            Expr::RunningSum(name) => vec![name.clone()],
        }
    }

    /// Whether each value sums every row before it: such a line keeps
    /// every row (a flagged window's energy still counts).
    pub fn is_cumulative(&self) -> bool {
        matches!(self, Expr::RunningSum(_) | Expr::RunningSplit { .. })
    }

    /// Values (and extremes) of every row of `frame`.
    pub fn eval(&self, frame: &Frame) -> (Vec<f64>, Option<Vec<f64>>, Option<Vec<f64>>) {
        match self {
            Expr::Column { value, lo, hi } => {
                let extreme = |name: &Option<String>| {
                    name.as_ref()
                        .filter(|n| frame.has_values(n))
                        .map(|n| frame.number(n).to_vec())
                };
                (frame.number(value).to_vec(), extreme(lo), extreme(hi))
            }
            Expr::Sum(names) => {
                let values = (0..frame.len())
                    .map(|i| {
                        let parts: Vec<f64> = names
                            .iter()
                            .map(|n| frame.number(n)[i])
                            .filter(|v| !v.is_nan())
                            .collect();
                        if parts.is_empty() {
                            f64::NAN
                        } else {
                            parts.iter().sum()
                        }
                    })
                    .collect();
                (values, None, None)
            }
            Expr::RunningSplit { columns, export } => {
                let (net, _, _) = Expr::Sum(columns.clone()).eval(frame);
                let sign = if *export { -1.0 } else { 1.0 };
                let mut total = 0.0;
                let values = net
                    .iter()
                    .map(|e| {
                        if e.is_finite() {
                            total += (sign * e).max(0.0);
                        }
                        total
                    })
                    .collect();
                (values, None, None)
            }
            Expr::RunningSum(name) => {
                let mut total = 0.0;
                let values = frame
                    .number(name)
                    .iter()
                    .map(|v| {
                        if !v.is_nan() {
                            total += v;
                        }
                        total
                    })
                    .collect();
                (values, None, None)
            }
        }
    }
}

/// One line on a chart.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub label: String,
    pub expr: Expr,
}

/// One time chart: an id (anchor and PNG name), title, y-axis unit, lines.
#[derive(Debug, Clone)]
pub struct ChartSpec {
    pub id: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub series: Vec<SeriesSpec>,
}

const PHASES: [&str; 3] = ["l1", "l2", "l3"];

fn series(label: impl Into<String>, expr: Expr) -> SeriesSpec {
    SeriesSpec {
        label: label.into(),
        expr,
    }
}

fn per_phase(label: &str, stem: &str, unit: &str, ranged: bool) -> Vec<SeriesSpec> {
    PHASES
        .iter()
        .map(|p| {
            let expr = if ranged {
                Expr::ranged(&format!("{stem}_{p}"), unit)
            } else {
                Expr::col(format!("{stem}_{p}{unit}"))
            };
            series(format!("{label} {}", p.to_uppercase()), expr)
        })
        .collect()
}

/// The time charts of a device whose series come from `source`.
pub fn chart_specs(source: Source) -> Vec<ChartSpec> {
    let agg = matches!(source, Source::Aggregates(_));
    let power = match source {
        Source::Latch => vec![
            series(
                "P",
                Expr::Sum(PHASES.iter().map(|p| format!("p_{p}_w")).collect()),
            ),
            series(
                "Q",
                Expr::Sum(PHASES.iter().map(|p| format!("q_{p}_var")).collect()),
            ),
        ],
        Source::Aggregates(_) => vec![
            series("P", Expr::ranged("p_total", "_w")),
            series("Q₁", Expr::ranged("q1_total", "_var")),
            series("S", Expr::ranged("s_total", "_va")),
        ],
        Source::Windows => vec![
            series("P", Expr::col("p_total_w".into())),
            series("Q₁", Expr::col("q1_total_var".into())),
            series("S", Expr::col("s_total_va".into())),
        ],
    };
    // Energy in the span from each row's own energy, so the first row
    // counts too (a register difference would miss it).
    let net: Vec<String> = match source {
        Source::Latch => PHASES.iter().map(|p| format!("energy_{p}_wh")).collect(),
        _ => vec!["energy_total_wh".into()],
    };
    let energy = if agg {
        vec![
            series("import", Expr::RunningSum("energy_import_total_wh".into())),
            series("export", Expr::RunningSum("energy_export_total_wh".into())),
        ]
    } else {
        vec![
            series(
                "import",
                Expr::RunningSplit {
                    columns: net.clone(),
                    export: false,
                },
            ),
            series(
                "export",
                Expr::RunningSplit {
                    columns: net,
                    export: true,
                },
            ),
        ]
    };
    let frequency = if agg {
        Expr::ranged("frequency", "_hz")
    } else {
        Expr::col("frequency_hz".into())
    };
    let mut thd = per_phase("THD-V", "thd_v", "_pct", false);
    thd.extend(per_phase("THD-I", "thd_i", "_pct", false));
    vec![
        ChartSpec {
            id: "power",
            title: "Active, reactive and apparent power",
            unit: "W, var, VA",
            series: power,
        },
        ChartSpec {
            id: "voltage",
            title: "Voltage RMS per phase",
            unit: "V",
            series: per_phase("V", "v_rms", "_v", agg),
        },
        ChartSpec {
            id: "current",
            title: "Current RMS per phase",
            unit: "A",
            series: per_phase("I", "i_rms", "_a", agg),
        },
        ChartSpec {
            id: "frequency",
            title: "Frequency",
            unit: "Hz",
            series: vec![series("f", frequency)],
        },
        ChartSpec {
            id: "thd",
            title: "Total harmonic distortion",
            unit: "%",
            series: thd,
        },
        ChartSpec {
            id: "energy",
            title: "Cumulative energy in the span",
            unit: "Wh",
            series: energy,
        },
    ]
}

/// What a device's rows say about coverage and flags.
fn quality_columns(source: Source) -> Vec<String> {
    match source {
        Source::Aggregates(_) => vec!["windows".into(), "flagged_windows".into()],
        _ => vec!["flagged".into(), "flags".into()],
    }
}

/// Everything read for one device.
#[derive(Debug, Clone)]
pub struct DeviceData {
    pub name: String,
    pub source: Source,
    /// Rows of `source` in the span, with every column the charts need and
    /// the row end time in `times["end"]`.
    pub frame: Frame,
    /// `events` rows (`kind`, `message`), possibly empty.
    pub events: Frame,
    /// `harmonics` rows (`channel`, `subgroups`), possibly empty.
    pub harmonics: Frame,
    /// `pq_events` rows (every column as text, plus start/end in ns).
    pub pq_events: Option<PqEvents>,
}

/// Power-quality events as their table has them: column names and text rows.
#[derive(Debug, Clone, Default)]
pub struct PqEvents {
    pub columns: Vec<String>,
    /// Which of `columns` hold the start and end times.
    pub start_column: Option<String>,
    pub end_column: Option<String>,
    pub start_ns: Vec<i64>,
    pub end_ns: Vec<i64>,
    pub kind: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Picks the source for `device` given the chart width in pixel columns.
fn choose_source(
    dataset: &Dataset,
    device: &str,
    from: i64,
    to: i64,
    columns: usize,
) -> Result<Source> {
    let limit = ROWS_PER_COLUMN * columns as u64;
    let windows = count_rows(&dataset.files("windows", device, from, to), device)?;
    if windows > 0 && windows <= limit {
        return Ok(Source::Windows);
    }
    if !dataset.files("aggregates", device, from, to).is_empty() {
        let fine = windows == 0 || windows / WINDOWS_PER_3S <= limit;
        return Ok(Source::Aggregates(if fine && windows > 0 {
            "3s"
        } else {
            "10min"
        }));
    }
    if windows == 0 && !dataset.files("latch", device, from, to).is_empty() {
        return Ok(Source::Latch);
    }
    Ok(Source::Windows)
}

/// How much of a device is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every chart's columns, the spectrum and the PQ event rows.
    Full,
    /// What the fleet table and sparkline need (P, energy, THD, flags, PQ
    /// event count): a third of the columns, since every column chunk read
    /// costs a decoder set-up and a fleet's files are many and small.
    Summary,
}

/// Whether a series is read at `depth`: in a summary P, energy and THD.
fn needed(depth: Depth, chart: &str, label: &str) -> bool {
    depth == Depth::Full
        || (chart == "power" && label == "P")
        || chart == "energy"
        || chart == "thd"
}

fn source_query(source: Source, from: i64, to: i64, depth: Depth) -> Query {
    let mut numbers: Vec<String> = chart_specs(source)
        .iter()
        .flat_map(|c| {
            c.series
                .iter()
                .filter(move |s| needed(depth, c.id, &s.label))
                .flat_map(|s| s.expr.columns())
        })
        .collect();
    numbers.extend(quality_columns(source));
    numbers.sort();
    numbers.dedup();
    // The summary needs only the worst THD; of aggregates (no flagged rows
    // to leave out) the footers have it, so those columns are not read.
    let (numbers, maxima) = if depth == Depth::Summary && matches!(source, Source::Aggregates(_)) {
        numbers.into_iter().partition(|n| !n.starts_with("thd_"))
    } else {
        (numbers, Vec::new())
    };
    Query {
        time: source.time_column().into(),
        from,
        to,
        numbers,
        maxima,
        times: vec![source.end_column().into()],
        ..Query::default()
    }
}

fn read_source(
    dataset: &Dataset,
    device: &str,
    source: Source,
    from: i64,
    to: i64,
    depth: Depth,
) -> Result<Frame> {
    let files = dataset.files(source.table(), device, from, to);
    let mut query = source_query(source, from, to, depth);
    query.device = Some(device.to_string());
    if let Source::Aggregates(interval) = source {
        query.equals = Some(("interval".into(), interval.into()));
    }
    let mut frame = read(&files, &query)?;
    if let Some(end) = frame.times.remove(source.end_column()) {
        frame.times.insert("end".into(), end);
    }
    Ok(frame)
}

/// Reads one device's rows in `[from, to)`, as much as `depth` needs.
pub fn load(
    dataset: &Dataset,
    device: &str,
    (from, to): (i64, i64),
    columns: usize,
    depth: Depth,
) -> Result<DeviceData> {
    let mut source = choose_source(dataset, device, from, to, columns)?;
    let mut frame = read_source(dataset, device, source, from, to, depth)?;
    // Spans shorter than 10 min have no finished 10 min aggregate.
    if frame.is_empty() && source == Source::Aggregates("10min") {
        source = Source::Aggregates("3s");
        frame = read_source(dataset, device, source, from, to, depth)?;
    }
    // A stream's closing rows (the wiring status of a short capture, its
    // disconnect) are stamped at its end, which is the span's end.
    let events_to = to.saturating_add(1);
    let events = read(
        &dataset.files("events", device, from, events_to),
        &Query {
            time: "time".into(),
            from,
            to: events_to,
            texts: vec!["kind".into(), "message".into()],
            numbers: vec!["lost_samples".into()],
            device: Some(device.to_string()),
            ..Query::default()
        },
    )?;
    if depth == Depth::Summary {
        let pq_events = if dataset.has("pq_events") {
            Some(count_pq_events(dataset, device, from, to)?)
        } else {
            None
        };
        return Ok(DeviceData {
            name: device.to_string(),
            source,
            frame,
            events,
            harmonics: Frame::default(),
            pq_events,
        });
    }
    let harmonics = read(
        &dataset.files("harmonics", device, from, to),
        &Query {
            time: "window_start".into(),
            from,
            to,
            texts: vec!["channel".into()],
            lists: vec!["subgroups".into()],
            device: Some(device.to_string()),
            ..Query::default()
        },
    )?;
    let pq_events = if dataset.has("pq_events") {
        Some(load_pq_events(dataset, device, from, to)?)
    } else {
        None
    };
    Ok(DeviceData {
        name: device.to_string(),
        source,
        frame,
        events,
        harmonics,
        pq_events,
    })
}

/// The first of `candidates` that `columns` has.
fn pick<'a>(columns: &'a [String], candidates: &[&str]) -> Option<&'a String> {
    candidates
        .iter()
        .find_map(|c| columns.iter().find(|n| n == c))
}

/// Names a `pq_events` table may give its start column.
const PQ_START: [&str; 4] = ["start", "start_time", "time", "event_start"];

/// Identity columns the page already shows in the section heading.
const IDENTITY: [&str; 3] = ["device", "device_id", "measures"];

fn load_pq_events(dataset: &Dataset, device: &str, from: i64, to: i64) -> Result<PqEvents> {
    let files = dataset.files("pq_events", device, from, to);
    let all = super::read::column_names(&files)?;
    let Some(start) = pick(&all, &PQ_START).cloned() else {
        return Ok(PqEvents::default());
    };
    let end = pick(&all, &["end", "end_time", "event_end"]).cloned();
    let duration = pick(&all, &["duration_s", "duration"]).cloned();
    let columns: Vec<String> = all
        .iter()
        .filter(|c| !IDENTITY.contains(&c.as_str()))
        .cloned()
        .collect();
    let frame = read(
        &files,
        &Query {
            time: start.clone(),
            from,
            to,
            texts: columns.clone(),
            times: end.iter().cloned().collect(),
            numbers: duration.iter().cloned().collect(),
            device: Some(device.to_string()),
            ..Query::default()
        },
    )?;
    let end_ns: Vec<i64> = (0..frame.len())
        .map(|i| {
            let from_end = end.as_ref().and_then(|e| frame.times.get(e)).map(|v| v[i]);
            let from_duration = duration
                .as_ref()
                .map(|d| frame.number(d)[i])
                .filter(|d| d.is_finite())
                .map(|d| frame.time[i] + (d * 1e9) as i64);
            from_end
                .filter(|&e| e != i64::MIN)
                .or(from_duration)
                .unwrap_or(frame.time[i])
        })
        .collect();
    let kind = pick(&all, &["kind", "event", "type"])
        .map(|k| frame.text(k).to_vec())
        .unwrap_or_else(|| vec!["event".into(); frame.len()]);
    let rows = (0..frame.len())
        .map(|i| columns.iter().map(|c| frame.text(c)[i].clone()).collect())
        .collect();
    Ok(PqEvents {
        columns,
        start_column: Some(start),
        end_column: end,
        start_ns: frame.time.clone(),
        end_ns,
        kind,
        rows,
    })
}

/// Only the start times of the device's power-quality events (to count them).
fn count_pq_events(dataset: &Dataset, device: &str, from: i64, to: i64) -> Result<PqEvents> {
    let files = dataset.files("pq_events", device, from, to);
    let all = super::read::column_names(&files)?;
    let Some(start) = pick(&all, &PQ_START).cloned() else {
        return Ok(PqEvents::default());
    };
    let frame = read(
        &files,
        &Query {
            time: start,
            from,
            to,
            device: Some(device.to_string()),
            ..Query::default()
        },
    )?;
    Ok(PqEvents {
        start_ns: frame.time,
        ..PqEvents::default()
    })
}

/// The earliest and latest row times of `device`: from the finest series
/// table it has, by footer statistics where the files carry them.
pub fn extent(dataset: &Dataset, device: &str) -> Result<Option<(i64, i64)>> {
    for (table, time, end) in [
        ("windows", "window_start", "window_end"),
        ("latch", "window_start", "window_end"),
        ("aggregates", "interval_start", "interval_end"),
    ] {
        let files = dataset.files(table, device, i64::MIN, i64::MAX);
        if files.is_empty() {
            continue;
        }
        if let Some(bounds) = super::read::time_bounds(&files, time, end)? {
            return Ok(Some(bounds));
        }
        let frame = read(
            &files,
            &Query {
                time: time.into(),
                from: i64::MIN,
                to: i64::MAX,
                times: vec![end.into()],
                device: Some(device.to_string()),
                ..Query::default()
            },
        )?;
        let (Some(&first), Some(ends)) = (frame.time.first(), frame.times.get(end)) else {
            continue;
        };
        return Ok(Some((first, ends.iter().copied().max().unwrap_or(first))));
    }
    Ok(None)
}
