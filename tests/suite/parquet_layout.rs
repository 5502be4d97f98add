//! How the Parquet dataset lays out its files: Hive folders with the UTC
//! date of each row (a window set straddling midnight lands in two date
//! folders), rotation by time span and by size leaving only complete files,
//! temp names while writing and none after close, file numbers that continue
//! after a restart, and clear errors naming the path for an unwritable output.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, TimestampNanosecondArray};
use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::signal::SignalConfig;
use meterflow::meter::synthetic::generate_block;
use meterflow::model::{DeviceInfo, WindowMetrics, WindowRow};
use meterflow::sink::parquet::{
    DatasetInfo, DatasetWriter, ParquetConfig, ParquetSinkError, TableSelection,
};
use meterflow::wire::Measures;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::parquet_read::parquet_files;

/// 2023-11-14T22:13:20Z, a multiple of 10 s.
const START_NS: i64 = 1_700_000_000_000_000_000;
/// 2023-11-15T00:00:00Z.
const MIDNIGHT_NS: i64 = 1_700_006_400_000_000_000;

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

/// The `window_start` values of a complete file (fails on a half-written one).
fn window_starts(path: &Path) -> Vec<i64> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{} is not a complete Parquet file: {e}", path.display()));
    let mut starts = Vec::new();
    for batch in reader {
        let batch = batch.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let column = batch
            .column_by_name("window_start")
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
            .unwrap_or_else(|| panic!("window_start"));
        starts.extend((0..column.len()).map(|i| column.value(i)));
    }
    starts
}

fn windows_only(out: &Path) -> ParquetConfig {
    ParquetConfig {
        tables: TableSelection {
            windows: true,
            latch: false,
            aggregates: false,
            harmonics: false,
            raw: false,
            events: false,
            ..TableSelection::default()
        },
        fsync: false,
        ..ParquetConfig::new(out)
    }
}

fn device(name: &str) -> DeviceInfo {
    DeviceInfo::new(name, 1, Measures::ThreePhase)
}

/// A hand-built window at `start_ns`, 200 ms long.
fn window(dev: &DeviceInfo, start_ns: i64, index: u64) -> WindowRow {
    WindowRow {
        device: dev.clone(),
        metrics: WindowMetrics {
            start_unix_ns: start_ns,
            end_unix_ns: start_ns + 200_000_000,
            first_sample: index * 800,
            sample_count: 800,
            duration_s: 0.2,
            cycles: 10,
            frequency_hz: Some(50.0),
            p_total_w: index as f64,
            ..WindowMetrics::default()
        },
        energy: None,
    }
}

fn relative(out: &Path, path: &Path) -> String {
    path.strip_prefix(out)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn engine_windows_straddling_midnight_land_in_two_date_folders() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let rate = 4000;
    let start = MIDNIGHT_NS - 2_000_000_000;
    let block = generate_block(
        &SignalConfig::default(),
        Measures::ThreePhase,
        rate,
        start,
        4 * rate as usize,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut engine =
        DeviceEngine::for_block(&EngineConfig::default(), &block).unwrap_or_else(|e| panic!("{e}"));
    let dev = device("meter/a b");
    let mut sink = DatasetWriter::create(&windows_only(out), &DatasetInfo::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut starts = Vec::new();
    let mut send = |o: EngineOutput<'_>| {
        if let EngineOutput::Window(w) = o {
            starts.push(w.start_unix_ns);
            sink.write_window(WindowRow {
                device: dev.clone(),
                metrics: w.clone(),
                energy: None,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    engine
        .push_block(&block, &mut send)
        .unwrap_or_else(|e| panic!("{e}"));
    engine.finish(&mut send);
    sink.close().unwrap_or_else(|e| panic!("{e}"));
    assert!(starts.iter().any(|&t| t < MIDNIGHT_NS) && starts.iter().any(|&t| t >= MIDNIGHT_NS));

    let files: Vec<String> = parquet_files(out)
        .iter()
        .map(|p| relative(out, p))
        .collect();
    assert_eq!(
        files,
        [
            "windows/device=meter%2Fa%20b/date=2023-11-14/part-00000.parquet",
            "windows/device=meter%2Fa%20b/date=2023-11-15/part-00000.parquet",
        ]
    );
    let before = window_starts(&out.join(&files[0]));
    let after = window_starts(&out.join(&files[1]));
    assert!(before.iter().all(|&t| t < MIDNIGHT_NS));
    assert!(after.iter().all(|&t| t >= MIDNIGHT_NS));
    let mut read: Vec<i64> = before.into_iter().chain(after).collect();
    read.sort_unstable();
    starts.sort_unstable();
    assert_eq!(read, starts, "every window once");
    assert!(temp_files(out).is_empty());
}

#[test]
fn files_rotate_by_clock_aligned_time_span_and_quiet_devices_close_early() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let config = ParquetConfig {
        max_file_span_s: 10,
        batch_rows: 10,
        row_group_rows: 10,
        ..windows_only(out)
    };
    let mut writer =
        DatasetWriter::create(&config, &DatasetInfo::default()).unwrap_or_else(|e| panic!("{e}"));
    let (busy, quiet) = (device("busy"), device("quiet"));
    writer
        .write_window(window(&quiet, START_NS, 0))
        .unwrap_or_else(|e| panic!("{e}"));
    // 175 windows of 200 ms: 35 s, so slots [0,10) [10,20) [20,30) [30,35) s.
    for i in 0..175u64 {
        writer
            .write_window(window(&busy, START_NS + i as i64 * 200_000_000, i))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Not before 10 s + 60 s grace: the quiet device's file is still open.
    assert!(parquet_files(&out.join("windows/device=quiet")).is_empty());
    for i in 175..400u64 {
        writer
            .write_window(window(&busy, START_NS + i as i64 * 200_000_000, i))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // 80 s of data later, the quiet device's span has ended: finished without close.
    assert_eq!(parquet_files(&out.join("windows/device=quiet")).len(), 1);
    assert!(temp_files(&out.join("windows/device=quiet")).is_empty());
    assert!(
        !temp_files(&out.join("windows/device=busy")).is_empty(),
        "busy file in progress"
    );
    let summary = writer.close().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.rows.get("windows"), Some(&401));
    assert!(temp_files(out).is_empty());

    let busy_files = parquet_files(&out.join("windows/device=busy"));
    assert_eq!(busy_files.len(), 8, "{busy_files:?}");
    let mut total = 0;
    for (n, path) in busy_files.iter().enumerate() {
        let starts = window_starts(path);
        let slots: BTreeSet<i64> = starts
            .iter()
            .map(|t| t.div_euclid(10_000_000_000))
            .collect();
        assert_eq!(slots.len(), 1, "{} spans one slot", path.display());
        assert_eq!(
            slots.first().copied(),
            Some(START_NS / 10_000_000_000 + n as i64),
            "files follow the clock"
        );
        total += starts.len();
    }
    assert_eq!(total, 400);
}

#[test]
fn files_rotate_by_size_and_every_file_is_complete() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let config = ParquetConfig {
        max_file_bytes: 24 * 1024,
        row_group_rows: 50,
        batch_rows: 50,
        ..windows_only(out)
    };
    let mut sink =
        DatasetWriter::create(&config, &DatasetInfo::default()).unwrap_or_else(|e| panic!("{e}"));
    let dev = device("sized");
    for i in 0..3000u64 {
        sink.write_window(window(&dev, START_NS + i as i64 * 200_000_000, i))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let summary = sink.close().unwrap_or_else(|e| panic!("{e}"));
    let files = parquet_files(out);
    assert!(files.len() >= 3, "{} files", files.len());
    assert_eq!(summary.files.len(), files.len());
    assert!(temp_files(out).is_empty(), "{:?}", temp_files(out));
    let mut all = Vec::new();
    for path in &files {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        // Closed at the first row group past the limit: never far beyond it.
        assert!(size < 2 * 24 * 1024, "{} is {size} bytes", path.display());
        all.extend(window_starts(path));
    }
    let expected: Vec<i64> = (0..3000).map(|i| START_NS + i * 200_000_000).collect();
    assert_eq!(
        all, expected,
        "files in sequence order hold the rows in order"
    );
}

#[test]
fn in_progress_files_are_hidden_until_finished() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let config = ParquetConfig {
        batch_rows: 1,
        row_group_rows: 1,
        ..windows_only(out)
    };
    let mut writer =
        DatasetWriter::create(&config, &DatasetInfo::default()).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (device("a"), device("b"));
    writer
        .write_window(window(&a, START_NS, 0))
        .unwrap_or_else(|e| panic!("{e}"));
    writer
        .write_window(window(&b, START_NS, 0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(parquet_files(out).is_empty());
    let temps: Vec<String> = temp_files(out).iter().map(|p| relative(out, p)).collect();
    assert_eq!(
        temps,
        [
            "windows/device=a/date=2023-11-14/.part-00000.parquet.tmp",
            "windows/device=b/date=2023-11-14/.part-00000.parquet.tmp",
        ]
    );
    // A finished device's files appear at once; the other stays hidden.
    writer.finish_device("a").unwrap_or_else(|e| panic!("{e}"));
    let done: Vec<String> = parquet_files(out)
        .iter()
        .map(|p| relative(out, p))
        .collect();
    assert_eq!(
        done,
        ["windows/device=a/date=2023-11-14/part-00000.parquet"]
    );
    assert_eq!(temp_files(out).len(), 1);
    writer.close().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parquet_files(out).len(), 2);
    assert!(temp_files(out).is_empty());
}

#[test]
fn file_numbers_continue_after_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let dev = device("restarted");
    let write_run = |first: u64| {
        let mut writer = DatasetWriter::create(&windows_only(out), &DatasetInfo::default())
            .unwrap_or_else(|e| panic!("{e}"));
        for i in first..first + 5 {
            writer
                .write_window(window(&dev, START_NS + i as i64 * 200_000_000, i))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        writer.close().unwrap_or_else(|e| panic!("{e}"));
    };
    write_run(0);
    let partition = out.join("windows/device=restarted/date=2023-11-14");
    let first_file = partition.join("part-00000.parquet");
    let first_bytes = std::fs::read(&first_file).unwrap_or_else(|e| panic!("{e}"));
    write_run(5);
    // A crash left a temp file numbered 7: the next run must not reuse 7.
    std::fs::write(partition.join(".part-00007.parquet.tmp"), b"half a file")
        .unwrap_or_else(|e| panic!("{e}"));
    write_run(10);
    let names: Vec<String> = parquet_files(&partition)
        .iter()
        .map(|p| relative(&partition, p))
        .collect();
    assert_eq!(
        names,
        [
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00008.parquet"
        ]
    );
    assert_eq!(
        std::fs::read(&first_file).unwrap_or_default(),
        first_bytes,
        "the first run's file is untouched"
    );
    let starts: Vec<i64> = parquet_files(&partition)
        .iter()
        .flat_map(|p| window_starts(p))
        .collect();
    let expected: Vec<i64> = (0..15).map(|i| START_NS + i * 200_000_000).collect();
    assert_eq!(starts, expected);
}

#[test]
fn an_unwritable_output_folder_is_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap_or_else(|e| panic!("{e}"));
    let out = blocker.join("out");
    let Err(error) = DatasetWriter::create(&windows_only(&out), &DatasetInfo::default()) else {
        panic!("a file in the way of the output folder must be an error");
    };
    let message = error.to_string();
    assert!(matches!(error, ParquetSinkError::Io { .. }), "{error:?}");
    assert!(message.contains(&out.display().to_string()), "{message}");
    assert!(message.contains("output folder"), "{message}");

    // A table folder that cannot be created shows up at close, naming it.
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(out.join("windows"), b"in the way").unwrap_or_else(|e| panic!("{e}"));
    let config = ParquetConfig {
        batch_rows: 1,
        ..windows_only(&out)
    };
    let mut writer =
        DatasetWriter::create(&config, &DatasetInfo::default()).unwrap_or_else(|e| panic!("{e}"));
    let dev = device("blocked");
    // The first write that reaches the table folder fails, or else the close.
    let mut failed = None;
    for i in 0..3 {
        if let Err(e) = writer.write_window(window(&dev, START_NS + i * 200_000_000, i as u64)) {
            failed = Some(e);
            break;
        }
    }
    let error = match failed {
        Some(error) => error,
        None => match writer.close() {
            Err(error) => error,
            Ok(_) => panic!("writing under a file must fail"),
        },
    };
    let message = error.to_string();
    assert!(
        message.contains(&out.join("windows").display().to_string()),
        "{message}"
    );
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for config in [
        ParquetConfig {
            max_file_span_s: 0,
            ..ParquetConfig::new(dir.path())
        },
        ParquetConfig {
            row_group_rows: 0,
            ..ParquetConfig::new(dir.path())
        },
        ParquetConfig {
            zstd_level: 99,
            ..ParquetConfig::new(dir.path())
        },
    ] {
        let result = DatasetWriter::create(&config, &DatasetInfo::default());
        assert!(matches!(result, Err(ParquetSinkError::Config(_))));
    }
    let toml_error = toml::from_str::<ParquetConfig>("out = \"x\"\nmax_file_spans = 3\n");
    assert!(toml_error.is_err(), "unknown keys are refused");
    let parsed: ParquetConfig =
        toml::from_str("out = \"x\"\n[tables]\nraw = true\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.tables.raw && parsed.tables.windows);
}

#[test]
fn a_device_whose_clock_runs_ahead_does_not_split_the_files_of_others() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let config = ParquetConfig {
        max_file_span_s: 60,
        batch_rows: 4,
        ..windows_only(out)
    };
    let mut writer =
        DatasetWriter::create(&config, &DatasetInfo::default()).unwrap_or_else(|e| panic!("{e}"));
    let (normal, ahead) = (device("normal"), device("ahead"));
    const DAY_NS: i64 = 86_400_000_000_000;
    // 50 s of both, interleaved: all of "normal" fits in one 60-s span.
    for i in 0..250u64 {
        let t = START_NS - START_NS % 60_000_000_000 + i as i64 * 200_000_000;
        for (dev, offset) in [(&normal, 0), (&ahead, DAY_NS)] {
            writer
                .write_window(window(dev, t + offset, i))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    writer.close().unwrap_or_else(|e| panic!("{e}"));
    let normal_files = parquet_files(&out.join("windows/device=normal"));
    assert_eq!(normal_files.len(), 1, "{normal_files:?}");
    assert_eq!(window_starts(&normal_files[0]).len(), 250);
    let ahead_files: Vec<String> = parquet_files(&out.join("windows/device=ahead"))
        .iter()
        .map(|p| relative(out, p))
        .collect();
    assert_eq!(
        ahead_files,
        ["windows/device=ahead/date=2023-11-15/part-00000.parquet"]
    );
}

/// A table that gets rows rarely (`events`: one connect) finishes its file
/// when the span ended by the data time of the other tables, so the rows'
/// record seqs stop holding back what the record log may delete.
#[test]
fn a_rarely_written_table_finishes_its_files_when_any_table_passes_the_span() {
    use meterflow::model::{EventRow, EventRowKind};

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let config = ParquetConfig {
        max_file_span_s: 10,
        tables: TableSelection {
            events: true,
            ..windows_only(out).tables
        },
        ..windows_only(out)
    };
    let mut writer =
        DatasetWriter::create(&config, &DatasetInfo::default()).unwrap_or_else(|e| panic!("{e}"));
    let dev = device("meter");
    writer.at_seq(1);
    writer
        .write_event(EventRow::new(
            dev.clone(),
            START_NS,
            EventRowKind::Connect,
            "connected",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    // Windows for 75 s: past the event's 10-s span and the 60-s grace.
    let windows_per_s = 5;
    for i in 0..75 * windows_per_s {
        writer.at_seq(2 + i);
        writer
            .write_window(window(&dev, START_NS + i as i64 * 200_000_000, i))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    writer.seal_ended().unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<String> = parquet_files(&out.join("events"))
        .iter()
        .map(|p| relative(out, p))
        .collect();
    assert_eq!(
        events,
        ["events/device=meter/date=2023-11-14/part-00000.parquet"],
        "the connect's file is finished while the sink runs"
    );
    // Seq 1 is in a finished file: the oldest seq still waiting is a window's.
    let pending = writer.pending_min_seq().unwrap_or(u64::MAX);
    assert!(pending > 1, "pending seq {pending}");
    writer.close().unwrap_or_else(|e| panic!("{e}"));
}

/// Device names and the `window_start`s of each finished windows file, in
/// file order.
fn windows_files(out: &Path) -> Vec<(String, Vec<i64>)> {
    parquet_files(&out.join("windows"))
        .iter()
        .map(|p| (relative(out, p), window_starts(p)))
        .collect()
}

#[test]
fn ended_devices_finish_together_at_the_flush_and_one_back_first_keeps_its_files_apart() {
    use meterflow::model::Record;
    use meterflow::sink::output::Output;
    use meterflow::sink::parquet::ParquetOutput;
    use std::sync::Arc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let (output, _) = ParquetOutput::open(
        &windows_only(out),
        &DatasetInfo::default(),
        None,
        Duration::from_secs(1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut output: Box<dyn Output> = Box::new(output);
    let names = ["m1", "m2", "m3"];
    let mut seq = 0;
    let mut accept = |output: &mut Box<dyn Output>, record: Record| {
        seq += 1;
        output
            .accept(seq, &record)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    let starts = |from: u64| -> Vec<i64> {
        (from..from + 5)
            .map(|i| START_NS + i as i64 * 200_000_000)
            .collect()
    };
    for name in names {
        for i in 0..5 {
            accept(
                &mut output,
                Record::Window(window(&device(name), starts(0)[i], i as u64)),
            );
        }
        accept(&mut output, Record::DeviceFinished(Arc::from(name)));
    }
    // m1 comes back before the flush: its first rows are finished before
    // its new ones, so they stay in a file of their own as before.
    for i in 0..5 {
        accept(
            &mut output,
            Record::Window(window(&device("m1"), starts(10)[i], 10 + i as u64)),
        );
    }
    output.flush().unwrap_or_else(|e| panic!("{e}"));
    let expected_after_flush: Vec<(String, Vec<i64>)> = vec![
        (
            "windows/device=m1/date=2023-11-14/part-00000.parquet".into(),
            starts(0),
        ),
        (
            "windows/device=m2/date=2023-11-14/part-00000.parquet".into(),
            starts(0),
        ),
        (
            "windows/device=m3/date=2023-11-14/part-00000.parquet".into(),
            starts(0),
        ),
    ];
    assert_eq!(windows_files(out), expected_after_flush, "after the flush");
    assert!(
        temp_files(out).len() <= 1,
        "only m1's open file may be in progress"
    );
    output.close().unwrap_or_else(|e| panic!("{e}"));
    let mut expected = expected_after_flush;
    expected.insert(
        1,
        (
            "windows/device=m1/date=2023-11-14/part-00001.parquet".into(),
            starts(10),
        ),
    );
    assert_eq!(windows_files(out), expected, "after the close");
    assert!(temp_files(out).is_empty());
}
