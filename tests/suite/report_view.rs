//! The report page as a user sees it, in a real headless Chromium: flagged
//! windows (a partial first and last window, lost samples) stay off the
//! charts' axes, a steady quantity is a flat line rather than magnified
//! noise, every power-quality event is drawn wide enough to see (a 10 ms
//! RVC too), and the `pq_events` table has one start column, values
//! rounded to what they mean and fits the page. A screenshot of each page
//! (a hand-built dataset, the demo, a capture with dips) is written to
//! `target/tmp/report-screens/` for a person to look at.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::chromium;
use common::parquet_read::{read_rows, Cell};
use meterflow::model::{
    DeviceInfo, PhaseMetrics, PhaseSet, PqEvent, PqEventFlags, PqEventKind, PqEventRow,
    WindowFlags, WindowMetrics, WindowRow,
};
use meterflow::report::{write_report, ReportOptions, ReportSummary};
use meterflow::wire::Measures;

const NS: i64 = 1_000_000_000;
/// 2026-12-01T00:00:00Z.
const START: i64 = 1_796_083_200 * NS;
const WINDOW_NS: i64 = 200_000_000;
/// The page's width in the browser, CSS px.
const PAGE_WIDTH: u32 = 1280;

/// Where the screenshots for a person go (kept after the test).
fn screens_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screens");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn report(dataset: &Path, out: &Path) -> ReportSummary {
    write_report(&ReportOptions {
        dataset: dataset.to_path_buf(),
        devices: Vec::new(),
        from: None,
        to: None,
        zone: chrono_tz::UTC,
        out: out.to_path_buf(),
        png_dir: None,
        detail: meterflow::report::DEFAULT_DETAIL,
    })
    .unwrap_or_else(|e| panic!("report of {}: {e}", dataset.display()))
}

/// What the measuring script reads from the laid-out page.
#[derive(Debug, serde::Deserialize)]
struct Measured {
    /// The viewport's width and the document's, CSS px.
    viewport: f64,
    document: f64,
    /// Every `pq_events` table: its right edge and its cells' text.
    tables: Vec<MeasuredTable>,
    /// Event rectangles of every power-quality timeline (legend swatches
    /// and the background left out): drawn width, CSS px.
    event_widths: Vec<f64>,
}

#[derive(Debug, serde::Deserialize)]
struct MeasuredTable {
    right: f64,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Appended to a copy of the page: lays it out, measures, and writes the
/// result as JSON into the DOM for `--dump-dom` to return.
const MEASURE: &str = r#"<script>
const out = {viewport: document.documentElement.clientWidth,
  document: document.documentElement.scrollWidth, tables: [], event_widths: []};
for (const t of document.querySelectorAll('table.pq')) {
  const cells = r => [...r.cells].map(c => c.textContent);
  out.tables.push({right: t.getBoundingClientRect().right,
    headers: cells(t.rows[0]), rows: [...t.rows].slice(1).map(cells)});
}
for (const r of document.querySelectorAll('svg[data-chart="pq_events"] rect')) {
  const b = r.getBoundingClientRect();
  const fill = (r.getAttribute('fill') || '').toUpperCase();
  if (b.height > 12 && fill !== '#FFFFFF') out.event_widths.push(b.width);
}
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"#;

/// The page laid out at [`PAGE_WIDTH`] in Chromium: what [`MEASURE`] found,
/// with no console message from the page.
fn measure(html: &Path) -> Measured {
    let page = std::fs::read_to_string(html).unwrap();
    let probe = html.with_extension("measure.html");
    std::fs::write(
        &probe,
        page.replace("</body>", &format!("{MEASURE}</body>")),
    )
    .unwrap();
    let dom = chromium::run(
        &probe,
        &["--dump-dom", &format!("--window-size={PAGE_WIDTH},2000")],
    );
    let console = chromium::console_messages(&dom.stderr);
    assert!(console.is_empty(), "console: {console:?}");
    let start = dom
        .stdout
        .find("<pre id=\"measured\">")
        .unwrap_or_else(|| panic!("the script did not run: {}", dom.stderr))
        + "<pre id=\"measured\">".len();
    let end = start + dom.stdout[start..].find("</pre>").unwrap();
    let json = dom.stdout[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// A screenshot of the page's top `height` px into the screens folder;
/// asserts it is a page of charts, not a blank one.
fn screenshot(html: &Path, name: &str, height: u32) -> PathBuf {
    let shot = screens_dir().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    chromium::run(
        html,
        &[
            &format!("--screenshot={}", shot.display()),
            &format!("--window-size={PAGE_WIDTH},{height}"),
        ],
    );
    let bytes = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (PAGE_WIDTH, height));
    let channels = info.color_type.samples();
    let pixels = info.buffer_size() / channels;
    let inked = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p.iter().take(3).map(|&c| u32::from(c)).sum::<u32>() < 3 * 200)
        .count();
    assert!(
        inked * 100 > pixels,
        "{}: {inked} of {pixels} pixels inked",
        shot.display()
    );
    eprintln!("screenshot for a person to look at: {}", shot.display());
    shot
}

/// What every page with `events` power-quality events must look like: no
/// sideways scrolling, every event drawn at least 4 px wide, and one
/// events table of a row each that ends inside the page. That table.
fn laid_out_table(measured: &Measured, events: usize) -> &MeasuredTable {
    assert!(
        measured.document <= measured.viewport,
        "the page scrolls sideways: {} > {} px",
        measured.document,
        measured.viewport
    );
    assert_eq!(measured.event_widths.len(), events, "{measured:?}");
    for width in &measured.event_widths {
        assert!(*width >= 4.0 - 0.01, "an event drawn {width} px wide");
    }
    let [table] = &measured.tables[..] else {
        panic!("one pq table: {measured:?}");
    };
    assert!(
        table.right <= measured.viewport,
        "table to {} px",
        table.right
    );
    assert_eq!(table.rows.len(), events, "{table:?}");
    table
}

/// The axis of chart `id` of `device`.
fn axis(summary: &ReportSummary, device: &str, id: &str) -> (f64, f64) {
    summary.y_ranges[device][id]
}

/// `text` shown as a number rounded to `decimals`, as the test expects it.
fn shown(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

/// Decimals each quantity is shown with: V to 0.1, % to 0.01, s to ms.
fn decimals(column: &str) -> Option<usize> {
    if column.contains("pct") {
        Some(2)
    } else if column.ends_with("_v") {
        Some(1)
    } else if column.ends_with("_s") {
        Some(3)
    } else {
        None
    }
}

/// One 200 ms window of a single-phase meter.
fn window(k: i64, flags: WindowFlags, v: f64, i: f64, thd_v: f64, thd_i: f64) -> WindowMetrics {
    WindowMetrics {
        start_unix_ns: START + k * WINDOW_NS,
        end_unix_ns: START + (k + 1) * WINDOW_NS,
        duration_s: 0.2,
        cycles: 10,
        frequency_hz: Some(50.0),
        flags,
        phases: [
            Some(PhaseMetrics {
                v_rms_v: v,
                i_rms_a: i,
                p_w: v * i,
                s_va: v * i,
                thd_v_pct: Some(thd_v),
                thd_i_pct: Some(thd_i),
                energy_wh: v * i * 0.2 / 3600.0,
                ..PhaseMetrics::default()
            }),
            None,
            None,
        ],
        p_total_w: v * i,
        s_total_va: v * i,
        energy_total_wh: v * i * 0.2 / 3600.0,
        ..WindowMetrics::default()
    }
}

fn event(kind: PqEventKind, at_s: f64, duration_s: f64, extreme_v: f64, pct: f64) -> PqEvent {
    let start = START + (at_s * 1e9) as i64;
    PqEvent {
        kind,
        start_unix_ns: start,
        end_unix_ns: start + (duration_s * 1e9).round() as i64,
        duration_s,
        extreme_v,
        extreme_pct_udin: pct,
        delta_u_max_v: None,
        delta_u_max_pct_udin: None,
        delta_u_ss_v: None,
        delta_u_ss_pct_udin: None,
        phases: PhaseSet::of(0),
        flags: PqEventFlags::NONE,
    }
}

/// 60 s of windows of one meter: 230 V, 10 A ± 0.1 mA, THD-V rising 2 → 5 %,
/// THD-I 3 %; a partial first window (resync: 120 V, 3 A, THD 100/200 %),
/// a partial last one (truncated: 9 A, THD 100 %), one lost to a gap (0 V,
/// THD 80 %) and five in a dip to 161 V (flagged PQ_EVENT only: a true
/// measurement). Power-quality events: a 20 ms dip, a 10 ms RVC and a
/// 0.99 s swell, their values as float arithmetic leaves them.
fn flagged_dataset(dir: &Path) -> (PathBuf, Vec<PqEvent>) {
    use meterflow::sink::parquet::{DatasetInfo, DatasetWriter, ParquetConfig};
    let root = dir.join("parquet");
    let mut config = ParquetConfig::new(&root);
    config.fsync = false;
    let mut writer = DatasetWriter::create(&config, &DatasetInfo::default()).unwrap();
    let device = DeviceInfo::new("m1", 1, Measures::SinglePhase);
    let last = 299;
    for k in 0..=last {
        let ripple = if k % 2 == 0 { 1e-4 } else { -1e-4 };
        let thd_v = 2.0 + 3.0 * (k - 1) as f64 / (last - 2) as f64;
        let metrics = match k {
            0 => window(k, WindowFlags::RESYNC, 120.0, 3.0, 100.0, 200.0),
            150 => window(k, WindowFlags::GAP, 0.0, 0.0, 80.0, 80.0),
            100..=104 => window(k, WindowFlags::PQ_EVENT, 161.0, 10.0 + ripple, thd_v, 3.0),
            _ if k == last => window(k, WindowFlags::TRUNCATED, 230.0, 9.0, 100.0, 100.0),
            _ => window(k, WindowFlags::NONE, 230.0, 10.0 + ripple, thd_v, 3.0),
        };
        writer
            .write_window(WindowRow {
                device: device.clone(),
                metrics,
                energy: None,
            })
            .unwrap();
    }
    let rvc = PqEvent {
        delta_u_max_v: Some(4.666666666666657),
        delta_u_max_pct_udin: Some(2.0289855072463725),
        delta_u_ss_v: Some(-0.30000000000001137),
        delta_u_ss_pct_udin: Some(-0.13043478260870063),
        ..event(
            PqEventKind::Rvc,
            30.0,
            0.01,
            225.33333333333334,
            97.97101449275362,
        )
    };
    let events = vec![
        event(
            PqEventKind::Dip,
            20.0,
            0.0200000001,
            161.00000060130566,
            70.00000026143724,
        ),
        rvc,
        event(
            PqEventKind::Swell,
            40.0,
            0.9900000000000001,
            260.04999999,
            113.06521738695652,
        ),
    ];
    for e in &events {
        writer
            .write_pq_event(PqEventRow {
                device: device.clone(),
                event: *e,
                // The percentages above are of 230 V (161 V is 70 %).
                udin_v: 230.0,
                udin_inferred: false,
            })
            .unwrap();
    }
    writer.finish_device("m1").unwrap();
    writer.close().unwrap();
    (root, events)
}

#[test]
fn flagged_windows_stay_off_the_axes_and_short_events_are_drawn_wide() {
    let dir = tempfile::tempdir().unwrap();
    let (root, events) = flagged_dataset(dir.path());
    let html = dir.path().join("report.html");
    let summary = report(&root, &html);

    // THD: the clean 2–5 % fill the axis; 100 %, 200 % and 80 % are apart.
    let (lo, hi) = axis(&summary, "m1", "thd");
    assert!(
        lo <= 2.0 && hi >= 5.0,
        "THD axis {lo}..{hi} must show 2..5 %"
    );
    assert!(
        lo > 1.0 && hi < 6.0,
        "THD axis {lo}..{hi}: flagged values set it"
    );
    // Current: 10 A ± 0.1 mA is a flat line on an axis at least 1 % of 10 A
    // wide, centred; neither the 9 A nor the 3 A partial window reaches it.
    let (lo, hi) = axis(&summary, "m1", "current");
    assert!(lo <= 9.9999 && hi >= 10.0001, "current axis {lo}..{hi}");
    assert!(
        hi - lo >= 0.1 - 1e-9,
        "current axis {lo}..{hi} magnifies noise"
    );
    assert!(
        ((lo + hi) / 2.0 - 10.0).abs() < 1e-3,
        "current axis {lo}..{hi}"
    );
    assert!(lo > 9.0, "current axis {lo}..{hi}: flagged windows set it");
    // Voltage: the dip (flagged only as a PQ event) is a measurement and on
    // the axis; the partial window's 120 V and the gap's 0 V are not.
    let (lo, hi) = axis(&summary, "m1", "voltage");
    assert!(lo <= 161.0 && hi >= 230.0, "voltage axis {lo}..{hi}");
    assert!(
        lo > 120.0,
        "voltage axis {lo}..{hi}: flagged windows set it"
    );
    // The page says where values were left out.
    let page = std::fs::read_to_string(&html).unwrap();
    let thd_svg = &page[page.find("data-chart=\"thd\"").unwrap()..];
    let thd_svg = &thd_svg[..thd_svg.find("</svg>").unwrap()];
    assert!(thd_svg.contains("flagged (not on the axis)"), "legend");

    // The 10 ms RVC and the 20 ms dip are 0.06 and 0.12 px of a 60 s axis.
    let measured = measure(&html);
    let table = laid_out_table(&measured, events.len());
    // One start column, in local time; no end (the duration says it), no
    // raw flag bits; numbers rounded to what they mean.
    let starts: Vec<&String> = table
        .headers
        .iter()
        .filter(|h| h.contains("start"))
        .collect();
    assert_eq!(starts, ["start (UTC)"], "{:?}", table.headers);
    assert!(
        !table.headers.iter().any(|h| h == "end"),
        "{:?}",
        table.headers
    );
    let column = |name: &str| {
        table
            .headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {:?}", table.headers))
    };
    for (row, e) in table.rows.iter().zip(&events) {
        let start = chrono::DateTime::from_timestamp_nanos(e.start_unix_ns);
        assert_eq!(
            row[0],
            start.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            "{row:?}"
        );
        assert_eq!(row[column("kind")], e.kind.name());
        let expected = [
            ("duration_s", Some(e.duration_s)),
            ("extreme_v", Some(e.extreme_v)),
            ("extreme_pct_udin", Some(e.extreme_pct_udin)),
            ("delta_u_max_v", e.delta_u_max_v),
            ("delta_u_max_pct_udin", e.delta_u_max_pct_udin),
            ("delta_u_ss_v", e.delta_u_ss_v),
            ("delta_u_ss_pct_udin", e.delta_u_ss_pct_udin),
        ];
        for (name, value) in expected {
            let want = value
                .map(|v| shown(v, decimals(name).unwrap()))
                .unwrap_or_default();
            assert_eq!(row[column(name)], want, "{name} of {row:?}");
        }
    }
    screenshot(&html, "flagged-windows", 1600);
}

/// The demo pipeline (`meterflow run`, four virtual meters) and a capture
/// with dips, a swell, an interruption and an RVC, through the binary and
/// the batch pipeline: their pages against the signals' truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_and_a_pq_capture_read_as_a_user_sees_them() {
    let dir = tempfile::tempdir().unwrap();

    // The demo: every meter's THD axis ends near its worst true THD (not at
    // a partial window's 100 or 200 %), its current axis is centred on the
    // true RMS and at least 1 % of it wide.
    let demo = dir.path().join("demo");
    let run = Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(["run", "--fast", "--seconds", "3.5", "--out"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "meterflow run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = dir.path().join("demo.html");
    let summary = report(&demo, &html);
    let config =
        meterflow::pipeline::PipelineConfig::parse(include_str!("../../pipelines/demo.toml"))
            .unwrap();
    let meterflow::pipeline::config::SourceConfig::VirtualMeters(meters) = &config.source else {
        panic!("the demo has virtual meters");
    };
    assert_eq!(summary.devices, meters.meter.len());
    for meter in &meters.meter {
        let name = meter.name.clone().unwrap();
        let truth = meter.signal.truth_at(1.0);
        let worst_thd = truth
            .phases
            .iter()
            .flat_map(|p| [p.thd_v_pct, p.thd_i_pct])
            .fold(0.0, f64::max);
        let (lo, hi) = axis(&summary, &name, "thd");
        // Noise and the 6 % padding: within 15 % and 0.5 points of the truth.
        assert!(
            hi >= worst_thd && hi <= 1.15 * worst_thd + 0.5,
            "{name}: THD axis {lo}..{hi}, worst true THD {worst_thd} %"
        );
        let i_rms = truth.phases[0].i_rms_a;
        let (lo, hi) = axis(&summary, &name, "current");
        assert!(
            hi - lo >= 0.01 * i_rms * (1.0 - 1e-6) && hi - lo <= 0.05 * i_rms,
            "{name}: current axis {lo}..{hi} for {i_rms} A"
        );
        assert!(
            ((lo + hi) / 2.0 - i_rms).abs() <= 0.0025 * i_rms,
            "{name}: current axis {lo}..{hi} for {i_rms} A"
        );
        // The fleet table's wiring column: the reversed clamp the config
        // wired in, and no finding for the meters wired right.
        let wiring = summary.stats[&name].wiring.as_deref();
        match meter.signal.wiring.reversed_clamps.as_slice() {
            [phase] => {
                let finding = format!("reversed_clamp L{phase} (confidence");
                assert!(
                    wiring.is_some_and(|w| w.starts_with(&finding)),
                    "{name}: wiring {wiring:?}"
                );
            }
            _ => assert!(
                wiring.is_none_or(|w| w.starts_with("ok")),
                "{name}: wiring {wiring:?}"
            ),
        }
    }
    let page = std::fs::read_to_string(&html).unwrap();
    let faults = page.matches("class=\"name wiring-fault\"").count();
    let miswired = meters
        .meter
        .iter()
        .filter(|m| !m.signal.wiring.reversed_clamps.is_empty())
        .count();
    assert_eq!(faults, miswired, "wiring faults marked in the fleet table");
    let measured = measure(&html);
    assert!(measured.document <= measured.viewport, "{measured:?}");
    screenshot(&html, "demo", 4400);

    // A three-phase capture with dips, a swell, an interruption and an RVC:
    // the table's numbers are the Parquet rows' rounded, every event is
    // visible and the table fits.
    let pq = dir.path().join("pq");
    let rows = pq_capture_dataset(&pq).await;
    let html = dir.path().join("pq.html");
    report(&pq, &html);
    let measured = measure(&html);
    let table = laid_out_table(&measured, rows.len());
    let mut checked = 0;
    for (row, truth) in table.rows.iter().zip(&rows) {
        for (k, header) in table.headers.iter().enumerate() {
            let Some(decimals) = decimals(header) else {
                continue;
            };
            let want = match truth.get(header.as_str()) {
                Some(Cell::F64(v)) => shown(*v, decimals),
                Some(Cell::Null) | None => String::new(),
                Some(other) => panic!("{header} is {other:?}"),
            };
            assert_eq!(row[k], want, "{header} of {row:?}");
            checked += 1;
        }
    }
    assert!(checked >= 3 * rows.len(), "{checked} cells checked");
    screenshot(&html, "pq-capture", 2400);
}

/// Batch of a 3-phase 50 Hz capture with a dip on L1, a swell, an
/// interruption and a lasting step (an RVC) into `out`; its `pq_events`
/// rows by start.
async fn pq_capture_dataset(out: &Path) -> Vec<std::collections::BTreeMap<String, Cell>> {
    use meterflow::meter::disturbance::Disturbance;
    use meterflow::meter::offline_capture::OfflineCapture;
    use meterflow::meter::signal::SignalConfig;
    use meterflow::pipeline::batch::run_batch;
    use meterflow::pipeline::batch_request::BatchRequest;
    use meterflow::source::capture::RawParams;
    let change = |at_s: f64, duration_s: Option<f64>, phases: &[u8], level_pct: f64| Disturbance {
        at_s,
        duration_s,
        phases: phases.to_vec(),
        level_pct: Some(level_pct),
        level_v: None,
    };
    let step = Disturbance {
        level_pct: None,
        level_v: Some(222.0),
        ..change(6.5013, None, &[], 0.0)
    };
    let signal = SignalConfig {
        current_angle_deg: 20.0,
        voltage_noise_rms_v: 0.1,
        disturbances: vec![
            change(1.0137, Some(0.5), &[1], 60.0),
            change(2.55, Some(0.2), &[], 115.0),
            change(4.0313, Some(0.4), &[], 0.0),
            step,
        ],
        seed: 11,
        ..SignalConfig::default()
    };
    let rate = 4000;
    let mut capture = OfflineCapture::new("pq001", signal, Measures::ThreePhase, rate);
    capture.start_unix_ms = (START / 1_000_000) as u64;
    capture.samples = 9 * u64::from(rate);
    std::fs::create_dir_all(out).unwrap();
    let file = out.join("pq001.mfcap");
    capture.write(&file).unwrap();
    let pipeline = out.join("pipeline.toml");
    std::fs::write(&pipeline, "[dsp]\nnominal_frequency_hz = 50.0\n[dsp.pq]\n").unwrap();
    let request = BatchRequest {
        inputs: vec![file.clone()],
        out: out.to_path_buf(),
        pipeline: Some(pipeline),
        ..BatchRequest::default()
    };
    let config = request.config().unwrap();
    let report = run_batch(&config, &[file], &RawParams::default(), false)
        .await
        .unwrap();
    assert_eq!(report.failed_files(), 0);
    let mut rows = read_rows(&out.join("parquet/pq_events"));
    rows.sort_by_key(|r| match r["start"] {
        Cell::Ts(t) => t,
        ref other => panic!("start is {other:?}"),
    });
    let kinds: Vec<&Cell> = rows.iter().map(|r| &r["kind"]).collect();
    assert!(rows.len() >= 4, "{kinds:?}");
    rows
}
