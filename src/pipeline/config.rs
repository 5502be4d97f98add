//! Pipeline files (`pipelines/*.toml`): where samples come from, how the
//! engine computes, and where results go. Unknown keys and bad values are
//! refused with the file, the line and what was expected.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::dsp::EngineConfig;
use crate::sink::packet::{DeliveryConfig, PacketConfig};
/// `sink.parquet.layout`, for callers that build a pipeline in code (the benches).
pub use crate::sink::parquet::FileLayout;
use crate::sink::parquet::ParquetConfig;

use super::live::VirtualMetersConfig;
use super::service::ServiceConfig;
use crate::source::files::{FilesConfig, RawFileConfig};
use crate::source::meter_server::config::MeterLinkConfig;
use crate::source::start_time::parse_start;
use crate::source::telemetry::config::TelemetryConfig;

/// A whole pipeline.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Recorded in every output file's metadata.
    #[serde(default = "default_name")]
    pub name: String,
    /// Absent: files, named by `meterflow batch` on its command line.
    #[serde(default = "files_from_the_command_line")]
    pub source: SourceConfig,
    #[serde(default)]
    pub dsp: EngineConfig,
    #[serde(default)]
    pub aggregation: AggregationConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    /// The long-running sink's state folder and metrics endpoint.
    #[serde(default)]
    pub service: ServiceConfig,
    /// The write-ahead log between the engine and the outputs (stream sink).
    #[serde(default)]
    pub record_log: super::record_log::RecordLogConfig,
    /// Cluster mode: the NATS JetStream that ingest and writer nodes share.
    #[serde(default)]
    pub cluster: Option<crate::nats::config::ClusterConfig>,
}

fn files_from_the_command_line() -> SourceConfig {
    SourceConfig::Files(FilesConfig {
        paths: Vec::new(),
        raw: RawFileConfig::default(),
    })
}

fn default_name() -> String {
    "pipeline".to_string()
}

/// Where samples come from.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Recorded captures (meter byte streams, bare f32le, WAV float32).
    Files(FilesConfig),
    /// Firmware-faithful virtual meters dialing into a loopback stream server.
    VirtualMeters(VirtualMetersConfig),
    /// The stream server meters dial into (port 54322), running until stopped.
    SmartmeterServer(MeterLinkConfig),
    /// Connects out to meters' command ports (54321), reconnecting with backoff.
    SmartmeterClient(MeterLinkConfig),
    /// Low-rate telemetry: rtl_433, MPPT datasets, AirLink resources.
    Telemetry(TelemetryConfig),
}

impl SourceConfig {
    /// The `kind` the pipeline file names (the source registry's key).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Files(_) => "files",
            SourceConfig::VirtualMeters(_) => "virtual_meters",
            SourceConfig::SmartmeterServer(_) => "smartmeter_server",
            SourceConfig::SmartmeterClient(_) => "smartmeter_client",
            SourceConfig::Telemetry(_) => "telemetry",
        }
    }
}

/// Intervals besides the fixed 150/180-cycle and 10-minute ones.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AggregationConfig {
    /// The packet interval, s, aligned to the clock (BetterFleet default 5 s).
    pub packet_interval_s: f64,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        AggregationConfig {
            packet_interval_s: 5.0,
        }
    }
}

impl AggregationConfig {
    /// The packet interval (validated; out-of-range values are clamped).
    pub fn packet_interval(&self) -> std::time::Duration {
        super::limits::PACKET_INTERVAL.duration_s(self.packet_interval_s)
    }

    pub fn packet_interval_ns(&self) -> i64 {
        i64::try_from(self.packet_interval().as_nanos()).unwrap_or(i64::MAX)
    }
}

/// Where results go; each part is optional.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    pub parquet: Option<ParquetConfig>,
    pub packets: Option<PacketSinkConfig>,
}

/// BetterFleet packets: how they are built and where they are delivered.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PacketSinkConfig {
    /// Identities: gateway UUID, sensor UUIDs, packet splitting.
    pub build: PacketConfig,
    pub targets: DeliveryConfig,
}

impl PipelineConfig {
    /// The record log's settings, its folder resolved against the state folder.
    pub fn record_log(&self) -> super::record_log::RecordLogConfig {
        let mut log = self.record_log.clone();
        if log.dir.as_os_str().is_empty() {
            log.dir = self.service.state_dir.join("record-log");
        }
        log
    }

    /// Reads and checks a pipeline file; errors name the file and line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let config = Self::load_unvalidated(path)?;
        config
            .validate()
            .with_context(|| format!("pipeline {}", path.display()))?;
        Ok(config)
    }

    /// Read and typed but not [`validate`](Self::validate)d: for callers
    /// that set parts (the batch's inputs) before they validate.
    pub fn load_unvalidated(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading pipeline {}", path.display()))?;
        Self::parse_unvalidated(&text).with_context(|| format!("pipeline {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config = Self::parse_unvalidated(text)?;
        config.validate()?;
        Ok(config)
    }

    fn parse_unvalidated(text: &str) -> anyhow::Result<Self> {
        let config: PipelineConfig = toml::from_str(text).map_err(|error| {
            let at_source = error
                .span()
                .and_then(|span| text.get(span))
                .is_some_and(|found| found.trim() == "[source]");
            at_source
                .then(|| source_key_error(text).or_else(|| literal_key_error(text, &error)))
                .flatten()
                .unwrap_or_else(|| anyhow::anyhow!("{error}"))
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges and combinations.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.validate_engine()?;
        self.validate_source()?;
        self.validate_outputs()
    }

    /// A writer node's checks: everything but `[source]`, which a writer
    /// does not read (its records come from the cluster).
    pub fn validate_writer(&self) -> anyhow::Result<()> {
        self.validate_engine()?;
        self.validate_outputs()
    }

    fn validate_engine(&self) -> anyhow::Result<()> {
        super::limits::check(self)?;
        self.dsp.validate()?;
        self.record_log.validate()?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        Ok(())
    }

    fn validate_source(&self) -> anyhow::Result<()> {
        match &self.source {
            SourceConfig::Files(FilesConfig { paths, raw }) => {
                if paths.is_empty() {
                    anyhow::bail!(
                        "source.paths is empty (or there is no [source]): name at least one capture file or folder"
                    );
                }
                if let Some(start) = &raw.start {
                    parse_start(start)?;
                }
            }
            SourceConfig::VirtualMeters(meters) => {
                if meters.meter.is_empty() {
                    anyhow::bail!("source.meter is empty: add at least one [[source.meter]]");
                }
                meters.measures.validate_rate(meters.rate)?;
                meters.check_names()?;
                for (k, meter) in meters.meter.iter().enumerate() {
                    meter
                        .signal
                        .validate()
                        .with_context(|| format!("source.meter[{k}].signal"))?;
                }
            }
            SourceConfig::SmartmeterServer(link) => link.validate(false)?,
            SourceConfig::SmartmeterClient(link) => link.validate(true)?,
            SourceConfig::Telemetry(telemetry) => telemetry.validate()?,
        }
        Ok(())
    }

    fn validate_outputs(&self) -> anyhow::Result<()> {
        if let Some(parquet) = &self.sink.parquet {
            parquet.validate()?;
        }
        self.check_opt_in_tables()?;
        self.check_folders()?;
        Ok(())
    }

    /// An opt-in table whose rows the engine is not asked to make would
    /// stay empty without a word; the flag that makes them is named instead.
    fn check_opt_in_tables(&self) -> anyhow::Result<()> {
        let Some(parquet) = &self.sink.parquet else {
            return Ok(());
        };
        let tables = &parquet.tables;
        let pq = self.dsp.pq_config();
        let pq = pq.as_ref();
        if tables.harmonics && !self.dsp.keep_harmonic_subgroups {
            anyhow::bail!(
                "sink.parquet.tables.harmonics = true needs [dsp] keep_harmonic_subgroups = true \
                 (without it the harmonics table gets no rows)"
            );
        }
        if tables.half_cycle && !pq.is_some_and(|pq| pq.keep_half_cycle) {
            anyhow::bail!(
                "sink.parquet.tables.half_cycle = true needs [dsp.pq] keep_half_cycle = true \
                 (without it the half_cycle table gets no rows)"
            );
        }
        if tables.pinst && !pq.is_some_and(|pq| pq.flicker.enabled && pq.flicker.keep_pinst) {
            anyhow::bail!(
                "sink.parquet.tables.pinst = true needs [dsp.pq.flicker] enabled = true and \
                 keep_pinst = true (without them the pinst table gets no rows)"
            );
        }
        Ok(())
    }

    /// An empty folder key would put files into the current folder.
    fn check_folders(&self) -> anyhow::Result<()> {
        let mut folders = vec![("service.state_dir", &self.service.state_dir)];
        if let Some(parquet) = &self.sink.parquet {
            folders.push(("sink.parquet.out", &parquet.out));
        }
        if let Some(targets) = self.sink.packets.as_ref().map(|p| &p.targets) {
            if let Some(ndjson) = &targets.ndjson {
                folders.push(("sink.packets.targets.ndjson.dir", &ndjson.dir));
            }
            folders.push(("sink.packets.targets.spool.dir", &targets.spool.dir));
        }
        match folders.iter().find(|(_, dir)| dir.as_os_str().is_empty()) {
            Some((key, _)) => anyhow::bail!("{key} is empty: name a folder"),
            None => Ok(()),
        }
    }
}

/// serde reads the internally tagged `[source]` through a buffer, so a bad
/// value inside it is reported at the `[source]` header without its key.
/// Reading the table again as its kind's own type finds the key.
fn source_key_error(text: &str) -> Option<anyhow::Error> {
    let document: toml::Table = toml::from_str(text).ok()?;
    let mut source = document.get("source")?.as_table()?.clone();
    let kind = source.remove("kind")?.as_str()?.to_owned();
    let table = toml::to_string(&source).ok()?;
    let error = match kind.as_str() {
        "files" => toml::from_str::<FilesConfig>(&table).err(),
        "virtual_meters" => toml::from_str::<VirtualMetersConfig>(&table).err(),
        "smartmeter_server" | "smartmeter_client" => {
            toml::from_str::<MeterLinkConfig>(&table).err()
        }
        "telemetry" => toml::from_str::<TelemetryConfig>(&table).err(),
        _ => None,
    }?;
    let key = error
        .span()
        .and_then(|span| key_at(&table, span.start))
        .map_or_else(|| "source".to_string(), |key| format!("source.{key}"));
    Some(anyhow::anyhow!(
        "{key} (kind = {kind:?}): {}",
        error.message().trim()
    ))
}

/// Integers beyond i64 do not fit a `toml::Table`; the one the error quotes
/// is found in the text instead.
fn literal_key_error(text: &str, error: &toml::de::Error) -> Option<anyhow::Error> {
    let message = error.message();
    let (_, rest) = message.split_once("integer `")?;
    let (literal, _) = rest.split_once('`')?;
    let offset = text.find(&format!("= {literal}"))? + 2;
    let key = key_at(text, offset)?;
    Some(anyhow::anyhow!("{key}: {}", message.trim()))
}

/// The dotted key whose value starts at `offset` of a TOML text.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let header = before[..line_start].lines().rev().find_map(|line| {
        let line = line.trim();
        line.starts_with('[')
            .then(|| line.trim_matches(|c| c == '[' || c == ']').to_string())
    });
    let line = &before[line_start..];
    let (lead, _) = line.split_once('=')?;
    let lead = lead.trim();
    let ident = line.rsplit_once('=').map(|(left, _)| {
        left.rsplit(|c: char| c == '{' || c == ',' || c.is_whitespace())
            .find(|part| !part.is_empty())
            .unwrap_or_default()
    })?;
    let mut parts: Vec<&str> = header.iter().map(String::as_str).collect();
    parts.push(lead);
    if ident != lead {
        parts.push(ident);
    }
    Some(parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_source_is_for_batches_only() {
        let text = "[dsp]\nnominal_frequency_hz = 60\n";
        let error = PipelineConfig::parse(text).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("no [source]")),
            "{error:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.toml");
        std::fs::write(&path, text).unwrap();
        let config = PipelineConfig::load_unvalidated(&path).unwrap();
        assert_eq!(config.dsp.nominal_frequency_hz, Some(60.0));
    }

    #[test]
    fn the_demo_pipeline_parses() {
        let text = include_str!("../../pipelines/demo.toml");
        let config = PipelineConfig::parse(text).unwrap();
        match config.source {
            SourceConfig::VirtualMeters(meters) => assert!(meters.meter.len() >= 4),
            other => panic!("demo source is {other:?}"),
        }
        assert!(config.sink.parquet.is_some());
        assert!(config.sink.packets.is_some());
    }

    #[test]
    fn every_example_pipeline_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                PipelineConfig::load(&path).unwrap();
                checked += 1;
            }
        }
        assert!(checked >= 2);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let text = "name = \"x\"\n[source]\nkind = \"files\"\npaths = [\"a\"]\n[dsp]\nnominal_frequency = 50\n";
        let error = format!("{:#}", PipelineConfig::parse(text).unwrap_err());
        assert!(error.contains("line 6"), "{error}");
        assert!(error.contains("nominal_frequency"), "{error}");
    }

    #[test]
    fn bad_values_are_refused() {
        let text = "[source]\nkind = \"virtual_meters\"\nrate = 7000\n[[source.meter]]\n";
        let error = format!("{:#}", PipelineConfig::parse(text).unwrap_err());
        assert!(error.contains("7000"), "{error}");
        let text = "[source]\nkind = \"files\"\npaths = []\n";
        assert!(PipelineConfig::parse(text).is_err());
        let text = "[source]\nkind = \"virtual_meters\"\nrate = -1\n";
        let error = format!("{:#}", PipelineConfig::parse(text).unwrap_err());
        assert!(
            error.starts_with("source.rate (kind = \"virtual_meters\"): "),
            "{error}"
        );
        let text = "[source]\nkind = \"smartmeter_server\"\n[source.meters.\"a\"]\nrate = 18446744073709551615\n";
        let error = format!("{:#}", PipelineConfig::parse(text).unwrap_err());
        assert!(error.starts_with("source.meters.\"a\".rate: "), "{error}");
        let text = "[source]\nkind = \"tape\"\n";
        let error = format!("{:#}", PipelineConfig::parse(text).unwrap_err());
        assert!(error.contains("tape"), "{error}");
    }
}
