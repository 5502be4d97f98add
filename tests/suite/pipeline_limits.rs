//! Bad values in a pipeline file: each duration, size and count out of
//! range, and each combination that would fail later or silently (meter
//! names, opt-in tables without their flag, empty folders, unreachable
//! `connect` entries), is refused at load with an error naming its key.

use crate::common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::pipeline_doc::{load, Doc, KINDS};
use meterflow::pipeline::PipelineConfig;

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
        "max_bytes",
        &["0", "1023", "18446744073709551615"],
        "sink.packets.targets.spool.max_bytes",
    ),
    (
        "files",
        "[dsp]",
        "declared_voltage_v",
        &["1e-300", "1e308", "0.0", "-230.0", "nan", "inf", "5e-324"],
        "dsp.declared_voltage_v",
    ),
    (
        "files",
        "[dsp.pq]",
        "udin_v",
        &["1e-300", "1e308", "0.0", "-230.0", "nan", "inf", "5e-324"],
        "dsp.pq.udin_v",
    ),
    (
        "files",
        "[service]",
        "state_dir",
        &["\"\""],
        "service.state_dir",
    ),
    (
        "files",
        "[sink.parquet]",
        "out",
        &["\"\""],
        "sink.parquet.out",
    ),
    (
        "files",
        "[sink.packets.targets.ndjson]",
        "dir",
        &["\"\""],
        "sink.packets.targets.ndjson.dir",
    ),
    (
        "files",
        "[sink.packets.targets.spool]",
        "dir",
        &["\"\""],
        "sink.packets.targets.spool.dir",
    ),
    (
        "smartmeter_client",
        "[source]",
        "connect",
        &[
            "[\"::garbage::\"]",
            "[\"10.0.0.5\", \"\"]",
            "[\"meter.local:0\"]",
            "[\"meter.local:99999\"]",
            "[\"a b\"]",
        ],
        "source.connect",
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

/// `[[source.meter]]` names: a name no meter can stream under, or a second
/// meter of the same name (named, or the default by position), is refused
/// at load rather than failing after the handshake or dropping a meter.
#[test]
fn virtual_meter_names_are_checked_at_load() {
    let meters = |names: &[&str]| {
        let mut text = "[source]\nkind = \"virtual_meters\"\n".to_string();
        for name in names {
            text.push_str("[[source.meter]]\n");
            // "" here: no name line (the default name by position).
            if !name.is_empty() {
                text.push_str(&format!("name = {name}\n"));
            }
        }
        text
    };
    let refused = [
        (&["\"\""][..], "source.meter[0].name = \"\""),
        (&["\"a/b\""][..], "source.meter[0].name = \"a/b\""),
        (&["\".hidden\""][..], "source.meter[0].name = \".hidden\""),
        (
            &["\"m\"", "\"m\""][..],
            "source.meter[1].name = \"m\": an earlier",
        ),
        // The second meter's default name is smartmeter002.
        (
            &["\"smartmeter002\"", ""][..],
            "source.meter[1].name = \"smartmeter002\": an earlier",
        ),
    ];
    for (names, expected) in refused {
        let text = meters(names);
        let error = format!("{:#}", PipelineConfig::parse(&text).unwrap_err());
        assert!(error.starts_with(expected), "{names:?}: {error}");
    }
    let config = PipelineConfig::parse(&meters(&["\"a.b-c_9\"", ""])).unwrap();
    let meterflow::pipeline::config::SourceConfig::VirtualMeters(source) = config.source else {
        panic!("not virtual meters");
    };
    assert_eq!(source.meter_names(), ["a.b-c_9", "smartmeter002"]);
}

/// An opt-in table without the engine flag that makes its rows would be
/// empty without a word; it is refused naming the flag. With the flag the
/// same table is accepted.
#[test]
fn opt_in_tables_need_their_flag() {
    let cases = [
        (
            "harmonics",
            "[dsp]\nkeep_harmonic_subgroups = true\n",
            "[dsp] keep_harmonic_subgroups = true",
        ),
        (
            "half_cycle",
            "[dsp.pq]\nkeep_half_cycle = true\n",
            "[dsp.pq] keep_half_cycle = true",
        ),
        (
            "pinst",
            "[dsp.pq.flicker]\nenabled = true\nkeep_pinst = true\n",
            "[dsp.pq.flicker] enabled = true and keep_pinst = true",
        ),
    ];
    for (table, flag, named) in cases {
        let sink = format!(
            "[source]\nkind = \"files\"\npaths = [\"a\"]\n[sink.parquet.tables]\n{table} = true\n"
        );
        let error = format!("{:#}", PipelineConfig::parse(&sink).unwrap_err());
        assert!(
            error.starts_with(&format!("sink.parquet.tables.{table} = true needs {named}")),
            "{table}: {error}"
        );
        PipelineConfig::parse(&format!("{sink}{flag}"))
            .unwrap_or_else(|e| panic!("{table} with {flag:?}: {e:#}"));
    }
    // Flicker on without keep_pinst still makes no Pinst rows.
    let text = "[source]\nkind = \"files\"\npaths = [\"a\"]\n[sink.parquet.tables]\npinst = true\n\
                [dsp.pq.flicker]\nenabled = true\n";
    assert!(PipelineConfig::parse(text).is_err());
}

/// A writer node reads records from the cluster, not its `[source]`: a
/// writer-only file without one is a valid writer pipeline, while a
/// bad output key is still refused by name.
#[test]
fn a_writer_pipeline_needs_no_source() {
    let text = "name = \"writer-only\"\n\
                [sink.parquet]\nout = \"out/parquet\"\n\
                [service]\nstate_dir = \"out/state\"\n\
                [cluster]\nurl = \"nats://127.0.0.1:4222\"\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writer.toml");
    let load = |text: &str| {
        std::fs::write(&path, text).unwrap();
        PipelineConfig::load_unvalidated(&path).unwrap()
    };
    let config = load(text);
    let error = config.validate().unwrap_err();
    assert!(format!("{error:#}").contains("source.paths"), "{error:#}");
    config.validate_writer().unwrap();
    let node = meterflow::pipeline::cluster::writer::node_config(config).unwrap();
    // The writer keeps its own state beside the others'.
    assert_eq!(
        node.service.state_dir,
        std::path::Path::new("out/state/writer0")
    );

    let bad = text.replace("out = \"out/parquet\"", "out = \"\"");
    let error = load(&bad).validate_writer().unwrap_err();
    assert!(
        format!("{error:#}").contains("sink.parquet.out"),
        "{error:#}"
    );
}
