//! The Parquet tables read back with the parquet crate's Arrow reader equal
//! the values they were written from, column by column: windows,
//! aggregates and harmonics from the real engine on a synthetic signal,
//! events from hand-built rows. Floats are stored exactly, so the
//! comparison is exact. Also: every column type is in the portable set, and
//! every file carries the agreed key-value metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use meterflow::dsp::aggregate::{ClockAggregator, CycleAggregator};
use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::{
    AggregateRow, DeviceInfo, EventRow, EventRowKind, IntervalKind, WindowFlags, WindowRow,
};
use meterflow::sink::parquet::{aggregates, events, harmonics, raw, windows};
use meterflow::sink::parquet::{
    is_portable_type, DatasetInfo, DatasetWriter, ParquetConfig, TableSelection,
};
use meterflow::source::event::{EventKind as StreamEventKind, SourceEvent};
use meterflow::wire::message::LogLine;
use meterflow::wire::{Anomaly, Measures};
use parquet::file::reader::{FileReader, SerializedFileReader};

const START_NS: i64 = 1_700_000_000_000_000_000;
const RATE: u32 = 4000;

use crate::common;
use common::parquet_read::{column_names, f, parquet_files, read_file, read_rows, Cell};

// ---------------------------------------------------------------- the source

struct Device {
    info: DeviceInfo,
    windows: Vec<WindowRow>,
    aggregates: Vec<AggregateRow>,
}

fn signal() -> SignalConfig {
    SignalConfig {
        current_angle_deg: 25.0,
        voltage_imbalance: [1.0, 0.98, 1.02],
        current_imbalance: [1.0, 0.6, 1.3],
        voltage_harmonics: vec![Harmonic {
            order: 5,
            magnitude: 0.03,
            phase_deg: 0.0,
        }],
        current_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.2,
            phase_deg: 10.0,
        }],
        ..SignalConfig::default()
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        keep_harmonic_subgroups: true,
        ..EngineConfig::default()
    }
}

/// Runs the real engine over `seconds` of the signal and collects windows
/// (with the cumulative energy after each) and 3 s / 10 min / 1 s aggregates.
fn run_device(name: &str, id: u64, measures: Measures, seconds: u32) -> Device {
    let info = DeviceInfo::new(name, id, measures);
    let whole = generate_block(
        &signal(),
        measures,
        RATE,
        START_NS,
        (seconds * RATE) as usize,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let blocks = split_block(&whole, &mut std::iter::repeat(977));
    let mut engine =
        DeviceEngine::for_block(&engine_config(), &whole).unwrap_or_else(|e| panic!("{e}"));
    let mut energy = engine.energy().clone();
    let udin = engine_config().udin_v();
    let mut cycles = CycleAggregator::new().with_declared_voltage(udin);
    let mut ten_min = ClockAggregator::ten_minutes().with_declared_voltage(udin);
    let mut packet = ClockAggregator::new(1_000_000_000).with_declared_voltage(udin);
    let mut windows = Vec::new();
    let mut aggregates = Vec::new();
    let mut on_output = |o: EngineOutput<'_>| {
        if let EngineOutput::Window(w) = o {
            energy.add_window(w);
            windows.push(WindowRow {
                device: info.clone(),
                metrics: w.clone(),
                energy: Some(energy.clone()),
            });
            for (kind, done) in [
                (IntervalKind::Cycles150, cycles.push(w)),
                (IntervalKind::TenMinutes, ten_min.push(w)),
                (IntervalKind::Packet, packet.push(w)),
            ] {
                if let Some(aggregate) = done {
                    aggregates.push(AggregateRow {
                        device: info.clone(),
                        kind,
                        aggregate,
                    });
                }
            }
        }
    };
    for block in &blocks {
        engine
            .push_block(block, &mut on_output)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine.finish(&mut on_output);
    for (kind, done) in [
        (IntervalKind::Cycles150, cycles.flush()),
        (IntervalKind::TenMinutes, ten_min.flush()),
        (IntervalKind::Packet, packet.flush()),
    ] {
        if let Some(aggregate) = done {
            aggregates.push(AggregateRow {
                device: info.clone(),
                kind,
                aggregate,
            });
        }
    }
    assert_eq!(
        &energy,
        engine.energy(),
        "cumulative energy follows the engine"
    );
    Device {
        info,
        windows,
        aggregates,
    }
}

fn hand_built_events(device: &DeviceInfo) -> Vec<EventRow> {
    let gap = Anomaly::Gap {
        expected: 10,
        received: 13,
        lost_chunks: 3,
    };
    let missed =
        LogLine::parse("[E]11/14 22:13:21: MISSED 42 SAMPLES").unwrap_or_else(|e| panic!("{e}"));
    let mut rows = vec![
        EventRow::new(
            device.clone(),
            START_NS,
            EventRowKind::Connect,
            "connected from 127.0.0.1:40000",
        ),
        // 3 chunks of 42 samples lost, as the decoder counts them.
        SourceEvent {
            unix_ns: START_NS + 1_000_000,
            kind: StreamEventKind::from_anomaly(&gap, 3 * 42),
        }
        .to_row(device),
        SourceEvent {
            unix_ns: START_NS + 2_000_000,
            kind: StreamEventKind::from_anomaly(&Anomaly::Resync { skipped: 17 }, 0),
        }
        .to_row(device),
    ];
    rows.extend(EventRow::from_log_line(
        device.clone(),
        START_NS + 3_000_000,
        &missed,
    ));
    rows.push(EventRow::new(
        device.clone(),
        START_NS + 4_000_000,
        EventRowKind::Disconnect,
        "peer closed",
    ));
    for chatter in [
        "[I]11/14 22:13:21: ",
        "[I]11/14 22:13:21: 7999.87Hz, 123456s",
    ] {
        let line = LogLine::parse(chatter).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            EventRow::from_log_line(device.clone(), START_NS, &line),
            None,
            "{chatter:?} is telemetry, not an event"
        );
    }
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1].lost_chunks, Some(3));
    assert_eq!(rows[1].lost_samples, Some(126));
    assert_eq!(rows[3].kind, EventRowKind::MeterWarning);
    assert_eq!(rows[3].lost_samples, Some(42));
    rows
}

fn info() -> DatasetInfo {
    let engine = engine_config();
    DatasetInfo {
        source: "synthetic test signal".into(),
        pipeline: "parquet-tests".into(),
        thd_max_order: engine.harmonic_order(),
        nominal_frequency_hz: engine.nominal_frequency_hz,
    }
}

/// Two devices (three-phase and single-phase) through a `DatasetWriter`.
fn write_dataset(out: &Path) -> Vec<Device> {
    let devices = vec![
        run_device("meter-3p", 7, Measures::ThreePhase, 4),
        run_device("meter-1p", 8, Measures::SinglePhase, 4),
    ];
    let config = ParquetConfig {
        tables: TableSelection {
            windows: true,
            latch: false,
            aggregates: true,
            harmonics: true,
            raw: false,
            events: true,
            ..TableSelection::default()
        },
        batch_rows: 7, // several batches per file
        row_group_rows: 10,
        ..ParquetConfig::new(out)
    };
    let mut sink = DatasetWriter::create(&config, &info()).unwrap_or_else(|e| panic!("{e}"));
    for device in &devices {
        for w in &device.windows {
            sink.write_window(w.clone())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for a in &device.aggregates {
            sink.write_aggregate(a.clone())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    for e in hand_built_events(&devices[0].info) {
        sink.write_event(e).unwrap_or_else(|e| panic!("{e}"));
    }
    let summary = sink.close().unwrap_or_else(|e| panic!("{e}"));
    assert!(!summary.files.is_empty());
    devices
}

// ---------------------------------------------------------------- expectations written out by hand

fn expected_window(r: &WindowRow) -> BTreeMap<String, Cell> {
    let m = &r.metrics;
    let mut e: BTreeMap<String, Cell> = BTreeMap::new();
    let mut put = |k: &str, v: Cell| {
        e.insert(k.to_string(), v);
    };
    put("device", Cell::Str(r.device.name.to_string()));
    put("device_id", Cell::U64(r.device.id));
    put("measures", Cell::Str(r.device.measures.as_str().into()));
    put("window_start", Cell::Ts(m.start_unix_ns));
    put("window_end", Cell::Ts(m.end_unix_ns));
    put("first_sample", Cell::U64(m.first_sample));
    put("sample_count", Cell::U64(m.sample_count));
    put("duration_s", Cell::F64(m.duration_s));
    put("cycles", Cell::I64(i64::from(m.cycles)));
    put("flags", Cell::I32(i32::from(m.flags.bits())));
    put("flagged", Cell::Bool(!m.flags.is_clean()));
    put("flag_gap", Cell::Bool(m.flags.contains(WindowFlags::GAP)));
    put(
        "flag_no_zero_crossing",
        Cell::Bool(m.flags.contains(WindowFlags::NO_ZERO_CROSSING)),
    );
    put(
        "flag_resync",
        Cell::Bool(m.flags.contains(WindowFlags::RESYNC)),
    );
    put(
        "flag_invalid_samples",
        Cell::Bool(m.flags.contains(WindowFlags::INVALID_SAMPLES)),
    );
    put(
        "flag_truncated",
        Cell::Bool(m.flags.contains(WindowFlags::TRUNCATED)),
    );
    put("frequency_hz", f(m.frequency_hz));
    for (k, tag) in ["l1", "l2", "l3"].into_iter().enumerate() {
        let p = m.phases[k];
        put(&format!("v_rms_{tag}_v"), f(p.map(|p| p.v_rms_v)));
        put(&format!("i_rms_{tag}_a"), f(p.map(|p| p.i_rms_a)));
        put(&format!("p_{tag}_w"), f(p.map(|p| p.p_w)));
        put(&format!("s_{tag}_va"), f(p.map(|p| p.s_va)));
        put(&format!("n_{tag}_var"), f(p.map(|p| p.n_var)));
        put(&format!("v1_rms_{tag}_v"), f(p.map(|p| p.v1_rms_v)));
        put(&format!("i1_rms_{tag}_a"), f(p.map(|p| p.i1_rms_a)));
        put(&format!("angle_{tag}_deg"), f(p.map(|p| p.angle_deg)));
        put(&format!("q1_{tag}_var"), f(p.map(|p| p.q1_var)));
        put(&format!("pf_{tag}"), f(p.and_then(|p| p.pf)));
        put(&format!("dpf_{tag}"), f(p.and_then(|p| p.dpf)));
        put(&format!("thd_v_{tag}_pct"), f(p.and_then(|p| p.thd_v_pct)));
        put(&format!("thd_i_{tag}_pct"), f(p.and_then(|p| p.thd_i_pct)));
        put(&format!("energy_{tag}_wh"), f(p.map(|p| p.energy_wh)));
        let cum = r.energy.as_ref().and_then(|e| e.phases[k]);
        put(&format!("cum_import_{tag}_wh"), f(cum.map(|c| c.import_wh)));
        put(&format!("cum_export_{tag}_wh"), f(cum.map(|c| c.export_wh)));
    }
    put("v_l1_l2_v", f(m.line_to_line_v[0]));
    put("v_l2_l3_v", f(m.line_to_line_v[1]));
    put("v_l3_l1_v", f(m.line_to_line_v[2]));
    put("p_total_w", Cell::F64(m.p_total_w));
    put("q1_total_var", Cell::F64(m.q1_total_var));
    put("s_total_va", Cell::F64(m.s_total_va));
    put("pf_total", f(m.pf_total));
    put("energy_total_wh", Cell::F64(m.energy_total_wh));
    put("unbalance_u2", f(m.unbalance.map(|u| u.u2)));
    put("unbalance_u0", f(m.unbalance.map(|u| u.u0)));
    put("harmonic_orders", Cell::I64(i64::from(m.harmonic_orders)));
    let energy = r.energy.as_ref();
    put("cum_import_total_wh", f(energy.map(|e| e.total.import_wh)));
    put("cum_export_total_wh", f(energy.map(|e| e.total.export_wh)));
    put("cum_measured_s", f(energy.map(|e| e.measured_s)));
    e
}

fn expected_aggregate(r: &AggregateRow) -> BTreeMap<String, Cell> {
    let a = &r.aggregate;
    let mut e: BTreeMap<String, Cell> = BTreeMap::new();
    let mut put = |k: &str, v: Cell| {
        e.insert(k.to_string(), v);
    };
    put("device", Cell::Str(r.device.name.to_string()));
    put("device_id", Cell::U64(r.device.id));
    put("measures", Cell::Str(r.device.measures.as_str().into()));
    put(
        "interval",
        Cell::Str(
            match r.kind {
                IntervalKind::Cycles150 => "3s",
                IntervalKind::TenMinutes => "10min",
                IntervalKind::Packet => "packet",
                IntervalKind::TwoHours => "2h",
            }
            .into(),
        ),
    );
    put("interval_start", Cell::Ts(a.start_unix_ns));
    put("interval_end", Cell::Ts(a.end_unix_ns));
    put("windows", Cell::I64(i64::from(a.windows)));
    put("flagged_windows", Cell::I64(i64::from(a.flagged_windows)));
    put(
        "pq_flagged_windows",
        Cell::I64(i64::from(a.pq_flagged_windows)),
    );
    for (k, tag) in ["l1", "l2", "l3"].into_iter().enumerate() {
        put(&format!("pst_{tag}"), f(a.pst[k]));
        put(&format!("plt_{tag}"), f(a.plt[k]));
    }
    put(
        "flicker_flags",
        Cell::I32(i32::from(a.flicker_flags.bits())),
    );
    put(
        "flicker_lamp_v",
        a.flicker_lamp_v
            .map_or(Cell::Null, |v| Cell::I32(i32::from(v))),
    );
    put("frequency_hz", f(a.frequency_hz.map(|s| s.value)));
    put("frequency_min_hz", f(a.frequency_hz.map(|s| s.min)));
    put("frequency_max_hz", f(a.frequency_hz.map(|s| s.max)));
    for (k, tag) in ["l1", "l2", "l3"].into_iter().enumerate() {
        let p = a.phases[k];
        for (stem, unit, stat) in [
            ("v_rms", "_v", p.map(|p| p.v_rms_v)),
            ("i_rms", "_a", p.map(|p| p.i_rms_a)),
            ("p", "_w", p.map(|p| p.p_w)),
            ("q1", "_var", p.map(|p| p.q1_var)),
            ("s", "_va", p.map(|p| p.s_va)),
        ] {
            put(&format!("{stem}_{tag}{unit}"), f(stat.map(|s| s.value)));
            put(&format!("{stem}_{tag}_min{unit}"), f(stat.map(|s| s.min)));
            put(&format!("{stem}_{tag}_max{unit}"), f(stat.map(|s| s.max)));
        }
        put(&format!("pf_{tag}"), f(p.and_then(|p| p.pf)));
        put(&format!("thd_v_{tag}_pct"), f(p.and_then(|p| p.thd_v_pct)));
        put(&format!("thd_i_{tag}_pct"), f(p.and_then(|p| p.thd_i_pct)));
        put(
            &format!("v_under_{tag}_pct"),
            f(p.and_then(|p| p.v_under_pct)),
        );
        put(
            &format!("v_over_{tag}_pct"),
            f(p.and_then(|p| p.v_over_pct)),
        );
        put(
            &format!("energy_import_{tag}_wh"),
            f(p.map(|p| p.energy.import_wh)),
        );
        put(
            &format!("energy_export_{tag}_wh"),
            f(p.map(|p| p.energy.export_wh)),
        );
    }
    for (stem, unit, stat) in [
        ("p_total", "_w", a.p_total_w),
        ("q1_total", "_var", a.q1_total_var),
        ("s_total", "_va", a.s_total_va),
    ] {
        put(&format!("{stem}{unit}"), Cell::F64(stat.value));
        put(&format!("{stem}_min{unit}"), Cell::F64(stat.min));
        put(&format!("{stem}_max{unit}"), Cell::F64(stat.max));
    }
    put("pf_total", f(a.pf_total));
    put(
        "energy_import_total_wh",
        Cell::F64(a.energy_total.import_wh),
    );
    put(
        "energy_export_total_wh",
        Cell::F64(a.energy_total.export_wh),
    );
    e
}

fn expected_event(r: &EventRow) -> BTreeMap<String, Cell> {
    let u = |x: Option<u64>| x.map_or(Cell::Null, Cell::U64);
    BTreeMap::from([
        ("time".to_string(), Cell::Ts(r.time_unix_ns)),
        ("device".to_string(), Cell::Str(r.device.name.to_string())),
        ("device_id".to_string(), Cell::U64(r.device.id)),
        (
            "measures".to_string(),
            Cell::Str(r.device.measures.as_str().into()),
        ),
        ("kind".to_string(), Cell::Str(r.kind.as_str().into())),
        ("lost_chunks".to_string(), u(r.lost_chunks)),
        ("lost_samples".to_string(), u(r.lost_samples)),
        ("bytes".to_string(), u(r.bytes)),
        ("message".to_string(), Cell::Str(r.message.clone())),
    ])
}

/// Rows of `dir` keyed by (device, time column), compared with `expected`.
fn assert_table_equals(
    dir: &Path,
    time_column: &str,
    expected: Vec<BTreeMap<String, Cell>>,
    extra_key: Option<&str>,
) {
    let key = |row: &BTreeMap<String, Cell>| {
        format!(
            "{:?}/{:?}/{:?}",
            row.get("device"),
            row.get(time_column),
            extra_key.and_then(|k| row.get(k))
        )
    };
    let names = column_names(dir);
    let expected_names: BTreeSet<String> = expected[0].keys().cloned().collect();
    assert_eq!(names, expected_names, "columns of {}", dir.display());
    let mut by_key: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    for row in &expected {
        assert!(
            by_key.insert(key(row), row.clone()).is_none(),
            "duplicate key {}",
            key(row)
        );
    }
    let got = read_rows(dir);
    assert_eq!(got.len(), expected.len(), "rows of {}", dir.display());
    for row in &got {
        let want = by_key
            .get(&key(row))
            .unwrap_or_else(|| panic!("unexpected row {}", key(row)));
        for (name, value) in want {
            assert_eq!(
                row.get(name),
                Some(value),
                "column {name} of row {}",
                key(row)
            );
        }
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn windows_read_back_equal_the_engine_values() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let devices = write_dataset(dir.path());
    let expected: Vec<_> = devices
        .iter()
        .flat_map(|d| d.windows.iter().map(expected_window))
        .collect();
    assert!(expected.len() > 30, "{} windows", expected.len());
    assert_table_equals(&dir.path().join("windows"), "window_start", expected, None);
    // The single-phase device's missing phases are null, never 0.
    let rows = read_rows(&dir.path().join("windows"));
    let single: Vec<_> = rows
        .iter()
        .filter(|r| r.get("device") == Some(&Cell::Str("meter-1p".into())))
        .collect();
    assert!(!single.is_empty());
    for row in single {
        for column in [
            "v_rms_l2_v",
            "p_l3_w",
            "thd_i_l2_pct",
            "v_l1_l2_v",
            "unbalance_u2",
            "cum_import_l3_wh",
        ] {
            assert_eq!(row.get(column), Some(&Cell::Null), "{column}");
        }
        assert!(matches!(row.get("v_rms_l1_v"), Some(Cell::F64(v)) if *v > 200.0));
    }
}

#[test]
fn aggregates_read_back_equal_the_aggregator_values() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let devices = write_dataset(dir.path());
    let expected: Vec<_> = devices
        .iter()
        .flat_map(|d| d.aggregates.iter().map(expected_aggregate))
        .collect();
    let kinds: BTreeSet<_> = devices[0]
        .aggregates
        .iter()
        .map(|a| a.kind.as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["3s", "10min", "packet"]));
    // Udin is set: every interval of a phase present has its deviations.
    assert!(devices[0].aggregates.iter().all(|a| a.aggregate.phases[0]
        .is_some_and(|p| p.v_under_pct.is_some() && p.v_over_pct.is_some())));
    assert_table_equals(
        &dir.path().join("aggregates"),
        "interval_start",
        expected,
        Some("interval"),
    );
}

#[test]
fn harmonics_hold_every_subgroup_of_every_channel() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let devices = write_dataset(dir.path());
    let mut expected = Vec::new();
    for device in &devices {
        let layout = device.info.measures.channels();
        for w in &device.windows {
            let m = &w.metrics;
            for (c, subgroups) in m.harmonic_subgroups.iter().enumerate() {
                if subgroups.is_empty() {
                    continue;
                }
                let channel = layout[c];
                let phase = m.phases[channel.phase.index()];
                let voltage = channel.name.starts_with('v');
                let thd = phase.and_then(|p| if voltage { p.thd_v_pct } else { p.thd_i_pct });
                expected.push(BTreeMap::from([
                    ("device".to_string(), Cell::Str(w.device.name.to_string())),
                    ("device_id".to_string(), Cell::U64(w.device.id)),
                    (
                        "measures".to_string(),
                        Cell::Str(w.device.measures.as_str().into()),
                    ),
                    ("window_start".to_string(), Cell::Ts(m.start_unix_ns)),
                    ("window_end".to_string(), Cell::Ts(m.end_unix_ns)),
                    ("flags".to_string(), Cell::I32(i32::from(m.flags.bits()))),
                    ("channel".to_string(), Cell::Str(channel.name.into())),
                    (
                        "quantity".to_string(),
                        Cell::Str(if voltage { "voltage" } else { "current" }.into()),
                    ),
                    ("phase".to_string(), Cell::Str(channel.phase.to_string())),
                    ("unit".to_string(), Cell::Str(channel.si_unit.into())),
                    (
                        "harmonic_orders".to_string(),
                        Cell::I64(i64::from(m.harmonic_orders)),
                    ),
                    ("thd_pct".to_string(), f(thd)),
                    ("subgroups".to_string(), Cell::List(subgroups.clone())),
                    (
                        "interharmonic_subgroups".to_string(),
                        Cell::List(m.interharmonic_subgroups[c].clone()),
                    ),
                ]));
            }
        }
    }
    // 6 channels of the three-phase device plus 2 of the single-phase one, per window.
    let windows_with_spectrum = devices
        .iter()
        .flat_map(|d| &d.windows)
        .filter(|w| w.metrics.harmonic_orders > 0)
        .count();
    assert!(expected.len() >= windows_with_spectrum * 2);
    assert!(devices[0]
        .windows
        .iter()
        .any(|w| w.metrics.harmonic_subgroups.len() == 6
            && w.metrics.harmonic_orders >= 30
            && w.metrics.harmonic_subgroups[0].len() == w.metrics.harmonic_orders as usize
            && w.metrics.interharmonic_subgroups[0].len() == w.metrics.harmonic_orders as usize));
    assert_table_equals(
        &dir.path().join("harmonics"),
        "window_start",
        expected,
        Some("channel"),
    );
}

#[test]
fn events_read_back_equal_the_rows_written() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let devices = write_dataset(dir.path());
    let expected: Vec<_> = hand_built_events(&devices[0].info)
        .iter()
        .map(expected_event)
        .collect();
    assert_table_equals(&dir.path().join("events"), "time", expected, None);
    let kinds: Vec<Cell> = read_rows(&dir.path().join("events"))
        .into_iter()
        .filter_map(|r| r.get("kind").cloned())
        .collect();
    let want: Vec<Cell> = ["connect", "gap", "resync", "meter_warning", "disconnect"]
        .into_iter()
        .map(|k| Cell::Str(k.into()))
        .collect();
    assert_eq!(kinds, want);
}

#[test]
fn every_column_type_is_portable_and_files_carry_their_metadata() {
    let mut schemas = vec![
        ("windows", windows::schema()),
        ("aggregates", aggregates::schema()),
        ("harmonics", harmonics::schema()),
        ("events", events::schema()),
    ];
    for measures in Measures::ALL {
        schemas.push(("raw", raw::schema(measures)));
    }
    for (table, schema) in &schemas {
        for field in schema.fields() {
            assert!(
                is_portable_type(field.data_type()),
                "{table}.{} has type {}",
                field.name(),
                field.data_type()
            );
            let name = field.name();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{table}.{name} is not snake_case"
            );
        }
    }
    // What was written reads back with the same, portable types and the metadata.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_dataset(dir.path());
    for (table, schema) in &schemas[..4] {
        let files = parquet_files(&dir.path().join(table));
        assert!(!files.is_empty(), "{table}");
        for path in files {
            let batches = read_file(&path);
            let read_schema = batches[0].schema();
            for (a, b) in read_schema.fields().iter().zip(schema.fields()) {
                assert_eq!(
                    (a.name(), a.data_type()),
                    (b.name(), b.data_type()),
                    "{table}"
                );
            }
            let reader =
                SerializedFileReader::new(File::open(&path).unwrap_or_else(|e| panic!("{e}")))
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
            assert_eq!(kv.get("meterflow.table"), Some(&table.to_string()));
            assert_eq!(
                kv.get("meterflow.source").map(String::as_str),
                Some("synthetic test signal")
            );
            assert_eq!(
                kv.get("meterflow.pipeline").map(String::as_str),
                Some("parquet-tests")
            );
            if *table != "events" {
                assert_eq!(
                    kv.get("meterflow.thd_max_order").map(String::as_str),
                    Some("40")
                );
                assert_eq!(
                    kv.get("meterflow.harmonic_grouping").map(String::as_str),
                    Some(meterflow::model::window::HARMONIC_GROUPING)
                );
                assert_eq!(
                    kv.get("meterflow.interharmonic_grouping")
                        .map(String::as_str),
                    Some(meterflow::model::window::INTERHARMONIC_GROUPING)
                );
            }
            // Row groups follow the configured size.
            let meta = reader.metadata();
            assert!((0..meta.num_row_groups()).all(|g| meta.row_group(g).num_rows() <= 10));
            // Row groups this small are one page per column: every chunk
            // has its min/max, and no page index repeats them.
            for group in meta.row_groups() {
                for chunk in group.columns() {
                    assert!(chunk.statistics().is_some(), "{table}: {chunk:?}");
                    assert!(chunk.column_index_offset().is_none(), "{table}");
                }
            }
        }
    }
}
