//! Reading a dataset's rows back per device, and the checks on windows
//! every fault test makes.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::ndjson::packets;
use super::parquet_read::{read_rows, Cell};

pub type Row = BTreeMap<String, Cell>;

pub fn ts(row: &Row, column: &str) -> i64 {
    match row[column] {
        Cell::Ts(t) => t,
        ref other => panic!("{column} is {other:?}"),
    }
}

pub fn num(row: &Row, column: &str) -> f64 {
    match row[column] {
        Cell::F64(x) => x,
        ref other => panic!("{column} is {other:?}"),
    }
}

pub fn text(row: &Row, column: &str) -> String {
    match &row[column] {
        Cell::Str(s) => s.clone(),
        other => panic!("{column} is {other:?}"),
    }
}

/// Rows of a table per device, by `order` column.
pub fn by_device(dir: &Path, order: &str) -> BTreeMap<String, Vec<Row>> {
    let mut devices: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    if dir.exists() {
        for row in read_rows(dir) {
            devices.entry(text(&row, "device")).or_default().push(row);
        }
    }
    for rows in devices.values_mut() {
        rows.sort_by_key(|r| ts(r, order));
    }
    devices
}

pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.to_string_lossy().ends_with(".tmp") {
                found.push(path);
            }
        }
    }
    found
}

/// Every window once; consecutive windows touch except at the allowed gaps.
/// Returns the gaps (end of one window, start of the next), ns.
pub fn check_windows(device: &str, rows: &[Row]) -> Vec<(i64, i64)> {
    let starts: BTreeSet<i64> = rows.iter().map(|r| ts(r, "window_start")).collect();
    assert_eq!(starts.len(), rows.len(), "{device}: a window appears twice");
    let mut gaps = Vec::new();
    for pair in rows.windows(2) {
        let (end, next) = (ts(&pair[0], "window_end"), ts(&pair[1], "window_start"));
        if next != end {
            gaps.push((end, next));
        }
    }
    gaps
}

/// Every packet interval in the dataset `out` left as a packet in the NDJSON
/// files of `packets_dir`, and no two different packets share an identity
/// (duplicates of one identity are allowed, loss is not). Returns how many
/// packet intervals there were.
pub fn check_packets_cover_intervals(packets_dir: &Path, out: &Path) -> usize {
    let mut sent: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut identities: BTreeMap<(String, i64), serde_json::Value> = BTreeMap::new();
    for packet in packets(packets_dir) {
        let id = (
            packet["device_id"].to_string(),
            packet["timestamp"].as_i64().unwrap(),
        );
        if let Some(known) = identities.get(&id) {
            assert_eq!(
                known, &packet,
                "two different packets share the identity {id:?}"
            );
        }
        for sensor in packet["sensors"].as_array().unwrap() {
            for m in sensor["measurands"].as_array().unwrap() {
                if m["key"] == "SERIAL_NUMBER" {
                    sent.insert((
                        m["value"].as_str().unwrap().to_string(),
                        m["timestamp"].as_i64().unwrap(),
                    ));
                }
            }
        }
        identities.insert(id, packet);
    }
    let aggregates = by_device(&out.join("aggregates"), "interval_start");
    let mut intervals = 0;
    for (device, rows) in &aggregates {
        for row in rows.iter().filter(|r| text(r, "interval") == "packet") {
            intervals += 1;
            let end_ms = ts(row, "interval_end").div_euclid(1_000_000);
            assert!(
                sent.iter()
                    .any(|(serial, t)| serial.contains(device.as_str()) && *t == end_ms),
                "{device}: no packet for the interval ending {end_ms}"
            );
        }
    }
    intervals
}

/// The import register of the first window after a hole (starting at `to`)
/// equals the one before it plus that window's energy (1e-9 relative): the
/// registers continued from the last durable window.
pub fn check_energy_continues(device: &str, rows: &[Row], to: i64) {
    let after = rows
        .iter()
        .position(|r| ts(r, "window_start") == to)
        .unwrap_or_else(|| panic!("{device}: no window starts at {to}"));
    let (before, first) = (&rows[after - 1], &rows[after]);
    let expected = num(before, "cum_import_total_wh") + num(first, "energy_total_wh").max(0.0);
    assert!(
        (num(first, "cum_import_total_wh") - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{device}: import register {} after the hole, {} expected",
        num(first, "cum_import_total_wh"),
        expected
    );
}
