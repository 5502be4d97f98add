//! Packet building: the JSON for a known input, the 16 circuit keys, nulls
//! for missing and non-finite values, splitting, passthrough keys, ids.

use meterflow::model::identity::name_uuid;
use meterflow::model::{CircuitReading, SensorInfo, SensorInterval};
use meterflow::sink::packet::{
    title_case_key, DeliveryConfig, GatewayIdentity, PacketBuilder, PacketConfig,
};
use serde_json::{json, Value};
use uuid::Uuid;

/// Numbers are compared with this relative tolerance (values pass through
/// f64 and JSON unchanged, so only float formatting could differ).
const REL_TOL: f64 = 1e-12;

/// Asserts `actual` equals `expected`: same shape, same strings, numbers
/// within [`REL_TOL`]; `path` names the place of a mismatch.
fn assert_json_close(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) => {
            let (a, e) = (a.as_f64().unwrap(), e.as_f64().unwrap());
            let tol = REL_TOL * e.abs().max(1.0);
            assert!((a - e).abs() <= tol, "{path}: {a} != {e}");
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{path}: array length");
            for (i, (a, e)) in a.iter().zip(e).enumerate() {
                assert_json_close(a, e, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(e)) => {
            let mut ak: Vec<_> = a.keys().collect();
            let mut ek: Vec<_> = e.keys().collect();
            ak.sort();
            ek.sort();
            assert_eq!(ak, ek, "{path}: keys");
            for (k, e) in e {
                assert_json_close(&a[k], e, &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

fn gateway() -> GatewayIdentity {
    GatewayIdentity {
        device_id: Uuid::parse_str("331db959-569d-4469-ae22-33e724bf4b1d").unwrap(),
        manufacturer: Some("meterflow".into()),
        model: Some("meterflow".into()),
        serial_number: Some("gw-host".into()),
        firmware: Some("0.1.0".into()),
    }
}

fn known_interval() -> SensorInterval {
    SensorInterval {
        meter_name: "meter-01".into(),
        info: SensorInfo {
            model: "smartmeter".into(),
            firmware: "1.2.3".into(),
            manufacturer: None,
        },
        interval_end_ms: 1_754_953_373_308,
        circuit: CircuitReading {
            current_a: Some(30.25),
            frequency_hz: Some(50.01),
            voltage_v: Some(230.1),
            line_voltage_v: Some(398.55),
            total_power_w: Some(6900.5),
            total_reactive_var: Some(-120.75),
            total_apparent_va: Some(6960.0),
            total_power_factor: Some(0.9914),
            thd_v_pct: [Some(1.5), Some(1.75), None],
            thd_i_pct: [Some(12.5), None, Some(f64::NAN)],
            energy_imported_wh: Some(123456.789),
            energy_exported_wh: Some(0.0),
        },
        passthrough: vec![
            ("inverter_temperature".into(), json!(41.5)),
            ("battery ok".into(), json!("yes")),
        ],
    }
}

#[test]
fn known_input_gives_the_hand_written_packet() {
    let config = PacketConfig {
        sensor_manufacturer: Some("ACME Meters".into()),
        ..PacketConfig::default()
    };
    let builder = PacketBuilder::with_gateway(&config, gateway()).unwrap();
    let packets = builder.build(&[known_interval()], 1_754_953_373_315);
    assert_eq!(packets.len(), 1);
    let actual: Value = serde_json::from_slice(&serde_json::to_vec(&packets[0]).unwrap()).unwrap();

    let t = 1_754_953_373_308_i64;
    // sensor_id = UUIDv5("meter-01") in the namespace UUIDv5(DNS, "meterflow"),
    // computed independently (Python's uuid module).
    let expected = json!({
        "device_id": "331db959-569d-4469-ae22-33e724bf4b1d",
        "timestamp": 1_754_953_373_315_i64,
        "manufacturer": "meterflow",
        "model": "meterflow",
        "serial_number": "gw-host",
        "firmware": "0.1.0",
        "sensors": [{
            "sensor_id": "44104f78-851f-5fc6-874e-ad7c891daac5",
            "measurands": [
                { "key": "CURRENT", "value": 30.25, "timestamp": t },
                { "key": "FREQUENCY", "value": 50.01, "timestamp": t },
                { "key": "VOLTAGE", "value": 230.1, "timestamp": t },
                { "key": "LINE_VOLTAGE", "value": 398.55, "timestamp": t },
                { "key": "TOTAL_POWER_LOAD", "value": 6900.5, "timestamp": t },
                { "key": "TOTAL_REACTIVE_POWER", "value": -120.75, "timestamp": t },
                { "key": "TOTAL_APPARENT_POWER", "value": 6960.0, "timestamp": t },
                { "key": "TOTAL_POWER_FACTOR", "value": 0.9914, "timestamp": t },
                { "key": "PHASE_1N_VOLTAGE_THD", "value": 1.5, "timestamp": t },
                { "key": "PHASE_2N_VOLTAGE_THD", "value": 1.75, "timestamp": t },
                { "key": "PHASE_3N_VOLTAGE_THD", "value": null, "timestamp": t },
                { "key": "PHASE_1_CURRENT_THD", "value": 12.5, "timestamp": t },
                { "key": "PHASE_2_CURRENT_THD", "value": null, "timestamp": t },
                { "key": "PHASE_3_CURRENT_THD", "value": null, "timestamp": t },
                { "key": "ACTIVE_ENERGY_EXPORTED", "value": 0.0, "timestamp": t },
                { "key": "ACTIVE_ENERGY_IMPORTED", "value": 123456.789, "timestamp": t },
                { "key": "MANUFACTURER", "value": "ACME Meters", "timestamp": t },
                { "key": "MODEL", "value": "smartmeter", "timestamp": t },
                { "key": "SERIAL_NUMBER", "value": "meter-01", "timestamp": t },
                { "key": "FIRMWARE", "value": "1.2.3", "timestamp": t },
                { "key": "Inverter_Temperature", "value": 41.5, "timestamp": t },
                { "key": "Battery Ok", "value": "yes", "timestamp": t }
            ]
        }]
    });
    assert_json_close(&actual, &expected, "packet");
}

const CIRCUIT_KEYS: [&str; 16] = [
    "CURRENT",
    "FREQUENCY",
    "VOLTAGE",
    "LINE_VOLTAGE",
    "TOTAL_POWER_LOAD",
    "TOTAL_REACTIVE_POWER",
    "TOTAL_APPARENT_POWER",
    "TOTAL_POWER_FACTOR",
    "PHASE_1N_VOLTAGE_THD",
    "PHASE_2N_VOLTAGE_THD",
    "PHASE_3N_VOLTAGE_THD",
    "PHASE_1_CURRENT_THD",
    "PHASE_2_CURRENT_THD",
    "PHASE_3_CURRENT_THD",
    "ACTIVE_ENERGY_EXPORTED",
    "ACTIVE_ENERGY_IMPORTED",
];

fn builder() -> PacketBuilder {
    PacketBuilder::with_gateway(&PacketConfig::default(), gateway()).unwrap()
}

fn measurands(packet_json: &Value) -> &Vec<Value> {
    packet_json["sensors"][0]["measurands"].as_array().unwrap()
}

#[test]
fn all_16_circuit_keys_present_and_null_when_unknown() {
    let empty = SensorInterval {
        meter_name: "quiet".into(),
        ..SensorInterval::default()
    };
    let json = serde_json::to_value(&builder().build(&[empty], 1)[0]).unwrap();
    let ms = measurands(&json);
    for key in CIRCUIT_KEYS {
        let m = ms
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("{key} missing"));
        assert!(
            m["value"].is_null(),
            "{key} should be null, is {}",
            m["value"]
        );
        assert!(
            m.as_object().unwrap().contains_key("value"),
            "{key}: value written"
        );
    }
    // No manufacturer configured or given: omitted, not null.
    assert!(ms.iter().all(|m| m["key"] != "MANUFACTURER"));
    for key in ["MODEL", "SERIAL_NUMBER", "FIRMWARE"] {
        assert!(ms.iter().any(|m| m["key"] == key), "{key} missing");
    }
}

#[test]
fn nan_and_infinite_become_null_never_a_number() {
    let mut input = known_interval();
    input.circuit.total_power_w = Some(f64::NAN);
    input.circuit.frequency_hz = Some(f64::INFINITY);
    input.circuit.voltage_v = Some(f64::NEG_INFINITY);
    let text = serde_json::to_string(&builder().build(&[input], 1)[0]).unwrap();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    for key in ["TOTAL_POWER_LOAD", "FREQUENCY", "VOLTAGE"] {
        let m = measurands(&json).iter().find(|m| m["key"] == key).unwrap();
        assert!(m["value"].is_null(), "{key}");
    }
}

#[test]
fn more_than_100_sensors_split_over_packets() {
    let sensors: Vec<_> = (0..250)
        .map(|i| SensorInterval {
            meter_name: format!("m{i:03}"),
            interval_end_ms: 5_000,
            ..SensorInterval::default()
        })
        .collect();
    let packets = builder().build(&sensors, 7_000);
    let sizes: Vec<_> = packets.iter().map(|p| p.sensors.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    // Same gateway on every part, every sensor exactly once, in order; part
    // k is stamped 7000 + k ms, so each part has its own (device id,
    // timestamp) identity and a rebuilt part the same one.
    let all: Vec<Uuid> = packets
        .iter()
        .flat_map(|p| p.sensors.iter().map(|s| s.sensor_id))
        .collect();
    let want: Vec<Uuid> = (0..250).map(|i| name_uuid(&format!("m{i:03}"))).collect();
    assert_eq!(all, want);
    let stamps: Vec<i64> = packets.iter().map(|p| p.timestamp).collect();
    assert_eq!(stamps, [7_000, 7_001, 7_002]);
    assert!(packets.iter().all(|p| p.device_id == gateway().device_id));

    assert_eq!(
        builder().build(&sensors[..100], 1).len(),
        1,
        "exactly 100: one packet"
    );
    assert!(builder().build(&[], 1).is_empty(), "no sensors: no packet");

    let small = PacketConfig {
        max_sensors_per_packet: Some(7),
        ..PacketConfig::default()
    };
    let b = PacketBuilder::with_gateway(&small, gateway()).unwrap();
    assert_eq!(b.build(&sensors[..15], 1).len(), 3);
}

#[test]
fn passthrough_keys_are_title_cased_and_never_collide() {
    assert_eq!(
        title_case_key("inverter_temperature"),
        "Inverter_Temperature"
    );
    assert_eq!(title_case_key("battery ok"), "Battery Ok");
    assert_eq!(title_case_key("PV-input.voltage"), "Pv-Input.Voltage");

    let mut input = known_interval();
    input.passthrough = vec![
        ("current".into(), json!(1)),
        ("SOC".into(), json!(2)),
        ("battery_ok".into(), json!(true)),
        ("BATTERY_OK".into(), json!(false)),
    ];
    let json = serde_json::to_value(&builder().build(&[input], 1)[0]).unwrap();
    let ms = measurands(&json);
    let keys: Vec<&str> = ms.iter().map(|m| m["key"].as_str().unwrap()).collect();
    assert_eq!(
        &keys[keys.len() - 4..],
        ["Current", "Soc", "Battery_Ok", "Battery_Ok_2"]
    );
    // Keys are unique within a sensor, and the standard CURRENT kept its value.
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len());
    let current: Vec<_> = ms.iter().filter(|m| m["key"] == "CURRENT").collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["value"], json!(30.25));
    assert_eq!(
        ms[ms.len() - 2]["value"],
        json!(true),
        "passthrough values unchanged"
    );
}

#[test]
fn uuids_are_stable_v5_or_configured() {
    let ns = Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"meterflow");
    assert_eq!(name_uuid("meter-01"), Uuid::new_v5(&ns, b"meter-01"));
    assert_eq!(
        name_uuid("meter-01").to_string(),
        "44104f78-851f-5fc6-874e-ad7c891daac5"
    );
    assert_eq!(name_uuid("meter-01").get_version_num(), 5);

    // Gateway: UUIDv5 of the host name unless configured.
    let g = GatewayIdentity::for_host(None, "gw-host");
    assert_eq!(
        g.device_id.to_string(),
        "5e789994-8758-5849-a9f3-35a9af010938"
    );
    assert_eq!(g.serial_number.as_deref(), Some("gw-host"));
    let fixed = Uuid::parse_str("331db959-569d-4469-ae22-33e724bf4b1d").unwrap();
    assert_eq!(
        GatewayIdentity::for_host(Some(fixed), "gw-host").device_id,
        fixed
    );
    let a = PacketBuilder::new(&PacketConfig::default()).unwrap();
    let b = PacketBuilder::new(&PacketConfig::default()).unwrap();
    assert_eq!(
        a.gateway().device_id,
        b.gateway().device_id,
        "stable across restarts"
    );

    // A configured sensor id wins over the derived one.
    let mapped = Uuid::parse_str("ee946e57-04f4-48fb-84be-2b348345f0e8").unwrap();
    let config: PacketConfig =
        toml::from_str("sensor_ids = { \"meter-01\" = \"ee946e57-04f4-48fb-84be-2b348345f0e8\" }")
            .unwrap();
    let b = PacketBuilder::with_gateway(&config, gateway()).unwrap();
    assert_eq!(b.sensor_id("meter-01"), mapped);
    assert_eq!(b.sensor_id("meter-02"), name_uuid("meter-02"));
}

#[test]
fn configs_reject_unknown_keys() {
    assert!(toml::from_str::<PacketConfig>("device_idd = \"x\"").is_err());
    let err =
        toml::from_str::<DeliveryConfig>("[http]\nurl = \"http://127.0.0.1:1/\"\ntimeout = 3")
            .unwrap_err()
            .to_string();
    assert!(err.contains("timeout"), "{err}");
    let ok: DeliveryConfig = toml::from_str(
        "stdout = true\n[ndjson]\ndir = \"out\"\n[mqtt]\nhost = \"127.0.0.1\"\n[spool]\ndir = \"sp\"",
    )
    .unwrap();
    assert!(ok.stdout && ok.ndjson.is_some() && ok.mqtt.is_some() && ok.http.is_none());
}
