//! Telemetry through a whole pipeline into the outputs: the `readings`
//! table read back, the `tel_mppt` dataset against its spec, and the
//! BetterFleet packets the readings become. Inputs are the small files in
//! testdata/telemetry; expected values are the facts page's and the MPPT
//! spec's, or hand computations noted beside them. Numbers that went
//! through one unit factor are compared within 1e-12 relative.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::parquet_read::{column_names, parquet_files, read_file, read_rows, Cell};
use meterflow::model::identity::name_uuid;
use meterflow::model::run_report::RunReport;
use meterflow::pipeline::config::{PipelineConfig, SourceConfig};
use meterflow::pipeline::telemetry::start_telemetry;
use meterflow::sink::packet::Packet;
use meterflow::sink::parquet::is_portable_type;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

const REL_TOL: f64 = 1e-12;
/// 2024-05-01T12:00:00Z: what the rtl_433 file's relative times count from.
const T0_NS: i64 = 1_714_564_800_000_000_000;
/// 2019-02-09T08:00:06.032Z = the spec body's 20190209T150006.032+0700.
const SPEC_EVENT_NS: i64 = 1_549_699_206_032_000_000;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/telemetry")
        .join(name)
}

/// Runs a telemetry pipeline (file inputs only, so it ends by itself)
/// writing Parquet and NDJSON packets under `out`.
async fn run(out: &Path, source: &str) -> RunReport {
    let text = format!(
        "name = \"telemetry-test\"\n[source]\nkind = \"telemetry\"\n{source}\n\
         [sink.parquet]\nout = {:?}\nfsync = false\n\
         [sink.packets.build]\ndevice_id = \"00000000-0000-0000-0000-000000000042\"\n\
         [sink.packets.targets.ndjson]\ndir = {:?}\n\
         [sink.packets.targets.spool]\ndir = {:?}\n",
        out.join("parquet"),
        out.join("packets"),
        out.join("spool"),
    );
    let config = PipelineConfig::parse(&text).unwrap();
    assert!(matches!(config.source, SourceConfig::Telemetry(_)));
    let run = start_telemetry(&config, CancellationToken::new())
        .await
        .unwrap();
    let report = run.finish().await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
}

fn all_testdata() -> String {
    format!(
        "[[source.rtl433]]\nfile = {:?}\ntime_zone = \"UTC\"\nrelative_start = \"2024-05-01T12:00:00Z\"\n\
         [source.mppt]\nfiles = [{:?}]\nreplay_sender = \"S000\"\n\
         [source.airlink]\nfiles = [{{ path = {:?} }}, {{ path = {:?}, resource = \"batt\", device = \"BD:DD:EE:FF:AA:BB\" }}]\n",
        testdata("rtl433.jsonl"),
        testdata("mppt_body.json"),
        testdata("airlink_thingsboard.jsonl"),
        testdata("batt.cbor"),
    )
}

fn f64_of(cell: &Cell) -> f64 {
    match cell {
        Cell::F64(v) => *v,
        other => panic!("not a float: {other:?}"),
    }
}

fn close(a: f64, e: f64) -> bool {
    (a - e).abs() <= REL_TOL * e.abs().max(1.0)
}

fn s(text: &str) -> Cell {
    Cell::Str(text.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_table_reads_back() {
    let out = TempDir::new().unwrap();
    let report = run(out.path(), &all_testdata()).await;
    // 20 rtl_433 + 5 MPPT + 10 AirLink readings.
    assert_eq!(report.output_total("parquet", "rows.readings"), 35);
    let dir = out.path().join("parquet/readings");
    assert!(dir
        .join("device=Revolt-NC5462_id545/date=2024-05-01/part-00000.parquet")
        .is_file());
    assert!(dir
        .join("device=BD%3ADD%3AEE%3AFF%3AAA%3ABB/date=2024-05-01/part-00000.parquet")
        .is_file());
    assert!(dir
        .join("device=IT6415AD-01-001/date=2019-02-09/part-00000.parquet")
        .is_file());
    let expected_columns: BTreeSet<String> = [
        "time",
        "span_start",
        "device",
        "source",
        "model",
        "key",
        "value",
        "text",
        "flag",
        "unit",
        "standard_key",
    ]
    .map(String::from)
    .into();
    assert_eq!(column_names(&dir), expected_columns);
    for file in parquet_files(&dir) {
        for field in read_file(&file)[0].schema().fields() {
            assert!(is_portable_type(field.data_type()), "{}", field.name());
        }
    }
    let rows = read_rows(&dir);
    assert_eq!(rows.len(), 35);
    let find = |device: &str, key: &str| {
        rows.iter()
            .find(|r| r["device"] == s(device) && r["key"] == s(key))
            .unwrap_or_else(|| panic!("{device} {key}"))
    };
    let power = find("Revolt-NC5462_id545", "power_W");
    assert!(close(f64_of(&power["value"]), 53.3));
    assert_eq!(power["unit"], s("W"));
    assert_eq!(power["standard_key"], s("TOTAL_POWER_LOAD"));
    assert_eq!(power["source"], s("rtl_433"));
    assert_eq!(power["model"], s("Revolt-NC5462"));
    assert_eq!(power["time"], Cell::Ts(T0_NS + 761_732_000));
    assert_eq!(power["text"], Cell::Null);
    let energy = find("Revolt-NC5462_id545", "energy_Wh");
    assert!(close(f64_of(&energy["value"]), 307_120.0));
    let mic = find("ESIC-EMT7110_id627725447", "mic");
    assert_eq!(
        (mic["text"].clone(), mic["value"].clone()),
        (s("CHECKSUM"), Cell::Null)
    );
    let charging = find("BD:DD:EE:FF:AA:BB", "battery_charging");
    assert_eq!(charging["text"], s("discharging"));
    // 360 dWh over the hour that began 60 min before ts 1714564860 s.
    let window = find("BD:DD:EE:FF:AA:BB", "output_energy_Wh");
    assert!(close(f64_of(&window["value"]), 36.0));
    assert_eq!(window["time"], Cell::Ts(1_714_564_860_000_000_000));
    assert_eq!(window["span_start"], Cell::Ts(1_714_561_260_000_000_000));
    let load = find("IT6415AD-01-001", "load_power_W");
    assert!(close(f64_of(&load["value"]), 115.2));
    assert_eq!(load["time"], Cell::Ts(SPEC_EVENT_NS));
    // Rows of one device file are in time order.
    for file in parquet_files(&dir) {
        let rows = read_rows(file.parent().unwrap());
        let times: Vec<&Cell> = rows.iter().map(|r| &r["time"]).collect();
        let mut sorted = times.clone();
        sorted.sort_by_key(|c| match c {
            Cell::Ts(t) => *t,
            _ => 0,
        });
        assert_eq!(times, sorted, "{}", file.display());
    }
}

/// The `tel_mppt` columns the spec's dataset structure defines, flattened.
fn tel_mppt_columns() -> Vec<String> {
    let mut columns = vec!["mppt_id".to_owned()];
    let channel = |prefix: String| ["volts", "amps", "watts"].map(|q| format!("{prefix}.{q}"));
    for n in 0..4 {
        columns.extend(channel(format!("pv[{n}]")));
    }
    columns.extend(channel("battery".to_owned()));
    for n in 0..2 {
        columns.extend(channel(format!("load[{n}]")));
    }
    for status in [
        "bus_connect",
        "input",
        "chgfet",
        "chgfet_antirev",
        "fet_antirev",
        "input_current",
        "load",
        "pv_input",
        "charging",
        "system",
        "standby",
    ] {
        columns.push(format!("status.{status}"));
    }
    columns.extend(["sender", "time_event", "time_zone", "time_processing"].map(String::from));
    columns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tel_mppt_dataset_matches_the_spec() {
    let out = TempDir::new().unwrap();
    // The spec's body, and a second body with two controllers out of
    // order (B before A) and three PV channels, on the same day.
    let two = out.path().join("two.json");
    std::fs::write(
        &two,
        r#"{"datasets":[
          {"mppt":{"id":"IT-B"},"data":[{"time_local":"20190209T100000.000+0000",
            "pv":{"volts":[40.1,40.2,40.3],"amps":[1.5,1.5,1.5]},"battery":{"volts":51.3,"amps":-2.25},
            "load":{"volts":[48.0],"amps":[0.333]},"status":"0801"}]},
          {"mppt":{"id":"IT-A"},"data":[{"time_local":"20190209T110000.000+0100",
            "pv":{"volts":[40.0],"amps":[2.0]},"battery":{"volts":52.0,"amps":1.0},
            "load":{"volts":[48.0,47.0],"amps":[0.5,0.25]},"status":"2001"}]}]}"#,
    )
    .unwrap();
    let before = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    run(
        out.path(),
        &format!(
            "[source.mppt]\nfiles = [{:?}, {:?}]\nreplay_sender = \"S000\"\n",
            testdata("mppt_body.json"),
            two
        ),
    )
    .await;
    let after = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let dir = out.path().join("parquet/tel_mppt");
    // Partitioned by the date of time_event only; one flush, one file.
    let files = parquet_files(&dir);
    assert_eq!(files, [dir.join("date=2019-02-09/part-00000.parquet")]);
    let schema = read_file(&files[0])[0].schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, tel_mppt_columns());
    let rows = read_rows(&dir);
    let ids: Vec<&Cell> = rows.iter().map(|r| &r["mppt_id"]).collect();
    assert_eq!(ids, [&s("IT-A"), &s("IT-B"), &s("IT6415AD-01-001")]);

    // The spec's example row (see telemetry_adapters.rs for where the
    // spec's printed example disagrees with its own request).
    let spec = &rows[2];
    for (column, value) in [
        ("pv[0].volts", 48.0),
        ("pv[0].amps", 6.0),
        ("pv[0].watts", 288.0),
        ("pv[1].volts", 48.0),
        ("pv[1].amps", 6.0),
        ("pv[1].watts", 288.0),
        ("battery.volts", 55.1),
        ("battery.amps", 0.0),
        ("battery.watts", 0.0),
        ("load[0].volts", 48.0),
        ("load[0].amps", 1.2),
        ("load[0].watts", 57.6),
        ("load[1].volts", 48.0),
        ("load[1].amps", 1.2),
        ("load[1].watts", 57.6),
    ] {
        assert!(
            close(f64_of(&spec[column]), value),
            "{column}: {:?}",
            spec[column]
        );
    }
    for column in ["pv[2].volts", "pv[2].watts", "pv[3].amps"] {
        assert_eq!(spec[column], Cell::Null, "{column}");
    }
    // "1A79" by the facts page's bit table (hand decoded).
    let status: BTreeMap<&str, Cell> = [
        ("status.bus_connect", Cell::Bool(true)),
        ("status.input", s("normal")),
        ("status.chgfet", s("short")),
        ("status.chgfet_antirev", s("short")),
        ("status.fet_antirev", s("short")),
        ("status.input_current", s("overcurrent")),
        ("status.load", s("ok")),
        ("status.pv_input", s("short")),
        ("status.charging", s("float")),
        ("status.system", s("fault")),
        ("status.standby", s("standby")),
    ]
    .into();
    for (column, value) in &status {
        assert_eq!(&spec[*column], value, "{column}");
    }
    assert_eq!(spec["sender"], s("S000"));
    assert_eq!(spec["time_event"], Cell::Ts(SPEC_EVENT_NS));
    assert_eq!(spec["time_zone"], s("+07:00"));
    match spec["time_processing"] {
        Cell::Ts(t) => assert!((before..=after).contains(&t), "{t}"),
        ref other => panic!("{other:?}"),
    }

    // Hand-computed: 40.1 × 1.5 = 60.15; 51.3 × -2.25 = -115.425;
    // 48 × 0.333 = 15.984; A: 47 × 0.25 = 11.75; "2001" → running.
    let b = &rows[1];
    assert!(close(f64_of(&b["pv[0].watts"]), 60.15));
    assert!(close(f64_of(&b["pv[2].volts"]), 40.3));
    assert_eq!(b["pv[3].volts"], Cell::Null);
    assert!(close(f64_of(&b["battery.watts"]), -115.425));
    assert!(close(f64_of(&b["load[0].watts"]), 15.984));
    assert_eq!(b["load[1].volts"], Cell::Null);
    assert_eq!(b["time_zone"], s("+00:00"));
    assert_eq!(b["status.standby"], s("standby"));
    let a = &rows[0];
    assert!(close(f64_of(&a["load[1].watts"]), 11.75));
    assert_eq!(a["status.standby"], s("running"));
    assert_eq!(a["time_zone"], s("+01:00"));
    // 11:00+01:00 is the same instant as B's 10:00Z.
    assert_eq!(a["time_event"], b["time_event"]);
}

fn packets(dir: &Path) -> Vec<Packet> {
    common::ndjson::packets(dir)
        .into_iter()
        .map(|p| serde_json::from_value(p).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_become_packets() {
    let out = TempDir::new().unwrap();
    let report = run(out.path(), &all_testdata()).await;
    let packets = packets(&out.path().join("packets"));
    assert_eq!(
        report.output_total("packets", "built"),
        packets.len() as u64
    );
    // key → (value, ms) per sensor; a sensor is in at most one object per packet.
    let mut sensors: BTreeMap<uuid::Uuid, BTreeMap<String, (serde_json::Value, i64)>> =
        BTreeMap::new();
    for packet in &packets {
        assert_eq!(packet.device_id.as_u128(), 0x42);
        let ids: BTreeSet<_> = packet.sensors.iter().map(|s| s.sensor_id).collect();
        assert_eq!(
            ids.len(),
            packet.sensors.len(),
            "a sensor twice in one packet"
        );
        for sensor in &packet.sensors {
            let entry = sensors.entry(sensor.sensor_id).or_default();
            for m in &sensor.measurands {
                entry.insert(
                    m.key.clone(),
                    (serde_json::to_value(&m.value).unwrap(), m.timestamp),
                );
            }
        }
    }
    let value = |device: &str, key: &str| {
        let sensor = sensors
            .get(&name_uuid(device))
            .unwrap_or_else(|| panic!("no sensor for {device}"));
        sensor
            .get(key)
            .unwrap_or_else(|| panic!("{device}: no {key} in {:?}", sensor.keys()))
            .clone()
    };
    let num = |device: &str, key: &str| value(device, key).0.as_f64().unwrap();
    assert!(close(num("Revolt-NC5462_id545", "TOTAL_POWER_LOAD"), 53.3));
    assert!(close(
        num("Revolt-NC5462_id545", "TOTAL_POWER_FACTOR"),
        0.88
    ));
    assert!(close(
        num("Revolt-NC5462_id545", "ACTIVE_ENERGY_IMPORTED"),
        307_120.0
    ));
    assert_eq!(
        value("Revolt-NC5462_id545", "VOLTAGE").1,
        T0_NS / 1_000_000 + 761
    );
    assert!(close(
        num("CurrentCost-TX_id3447", "TOTAL_POWER_LOAD"),
        2352.0
    ));
    // MPPT: load 2 × 57.6 W is the total load; PV 2 × 288 W and the
    // battery pass through.
    assert!(close(num("IT6415AD-01-001", "TOTAL_POWER_LOAD"), 115.2));
    assert!(close(num("IT6415AD-01-001", "Pv_Power_W"), 576.0));
    assert!(close(num("IT6415AD-01-001", "Battery_Voltage_V"), 55.1));
    assert!(close(num("IT6415AD-01-001", "Battery_Power_W"), 0.0));
    assert_eq!(value("IT6415AD-01-001", "Charging").0, "float");
    assert_eq!(
        value("IT6415AD-01-001", "TOTAL_POWER_LOAD").1,
        SPEC_EVENT_NS / 1_000_000
    );
    // AirLink: cp → SOC, dW → W, cA → A, mV → V.
    let lamp = "BD:DD:EE:FF:AA:BB";
    assert!(close(num(lamp, "SOC"), 80.0));
    assert!(close(num(lamp, "TOTAL_POWER_LOAD"), 18.0));
    assert!(close(num(lamp, "CURRENT"), 1.5));
    assert!(close(num(lamp, "VOLTAGE"), 12.0));
    assert!(close(num(lamp, "Battery_Voltage_V"), 12.6));
    assert_eq!(value(lamp, "SERIAL_NUMBER").0, lamp);
}

#[test]
fn the_command_line_reads_rtl433_from_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let out = TempDir::new().unwrap();
    let pipeline = out.path().join("stdin.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"stdin\"\n[source]\nkind = \"telemetry\"\n\
             [[source.rtl433]]\nstdin = true\ntime_zone = \"UTC\"\n\
             [sink.parquet]\nout = {:?}\nfsync = false\n",
            out.path().join("parquet")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .arg("run")
        .arg(&pipeline)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::fs::read_to_string(testdata("rtl433.jsonl")).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    // stdin closed: the input ends, the outputs are flushed, the run ends.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("meterflow did not end after stdin closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rtl = stdout
        .lines()
        .find(|l| l.starts_with("rtl_433"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let counts: Vec<&str> = rtl.split_whitespace().collect();
    assert_eq!(counts, ["rtl_433", "4", "2", "20"], "{stdout}");
    let rows = read_rows(&out.path().join("parquet/readings"));
    assert_eq!(rows.len(), 20);
}
