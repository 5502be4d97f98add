//! The shared-file layout (`layout = "shared_files"`): one file per table,
//! date and span holds every device's rows, grouped by device inside each
//! row group. Checked against what was written: every row exactly once, no
//! file crossing a span, a lagging device's rows in files of their own span,
//! a replay after a crash adding only what no commit made visible, a re-run
//! skipping the rows the dataset holds, and the report reading the same
//! numbers as from device folders.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, Float64Array, StringArray, TimestampNanosecondArray};
use meterflow::model::{DeviceInfo, WindowMetrics, WindowRow};
use meterflow::report::{write_report, ReportOptions};
use meterflow::sink::parquet::{
    DatasetInfo, DatasetWriter, FileLayout, ParquetConfig, TableSelection,
};
use meterflow::wire::Measures;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::common::parquet_read::parquet_files;

/// 2023-11-14T22:13:20Z, a multiple of 10 s.
const START_NS: i64 = 1_700_000_000_000_000_000;
const WINDOW_NS: i64 = 200_000_000;
const SPAN_NS: i64 = 10_000_000_000;

fn config(out: &Path, layout: FileLayout) -> ParquetConfig {
    ParquetConfig {
        tables: TableSelection {
            windows: true,
            latch: false,
            aggregates: false,
            harmonics: false,
            raw: false,
            events: false,
            pq_events: false,
            ..TableSelection::default()
        },
        layout,
        fsync: false,
        max_file_span_s: 10,
        row_group_rows: 16,
        batch_rows: 4,
        late_rows_grace_s: 1.0,
        ..ParquetConfig::new(out)
    }
}

/// Window `k` of `device`; P says whose and which (device number × 1000 + k).
fn window(device: &DeviceInfo, k: i64) -> WindowRow {
    let start = START_NS + k * WINDOW_NS;
    WindowRow {
        device: device.clone(),
        metrics: WindowMetrics {
            start_unix_ns: start,
            end_unix_ns: start + WINDOW_NS,
            first_sample: k as u64 * 800,
            sample_count: 800,
            duration_s: 0.2,
            cycles: 10,
            frequency_hz: Some(50.0),
            p_total_w: (device.id * 1000) as f64 + k as f64,
            ..WindowMetrics::default()
        },
        energy: None,
    }
}

/// The order a sink sees rows in: three meters streaming 25 s of windows,
/// `m3` 3 s behind the other two (its rows of a span arrive after the
/// span's grace has passed).
fn streamed_rows() -> Vec<WindowRow> {
    let devices: Vec<DeviceInfo> = (1..=3)
        .map(|i| DeviceInfo::new(format!("m{i}"), i, Measures::ThreePhase))
        .collect();
    let lag = 15;
    let mut rows = Vec::new();
    for k in 0..125 + lag {
        for device in &devices[..2] {
            if k < 125 {
                rows.push(window(device, k));
            }
        }
        if k >= lag {
            rows.push(window(&devices[2], k - lag));
        }
    }
    rows
}

/// (device, window_start, P) of a row.
type Identity = (String, i64, u64);

fn identity(row: &WindowRow) -> Identity {
    (
        row.device.name.to_string(),
        row.metrics.start_unix_ns,
        row.metrics.p_total_w.to_bits(),
    )
}

/// Every row group of a file: (device, window_start, P) per row.
fn row_groups(path: &Path) -> Vec<Vec<Identity>> {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let groups = reader.metadata().num_row_groups();
    (0..groups)
        .map(|group| {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                .unwrap()
                .with_row_groups(vec![group])
                .build()
                .unwrap();
            let mut rows = Vec::new();
            for batch in reader {
                let batch = batch.unwrap();
                let devices: &StringArray = batch.column_by_name("device").unwrap().as_string();
                let starts = batch
                    .column_by_name("window_start")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<TimestampNanosecondArray>()
                    .unwrap();
                let p = batch
                    .column_by_name("p_total_w")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap();
                for i in 0..batch.num_rows() {
                    rows.push((
                        devices.value(i).to_string(),
                        starts.value(i),
                        p.value(i).to_bits(),
                    ));
                }
            }
            rows
        })
        .collect()
}

fn all_rows(out: &Path) -> Vec<Identity> {
    let mut rows: Vec<Identity> = parquet_files(&out.join("windows"))
        .iter()
        .flat_map(|path| row_groups(path).into_iter().flatten())
        .collect();
    rows.sort();
    rows
}

/// Fails with what is missing and what is there twice, not both lists.
fn assert_every_row_once(out: &Path, rows: &[WindowRow], what: &str) {
    let found = all_rows(out);
    let expected = sorted(rows);
    if found != expected {
        let missing: Vec<&Identity> = expected.iter().filter(|r| !found.contains(r)).collect();
        let twice: Vec<&Identity> = found
            .windows(2)
            .filter(|p| p[0] == p[1])
            .map(|p| &p[0])
            .collect();
        panic!(
            "{what}: {} rows found, {} written; {} missing (first {:?}), {} twice (first {:?})",
            found.len(),
            expected.len(),
            missing.len(),
            missing.first(),
            twice.len(),
            twice.first()
        );
    }
}

fn sorted(rows: &[WindowRow]) -> Vec<Identity> {
    let mut rows: Vec<Identity> = rows.iter().map(identity).collect();
    rows.sort();
    rows
}

#[test]
fn shared_files_hold_every_device_grouped_in_row_groups_one_span_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parquet");
    let rows = streamed_rows();
    let mut writer = DatasetWriter::create(
        &config(&out, FileLayout::SharedFiles),
        &DatasetInfo::default(),
    )
    .unwrap();
    for row in &rows {
        writer.write_window(row.clone()).unwrap();
        writer.seal_ended().unwrap();
    }
    let summary = writer.close().unwrap();
    assert_eq!(summary.rows["windows"], rows.len() as u64);

    let files = parquet_files(&out.join("windows"));
    for file in &files {
        let folder = file.parent().unwrap().strip_prefix(&out).unwrap();
        assert_eq!(
            folder,
            Path::new("windows/date=2023-11-14"),
            "{}",
            file.display()
        );
    }
    // Three spans; m3's late rows of the first two came after their files
    // closed (grace 1 s) and went to files of their own span.
    assert!(files.len() >= 3, "{files:?}");
    let mut devices_per_file = Vec::new();
    for file in &files {
        let groups = row_groups(file);
        let rows: Vec<&Identity> = groups.iter().flatten().collect();
        let span = rows[0].1.div_euclid(SPAN_NS);
        assert!(
            rows.iter().all(|r| r.1.div_euclid(SPAN_NS) == span),
            "{} crosses a span",
            file.display()
        );
        for group in &groups {
            // Each device's rows in one run, in time order.
            let mut seen: Vec<&str> = Vec::new();
            for pair in group.windows(2) {
                if pair[0].0 == pair[1].0 {
                    assert!(pair[0].1 < pair[1].1, "{}: {pair:?}", file.display());
                }
            }
            for row in group {
                if seen.last() != Some(&row.0.as_str()) {
                    assert!(
                        !seen.contains(&row.0.as_str()),
                        "{}: {} appears twice in a row group",
                        file.display(),
                        row.0
                    );
                    seen.push(&row.0);
                }
            }
        }
        let mut devices: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        devices.dedup();
        devices.sort();
        devices.dedup();
        devices_per_file.push(devices.len());
    }
    assert!(
        devices_per_file.contains(&3),
        "no file holds all three meters: {devices_per_file:?}"
    );
    assert_every_row_once(&out, &rows, "every row exactly once");
}

#[test]
fn a_replay_after_a_crash_adds_only_what_no_commit_made_visible() {
    for layout in [FileLayout::SharedFiles, FileLayout::DeviceFolders] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("parquet");
        let rows = streamed_rows();
        let config = config(&out, layout);
        // Each row is record `i + 1` of the log; commits after every 50.
        let (mut first, _) = DatasetWriter::create(&config, &DatasetInfo::default())
            .unwrap()
            .with_commits("log-a")
            .unwrap();
        let crash_at = rows.len() * 2 / 3;
        let mut committed_files = 0;
        for (i, row) in rows[..crash_at].iter().enumerate() {
            first.at_seq(i as u64 + 1);
            first.write_window(row.clone()).unwrap();
            first.seal_ended().unwrap();
            if i % 50 == 49 {
                committed_files += first.commit().unwrap();
            }
        }
        assert!(
            committed_files > 0,
            "{layout:?}: nothing committed before the crash"
        );
        // The crash: nothing more is finished, sealed or committed.
        std::mem::forget(first);

        let (mut second, recovery) = DatasetWriter::create(&config, &DatasetInfo::default())
            .unwrap()
            .with_commits("log-a")
            .unwrap();
        assert!(recovery.removed_temps > 0, "{layout:?}: {recovery:?}");
        // The record log replays everything after the oldest acknowledged
        // record; here, all of it.
        for (i, row) in rows.iter().enumerate() {
            second.at_seq(i as u64 + 1);
            second.write_window(row.clone()).unwrap();
            second.seal_ended().unwrap();
        }
        second.close().unwrap();
        assert_every_row_once(&out, &rows, &format!("{layout:?} after the replay"));
    }
}

/// A record holds several windows of a meter (one block's), so a record
/// can have rows in two spans' files. The commit after the first span's
/// file makes only those rows visible; a crash then must not make the
/// replay skip the record's rows in the second span (a hole of a window or
/// two per meter and span edge), nor write its first rows twice.
#[test]
fn a_record_across_a_span_edge_is_replayed_from_its_first_invisible_row() {
    let devices: Vec<DeviceInfo> = (1..=3)
        .map(|i| DeviceInfo::new(format!("m{i}"), i, Measures::ThreePhase))
        .collect();
    // Records of four windows; 50 windows a span: records from window 48
    // on (and m3's, 18 windows behind) cross span edges.
    let per_record = 4;
    let lag = 18;
    let mut records: Vec<Vec<WindowRow>> = Vec::new();
    for k in (0..160).step_by(per_record) {
        for device in &devices[..2] {
            records.push(
                (k..k + per_record as i64)
                    .map(|j| window(device, j))
                    .collect(),
            );
        }
        if k >= lag {
            let from = k - lag;
            records.push(
                (from..from + per_record as i64)
                    .map(|j| window(&devices[2], j))
                    .collect(),
            );
        }
    }
    let rows: Vec<WindowRow> = records.iter().flatten().cloned().collect();
    for layout in [FileLayout::SharedFiles, FileLayout::DeviceFolders] {
        for crash_at in [records.len() / 2, records.len() * 2 / 3, records.len() - 5] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("parquet");
            let config = config(&out, layout);
            let (mut first, _) = DatasetWriter::create(&config, &DatasetInfo::default())
                .unwrap()
                .with_commits("log-a")
                .unwrap();
            let mut committed_files = 0;
            for (seq, record) in records[..crash_at].iter().enumerate() {
                first.at_seq(seq as u64 + 1);
                for row in record {
                    first.write_window(row.clone()).unwrap();
                }
                first.seal_ended().unwrap();
                committed_files += first.commit().unwrap();
            }
            assert!(committed_files > 0, "{layout:?}: nothing committed");
            std::mem::forget(first);

            let (mut second, _) = DatasetWriter::create(&config, &DatasetInfo::default())
                .unwrap()
                .with_commits("log-a")
                .unwrap();
            for (seq, record) in records.iter().enumerate() {
                second.at_seq(seq as u64 + 1);
                for row in record {
                    second.write_window(row.clone()).unwrap();
                }
                second.seal_ended().unwrap();
            }
            second.close().unwrap();
            let what = format!(
                "{layout:?}, crash after {crash_at} of {} records",
                records.len()
            );
            assert_every_row_once(&out, &rows, &what);
        }
    }
}

#[test]
fn a_rerun_into_a_shared_dataset_skips_the_rows_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parquet");
    let rows = streamed_rows();
    let config = config(&out, FileLayout::SharedFiles);
    let run = |rows: &[WindowRow]| {
        let mut writer = DatasetWriter::create(&config, &DatasetInfo::default())
            .unwrap()
            .skipping_held_rows();
        for row in rows {
            writer.write_window(row.clone()).unwrap();
        }
        writer.close().unwrap()
    };
    // m1 and m2 first; then everything: only m3's rows are new.
    let first: Vec<WindowRow> = rows
        .iter()
        .filter(|r| &*r.device.name != "m3")
        .cloned()
        .collect();
    assert_eq!(run(&first).rows["windows"], 250);
    let second = run(&rows);
    assert_eq!(
        (second.rows["windows"], second.already_held["windows"]),
        (125, 250)
    );
    assert_every_row_once(&out, &rows, "every row exactly once");
}

#[test]
fn the_report_reads_the_same_numbers_from_shared_files_as_from_device_folders() {
    let dir = tempfile::tempdir().unwrap();
    let rows = streamed_rows();
    let mut summaries = BTreeMap::new();
    for (name, layout) in [
        ("folders", FileLayout::DeviceFolders),
        ("shared", FileLayout::SharedFiles),
    ] {
        let out = dir.path().join(name);
        let mut writer =
            DatasetWriter::create(&config(&out, layout), &DatasetInfo::default()).unwrap();
        for row in &rows {
            writer.write_window(row.clone()).unwrap();
        }
        writer.close().unwrap();
        let page: PathBuf = dir.path().join(format!("{name}.html"));
        let summary = write_report(&ReportOptions {
            dataset: out.clone(),
            devices: Vec::new(),
            from: None,
            to: None,
            zone: chrono_tz::UTC,
            out: page,
            png_dir: None,
            detail: meterflow::report::DEFAULT_DETAIL,
        })
        .unwrap_or_else(|e| panic!("report of {}: {e}", out.display()));
        summaries.insert(name, summary);
    }
    let (folders, shared) = (&summaries["folders"], &summaries["shared"]);
    assert_eq!(shared.devices, 3);
    assert_eq!(
        (shared.from, shared.to),
        (START_NS, START_NS + 125 * WINDOW_NS)
    );
    assert_eq!(shared.stats, folders.stats);
    assert_eq!(shared.sources, folders.sources);
    assert_eq!(shared.titles, folders.titles);
    assert_eq!(shared.y_ranges, folders.y_ranges);
    // Each meter's own numbers, not the file's: P of meter i is
    // 1000 i + k for k = 0..125, mean 1000 i + 62, peak 1000 i + 124.
    for i in 1..=3 {
        let stats = &shared.stats[&format!("m{i}")];
        let base = 1000.0 * f64::from(i);
        let mean = stats.mean_p_w.unwrap();
        let peak = stats.peak_p_w.unwrap();
        assert!((mean - (base + 62.0)).abs() < 1e-9, "m{i}: mean P {mean}");
        assert!((peak - (base + 124.0)).abs() < 1e-9, "m{i}: peak P {peak}");
    }
}
