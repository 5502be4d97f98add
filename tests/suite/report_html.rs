//! The HTML report end to end: the testdata captures through the batch
//! pipeline into a dataset (with harmonics and a `pq_events` table), the
//! report of it, and that page in a real headless Chromium: no console
//! errors, a screenshot that is not blank, one titled chart per plotted
//! table and device; the fleet numbers against the signals' analytic truth.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Float64Array, Int32Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use common::chromium;
use meterflow::meter::signal::SignalConfig;
use meterflow::pipeline::batch::run_batch;
use meterflow::pipeline::batch_request::BatchRequest;
use meterflow::report::{write_report, ReportOptions};
use meterflow::source::capture::RawParams;
use meterflow::source::files::expand_inputs;
use parquet::arrow::ArrowWriter;

const EIGHT_KHZ: &str = "three_phase_8khz-001";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The batch pipeline over testdata/ into `out`, harmonics table on.
async fn dataset(out: &Path) {
    let args = BatchRequest {
        inputs: vec![testdata()],
        out: out.to_path_buf(),
        pipeline: None,
        ..BatchRequest::default()
    };
    let mut config = args.config().unwrap();
    config.dsp.keep_harmonic_subgroups = true;
    config.sink.parquet.as_mut().unwrap().tables.harmonics = true;
    let files = expand_inputs(&args.inputs, &RawParams::default()).unwrap();
    let report = run_batch(&config, &files, &RawParams::default(), false)
        .await
        .unwrap();
    assert_eq!(report.failed_files(), 0);
}

/// A `pq_events` file as the power-quality table lays it out: two dips
/// and a swell of the 8 kHz meter, at its first window's time.
fn write_pq_events(parquet: &Path) -> usize {
    let windows = parquet.join(format!("windows/device={EIGHT_KHZ}"));
    let date = std::fs::read_dir(&windows)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let dir = parquet
        .join(format!("pq_events/device={EIGHT_KHZ}"))
        .join(date);
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = first_window_start(&windows);
    let ts = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("device", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("start", ts(), false),
        Field::new("end", ts(), false),
        Field::new("duration_s", DataType::Float64, false),
        Field::new("residual_v", DataType::Float64, true),
        Field::new("pct_udin", DataType::Float64, true),
        Field::new("channels", DataType::Utf8, false),
        Field::new("flags", DataType::Int32, false),
    ]));
    let starts = [t0 + 100_000_000, t0 + 600_000_000, t0 + 1_200_000_000];
    let ends = [t0 + 300_000_000, t0 + 700_000_000, t0 + 1_500_000_000];
    let stamps =
        |v: &[i64]| Arc::new(TimestampNanosecondArray::from(v.to_vec()).with_timezone("UTC"));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![EIGHT_KHZ; 3])),
            Arc::new(StringArray::from(vec!["dip", "dip", "swell"])),
            stamps(&starts),
            stamps(&ends),
            Arc::new(Float64Array::from(vec![0.2, 0.1, 0.3])),
            Arc::new(Float64Array::from(vec![
                Some(161.0),
                Some(200.1),
                Some(260.0),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(70.0),
                Some(87.0),
                Some(113.0),
            ])),
            Arc::new(StringArray::from(vec!["L1", "L1 L2", "L3"])),
            Arc::new(Int32Array::from(vec![0, 0, 1])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join("part-00000.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    3
}

fn first_window_start(device_dir: &Path) -> i64 {
    common::parquet_read::parquet_files(device_dir)
        .iter()
        .flat_map(|p| common::parquet_read::read_file(p))
        .map(|b| {
            let column = b
                .column(b.schema().index_of("window_start").unwrap())
                .clone();
            let column = arrow::compute::cast(&column, &DataType::Int64).unwrap();
            arrow::compute::min(
                column
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap(),
            )
            .unwrap()
        })
        .min()
        .unwrap()
}

#[derive(serde::Deserialize)]
struct Truth {
    signal: SignalConfig,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_the_testdata_opens_in_chromium() {
    let out = tempfile::tempdir().unwrap();
    dataset(out.path()).await;
    let pq_rows = write_pq_events(&out.path().join("parquet"));
    let html = out.path().join("report.html");
    let png_dir = out.path().join("png");
    let summary = write_report(&ReportOptions {
        dataset: out.path().to_path_buf(),
        devices: Vec::new(),
        from: None,
        to: None,
        zone: "Europe/Vienna".parse().unwrap(),
        out: html.clone(),
        png_dir: Some(png_dir.clone()),
        detail: meterflow::report::DEFAULT_DETAIL,
    })
    .unwrap();

    // Which charts each device gets follows from its layout and tables:
    // 4 metered captures (windows) and 2 latch captures; a quality strip
    // each; the spectrum where harmonics rows exist; PQ events for one.
    assert_eq!(summary.devices, 6);
    let by_id = &summary.charts_by_id;
    assert_eq!(by_id["quality"], 6, "{by_id:?}");
    assert_eq!(by_id["frequency"], 4, "{by_id:?}");
    assert_eq!(by_id["thd"], 4, "{by_id:?}");
    assert_eq!(by_id["spectrum"], 4, "{by_id:?}");
    assert_eq!(by_id["pq_events"], 1, "{by_id:?}");
    assert_eq!(
        by_id["voltage"], 5,
        "v,i_RMS latch has V, p,q latch has not: {by_id:?}"
    );
    assert_eq!(by_id["power"], 5, "{by_id:?}");
    let eight = &summary.titles[EIGHT_KHZ];
    assert!(
        eight.iter().any(|t| t.contains("Power-quality events")),
        "{eight:?}"
    );
    assert_eq!(summary.stats[EIGHT_KHZ].pq_events, Some(pq_rows));

    // Fleet numbers of the 8 kHz capture against its signal's truth.
    let truth: Truth = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("three_phase_8khz.json")).unwrap(),
    )
    .unwrap();
    let expected = truth.signal.truth_at(0.5);
    let stats = &summary.stats[EIGHT_KHZ];
    // Tolerance: window P is within 5e-4·S of the truth (pipeline tests);
    // partial windows at the capture's ends add a little more.
    let mean_p = stats.mean_p_w.unwrap();
    assert!(
        (mean_p - expected.p_total_w).abs() <= 2e-3 * expected.s_total_va,
        "mean P {mean_p}"
    );
    // 2 s of steady import: E = P·T within 1 % (the ends' partial windows).
    let energy = stats.energy_import_wh.unwrap();
    let energy_truth = expected.p_total_w * 2.0 / 3600.0;
    assert!(
        (energy - energy_truth).abs() <= 0.01 * energy_truth,
        "E {energy} vs {energy_truth}"
    );
    assert_eq!(stats.energy_export_wh, Some(0.0));
    let thd_i = stats.worst_thd_i_pct.unwrap();
    assert!(
        (thd_i
            - expected
                .phases
                .iter()
                .map(|p| p.thd_i_pct)
                .fold(0.0, f64::max))
        .abs()
            < 0.1,
        "THD-I {thd_i}"
    );

    // The probe proves console messages reach stderr, so their absence below means something.
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = probe_dir.path().join("probe.html");
    std::fs::write(
        &probe,
        "<!DOCTYPE html><script>console.error('probe-42')</script>",
    )
    .unwrap();
    let probed = chromium::run(&probe, &["--dump-dom"]);
    assert!(
        chromium::console_messages(&probed.stderr)
            .iter()
            .any(|l| l.contains("probe-42")),
        "console messages are not logged: {}",
        probed.stderr
    );

    // The page: no console messages at all (it has no scripts; a bad SVG
    // attribute would be logged), and every chart in the DOM with its title.
    let dom = chromium::run(&html, &["--dump-dom"]);
    let console = chromium::console_messages(&dom.stderr);
    assert!(console.is_empty(), "console: {console:?}");
    let svgs = dom.stdout.matches("<svg").count();
    let titled = dom.stdout.matches("<title>").count() - 1; // the page's own <title>
    assert_eq!(svgs, summary.charts, "one <svg> per chart");
    assert_eq!(titled, summary.charts, "every chart titled");
    for (device, titles) in &summary.titles {
        for title in titles {
            let escaped = title
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            assert!(
                dom.stdout.contains(&format!("<title>{escaped}</title>")),
                "{device}: {title}"
            );
        }
        // The fleet table links to the device's section.
        let anchor = meterflow::report::page::anchor(device);
        assert!(dom.stdout.contains(&format!("href=\"#{anchor}\"")));
        assert!(dom.stdout.contains(&format!("id=\"{anchor}\"")));
    }
    assert!(dom.stdout.contains("Fleet overview"));
    assert!(
        dom.stdout.contains("residual_<wbr>v") && dom.stdout.contains("161.0"),
        "PQ table by column name"
    );

    // The screenshot is a page of charts, not a blank one: decode it and
    // require real variance and a share of non-white pixels.
    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("shot.png");
    chromium::run(
        &html,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
    );
    let (width, height, gray) = decode_gray(&std::fs::read(&shot).unwrap());
    assert_eq!((width, height), (1280, 2000));
    let mean = gray.iter().map(|&g| f64::from(g)).sum::<f64>() / gray.len() as f64;
    let variance = gray
        .iter()
        .map(|&g| (f64::from(g) - mean).powi(2))
        .sum::<f64>()
        / gray.len() as f64;
    let inked = gray.iter().filter(|&&g| g < 200).count() as f64 / gray.len() as f64;
    assert!(variance > 100.0, "variance {variance}");
    assert!(inked > 0.01, "non-white share {inked}");

    // One PNG per chart, at twice the chart's size, not blank either.
    assert_eq!(summary.pngs.len(), summary.charts);
    let power = png_dir.join(format!(
        "{}-power.png",
        meterflow::report::page::anchor(EIGHT_KHZ)
    ));
    let (w, h, gray) = decode_gray(&std::fs::read(power).unwrap());
    assert_eq!(
        (w, h),
        (
            2 * meterflow::report::charts::WIDTH,
            2 * meterflow::report::charts::HEIGHT
        )
    );
    assert!(
        gray.iter().filter(|&&g| g < 128).count() > 1000,
        "lines and text are drawn"
    );

    // The same dataset as a large fleet: with --detail 2 every device has a
    // table row with a sparkline of P, the fleet a total-power chart, and
    // only the two with the least data get their charts.
    let fleet_html = out.path().join("fleet.html");
    let fleet_png = out.path().join("fleet-png");
    let fleet = write_report(&ReportOptions {
        dataset: out.path().to_path_buf(),
        devices: Vec::new(),
        from: None,
        to: None,
        zone: "Europe/Vienna".parse().unwrap(),
        out: fleet_html.clone(),
        png_dir: Some(fleet_png),
        detail: 2,
    })
    .unwrap();
    assert_eq!((fleet.devices, fleet.detailed), (6, 2));
    let fleet_ids = &fleet.charts_by_id;
    // One sparkline per device with P (the v,i_RMS latch has none), as
    // many as the full report has power charts.
    assert_eq!(fleet_ids["sparkline"], by_id["power"], "{fleet_ids:?}");
    assert_eq!(fleet_ids["fleet_power"], 1, "{fleet_ids:?}");
    assert_eq!(fleet_ids["quality"], 2, "{fleet_ids:?}");
    assert_eq!(fleet.fleet_titles, vec!["Fleet: total active power"]);
    // The summary reads a third of the columns; its numbers are the full
    // report's, exactly.
    assert_eq!(fleet.stats, summary.stats);
    // The detailed devices are those with the least data.
    let detailed: Vec<&String> = fleet
        .titles
        .iter()
        .filter(|(_, t)| t.iter().any(|t| t.ends_with("Data quality")))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(detailed.len(), 2);
    let coverage = |d: &String| summary.stats[d].completeness;
    for device in summary.stats.keys().filter(|d| !detailed.contains(d)) {
        for chosen in &detailed {
            assert!(
                coverage(chosen) <= coverage(device) + 1e-3,
                "{chosen} ({}) before {device} ({})",
                coverage(chosen),
                coverage(device)
            );
        }
    }
    let dom = chromium::run(&fleet_html, &["--dump-dom"]);
    let console = chromium::console_messages(&dom.stderr);
    assert!(console.is_empty(), "console: {console:?}");
    assert_eq!(dom.stdout.matches("<svg").count(), fleet.charts);
    assert_eq!(dom.stdout.matches("<title>").count() - 1, fleet.charts);
    for (device, titles) in &fleet.titles {
        for title in titles {
            assert!(
                dom.stdout.contains(&format!("<title>{title}</title>")),
                "{title}"
            );
        }
        let anchor = meterflow::report::page::anchor(device);
        assert!(dom.stdout.contains(&format!("id=\"{anchor}\"")), "{device}");
        assert_eq!(
            dom.stdout.contains(&format!("href=\"#{anchor}\"")),
            detailed.contains(&device),
            "{device}: only detailed devices are linked"
        );
    }
    // Sparklines are table cells, not figures: no PNG of them.
    assert_eq!(fleet.pngs.len(), fleet.charts - fleet_ids["sparkline"]);
}

/// A PNG as luma bytes (alpha ignored), with its size.
fn decode_gray(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let gray = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| {
            if channels >= 3 {
                ((u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2])) / 3) as u8
            } else {
                p[0]
            }
        })
        .collect();
    (info.width, info.height, gray)
}

#[test]
fn unknown_devices_and_empty_spans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = ReportOptions {
        dataset: dir.path().to_path_buf(),
        devices: Vec::new(),
        from: None,
        to: None,
        zone: chrono_tz::UTC,
        out: dir.path().join("r.html"),
        png_dir: None,
        detail: meterflow::report::DEFAULT_DETAIL,
    };
    let error = write_report(&options).unwrap_err().to_string();
    assert!(error.contains("no meterflow dataset"), "{error}");
}

/// A dataset writer into `<dir>/parquet` (no fsync), and that root.
fn dataset_writer(dir: &Path) -> (PathBuf, meterflow::sink::parquet::DatasetWriter) {
    use meterflow::sink::parquet::{DatasetInfo, DatasetWriter, ParquetConfig};
    let root = dir.join("parquet");
    let mut config = ParquetConfig::new(&root);
    config.fsync = false;
    let writer = DatasetWriter::create(&config, &DatasetInfo::default()).unwrap();
    (root, writer)
}

/// Three meters × 3 h of 10 min aggregates (hourly files) with known THD,
/// plus 3 s aggregates of much higher THD in one of meter 0's files: the
/// fleet summary takes the worst THD from footer statistics where a file
/// holds only 10 min rows, reads the columns where it does not, and its
/// numbers are those of the full report, and of the data.
#[test]
fn fleet_summaries_from_statistics_match_the_data() {
    use meterflow::model::Aggregate;
    use meterflow::model::{AggregateRow, DeviceInfo, IntervalKind};
    use meterflow::model::{PhaseAggregate, Stat};
    use meterflow::wire::Measures;
    const NS: i64 = 1_000_000_000;
    const START: i64 = 1_796_083_200 * NS; // 2026-12-01T00:00:00Z
    let dir = tempfile::tempdir().unwrap();
    let (root, mut writer) = dataset_writer(dir.path());
    let stat = |v: f64| Stat {
        value: v,
        min: v - 1.0,
        max: v + 1.0,
    };
    let row = |start: i64, len: i64, thd: f64, p: f64| Aggregate {
        start_unix_ns: start,
        end_unix_ns: start + len,
        windows: 3000,
        phases: [
            Some(PhaseAggregate {
                v_rms_v: stat(230.0),
                p_w: stat(p),
                thd_v_pct: Some(thd),
                thd_i_pct: Some(2.0 * thd),
                ..PhaseAggregate::default()
            }),
            None,
            None,
        ],
        p_total_w: stat(p),
        energy_total: meterflow::model::EnergyFlow {
            import_wh: p * len as f64 / NS as f64 / 3600.0,
            export_wh: 0.0,
        },
        ..Aggregate::default()
    };
    for m in 0..3u64 {
        let device = DeviceInfo::new(format!("m{m}"), m, Measures::SinglePhase);
        for k in 0..18i64 {
            let thd = 1.0 + 0.1 * k as f64 + m as f64;
            let aggregate = row(START + k * 600 * NS, 600 * NS, thd, 100.0 * (m + 1) as f64);
            writer
                .write_aggregate(AggregateRow {
                    device: device.clone(),
                    kind: IntervalKind::TenMinutes,
                    aggregate,
                })
                .unwrap();
            if m == 0 && k == 7 {
                // 3 s rows in the second hour's file, THD far above the rest.
                let fast = row(START + k * 600 * NS, 3 * NS, 50.0, 100.0);
                writer
                    .write_aggregate(AggregateRow {
                        device: device.clone(),
                        kind: IntervalKind::Cycles150,
                        aggregate: fast,
                    })
                    .unwrap();
            }
        }
        writer.finish_device(&device.name).unwrap();
    }
    writer.close().unwrap();
    let report = |detail: usize| {
        write_report(&ReportOptions {
            dataset: root.clone(),
            devices: Vec::new(),
            from: None,
            to: None,
            zone: chrono_tz::UTC,
            out: dir.path().join(format!("r{detail}.html")),
            png_dir: None,
            detail,
        })
        .unwrap()
    };
    let (summary, full) = (report(0), report(10));
    assert_eq!((summary.detailed, full.detailed), (0, 3));
    assert_eq!(summary.charts_by_id["sparkline"], 3);
    assert_eq!(summary.stats, full.stats);
    for m in 0..3u64 {
        let stats = &summary.stats[&format!("m{m}")];
        // The last interval has the worst THD: 1 + 0.1·17 + m (the 3 s rows are not 10 min).
        let worst = 2.7 + m as f64;
        assert!(
            (stats.worst_thd_v_pct.unwrap() - worst).abs() < 1e-9,
            "{stats:?}"
        );
        assert!(
            (stats.worst_thd_i_pct.unwrap() - 2.0 * worst).abs() < 1e-9,
            "{stats:?}"
        );
        // 3 h at 100·(m+1) W.
        let energy = 300.0 * (m + 1) as f64;
        assert!(
            (stats.energy_import_wh.unwrap() - energy).abs() < 1e-6,
            "{stats:?}"
        );
        assert!((stats.completeness - 1.0).abs() < 1e-9);
    }
}

/// `--device`, `--from`/`--to` in local time and `--tz`: one meter of three,
/// one hour of three (given as Vienna times), its numbers over that hour
/// only and the page's labels in that zone.
#[test]
fn device_span_and_zone_select_what_is_shown() {
    use meterflow::model::Aggregate;
    use meterflow::model::{AggregateRow, DeviceInfo, IntervalKind};
    use meterflow::model::{PhaseAggregate, Stat};
    use meterflow::report::timeaxis::{parse_time, parse_zone};
    use meterflow::wire::Measures;
    const NS: i64 = 1_000_000_000;
    const START: i64 = 1_796_083_200 * NS; // 2026-12-01T00:00:00Z
    let dir = tempfile::tempdir().unwrap();
    let (root, mut writer) = dataset_writer(dir.path());
    let stat = |v: f64| Stat {
        value: v,
        min: v,
        max: v,
    };
    for m in 0..3u64 {
        let device = DeviceInfo::new(format!("m{m}"), m, Measures::SinglePhase);
        for k in 0..18i64 {
            // Meter m draws 100·(m+1) W, plus 1 W per interval.
            let p = 100.0 * (m + 1) as f64 + k as f64;
            let aggregate = Aggregate {
                start_unix_ns: START + k * 600 * NS,
                end_unix_ns: START + (k + 1) * 600 * NS,
                windows: 3000,
                phases: [
                    Some(PhaseAggregate {
                        v_rms_v: stat(230.0),
                        p_w: stat(p),
                        ..PhaseAggregate::default()
                    }),
                    None,
                    None,
                ],
                p_total_w: stat(p),
                energy_total: meterflow::model::EnergyFlow {
                    import_wh: p / 6.0,
                    export_wh: 0.0,
                },
                ..Aggregate::default()
            };
            writer
                .write_aggregate(AggregateRow {
                    device: device.clone(),
                    kind: IntervalKind::TenMinutes,
                    aggregate,
                })
                .unwrap();
        }
        writer.finish_device(&device.name).unwrap();
    }
    writer.close().unwrap();
    let zone = parse_zone("Europe/Vienna").unwrap();
    // CET is UTC+1 in December: 02:00 local is 01:00Z.
    let from = parse_time("2026-12-01 02:00", zone).unwrap();
    let to = parse_time("2026-12-01 03:00", zone).unwrap();
    assert_eq!((from, to), (START + 3600 * NS, START + 7200 * NS));
    let html = dir.path().join("m1.html");
    let summary = write_report(&ReportOptions {
        dataset: root.clone(),
        devices: vec!["m1".into()],
        from: Some(from),
        to: Some(to),
        zone,
        out: html.clone(),
        png_dir: None,
        detail: meterflow::report::DEFAULT_DETAIL,
    })
    .unwrap();
    assert_eq!((summary.devices, summary.detailed), (1, 1));
    assert_eq!((summary.from, summary.to), (from, to));
    assert_eq!(summary.titles.keys().collect::<Vec<_>>(), vec!["m1"]);
    let stats = &summary.stats["m1"];
    // Intervals 6..12 of meter 1: P = 200 + k W for 10 min each.
    let p: Vec<f64> = (6..12).map(|k| 200.0 + f64::from(k)).collect();
    let mean = p.iter().sum::<f64>() / 6.0;
    assert!((stats.mean_p_w.unwrap() - mean).abs() < 1e-9, "{stats:?}");
    assert!((stats.peak_p_w.unwrap() - 211.0).abs() < 1e-9, "{stats:?}");
    let energy = p.iter().map(|p| p / 6.0).sum::<f64>();
    assert!(
        (stats.energy_import_wh.unwrap() - energy).abs() < 1e-9,
        "{stats:?}"
    );
    assert!((stats.completeness - 1.0).abs() < 1e-9, "{stats:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("2026-12-01 02:00:00"), "span in local time");
    assert!(page.contains("Europe/Vienna"));
    assert!(!page.contains("m0:") && !page.contains("m2:"));
}

/// Every `.parquet` file below `dir`, sorted.
fn parquet_files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Rewrites `path` with parquet's own arrow writer and `compression`, as
/// another tool (pyarrow writes Snappy by default) would leave it.
fn rewrite_with(path: &Path, compression: parquet::basic::Compression) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let props = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    let written =
        parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(out.clone())).unwrap();
    use parquet::file::reader::FileReader;
    let codec = written.metadata().row_group(0).column(0).compression();
    // The footer keeps the codec, not its level.
    assert_eq!(
        std::mem::discriminant(&codec),
        std::mem::discriminant(&compression),
        "{}",
        path.display()
    );
    std::fs::write(path, out).unwrap();
}

/// Files rewritten with Snappy, gzip, LZ4 (both framings) and zstd by the
/// parquet crate read as the writer's own; a 0-byte, a truncated and a
/// garbage `.parquet` are skipped with a warning naming them, and the
/// numbers are those of the rows (every original row is still readable).
#[test]
fn other_codecs_are_read_and_damaged_files_skipped() {
    use meterflow::model::aggregate::{PhaseAggregate, Stat};
    use meterflow::model::{Aggregate, AggregateRow, DeviceInfo, EnergyFlow, IntervalKind};
    use meterflow::wire::Measures;
    use parquet::basic::{Compression, GzipLevel, ZstdLevel};
    const NS: i64 = 1_000_000_000;
    const START: i64 = 1_796_083_200 * NS; // 2026-12-01T00:00:00Z
    let dir = tempfile::tempdir().unwrap();
    let (root, mut writer) = dataset_writer(dir.path());
    let stat = |v: f64| Stat {
        value: v,
        min: v,
        max: v,
    };
    // Meter m: 18 ten-minute intervals (hourly files) at 100·(m+1) W, THD 1 + 0.1·k + m.
    for m in 0..3u64 {
        let device = DeviceInfo::new(format!("m{m}"), m, Measures::SinglePhase);
        for k in 0..18i64 {
            let p = 100.0 * (m + 1) as f64;
            let thd = 1.0 + 0.1 * k as f64 + m as f64;
            let aggregate = Aggregate {
                start_unix_ns: START + k * 600 * NS,
                end_unix_ns: START + (k + 1) * 600 * NS,
                windows: 3000,
                phases: [
                    Some(PhaseAggregate {
                        v_rms_v: stat(230.0),
                        p_w: stat(p),
                        thd_v_pct: Some(thd),
                        thd_i_pct: Some(2.0 * thd),
                        ..PhaseAggregate::default()
                    }),
                    None,
                    None,
                ],
                p_total_w: stat(p),
                energy_total: EnergyFlow {
                    import_wh: p * 600.0 / 3600.0,
                    export_wh: 0.0,
                },
                ..Aggregate::default()
            };
            writer
                .write_aggregate(AggregateRow {
                    device: device.clone(),
                    kind: IntervalKind::TenMinutes,
                    aggregate,
                })
                .unwrap();
        }
        writer.finish_device(&device.name).unwrap();
    }
    writer.close().unwrap();
    let files_of = |m: u32| parquet_files_below(&root.join(format!("aggregates/device=m{m}")));
    let (m0, m1) = (files_of(0), files_of(1));
    assert_eq!((m0.len(), m1.len()), (3, 3), "{m0:?} {m1:?}");
    let codecs = [
        (&m0[0], Compression::SNAPPY),
        (&m0[1], Compression::GZIP(GzipLevel::default())),
        (&m0[2], Compression::LZ4_RAW),
        (&m1[0], Compression::LZ4),
        (&m1[1], Compression::ZSTD(ZstdLevel::try_new(9).unwrap())),
    ];
    for (path, codec) in codecs {
        rewrite_with(path, codec);
    }
    // Damage beside meter 2's files: empty, cut before its footer, not Parquet.
    let m2 = files_of(2);
    let day = m2[0].parent().unwrap();
    let empty = day.join("part-empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    let whole = std::fs::read(&m2[0]).unwrap();
    let truncated = day.join("part-truncated.parquet");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let garbage = day.join("part-garbage.parquet");
    std::fs::write(&garbage, b"PAR1 this is not a parquet file at all PAR1").unwrap();
    let report = |detail: usize| {
        write_report(&ReportOptions {
            dataset: root.clone(),
            devices: Vec::new(),
            from: None,
            to: None,
            zone: chrono_tz::UTC,
            out: dir.path().join(format!("r{detail}.html")),
            png_dir: None,
            detail,
        })
        .unwrap_or_else(|e| panic!("report with damaged files: {e}"))
    };
    let damaged = [&empty, &garbage, &truncated];
    for detail in [0, 10] {
        let summary = report(detail);
        let mut skipped = summary.skipped_files.clone();
        skipped.sort();
        let mut expected: Vec<PathBuf> = damaged.iter().map(|p| p.to_path_buf()).collect();
        expected.sort();
        assert_eq!(skipped, expected, "detail {detail}");
        let html = std::fs::read_to_string(&summary.out).unwrap();
        assert!(html.contains("id=\"skipped-files\""), "detail {detail}");
        for path in damaged {
            assert!(
                html.contains(&path.display().to_string()),
                "detail {detail}: page does not name {}",
                path.display()
            );
        }
        for m in 0..3u64 {
            let stats = &summary.stats[&format!("m{m}")];
            // 3 h at 100·(m+1) W, every interval read whatever its codec.
            let energy = 300.0 * (m + 1) as f64;
            assert!(
                (stats.energy_import_wh.unwrap() - energy).abs() < 1e-6,
                "detail {detail} m{m}: {stats:?}"
            );
            // The worst THD is the last interval's: 1 + 0.1·17 + m.
            let worst = 2.7 + m as f64;
            assert!(
                (stats.worst_thd_v_pct.unwrap() - worst).abs() < 1e-9,
                "detail {detail} m{m}: {stats:?}"
            );
            assert!((stats.completeness - 1.0).abs() < 1e-9, "{stats:?}");
        }
    }
}
