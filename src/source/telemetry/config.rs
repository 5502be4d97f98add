//! `[source]` with `kind = "telemetry"`: which adapters run and how.
//!
//! ```toml
//! [source]
//! kind = "telemetry"
//! flush_interval_s = 60              # Parquet flush of the low-rate tables
//! [[source.rtl433]]
//! file = "testdata/telemetry/rtl433.jsonl"   # or stdin = true, or [source.rtl433.mqtt]
//! [source.mppt]
//! listen = "127.0.0.1:8080"
//! api_keys = { "secret-key" = "S000" }       # key → sender
//! [source.airlink]
//! listen = "127.0.0.1:8081"
//! access_tokens = { "token" = "lamp-1" }     # token → device
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::time::{TimeContext, Zone};
use crate::source::start_time::parse_start;

fn default_flush_interval_s() -> f64 {
    60.0
}
fn default_api_key_header() -> String {
    "X-API-Key".to_owned()
}
fn default_replay_sender() -> String {
    "replay".to_owned()
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_rtl433_topic() -> String {
    "rtl_433/+/events".to_owned()
}

/// `[source]` with `kind = "telemetry"`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Parquet rows of low-rate data are written this often (and at the end), s.
    #[serde(default = "default_flush_interval_s")]
    pub flush_interval_s: f64,
    /// Live inputs (servers, MQTT) stop after this long; absent: on Ctrl-C.
    /// Without live inputs the run ends when the files and stdin are read.
    #[serde(default)]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub rtl433: Vec<Rtl433Input>,
    #[serde(default)]
    pub mppt: Option<MpptInput>,
    #[serde(default)]
    pub airlink: Option<AirlinkInput>,
}

impl TelemetryConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rtl433.is_empty() && self.mppt.is_none() && self.airlink.is_none() {
            bail!("source: name at least one input ([[source.rtl433]], [source.mppt], [source.airlink])");
        }
        for (k, input) in self.rtl433.iter().enumerate() {
            input
                .time_context()
                .with_context(|| format!("source.rtl433[{k}]"))?;
            let inputs = usize::from(input.file.is_some())
                + usize::from(input.stdin)
                + usize::from(input.mqtt.is_some());
            if inputs != 1 {
                bail!("source.rtl433[{k}]: give exactly one of file, stdin = true, [mqtt]");
            }
        }
        if let Some(m) = &self.mppt {
            if m.listen.is_none() && m.files.is_empty() {
                bail!("source.mppt: give listen or files");
            }
            if m.listen.is_some() && m.api_keys.is_empty() {
                bail!("source.mppt: listen needs api_keys (key → sender), or every request is refused");
            }
        }
        if let Some(a) = &self.airlink {
            if a.listen.is_none() && a.files.is_empty() {
                bail!("source.airlink: give listen or files");
            }
            for (k, file) in a.files.iter().enumerate() {
                if let Some(resource) = &file.resource {
                    let resource = resource.trim_start_matches('/');
                    if !super::airlink::fields::RESOURCES.contains(&resource) {
                        bail!(
                            "source.airlink.files[{k}]: resource {resource:?} is none of {:?}",
                            super::airlink::fields::RESOURCES
                        );
                    }
                }
                if file.resource.is_some() && file.device.is_none() {
                    bail!("source.airlink.files[{k}]: a CBOR resource needs device (the advertisement's MAC)");
                }
            }
        }
        Ok(())
    }

    /// Whether any input runs until stopped (stdin ends at its end, like
    /// a file; all inputs also stop on Ctrl-C).
    pub fn has_live_inputs(&self) -> bool {
        self.rtl433.iter().any(|i| i.mqtt.is_some())
            || self.mppt.as_ref().is_some_and(|m| m.listen.is_some())
            || self.airlink.as_ref().is_some_and(|a| a.listen.is_some())
    }
}

/// One rtl_433 input: exactly one of `file`, `stdin`, `mqtt`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rtl433Input {
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub stdin: bool,
    pub mqtt: Option<Rtl433Mqtt>,
    /// Zone of times without one: `local` (default), `UTC`, `+07:00`.
    pub time_zone: Option<String>,
    /// What `@<seconds>s` times count from (RFC 3339 or Unix seconds);
    /// default: when the input was opened.
    pub relative_start: Option<String>,
}

impl Rtl433Input {
    /// How its times without a zone or with `@<seconds>s` are read.
    pub fn time_context(&self) -> anyhow::Result<TimeContext> {
        let zone = match &self.time_zone {
            Some(z) => Zone::parse(z).map_err(anyhow::Error::msg)?,
            None => Zone::Local,
        };
        let relative_base_ns = match &self.relative_start {
            Some(start) => parse_start(start)?,
            None => chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        };
        Ok(TimeContext {
            zone,
            relative_base_ns,
        })
    }

    /// The input's name in logs and failures.
    pub fn name(&self) -> String {
        match (&self.file, &self.mqtt) {
            (Some(file), _) => file.display().to_string(),
            (None, Some(mqtt)) => format!("mqtt {}:{} {}", mqtt.host, mqtt.port, mqtt.topic),
            (None, None) => "stdin".to_owned(),
        }
    }
}

/// rtl_433's MQTT output, subscribed to.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rtl433Mqtt {
    pub host: String,
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    #[serde(default = "default_rtl433_topic")]
    pub topic: String,
    /// Default `meterflow-rtl433-<pid>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The MPPT endpoint and/or replayed bodies.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MpptInput {
    /// Address of `POST /devices/dataset/mppt`, e.g. `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// API key → sender id (the `sender` column).
    #[serde(default)]
    pub api_keys: BTreeMap<String, String>,
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
    /// Files each holding one request body, replayed in order.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// `sender` of replayed bodies.
    #[serde(default = "default_replay_sender")]
    pub replay_sender: String,
}

/// AirLink: the Thingsboard endpoint and/or files.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AirlinkInput {
    /// Address of `POST /api/v1/{token}/telemetry`.
    pub listen: Option<String>,
    /// Access token → device name.
    #[serde(default)]
    pub access_tokens: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<AirlinkFile>,
}

/// A file of Thingsboard JSON lines, or (with `resource`) one raw CBOR item.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AirlinkFile {
    pub path: PathBuf,
    /// Device of values without `advt_mac`; the MAC for CBOR items.
    pub device: Option<String>,
    /// `eout`, `ein`, `batt`, `temp`, `pu` or `advt`: the file is raw CBOR.
    pub resource: Option<String>,
}
