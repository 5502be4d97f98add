//! Bad durations, sizes and counts in a pipeline file: each is refused with
//! an error naming its key, and no value of any numeric key panics, neither
//! while the file is checked nor when its durations are taken.

use std::panic::{catch_unwind, AssertUnwindSafe};

use meterflow::pipeline::config::SourceConfig;
use meterflow::pipeline::reference::{sections, TOP_LEVEL};
use meterflow::pipeline::PipelineConfig;

/// A pipeline file as (TOML header, lines) so one key can be set anywhere.
#[derive(Clone)]
struct Doc(Vec<(String, Vec<String>)>);

const SINKS: &[(&str, &[&str])] = &[
    ("[dsp]", &[]),
    ("[dsp.pq]", &[]),
    ("[dsp.pq.flicker]", &[]),
    ("[aggregation]", &[]),
    ("[sink.parquet]", &["out = \"out/parquet\""]),
    ("[sink.parquet.tables]", &[]),
    ("[sink.packets.build]", &[]),
    ("[sink.packets.targets]", &[]),
    ("[sink.packets.targets.ndjson]", &["dir = \"out/packets\""]),
    (
        "[sink.packets.targets.http]",
        &["url = \"http://127.0.0.1:9/\""],
    ),
    ("[sink.packets.targets.mqtt]", &["host = \"127.0.0.1\""]),
    ("[sink.packets.targets.spool]", &["dir = \"out/spool\""]),
    ("[sink.packets.targets.retry]", &[]),
    ("[service]", &[]),
    ("[record_log]", &[]),
    ("[cluster]", &[]),
];

impl Doc {
    /// A valid file of the source `kind` with every sink section present.
    fn of(kind: &str) -> Doc {
        let source: &[(&str, &[&str])] = match kind {
            "files" => &[
                ("[source]", &["kind = \"files\"", "paths = [\"testdata\"]"]),
                ("[source.raw]", &[]),
            ],
            "virtual_meters" => &[
                ("[source]", &["kind = \"virtual_meters\""]),
                ("[[source.meter]]", &[]),
                ("[source.meter.signal]", &[]),
                (
                    "[[source.meter.signal.voltage_harmonics]]",
                    &["order = 5", "magnitude = 0.02"],
                ),
                (
                    "[[source.meter.signal.current_harmonics]]",
                    &["order = 3", "magnitude = 0.1"],
                ),
                ("[[source.meter.signal.load_steps]]", &["at_s = 1.0"]),
                (
                    "[[source.meter.signal.disturbances]]",
                    &["at_s = 1.0", "duration_s = 0.1", "level_pct = 50.0"],
                ),
                (
                    "[[source.meter.signal.voltage_modulations]]",
                    &[
                        "shape = \"rectangular\"",
                        "frequency_hz = 8.8",
                        "delta_v_pct = 1.0",
                    ],
                ),
            ],
            "smartmeter_server" => &[
                ("[source]", &["kind = \"smartmeter_server\""]),
                ("[source.meters.\"lab\"]", &[]),
            ],
            "smartmeter_client" => &[
                (
                    "[source]",
                    &["kind = \"smartmeter_client\"", "connect = [\"10.0.0.5\"]"],
                ),
                ("[source.meters.\"lab\"]", &[]),
            ],
            "telemetry" => &[
                ("[source]", &["kind = \"telemetry\""]),
                ("[[source.rtl433]]", &[]),
                ("[source.rtl433.mqtt]", &["host = \"127.0.0.1\""]),
                ("[source.mppt]", &["files = [\"a.json\"]"]),
                ("[source.airlink]", &[]),
                ("[[source.airlink.files]]", &["path = \"a.jsonl\""]),
            ],
            other => panic!("no fixture for source kind {other}"),
        };
        let mut tables = vec![(TOP_LEVEL.to_string(), vec!["name = \"limits\"".to_string()])];
        for (header, lines) in source.iter().chain(SINKS) {
            tables.push((
                header.to_string(),
                lines.iter().map(|l| l.to_string()).collect(),
            ));
        }
        Doc(tables)
    }

    /// The file with `key = value` in the table `header` (`<name>` is `lab`).
    fn with(&self, header: &str, key: &str, value: &str) -> Doc {
        let header = header.replace("\"<name>\"", "\"lab\"");
        let mut doc = self.clone();
        let Some((_, lines)) = doc.0.iter_mut().find(|(h, _)| *h == header) else {
            panic!("the fixture has no table {header}");
        };
        let prefix = format!("{key} =");
        lines.retain(|line| !line.starts_with(&prefix));
        lines.push(format!("{key} = {value}"));
        doc
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (header, lines) in &self.0 {
            if header != TOP_LEVEL {
                out.push_str(header);
                out.push('\n');
            }
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Parses and checks `doc`, then takes every duration the runs take.
fn load(doc: &Doc) -> anyhow::Result<PipelineConfig> {
    let config = PipelineConfig::parse(&doc.text())?;
    let _ = config.aggregation.packet_interval();
    let _ = config.aggregation.packet_interval_ns();
    let _ = config.service.packet_grace();
    match &config.source {
        SourceConfig::SmartmeterServer(link) | SourceConfig::SmartmeterClient(link) => {
            let _ = link.session_settings("lab");
            let _ = link.backoff();
        }
        SourceConfig::Telemetry(telemetry) => {
            let _ = meterflow::pipeline::telemetry::flush_interval(telemetry);
        }
        _ => {}
    }
    Ok(config)
}

const KINDS: [&str; 5] = [
    "files",
    "virtual_meters",
    "smartmeter_server",
    "smartmeter_client",
    "telemetry",
];

#[test]
fn the_fixtures_are_valid() {
    for kind in KINDS {
        let doc = Doc::of(kind);
        if let Err(error) = load(&doc) {
            panic!("{kind}: {error:#}\n{}", doc.text());
        }
    }
}

/// (source kind, TOML header, key, bad values, what the error names).
const BAD: &[(&str, &str, &str, &[&str], &str)] = &[
    (
        "files",
        "[aggregation]",
        "packet_interval_s",
        &["1e20", "nan", "-1.0", "0.0", "0.01", "inf"],
        "aggregation.packet_interval_s",
    ),
    (
        "smartmeter_server",
        "[record_log]",
        "flush_interval_s",
        &["0.0", "nan", "-1.0", "60.0", "1e20"],
        "record_log.flush_interval_s",
    ),
    (
        "smartmeter_server",
        "[record_log]",
        "max_bytes",
        &["1"],
        "record_log.max_bytes",
    ),
    (
        "smartmeter_server",
        "[service]",
        "forget_meters_after_s",
        &["0.0", "nan", "-1.0", "1e20"],
        "service.forget_meters_after_s",
    ),
    (
        "files",
        "[service]",
        "packet_grace_s",
        &["-0.5", "nan", "1e9"],
        "service.packet_grace_s",
    ),
    (
        "files",
        "[dsp]",
        "nominal_frequency_hz",
        &["0.0", "nan", "-50.0", "1e20"],
        "dsp.nominal_frequency_hz",
    ),
    (
        "files",
        "[dsp]",
        "cycles_per_window",
        &["0", "100000"],
        "dsp.cycles_per_window",
    ),
    (
        "files",
        "[dsp]",
        "max_harmonic_order",
        &["0", "1", "51", "4000000000"],
        "dsp.max_harmonic_order",
    ),
    (
        "files",
        "[dsp]",
        "min_reference_peak_v",
        &["nan", "-1.0"],
        "min_reference_peak_v",
    ),
    (
        "files",
        "[source.raw]",
        "rate",
        &["0", "4000000000"],
        "source.raw.rate",
    ),
    (
        "virtual_meters",
        "[source]",
        "seconds",
        &["0.0", "-1.0", "nan", "1e20", "inf"],
        "source.seconds",
    ),
    (
        "smartmeter_server",
        "[source]",
        "info_timeout_s",
        &["0.0", "nan", "-1.0", "1e20"],
        "source.info_timeout_s",
    ),
    (
        "smartmeter_server",
        "[source]",
        "idle_timeout_s",
        &["0.0", "nan", "1e20"],
        "source.idle_timeout_s",
    ),
    (
        "smartmeter_server",
        "[source]",
        "keepalive_s",
        &["0.0", "nan", "1e20"],
        "source.keepalive_s",
    ),
    (
        "smartmeter_server",
        "[source]",
        "max_connections",
        &["0", "18446744073709551615"],
        "source.max_connections",
    ),
    (
        "smartmeter_server",
        "[source]",
        "max_pending",
        &["0", "100000000"],
        "source.max_pending",
    ),
    (
        "smartmeter_server",
        "[source]",
        "workers",
        &["100000"],
        "source.workers",
    ),
    (
        "smartmeter_server",
        "[source]",
        "queue_depth",
        &["0", "10000000"],
        "source.queue_depth",
    ),
    (
        "smartmeter_client",
        "[source]",
        "backoff_min_s",
        &["0.0", "nan", "1e20"],
        "source.backoff_min_s",
    ),
    (
        "smartmeter_client",
        "[source]",
        "backoff_max_s",
        &["0.0", "nan", "1e20", "0.5"],
        "source.backoff_max_s",
    ),
    (
        "telemetry",
        "[source]",
        "flush_interval_s",
        &["0.0", "nan", "1e20", "-1.0"],
        "source.flush_interval_s",
    ),
    (
        "telemetry",
        "[source]",
        "seconds",
        &["0.0", "nan", "1e20"],
        "source.seconds",
    ),
    (
        "telemetry",
        "[source.rtl433.mqtt]",
        "port",
        &["0"],
        "source.rtl433[0].mqtt.port",
    ),
    (
        "files",
        "[sink.parquet]",
        "max_file_span_s",
        &["0", "18446744073709551615"],
        "sink.parquet.max_file_span_s",
    ),
    (
        "files",
        "[sink.parquet]",
        "max_file_bytes",
        &["0", "10", "18446744073709551615"],
        "sink.parquet.max_file_bytes",
    ),
    (
        "files",
        "[sink.parquet]",
        "row_group_rows",
        &["0", "1000000000000"],
        "sink.parquet.row_group_rows",
    ),
    (
        "files",
        "[sink.parquet]",
        "raw_row_group_rows",
        &["0", "1000000000000"],
        "sink.parquet.raw_row_group_rows",
    ),
    (
        "files",
        "[sink.parquet]",
        "batch_rows",
        &["0", "1000000000000"],
        "sink.parquet.batch_rows",
    ),
    (
        "files",
        "[sink.parquet]",
        "queue_capacity",
        &["0", "1000000000000"],
        "sink.parquet.queue_capacity",
    ),
    (
        "files",
        "[sink.parquet]",
        "zstd_level",
        &["0", "23", "-5"],
        "sink.parquet.zstd_level",
    ),
    (
        "files",
        "[sink.packets.build]",
        "max_sensors_per_packet",
        &["1000000000"],
        "sink.packets.build.max_sensors_per_packet",
    ),
    (
        "files",
        "[sink.packets.targets.ndjson]",
        "max_file_bytes",
        &["0", "18446744073709551615"],
        "sink.packets.targets.ndjson.max_file_bytes",
    ),
    (
        "files",
        "[sink.packets.targets.ndjson]",
        "max_file_age_secs",
        &["0", "18446744073709551615"],
        "sink.packets.targets.ndjson.max_file_age_secs",
    ),
    (
        "files",
        "[sink.packets.targets.http]",
        "timeout_ms",
        &["0", "18446744073709551615"],
        "sink.packets.targets.http.timeout_ms",
    ),
    (
        "files",
        "[sink.packets.targets.http]",
        "max_attempts",
        &["0", "4000000000"],
        "sink.packets.targets.http.max_attempts",
    ),
    (
        "files",
        "[sink.packets.targets.http]",
        "backoff_initial_ms",
        &["0", "18446744073709551615"],
        "sink.packets.targets.http.backoff_initial_ms",
    ),
    (
        "files",
        "[sink.packets.targets.http]",
        "backoff_max_ms",
        &["0", "18446744073709551615", "100"],
        "sink.packets.targets.http.backoff_max_ms",
    ),
    (
        "files",
        "[sink.packets.targets.mqtt]",
        "port",
        &["0"],
        "sink.packets.targets.mqtt.port",
    ),
    (
        "files",
        "[sink.packets.targets.mqtt]",
        "keep_alive_secs",
        &["0", "1", "65536", "18446744073709551615"],
        "sink.packets.targets.mqtt.keep_alive_secs",
    ),
    (
        "files",
        "[sink.packets.targets.mqtt]",
        "timeout_ms",
        &["0", "18446744073709551615"],
        "sink.packets.targets.mqtt.timeout_ms",
    ),
    (
        "files",
        "[sink.packets.targets.mqtt]",
        "max_packet_bytes",
        &["0", "18446744073709551615"],
        "sink.packets.targets.mqtt.max_packet_bytes",
    ),
    (
        "files",
        "[sink.packets.targets.spool]",
        "segment_max_bytes",
        &["0", "18446744073709551615"],
        "sink.packets.targets.spool.segment_max_bytes",
    ),
    (
        "files",
        "[sink.packets.targets.spool]",
        "fsync_interval_ms",
        &["18446744073709551615"],
        "sink.packets.targets.spool.fsync_interval_ms",
    ),
    (
        "files",
        "[sink.packets.targets.spool]",
        "memory_queue",
        &["18446744073709551615"],
        "sink.packets.targets.spool.memory_queue",
    ),
    (
        "files",
        "[sink.packets.targets.retry]",
        "initial_backoff_ms",
        &["0", "18446744073709551615"],
        "sink.packets.targets.retry.initial_backoff_ms",
    ),
    (
        "files",
        "[sink.packets.targets.retry]",
        "max_backoff_ms",
        &["0", "18446744073709551615", "100"],
        "sink.packets.targets.retry.max_backoff_ms",
    ),
];

#[test]
fn each_bad_value_is_refused_naming_its_key() {
    let mut wrong = Vec::new();
    for (kind, header, key, values, named) in BAD {
        for value in *values {
            let doc = Doc::of(kind).with(header, key, value);
            match catch_unwind(AssertUnwindSafe(|| load(&doc))) {
                Err(_) => wrong.push(format!("{header} {key} = {value}: panicked")),
                Ok(Ok(_)) => wrong.push(format!("{header} {key} = {value}: accepted")),
                Ok(Err(error)) => {
                    let message = format!("{error:#}");
                    if !message.contains(named) {
                        wrong.push(format!(
                            "{header} {key} = {value}: {message:?} does not name {named}"
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_error_reads_as_the_key_the_value_and_the_range() {
    let doc = Doc::of("files").with("[aggregation]", "packet_interval_s", "1e20");
    let message = format!("{:#}", load(&doc).unwrap_err());
    assert_eq!(
        message,
        "aggregation.packet_interval_s: 1e20 s is out of range (0.1 s ..= 1 day)"
    );
}

/// Every numeric key of every section (from the config types), at values
/// far outside any sensible range: refused or accepted, but never a panic,
/// and a refusal names the key.
#[test]
fn no_numeric_value_panics() {
    const FLOATS: [&str; 8] = [
        "nan", "inf", "-inf", "-1.0", "0.0", "1e20", "-1e300", "1e-300",
    ];
    const INTEGERS: [&str; 5] = ["-1", "0", "4294967296", "18446744073709551615", "1"];
    let mut checked = 0;
    let mut wrong = Vec::new();
    for section in sections() {
        let kinds: Vec<&str> = match (&section.kind, section.header.as_str()) {
            (Some(kind), _) => vec![kind.as_str()],
            (None, h) if h.starts_with("[source.meters") => vec!["smartmeter_server"],
            (None, h) if h.starts_with("[source.raw") => vec!["files"],
            (None, h) if h.starts_with("[[source.meter") || h.starts_with("[source.meter") => {
                vec!["virtual_meters"]
            }
            (None, h) if h.starts_with("[source") || h.starts_with("[[source") => vec!["telemetry"],
            (None, _) => vec!["files", "smartmeter_server"],
        };
        for key in &section.keys {
            let values: &[&str] = match key.ty.as_str() {
                "float" => &FLOATS,
                "integer" => &INTEGERS,
                _ => continue,
            };
            for kind in &kinds {
                for value in values {
                    checked += 1;
                    let doc = Doc::of(kind).with(&section.header, &key.name, value);
                    match catch_unwind(AssertUnwindSafe(|| load(&doc))) {
                        Err(_) => wrong.push(format!(
                            "{} {} = {value}: panicked",
                            section.header, key.name
                        )),
                        Ok(Err(error)) => {
                            let message = format!("{error:#}");
                            if !message.contains(&key.name) {
                                wrong.push(format!(
                                    "{} {} = {value}: {message:?} does not name the key",
                                    section.header, key.name
                                ));
                            }
                        }
                        Ok(Ok(_)) => {}
                    }
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} cases");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
