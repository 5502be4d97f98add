//! NDJSON files: rotation by size and age leaves only complete files (every
//! line a whole packet), none under its final name while being written, and
//! a crash's partial file is completed on the next start.

use std::fs;
use std::path::Path;
use std::time::Duration;

use meterflow::sink::packet::{Deliverer, DeliveryConfig, NdjsonConfig, NdjsonWriter, SpoolConfig};
use serde_json::Value;

fn packet(n: usize) -> Vec<u8> {
    format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(100)).into_bytes()
}

fn files(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut partial = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".ndjson") {
            done.push(name);
        } else {
            partial.push(name);
        }
    }
    done.sort();
    partial.sort();
    (done, partial)
}

/// Every line of every finished file, in file order, as packet numbers.
fn numbers(dir: &Path, names: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for name in names {
        let text = fs::read_to_string(dir.join(name)).unwrap();
        assert!(text.ends_with('\n'), "{name} ends mid-line");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push(v["n"].as_u64().unwrap());
        }
    }
    out
}

#[test]
fn size_rotation_leaves_only_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NdjsonConfig::new(dir.path());
    config.max_file_bytes = 1000; // ~8 packets per file
    let mut w = NdjsonWriter::new(config).unwrap();
    for n in 0..50 {
        w.write_packet(&packet(n)).unwrap();
        // While writing, the open file is never under a final name.
        let (done, partial) = files(dir.path());
        assert!(partial.len() <= 1 && partial.iter().all(|p| p.ends_with(".ndjson.partial")));
        for name in &done {
            let text = fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.ends_with('\n'));
        }
    }
    w.close_current().unwrap();
    let (done, partial) = files(dir.path());
    assert!(partial.is_empty(), "left behind: {partial:?}");
    assert!(done.len() >= 6, "rotated into {} files", done.len());
    assert_eq!(numbers(dir.path(), &done), (0..50).collect::<Vec<_>>());
}

#[test]
fn age_rotation_closes_old_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NdjsonConfig::new(dir.path());
    config.max_file_age_secs = 0; // every write finds the previous file too old
    let mut w = NdjsonWriter::new(config).unwrap();
    w.write_packet(&packet(0)).unwrap();
    w.write_packet(&packet(1)).unwrap();
    w.rotate_if_old().unwrap();
    let (done, partial) = files(dir.path());
    assert!(partial.is_empty());
    assert_eq!(done.len(), 2);
    assert_eq!(numbers(dir.path(), &done), [0, 1]);
}

#[test]
fn partial_file_from_a_crash_is_completed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let torn = dir
        .path()
        .join("packets-20260101T000000.000Z-0001.ndjson.partial");
    let mut content = packet(0);
    content.push(b'\n');
    content.extend_from_slice(b"{\"n\":1,\"pa");
    fs::write(&torn, content).unwrap();
    let w = NdjsonWriter::new(NdjsonConfig::new(dir.path())).unwrap();
    drop(w);
    let (done, partial) = files(dir.path());
    assert!(partial.is_empty());
    assert_eq!(done, ["packets-20260101T000000.000Z-0001.ndjson"]);
    assert_eq!(numbers(dir.path(), &done), [0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliverer_writes_ndjson_and_closes_on_shutdown() {
    let out = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut ndjson = NdjsonConfig::new(out.path());
    ndjson.max_file_bytes = 600;
    let config = DeliveryConfig {
        ndjson: Some(ndjson),
        spool: SpoolConfig {
            dir: spool.path().to_path_buf(),
            ..SpoolConfig::default()
        },
        ..DeliveryConfig::default()
    };
    let d = Deliverer::start(&config, uuid::Uuid::nil()).unwrap();
    for n in 0..20 {
        d.send_serialized(packet(n).into()).unwrap();
    }
    let stats = d.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(stats[0].delivered, 20);
    assert_eq!(stats[0].spooled, 0);
    let (done, partial) = files(out.path());
    assert!(partial.is_empty(), "{partial:?}");
    assert_eq!(numbers(out.path(), &done), (0..20).collect::<Vec<_>>());
}
