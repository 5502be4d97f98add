//! A valid pipeline file of each source kind with every sink section, as
//! tables one key can be set in; the limit tests change one key at a time.
#![allow(dead_code)]

use meterflow::pipeline::config::SourceConfig;
use meterflow::pipeline::reference::TOP_LEVEL;
use meterflow::pipeline::PipelineConfig;

/// A pipeline file as (TOML header, lines) so one key can be set anywhere.
#[derive(Clone)]
pub struct Doc(Vec<(String, Vec<String>)>);

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
    pub fn of(kind: &str) -> Doc {
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
    pub fn with(&self, header: &str, key: &str, value: &str) -> Doc {
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

    pub fn text(&self) -> String {
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
pub fn load(doc: &Doc) -> anyhow::Result<PipelineConfig> {
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

pub const KINDS: [&str; 5] = [
    "files",
    "virtual_meters",
    "smartmeter_server",
    "smartmeter_client",
    "telemetry",
];

/// The source kinds whose fixture has the table `header`: its own kind
/// for `[source]` keys, else the kinds that take the table.
pub fn kinds_for(header: &str, kind: Option<&str>) -> Vec<&'static str> {
    if let Some(kind) = kind {
        return KINDS.iter().copied().filter(|k| *k == kind).collect();
    }
    match header {
        h if h.starts_with("[source.meters") => vec!["smartmeter_server"],
        h if h.starts_with("[source.raw") => vec!["files"],
        h if h.starts_with("[[source.meter") || h.starts_with("[source.meter") => {
            vec!["virtual_meters"]
        }
        h if h.starts_with("[source") || h.starts_with("[[source") => vec!["telemetry"],
        _ => vec!["files", "smartmeter_server"],
    }
}

/// The quoted names after `kind =` in a `docs/pipeline.md` heading:
/// `kind = "a", "b"` → [a, b].
pub fn kinds(rest: &str) -> Vec<String> {
    let Some((_, names)) = rest.split_once("kind =") else {
        return Vec::new();
    };
    names
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}
