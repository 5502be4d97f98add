//! The same data given twice is written once (issue 22, item 2): a file
//! named twice, a folder and a file inside it, a copy of a file in another
//! folder, and a second `batch` into an existing `--out`. Checked on the
//! dataset the binary leaves, against the analytic energy of a clean
//! 230 V / 10 A three-phase signal and against one run's rows.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::parquet_read::{read_rows, Cell};
use common::rows::{by_device, check_windows, num, text, ts, Row};
use common::three_phase::{clean_channels, wire_f32le, MEASURES, P_TOTAL_W, RATE};
use meterflow::model::DeviceInfo;
use meterflow::sink::parquet::{DatasetInfo, DatasetWriter, ParquetConfig, TableSelection};
use meterflow::wire::{Measures, SampleBlock};

/// The start of the first file, s since the epoch.
const START_S: i64 = 1_700_000_000;
/// Seconds per file.
const FILE_S: usize = 4;
const DEVICE: &str = "dup";

fn meterflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(args)
        .output()
        .expect("running the meterflow binary")
}

/// `batch FILES… --out out` of bare f32le files of device `dup` starting at
/// `start_s`; the process's output.
fn batch(files: &[&Path], start_s: i64, out: &Path) -> Output {
    let start = start_s.to_string();
    let mut args: Vec<&str> = vec!["batch"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend([
        "--rate",
        "8000",
        "--measures",
        MEASURES,
        "--start",
        &start,
        "--name",
        DEVICE,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    meterflow(&args)
}

/// The signal's seconds `part * FILE_S ..` as a file `name` in `dir`; two
/// consecutive parts continue one signal.
fn signal_file(dir: &Path, name: &str, part: usize) -> PathBuf {
    let channels = clean_channels((FILE_S * (part + 1)) as f64);
    let per_file = FILE_S * RATE as usize;
    let path = dir.join(name);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &path,
        wire_f32le(&channels, part * per_file..(part + 1) * per_file),
    )
    .unwrap();
    path
}

fn windows(out: &Path) -> Vec<Row> {
    by_device(&out.join("parquet/windows"), "window_start")
        .remove(DEVICE)
        .unwrap_or_default()
}

/// Each window's start, end and energy (bits: equal means equal).
fn spans(rows: &[Row]) -> Vec<(i64, i64, u64)> {
    rows.iter()
        .map(|r| {
            (
                ts(r, "window_start"),
                ts(r, "window_end"),
                num(r, "energy_total_wh").to_bits(),
            )
        })
        .collect()
}

fn events(out: &Path) -> Vec<(i64, String)> {
    let mut events: Vec<(i64, String)> = by_device(&out.join("parquet/events"), "time")
        .remove(DEVICE)
        .unwrap_or_default()
        .iter()
        .map(|r| (ts(r, "time"), text(r, "kind")))
        .collect();
    events.sort();
    events
}

/// Every window once and contiguous over `seconds` from `start_s`, with
/// the analytic energy.
fn check_covers(out: &Path, start_s: i64, seconds: usize) -> Vec<Row> {
    let rows = windows(out);
    assert!(!rows.is_empty(), "no windows in {}", out.display());
    let gaps = check_windows(DEVICE, &rows);
    assert!(gaps.is_empty(), "gaps between windows: {gaps:?}");
    let first = ts(&rows[0], "window_start");
    let last = ts(&rows[rows.len() - 1], "window_end");
    let start_ns = start_s * 1_000_000_000;
    // The data ends half a sample after the last sample's instant.
    let end_ns = start_ns + (seconds as i64 * 1_000_000_000) - 62_500;
    assert_eq!(first, start_ns);
    assert!((last - end_ns).abs() <= 62_500, "last window ends {last}");
    check_energy(&rows);
    rows
}

/// The windows' energy is P × the time they cover (1e-4 relative; the dsp
/// tests bound window energy tighter): no window twice, none missing.
fn check_energy(rows: &[Row]) {
    let first = ts(&rows[0], "window_start");
    let last = ts(&rows[rows.len() - 1], "window_end");
    let gaps_ns: i64 = rows
        .windows(2)
        .map(|pair| ts(&pair[1], "window_start") - ts(&pair[0], "window_end"))
        .sum();
    let covered_h = (last - first - gaps_ns) as f64 / 3.6e12;
    let expected_wh = P_TOTAL_W * covered_h;
    let energy_wh: f64 = rows.iter().map(|r| num(r, "energy_total_wh")).sum();
    assert!(
        (energy_wh - expected_wh).abs() <= 1e-4 * expected_wh,
        "{energy_wh} Wh in the windows, {expected_wh} Wh analytic"
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_file_named_twice_or_inside_a_named_folder_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let file = signal_file(&input, "s.f32", 0);
    let once = dir.path().join("once");
    let output = batch(&[&file], START_S, &once);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows_once = check_covers(&once, START_S, FILE_S);

    // The folder, the file, and the file again by another spelling.
    let other_spelling = input.join(".").join("s.f32");
    let twice = dir.path().join("twice");
    let output = batch(&[&input, &file, &other_spelling], START_S, &twice);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows_twice = check_covers(&twice, START_S, FILE_S);
    assert_eq!(spans(&rows_twice), spans(&rows_once));
    assert_eq!(events(&twice), events(&once));
}

#[test]
fn a_copy_in_another_folder_is_refused_naming_both_and_its_rows_come_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = signal_file(&dir.path().join("in/a"), "s.f32", 0);
    let copy = signal_file(&dir.path().join("in/b"), "s.f32", 0);
    let once = dir.path().join("once");
    assert!(batch(&[&first], START_S, &once).status.success());
    let rows_once = windows(&once);

    let out = dir.path().join("out");
    let output = batch(&[&dir.path().join("in")], START_S, &out);
    // One of the two is refused: the run says so and fails.
    assert!(!output.status.success());
    let text = stderr(&output);
    let (a, b) = (first.to_str().unwrap(), copy.to_str().unwrap());
    let refusal = text
        .lines()
        .find(|l| l.contains("overlap"))
        .unwrap_or_else(|| panic!("no refusal in {text}"));
    assert!(
        refusal.contains(a) && refusal.contains(b),
        "the refusal names both files: {refusal}"
    );
    assert!(refusal.contains(DEVICE), "{refusal}");
    let rows = check_covers(&out, START_S, FILE_S);
    assert_eq!(spans(&rows), spans(&rows_once));
    assert_eq!(events(&out), events(&once));
}

#[test]
fn a_second_batch_into_the_dataset_skips_what_it_holds_and_adds_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let first = signal_file(&dir.path().join("in"), "first.f32", 0);
    let next = signal_file(&dir.path().join("in"), "next.f32", 1);
    let out = dir.path().join("out");
    assert!(batch(&[&first], START_S, &out).status.success());
    let rows_once = check_covers(&out, START_S, FILE_S);
    let events_once = events(&out);

    // Again: nothing new, and the run says what it skipped. A damaged
    // file beside the good ones costs only itself (a warning).
    let partition = std::fs::read_dir(out.join("parquet/windows/device=dup"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(partition.join("part-00090.parquet"), b"not parquet").unwrap();
    let output = batch(&[&first], START_S, &out);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("part-00090.parquet"));
    std::fs::remove_file(partition.join("part-00090.parquet")).unwrap();
    assert_eq!(spans(&windows(&out)), spans(&rows_once));
    assert_eq!(events(&out), events_once);
    let said = stdout(&output);
    let held = said
        .lines()
        .find(|l| l.contains("already held"))
        .unwrap_or_else(|| panic!("no skipped rows reported in {said}"));
    assert!(
        held.contains(&format!("windows {}", rows_once.len())),
        "{held}"
    );

    // The next file of the meter adds its own windows, none twice.
    let output = batch(&[&next], START_S + FILE_S as i64, &out);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = windows(&out);
    let starts: BTreeSet<i64> = rows.iter().map(|r| ts(r, "window_start")).collect();
    assert_eq!(starts.len(), rows.len(), "a window appears twice");
    assert!(rows.len() > rows_once.len());
    let now = spans(&rows);
    for span in spans(&rows_once) {
        assert!(now.contains(&span), "{span:?} of the first run is gone");
    }
    // The two runs' windows together cover both files, each once: the
    // only gap is the half sample after the first file's last sample.
    check_energy(&rows);
    let gaps = check_windows(DEVICE, &rows);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let boundary_ns = (START_S + FILE_S as i64) * 1_000_000_000;
    assert_eq!(gaps[0], (boundary_ns - 62_500, boundary_ns));
    // And a third run of the first file still changes nothing.
    assert!(batch(&[&first], START_S, &out).status.success());
    assert_eq!(windows(&out).len(), rows.len());
}

/// The raw archive of a re-run: a block whose samples the archive already
/// holds is skipped, so every sample is there once. Blocks of 800 samples
/// straddle the row groups of 3000, as they do in a real run.
#[test]
fn a_second_run_adds_only_new_samples_to_the_raw_archive() {
    let dir = tempfile::tempdir().unwrap();
    let config = ParquetConfig {
        tables: TableSelection {
            windows: false,
            latch: false,
            aggregates: false,
            harmonics: false,
            events: false,
            raw: true,
            ..TableSelection::default()
        },
        raw_row_group_rows: 3000,
        fsync: false,
        ..ParquetConfig::new(dir.path())
    };
    let device = DeviceInfo::new(DEVICE, 1, Measures::ThreePhase);
    let channels = clean_channels(2.0);
    let samples = channels[0].len();
    let blocks: Vec<SampleBlock> = (0..samples)
        .step_by(800)
        .map(|at| SampleBlock {
            channels: channels.iter().map(|c| c[at..at + 800].to_vec()).collect(),
            first_index: at as u64,
            ..SampleBlock::new(Measures::ThreePhase, RATE, START_S * 1_000_000_000)
        })
        .collect();
    let run = |blocks: &[SampleBlock]| {
        let mut dataset = DatasetWriter::create(&config, &DatasetInfo::default())
            .unwrap()
            .skipping_held_rows();
        for block in blocks {
            dataset.write_raw(&device, block).unwrap();
        }
        dataset.close().unwrap()
    };
    // The first second, then both seconds, then both again.
    let first = run(&blocks[..10]);
    assert_eq!(first.rows["raw"], 8000);
    let second = run(&blocks);
    assert_eq!(
        (second.rows["raw"], second.already_held["raw"]),
        (8000, 8000)
    );
    let third = run(&blocks);
    assert_eq!((third.rows["raw"], third.already_held["raw"]), (0, 16_000));

    let mut indices: Vec<u64> = read_rows(&dir.path().join("raw"))
        .iter()
        .map(|row| match row["sample_index"] {
            Cell::U64(n) => n,
            ref other => panic!("sample_index is {other:?}"),
        })
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..samples as u64).collect::<Vec<_>>());
}
