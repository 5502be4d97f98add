//! The `latch` table read back with the parquet crate's Arrow reader equals
//! the latch engine's windows, column by column and exactly: a `p,q` and a
//! `v,i_RMS` stream from the signal generator, decoded from wire payloads
//! (currents in mA), through `DeviceEngine` and a `DatasetWriter`. Quantities
//! a layout does not carry are null, never 0, and every column type is in
//! the portable set.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::signal::{LoadStep, SignalConfig, SignalGenerator};
use meterflow::model::{DeviceInfo, EnergyCounters, LatchRow, WindowFlags};
use meterflow::sink::parquet::{
    is_portable_type, latch, DatasetInfo, DatasetWriter, ParquetConfig,
};
use meterflow::wire::{Measures, SampleBlock};
use parquet::file::reader::{FileReader, SerializedFileReader};

const START_NS: i64 = 1_700_000_000_000_000_000;
const RATE: u32 = 50;
/// Just under 6 s, so the stream ends inside a window.
const SAMPLES: u64 = 297;
/// Samples of the `p,q` stream whose L2 active power is NaN on the wire:
/// exactly the third 200 ms window (10 samples at 50 Hz).
const NAN_P_L2: std::ops::Range<u64> = 20..30;
/// Samples lost before the first payload starting here or later (a dropped chunk).
const GAP_AT: u64 = 137;
const GAP_LEN: u64 = 6;

use crate::common;
use common::parquet_read::{f, parquet_files, read_file, read_rows, Cell};

// ---------------------------------------------------------------- the source

fn signal() -> SignalConfig {
    SignalConfig {
        current_angle_deg: 35.0,
        voltage_imbalance: [1.0, 0.97, 1.03],
        current_imbalance: [1.0, 0.5, 1.7],
        voltage_noise_rms_v: 0.4,
        current_noise_rms_a: 0.05,
        load_steps: vec![LoadStep {
            at_s: 3.0,
            current_rms_a: Some(4.0),
            current_angle_deg: Some(-160.0),
        }],
        seed: 11,
        ..SignalConfig::default()
    }
}

/// Runs `measures` from the signal generator through the engine, one wire
/// payload of a few samples at a time, with a dropped chunk and (for `p,q`)
/// NaN on one channel for one window. Rows of `p,q` streams carry the
/// cumulative energy after each window; `v,i_RMS` streams have none.
fn run_device(name: &str, id: u64, measures: Measures) -> (Vec<LatchRow>, EnergyCounters) {
    let device = DeviceInfo::new(name, id, measures);
    let mut generator =
        SignalGenerator::new(signal(), measures, RATE).unwrap_or_else(|e| panic!("{e}"));
    let nch = generator.channel_count();
    let mut engine = DeviceEngine::new(&EngineConfig::default(), measures, RATE, START_NS)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut energy = engine.energy().clone();
    let mut rows = Vec::new();
    let mut on_output = |o: EngineOutput<'_>| {
        let EngineOutput::Latch(w) = o else {
            panic!("a latch stream gave a waveform output");
        };
        let energy_after = (measures == Measures::PowerLatch).then(|| {
            if w.flags.contains(WindowFlags::INVALID_SAMPLES) {
                energy.skipped_windows += 1;
            } else {
                energy.add_energies(w.phases.map(|p| p.and_then(|p| p.energy_wh)), w.duration_s);
            }
            energy.clone()
        });
        rows.push(LatchRow {
            device: device.clone(),
            window: w.clone(),
            energy: energy_after,
        });
    };
    let mut block = SampleBlock::new(measures, RATE, START_NS);
    let mut values = Vec::new();
    let mut payload = Vec::new();
    let mut sizes = [7u64, 3, 11, 1, 5].into_iter().cycle();
    let mut gapped = false;
    while generator.sample_index() < SAMPLES {
        let mut gap_before = 0;
        if !gapped && generator.sample_index() >= GAP_AT {
            generator.seek(generator.sample_index() + GAP_LEN);
            gap_before = GAP_LEN;
            gapped = true;
        }
        let first = generator.sample_index();
        let count = sizes.next().unwrap_or(1).min(SAMPLES - first) as usize;
        values.clear();
        values.resize(count * nch, 0.0f32);
        assert_eq!(generator.fill(&mut values), count);
        if measures == Measures::PowerLatch {
            for (n, sample) in (first..).zip(values.chunks_exact_mut(nch)) {
                if NAN_P_L2.contains(&n) {
                    sample[1] = f32::NAN; // p_l2
                }
            }
        }
        payload.clear();
        payload.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        block
            .fill_from_payload(&payload)
            .unwrap_or_else(|e| panic!("{e}"));
        block.first_index = first;
        block.gap_before = gap_before;
        engine
            .push_block(&block, &mut on_output)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine.finish(&mut on_output);
    if measures == Measures::PowerLatch {
        assert_eq!(
            &energy,
            engine.energy(),
            "cumulative energy follows the engine"
        );
    }
    (rows, engine.energy().clone())
}

fn info() -> DatasetInfo {
    let engine = EngineConfig::default();
    DatasetInfo {
        source: "synthetic latch signal".into(),
        pipeline: "parquet-latch-tests".into(),
        thd_max_order: engine.harmonic_order(),
        nominal_frequency_hz: engine.nominal_frequency_hz,
    }
}

/// Both streams through one `DatasetWriter`, interleaved window by window.
fn write_dataset(out: &Path) -> Vec<LatchRow> {
    let (pq, energy) = run_device("meter-pq", 21, Measures::PowerLatch);
    let (rms, _) = run_device("meter-rms", 22, Measures::RmsLatch);
    assert!(energy.total.import_wh > 0.0 && energy.total.export_wh > 0.0);
    let config = ParquetConfig {
        max_file_span_s: 2, // several files per device
        batch_rows: 7,      // several batches per file
        row_group_rows: 10,
        fsync: false,
        ..ParquetConfig::new(out)
    };
    assert!(config.tables.latch, "the latch table is on by default");
    let mut sink = DatasetWriter::create(&config, &info()).unwrap_or_else(|e| panic!("{e}"));
    for k in 0..pq.len().max(rms.len()) {
        for rows in [&pq, &rms] {
            if let Some(row) = rows.get(k) {
                sink.write_latch(row.clone())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    let summary = sink.close().unwrap_or_else(|e| panic!("{e}"));
    let written = (pq.len() + rms.len()) as u64;
    assert_eq!(summary.rows.get("latch"), Some(&written));
    let mut files: Vec<PathBuf> = summary
        .files
        .iter()
        .filter(|p| p.starts_with(out.join("latch")))
        .cloned()
        .collect();
    files.sort();
    assert_eq!(files, parquet_files(&out.join("latch")));
    for device in ["meter-pq", "meter-rms"] {
        let dir = out
            .join("latch")
            .join(format!("device={device}"))
            .join("date=2023-11-14");
        let parts = parquet_files(&dir);
        assert!(parts.len() >= 3, "{device}: {parts:?}");
        assert!(parts.iter().all(|p| p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("part-"))));
    }
    pq.into_iter().chain(rms).collect()
}

// ---------------------------------------------------------------- expectations written out by hand

fn expected_row(r: &LatchRow) -> BTreeMap<String, Cell> {
    let w = &r.window;
    let mut e: BTreeMap<String, Cell> = BTreeMap::new();
    let mut put = |k: &str, v: Cell| {
        e.insert(k.to_string(), v);
    };
    put("device", Cell::Str(r.device.name.to_string()));
    put("device_id", Cell::U64(r.device.id));
    put("measures", Cell::Str(r.device.measures.as_str().into()));
    put("window_start", Cell::Ts(w.start_unix_ns));
    put("window_end", Cell::Ts(w.end_unix_ns));
    put("first_sample", Cell::U64(w.first_sample));
    put("sample_count", Cell::U64(w.sample_count));
    put("duration_s", Cell::F64(w.duration_s));
    put("flags", Cell::I32(i32::from(w.flags.bits())));
    put("flagged", Cell::Bool(!w.flags.is_clean()));
    for (k, tag) in ["l1", "l2", "l3"].into_iter().enumerate() {
        let p = w.phases[k];
        put(&format!("p_{tag}_w"), f(p.and_then(|p| p.p_w)));
        put(&format!("q_{tag}_var"), f(p.and_then(|p| p.q_var)));
        put(&format!("v_rms_{tag}_v"), f(p.and_then(|p| p.v_rms_v)));
        put(&format!("i_rms_{tag}_a"), f(p.and_then(|p| p.i_rms_a)));
        put(&format!("energy_{tag}_wh"), f(p.and_then(|p| p.energy_wh)));
        let cum = r.energy.as_ref().and_then(|e| e.phases[k]);
        put(&format!("cum_import_{tag}_wh"), f(cum.map(|c| c.import_wh)));
        put(&format!("cum_export_{tag}_wh"), f(cum.map(|c| c.export_wh)));
    }
    let energy = r.energy.as_ref();
    put("cum_import_total_wh", f(energy.map(|e| e.total.import_wh)));
    put("cum_export_total_wh", f(energy.map(|e| e.total.export_wh)));
    put("cum_measured_s", f(energy.map(|e| e.measured_s)));
    e
}

fn key(row: &BTreeMap<String, Cell>) -> String {
    format!("{:?}/{:?}", row.get("device"), row.get("window_start"))
}

fn is_f64(cell: Option<&Cell>) -> bool {
    matches!(cell, Some(Cell::F64(x)) if x.is_finite())
}

// ---------------------------------------------------------------- tests

#[test]
fn latch_rows_read_back_equal_the_engine_values() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let source = write_dataset(dir.path());
    let table = dir.path().join("latch");

    // The source covers what the table must show: clean, gap, invalid and
    // truncated windows, and a phase quantity with no valid value.
    let flags: Vec<WindowFlags> = source.iter().map(|r| r.window.flags).collect();
    for flag in [
        WindowFlags::GAP,
        WindowFlags::INVALID_SAMPLES,
        WindowFlags::TRUNCATED,
    ] {
        assert!(flags.iter().any(|f| f.contains(flag)), "{flag:?}");
    }
    assert!(flags.iter().filter(|f| f.is_clean()).count() > 40);
    assert!(source
        .iter()
        .any(|r| r.device.measures == Measures::PowerLatch
            && r.window.phases[1].is_some_and(|p| p.p_w.is_none() && p.q_var.is_some())));

    let expected: Vec<_> = source.iter().map(expected_row).collect();
    let mut by_key: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    for row in &expected {
        assert!(
            by_key.insert(key(row), row.clone()).is_none(),
            "duplicate key {}",
            key(row)
        );
    }
    let expected_names: BTreeSet<String> = expected[0].keys().cloned().collect();
    let got = read_rows(&table);
    assert_eq!(got.len(), expected.len(), "rows of the latch table");
    let mut seen = BTreeSet::new();
    for row in &got {
        let names: BTreeSet<String> = row.keys().cloned().collect();
        assert_eq!(names, expected_names, "columns of the latch table");
        let want = by_key
            .get(&key(row))
            .unwrap_or_else(|| panic!("unexpected row {}", key(row)));
        assert_eq!(row, want, "row {}", key(row));
        assert!(seen.insert(key(row)), "row {} written twice", key(row));
    }

    // What each layout does not carry is null, never 0.
    let mut counts = [0usize; 2];
    for row in &got {
        match row.get("measures") {
            Some(Cell::Str(m)) if m == "p,q" => {
                counts[0] += 1;
                for tag in ["l1", "l2", "l3"] {
                    for column in [format!("v_rms_{tag}_v"), format!("i_rms_{tag}_a")] {
                        assert_eq!(row.get(&column), Some(&Cell::Null), "p,q {column}");
                    }
                    assert!(is_f64(row.get(&format!("q_{tag}_var"))), "p,q q_{tag}");
                    assert!(is_f64(row.get(&format!("cum_import_{tag}_wh"))));
                }
                for column in ["p_l1_w", "p_l3_w", "energy_l1_wh", "cum_import_total_wh"] {
                    assert!(is_f64(row.get(column)), "p,q {column}");
                }
                let nan_window = row.get("first_sample") == Some(&Cell::U64(NAN_P_L2.start));
                for column in ["p_l2_w", "energy_l2_wh"] {
                    assert_eq!(
                        row.get(column) == Some(&Cell::Null),
                        nan_window,
                        "p,q {column} of {}",
                        key(row)
                    );
                }
            }
            Some(Cell::Str(m)) if m == "v,i_RMS" => {
                counts[1] += 1;
                for tag in ["l1", "l2", "l3"] {
                    for column in [
                        format!("p_{tag}_w"),
                        format!("q_{tag}_var"),
                        format!("energy_{tag}_wh"),
                        format!("cum_import_{tag}_wh"),
                        format!("cum_export_{tag}_wh"),
                    ] {
                        assert_eq!(row.get(&column), Some(&Cell::Null), "v,i_RMS {column}");
                    }
                    assert!(matches!(
                        row.get(&format!("v_rms_{tag}_v")),
                        Some(Cell::F64(v)) if (200.0..260.0).contains(v)
                    ));
                }
                // Decoded from mA: amperes, not milliamperes.
                assert!(matches!(
                    row.get("i_rms_l1_a"),
                    Some(Cell::F64(i)) if (3.0..11.0).contains(i)
                ));
                for column in ["i_rms_l2_a", "i_rms_l3_a"] {
                    assert!(is_f64(row.get(column)), "v,i_RMS {column}");
                }
                for column in [
                    "cum_import_total_wh",
                    "cum_export_total_wh",
                    "cum_measured_s",
                ] {
                    assert_eq!(row.get(column), Some(&Cell::Null), "v,i_RMS {column}");
                }
            }
            other => panic!("measures {other:?}"),
        }
    }
    assert!(counts[0] >= 29 && counts[1] >= 29, "{counts:?}");
}

#[test]
fn latch_columns_are_portable_and_files_carry_their_metadata() {
    let schema = latch::schema();
    for field in schema.fields() {
        assert!(
            is_portable_type(field.data_type()),
            "latch.{} has type {}",
            field.name(),
            field.data_type()
        );
        assert!(
            field
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "latch.{} is not snake_case",
            field.name()
        );
    }
    let timestamp = DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, Some("UTC".into()));
    for name in ["window_start", "window_end"] {
        let field = schema
            .field_with_name(name)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(field.data_type(), &timestamp, "{name}");
        assert!(!field.is_nullable(), "{name}");
    }
    for name in [
        "p_l1_w",
        "v_rms_l3_v",
        "energy_l2_wh",
        "cum_import_total_wh",
    ] {
        let field = schema
            .field_with_name(name)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(field.is_nullable(), "{name}");
    }

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_dataset(dir.path());
    let files = parquet_files(&dir.path().join("latch"));
    assert!(!files.is_empty());
    for path in files {
        let batches = read_file(&path);
        let read_schema = batches[0].schema();
        assert_eq!(read_schema.fields().len(), schema.fields().len());
        for (a, b) in read_schema.fields().iter().zip(schema.fields()) {
            assert_eq!((a.name(), a.data_type()), (b.name(), b.data_type()));
            assert!(is_portable_type(a.data_type()), "{} read back", a.name());
        }
        let reader = SerializedFileReader::new(File::open(&path).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let kv: BTreeMap<String, String> = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            kv.get("meterflow.schema_version").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            kv.get("meterflow.version").map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(kv.get("meterflow.table").map(String::as_str), Some("latch"));
        assert_eq!(
            kv.get("meterflow.source").map(String::as_str),
            Some("synthetic latch signal")
        );
        assert_eq!(
            kv.get("meterflow.pipeline").map(String::as_str),
            Some("parquet-latch-tests")
        );
        assert!(
            !kv.contains_key("meterflow.thd_max_order"),
            "latch windows hold no THD"
        );
    }
}
