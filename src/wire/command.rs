//! Commands from the sink to the meter, and their line codec.
//!
//! A command is one JSON object per line (`\n`), or the bare `?` (ping) and
//! `!` (keepalive). Field names and nesting follow the firmware's `handleJSON`
//! (`Firmware/Version_2/parseCommand.ino`): some commands take a `payload`
//! object, others top-level keys. Parsing (the meter side, for the virtual
//! meter) refuses what the firmware refuses based on the command text alone,
//! so a command that parses here is one a real meter would carry out.

use std::fmt;
use std::io;
use std::str::FromStr;

use bytes::{Buf, BufMut, BytesMut};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

use super::layout::{Measures, Transport};
use super::message::{excerpt, LogLevel};

/// Longest command line the decoder accepts by default.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// Longest command line (without `\n`) the firmware reads whole: it copies
/// lines into a 600-byte buffer, so a longer one arrives cut and is dropped
/// as bad JSON without any answer.
pub const FIRMWARE_MAX_COMMAND: usize = 599;

/// Why a command line was not understood.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Well-formed JSON with a `cmd` the firmware does not know.
    #[error("unknown command {0:?}")]
    Unknown(String),
    #[error("invalid JSON command: {source}; line: {excerpt:?}")]
    InvalidJson {
        #[source]
        source: serde_json::Error,
        excerpt: String,
    },
    /// A field is missing, has the wrong type or a value the firmware refuses.
    #[error("{cmd:?} command: invalid {field:?}: {reason}")]
    InvalidField {
        cmd: String,
        field: String,
        reason: String,
    },
    /// A line longer than the decoder's limit; its bytes were dropped.
    #[error("command line of {len} bytes exceeds the limit of {max} bytes; discarded")]
    LineTooLong { len: usize, max: usize },
}

/// Where sampled data goes, as the `sample` command's `type` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StreamType {
    /// USB serial.
    #[serde(rename = "Serial")]
    Serial,
    /// The TCP connection the command came on.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP to the commanding host, at `port`.
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "MQTT")]
    Mqtt,
    /// Raw f32le on the meter's port 54322.
    #[serde(rename = "FFMPEG")]
    Ffmpeg,
}

impl StreamType {
    pub const ALL: [StreamType; 5] = [
        StreamType::Serial,
        StreamType::Tcp,
        StreamType::Udp,
        StreamType::Mqtt,
        StreamType::Ffmpeg,
    ];

    /// The wire spelling (case matters to the firmware).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Serial => "Serial",
            StreamType::Tcp => "TCP",
            StreamType::Udp => "UDP",
            StreamType::Mqtt => "MQTT",
            StreamType::Ffmpeg => "FFMPEG",
        }
    }

    /// The transport that decides the chunk size. MQTT and FFMPEG sessions
    /// keep the TCP chunk size (the firmware does not cap them).
    pub fn transport(self) -> Transport {
        match self {
            StreamType::Udp => Transport::Udp,
            StreamType::Serial => Transport::Serial,
            StreamType::Tcp | StreamType::Mqtt | StreamType::Ffmpeg => Transport::Tcp,
        }
    }
}

impl fmt::Display for StreamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unsupported stream type {s:?} (Serial, TCP, UDP, MQTT, FFMPEG; case matters)"
                )
            })
    }
}

/// The `sample` command's payload. `None` fields are left out of the line,
/// and the meter uses its defaults (measures `v,i,v,i,v,i`, prefix on, flow
/// control off, immediate start, no slots).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SampleParams {
    #[serde(rename = "type")]
    pub stream_type: StreamType,
    /// Required by the firmware: a `sample` without it is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measures: Option<Measures>,
    /// `Data:` framing on or off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<bool>,
    /// UDP destination port; required for UDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Unix seconds to start at (0.5 s to 20 s ahead), for synchronised starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// When on, data flows only after `reqSamples`/`cts`.
    #[serde(rename = "flowCtr", skip_serializing_if = "Option::is_none")]
    pub flow_ctr: Option<bool>,
    /// `(slot, slots)`: send only while `unix_seconds % slots == slot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<(u32, u32)>,
    /// NTP confidence in ms asked for before starting (documented by the
    /// vendor, ignored by firmware 2.2).
    #[serde(rename = "ntpConf", skip_serializing_if = "Option::is_none")]
    pub ntp_conf: Option<u32>,
}

impl SampleParams {
    /// A plain start: everything but type and rate at the meter's defaults.
    pub fn new(stream_type: StreamType, rate: u32) -> Self {
        SampleParams {
            stream_type,
            rate: Some(rate),
            ..SampleParams::default()
        }
    }
}

/// A command line to the meter.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Device info (also sent unasked on every new connection).
    Info,
    GetPower,
    GetVoltage,
    GetCurrent,
    GetEnergy,
    GetPeriod,
    GetPhaseAngle,
    /// New mDNS and device name.
    Mdns {
        name: String,
    },
    AddWifi {
        ssid: String,
        pwd: String,
    },
    DelWifi {
        ssid: String,
    },
    /// v1, i1, v2, i2, v3, i3 factors; each |factor| must be in 0.5..=2.0.
    Calibration {
        cal: [f64; 6],
    },
    Restart,
    /// Restart daily at hour:minute; -1 disables.
    DailyRestart {
        hour: i8,
        minute: i8,
    },
    FactoryReset,
    /// Reset everything but the name.
    BasicReset,
    /// Reset the energy counters, optionally to given Wh per phase and as of
    /// a given Unix second.
    ResetEnergy {
        energy: Option<[f64; 3]>,
        ts: Option<u32>,
    },
    Sample(SampleParams),
    /// With flow control: send this many samples (11..=2000).
    ReqSamples {
        samples: u32,
    },
    /// Clear (true) or stop (false) the meter to send.
    Cts {
        value: bool,
    },
    Stop,
    /// Log level of this connection.
    Log {
        level: LogLevel,
    },
    ClearLog,
    GetLog,
    MqttServer {
        server: String,
    },
    /// Where the meter dials out to every 30 s (port 54322).
    StreamServer {
        server: String,
    },
    /// NTP sync now; `bg` runs it in the background.
    Ntp {
        bg: Option<bool>,
    },
    TimeServer {
        server: String,
    },
    /// ADE9000 register access, a firmware debugging command missing from the
    /// guide: `address`/`write` are hex strings like `"0x4a0"`, `size` 16 or 32.
    Ade9k {
        address: String,
        size: u8,
        write: Option<String>,
    },
    /// `?`: answers `Info:Setup done`.
    Ping,
    /// `!`: ignored by the meter, keeps idle connections open.
    KeepAlive,
}

impl From<SampleParams> for Command {
    fn from(params: SampleParams) -> Self {
        Command::Sample(params)
    }
}

impl Command {
    /// The `cmd` value (`?`/`!` for the bare commands).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Info => "info",
            Command::GetPower => "getPower",
            Command::GetVoltage => "getVoltage",
            Command::GetCurrent => "getCurrent",
            Command::GetEnergy => "getEnergy",
            Command::GetPeriod => "getPeriod",
            Command::GetPhaseAngle => "getPhaseAngle",
            Command::Mdns { .. } => "mdns",
            Command::AddWifi { .. } => "addWifi",
            Command::DelWifi { .. } => "delWifi",
            Command::Calibration { .. } => "calibration",
            Command::Restart => "restart",
            Command::DailyRestart { .. } => "dailyRestart",
            Command::FactoryReset => "factoryReset",
            Command::BasicReset => "basicReset",
            Command::ResetEnergy { .. } => "resetEnergy",
            Command::Sample(_) => "sample",
            Command::ReqSamples { .. } => "reqSamples",
            Command::Cts { .. } => "cts",
            Command::Stop => "stop",
            Command::Log { .. } => "log",
            Command::ClearLog => "clearLog",
            Command::GetLog => "getLog",
            Command::MqttServer { .. } => "mqttServer",
            Command::StreamServer { .. } => "streamServer",
            Command::Ntp { .. } => "ntp",
            Command::TimeServer { .. } => "timeServer",
            Command::Ade9k { .. } => "ade9k",
            Command::Ping => "?",
            Command::KeepAlive => "!",
        }
    }

    /// The line to send, without the `\n`.
    pub fn to_line(&self) -> String {
        match self {
            Command::Ping | Command::KeepAlive => self.name().to_string(),
            // Our Serialize impls only use string keys, the one way serde_json fails.
            _ => serde_json::to_string(&Wire(self)).expect("commands serialize to JSON infallibly"),
        }
    }

    /// Reads one command line (a trailing `\r\n` is ignored).
    pub fn parse_line(line: &str) -> Result<Command, CommandError> {
        Self::parse_bytes(line.as_bytes())
    }

    /// [`Command::parse_line`] on raw bytes; non-UTF-8 is invalid JSON.
    pub fn parse_bytes(line: &[u8]) -> Result<Command, CommandError> {
        let mut line = line;
        while let [rest @ .., b'\r' | b'\n'] = line {
            line = rest;
        }
        // Like the firmware, only the first byte decides.
        match line.first() {
            Some(b'?') => return Ok(Command::Ping),
            Some(b'!') => return Ok(Command::KeepAlive),
            _ => {}
        }
        let invalid_json = |source| CommandError::InvalidJson {
            source,
            excerpt: excerpt(&String::from_utf8_lossy(line)),
        };
        // The firmware's JSON parser reads the first value and ignores what follows.
        let value = match serde_json::Deserializer::from_slice(line)
            .into_iter::<Value>()
            .next()
        {
            Some(result) => result,
            // Nothing but blanks: let serde_json name the error.
            None => serde_json::from_slice::<Value>(line),
        }
        .map_err(invalid_json)?;
        let no_cmd = |reason: &str| CommandError::InvalidField {
            cmd: String::new(),
            field: "cmd".into(),
            reason: reason.into(),
        };
        let Value::Object(object) = value else {
            return Err(no_cmd("the line is not a JSON object"));
        };
        let cmd = match object.get("cmd") {
            Some(Value::String(cmd)) => cmd.as_str(),
            Some(_) => return Err(no_cmd("not a string")),
            None => return Err(no_cmd("missing")),
        };
        parse_object(cmd, &object)
    }
}

/// Reads the fields of one command the way `handleJSON` does.
fn parse_object(cmd: &str, object: &Map<String, Value>) -> Result<Command, CommandError> {
    let top = Args {
        cmd,
        map: Some(object),
        in_payload: false,
    };
    let payload = top.payload();
    Ok(match cmd {
        "info" => Command::Info,
        "getPower" => Command::GetPower,
        "getVoltage" => Command::GetVoltage,
        "getCurrent" => Command::GetCurrent,
        "getEnergy" => Command::GetEnergy,
        "getPeriod" => Command::GetPeriod,
        "getPhaseAngle" => Command::GetPhaseAngle,
        "mdns" => Command::Mdns {
            name: payload.string("name")?,
        },
        "addWifi" => Command::AddWifi {
            ssid: payload.string("ssid")?,
            pwd: payload.string("pwd")?,
        },
        "delWifi" => Command::DelWifi {
            ssid: payload.string("ssid")?,
        },
        "calibration" => Command::Calibration {
            cal: parse_calibration(&top)?,
        },
        "restart" => Command::Restart,
        "dailyRestart" => Command::DailyRestart {
            hour: top.int("hour", -1, 23)?,
            minute: top.int("minute", -1, 59)?,
        },
        "factoryReset" => Command::FactoryReset,
        "basicReset" => Command::BasicReset,
        "resetEnergy" => Command::ResetEnergy {
            energy: match top.opt_numbers("energy")? {
                None => None,
                Some(values) => Some(
                    <[f64; 3]>::try_from(values.as_slice())
                        .map_err(|_| top.err("energy", "needs exactly 3 values (Wh per phase)"))?,
                ),
            },
            ts: top.opt_uint("ts")?,
        },
        "sample" => Command::Sample(parse_sample(&payload)?),
        "reqSamples" => {
            let samples: u32 = top.uint("samples")?;
            if !(11..=2000).contains(&samples) {
                return Err(top.err("samples", format!("{samples} is outside 11..=2000")));
            }
            Command::ReqSamples { samples }
        }
        "cts" => Command::Cts {
            value: top
                .lenient_bool("value")?
                .ok_or_else(|| top.err("value", "missing"))?,
        },
        "stop" => Command::Stop,
        "log" => {
            let level = top.string("level")?;
            Command::Log {
                level: level
                    .parse()
                    .map_err(|reason: String| top.err("level", reason))?,
            }
        }
        "clearLog" => Command::ClearLog,
        "getLog" => Command::GetLog,
        "mqttServer" => Command::MqttServer {
            server: payload.string("server")?,
        },
        "streamServer" => Command::StreamServer {
            server: payload.string("server")?,
        },
        "timeServer" => Command::TimeServer {
            server: payload.string("server")?,
        },
        "ntp" => Command::Ntp {
            bg: payload.lenient_bool("bg")?,
        },
        "ade9k" => {
            let hex = |key: &'static str, text: String| {
                if text.len() >= 3 && text.starts_with("0x") {
                    Ok(text)
                } else {
                    Err(top.err(key, "expected a hex string like \"0xab\""))
                }
            };
            Command::Ade9k {
                address: hex("address", top.string("address")?)?,
                size: top.uint("size")?,
                write: top
                    .opt_string("write")?
                    .map(|w| hex("write", w))
                    .transpose()?,
            }
        }
        other => return Err(CommandError::Unknown(other.to_string())),
    })
}

fn parse_calibration(top: &Args<'_>) -> Result<[f64; 6], CommandError> {
    let values = top
        .opt_numbers("cal")?
        .ok_or_else(|| top.err("cal", "missing"))?;
    // The firmware uses the first six and ignores the rest.
    let cal: [f64; 6] = values
        .get(..6)
        .and_then(|six| six.try_into().ok())
        .ok_or_else(|| top.err("cal", format!("needs 6 factors, got {}", values.len())))?;
    if let Some(bad) = cal.iter().find(|v| !(0.5..=2.0).contains(&v.abs())) {
        return Err(top.err("cal", format!("factor {bad} outside [0.5, 2.0]")));
    }
    Ok(cal)
}

fn parse_sample(p: &Args<'_>) -> Result<SampleParams, CommandError> {
    let stream_type: StreamType = p
        .string("type")?
        .parse()
        .map_err(|reason: String| p.err("type", reason))?;
    let rate = match p.opt_uint::<u32>("rate")? {
        None | Some(0) => return Err(p.err("rate", "missing (the firmware has no default here)")),
        Some(rate) => rate,
    };
    let measures = match p.opt_string("measures")? {
        None => None,
        Some(text) => {
            // The firmware compares exactly: no blanks, no empty string.
            let parsed = if text.is_empty() || text.trim() != text {
                Err(format!("unsupported measures {text:?}"))
            } else {
                text.parse::<Measures>().map_err(|e| e.to_string())
            };
            Some(parsed.map_err(|reason| p.err("measures", reason))?)
        }
    };
    measures
        .unwrap_or_default()
        .validate_rate(rate)
        .map_err(|e| p.err("rate", e.to_string()))?;
    let port = match p.opt_uint::<u16>("port")? {
        Some(0) => return Err(p.err("port", "must not be 0")),
        port => port,
    };
    if stream_type == StreamType::Udp && port.is_none() {
        return Err(p.err("port", "required for UDP"));
    }
    let slot = match p.get("slot") {
        None => None,
        Some(value) => {
            let pair = value
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((whole::<u32>(&a[0])?, whole::<u32>(&a[1])?)));
            Some(pair.ok_or_else(|| p.err("slot", "expected [slot, slots]"))?)
        }
    };
    Ok(SampleParams {
        stream_type,
        rate: Some(rate),
        measures,
        prefix: p.lenient_bool("prefix")?,
        port,
        time: p.opt_uint("time")?,
        flow_ctr: p.lenient_bool("flowCtr")?,
        slot,
        ntp_conf: p.opt_uint("ntpConf")?,
    })
}

/// A whole, non-negative JSON number that fits `T` (`8000.0` counts).
fn whole<T: TryFrom<u64>>(value: &Value) -> Option<T> {
    let n = match value.as_u64() {
        Some(n) => n,
        None => {
            let f = value.as_f64()?;
            if f.fract() != 0.0 || !(0.0..=u64::MAX as f64).contains(&f) {
                return None;
            }
            f as u64
        }
    };
    T::try_from(n).ok()
}

/// One level of a command object (top level or `payload`), for field
/// reads with errors that name the field.
struct Args<'a> {
    cmd: &'a str,
    /// None when the level is absent (a missing `payload`).
    map: Option<&'a Map<String, Value>>,
    in_payload: bool,
}

impl<'a> Args<'a> {
    /// The `payload` object; a missing or non-object payload reads as empty,
    /// as `root["payload"]["x"]` does in the firmware.
    fn payload(&self) -> Args<'a> {
        Args {
            cmd: self.cmd,
            map: self
                .map
                .and_then(|m| m.get("payload"))
                .and_then(Value::as_object),
            in_payload: true,
        }
    }

    fn err(&self, key: &str, reason: impl Into<String>) -> CommandError {
        CommandError::InvalidField {
            cmd: self.cmd.to_string(),
            field: if self.in_payload {
                format!("payload.{key}")
            } else {
                key.to_string()
            },
            reason: reason.into(),
        }
    }

    /// The value at `key`; JSON null counts as absent, as in the firmware.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, CommandError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(key, "expected a string")),
        }
    }

    fn string(&self, key: &str) -> Result<String, CommandError> {
        self.opt_string(key)?
            .ok_or_else(|| self.err(key, "missing"))
    }

    fn opt_uint<T: TryFrom<u64> + Bounded>(&self, key: &str) -> Result<Option<T>, CommandError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => whole::<T>(value).map(Some).ok_or_else(|| {
                self.err(
                    key,
                    format!("expected a whole number in 0..={}", T::MAX_TEXT),
                )
            }),
        }
    }

    fn uint<T: TryFrom<u64> + Bounded>(&self, key: &str) -> Result<T, CommandError> {
        self.opt_uint(key)?.ok_or_else(|| self.err(key, "missing"))
    }

    /// A required whole number in `min..=max` (negative allowed).
    fn int(&self, key: &str, min: i8, max: i8) -> Result<i8, CommandError> {
        let value = self.get(key).ok_or_else(|| self.err(key, "missing"))?;
        value
            .as_i64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e6)
                    .map(|f| f as i64)
            })
            .and_then(|n| i8::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| self.err(key, format!("expected a whole number in {min}..={max}")))
    }

    /// true/false, the strings "true"/"false" (any case) or a number (non-zero is true).
    fn lenient_bool(&self, key: &str) -> Result<Option<bool>, CommandError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(Value::Number(n)) => Ok(Some(n.as_f64() != Some(0.0))),
            Some(_) => Err(self.err(key, "expected true or false")),
        }
    }

    fn opt_numbers(&self, key: &str) -> Result<Option<Vec<f64>>, CommandError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .as_array()
            .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .map(Some)
            .ok_or_else(|| self.err(key, "expected an array of numbers"))
    }
}

/// Upper bounds of the integer types fields use, for error texts.
trait Bounded {
    const MAX_TEXT: &'static str;
}

impl Bounded for u8 {
    const MAX_TEXT: &'static str = "255";
}

impl Bounded for u16 {
    const MAX_TEXT: &'static str = "65535";
}

impl Bounded for u32 {
    const MAX_TEXT: &'static str = "4294967295";
}

impl Bounded for u64 {
    const MAX_TEXT: &'static str = "18446744073709551615";
}

/// Serializes a JSON command with keys in the firmware's documented order.
struct Wire<'a>(&'a Command);

#[derive(Serialize)]
struct NamePayload<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct WifiPayload<'a> {
    ssid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pwd: Option<&'a str>,
}

#[derive(Serialize)]
struct ServerPayload<'a> {
    server: &'a str,
}

#[derive(Serialize)]
struct NtpPayload {
    bg: bool,
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("cmd", self.0.name())?;
        match self.0 {
            Command::Mdns { name } => map.serialize_entry("payload", &NamePayload { name })?,
            Command::AddWifi { ssid, pwd } => map.serialize_entry(
                "payload",
                &WifiPayload {
                    ssid,
                    pwd: Some(pwd),
                },
            )?,
            Command::DelWifi { ssid } => {
                map.serialize_entry("payload", &WifiPayload { ssid, pwd: None })?
            }
            Command::Calibration { cal } => map.serialize_entry("cal", cal)?,
            Command::DailyRestart { hour, minute } => {
                map.serialize_entry("hour", hour)?;
                map.serialize_entry("minute", minute)?;
            }
            Command::ResetEnergy { energy, ts } => {
                if let Some(energy) = energy {
                    map.serialize_entry("energy", energy)?;
                }
                if let Some(ts) = ts {
                    map.serialize_entry("ts", ts)?;
                }
            }
            Command::Sample(params) => map.serialize_entry("payload", params)?,
            Command::ReqSamples { samples } => map.serialize_entry("samples", samples)?,
            Command::Cts { value } => map.serialize_entry("value", value)?,
            Command::Log { level } => map.serialize_entry("level", level)?,
            Command::MqttServer { server }
            | Command::StreamServer { server }
            | Command::TimeServer { server } => {
                map.serialize_entry("payload", &ServerPayload { server })?
            }
            Command::Ntp { bg: Some(bg) } => {
                map.serialize_entry("payload", &NtpPayload { bg: *bg })?
            }
            Command::Ade9k {
                address,
                size,
                write,
            } => {
                map.serialize_entry("address", address)?;
                map.serialize_entry("size", size)?;
                if let Some(write) = write {
                    map.serialize_entry("write", write)?;
                }
            }
            Command::Info
            | Command::GetPower
            | Command::GetVoltage
            | Command::GetCurrent
            | Command::GetEnergy
            | Command::GetPeriod
            | Command::GetPhaseAngle
            | Command::Restart
            | Command::FactoryReset
            | Command::BasicReset
            | Command::Stop
            | Command::ClearLog
            | Command::GetLog
            | Command::Ntp { bg: None }
            | Command::Ping
            | Command::KeepAlive => {}
        }
        map.end()
    }
}

/// Where the decoder is between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// The first `scanned` buffered bytes hold no `\n`.
    Scanning { scanned: usize },
    /// Dropping an overlong line up to its `\n`; `dropped` bytes so far.
    Discarding { dropped: usize },
}

/// Line codec of the command channel. Encodes commands for the meter and
/// decodes them on the meter side (the virtual meter). A bad line is an
/// `Err` item, not a stream error, so one bad command never ends the
/// connection; overlong lines are dropped as they arrive, never buffered.
#[derive(Debug, Clone)]
pub struct CommandCodec {
    max_line: usize,
    state: LineState,
}

impl Default for CommandCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandCodec {
    /// Lines up to [`DEFAULT_MAX_LINE`] bytes.
    pub fn new() -> Self {
        Self::with_max_line_length(DEFAULT_MAX_LINE)
    }

    /// Lines up to `max` bytes (without the line end).
    pub fn with_max_line_length(max: usize) -> Self {
        CommandCodec {
            max_line: max,
            state: LineState::Scanning { scanned: 0 },
        }
    }

    pub fn max_line_length(&self) -> usize {
        self.max_line
    }

    fn too_long(&self, len: usize) -> Result<Command, CommandError> {
        Err(CommandError::LineTooLong {
            len,
            max: self.max_line,
        })
    }

    /// The item for one complete line (without `\n`); None for a blank line.
    fn line_item(&self, line: &[u8]) -> Option<Result<Command, CommandError>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_line {
            return Some(self.too_long(line.len()));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(Command::parse_bytes(line))
    }
}

impl Decoder for CommandCodec {
    type Item = Result<Command, CommandError>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        loop {
            match self.state {
                LineState::Discarding { dropped } => match memchr::memchr(b'\n', src) {
                    Some(at) => {
                        src.advance(at + 1);
                        self.state = LineState::Scanning { scanned: 0 };
                        return Ok(Some(self.too_long(dropped + at)));
                    }
                    None => {
                        self.state = LineState::Discarding {
                            dropped: dropped + src.len(),
                        };
                        src.clear();
                        return Ok(None);
                    }
                },
                LineState::Scanning { scanned } => {
                    match memchr::memchr(b'\n', &src[scanned..]) {
                        Some(offset) => {
                            let end = scanned + offset;
                            let line = src.split_to(end + 1);
                            self.state = LineState::Scanning { scanned: 0 };
                            match self.line_item(&line[..end]) {
                                Some(item) => return Ok(Some(item)),
                                None => continue,
                            }
                        }
                        // One byte of slack for a `\r` that will be stripped.
                        None if src.len() > self.max_line + 1 => {
                            self.state = LineState::Discarding { dropped: src.len() };
                            src.clear();
                            return Ok(None);
                        }
                        None => {
                            self.state = LineState::Scanning { scanned: src.len() };
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    /// A last line without `\n` still counts, as the firmware's read
    /// timeout would hand it over too.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        let state = std::mem::replace(&mut self.state, LineState::Scanning { scanned: 0 });
        let rest = src.split();
        match state {
            LineState::Discarding { dropped } => Ok(Some(self.too_long(dropped + rest.len()))),
            LineState::Scanning { .. } => Ok(self.line_item(&rest)),
        }
    }
}

impl Encoder<&Command> for CommandCodec {
    type Error = io::Error;

    /// Writes the line and `\n` in one piece: the firmware gives up on a
    /// line after a 10 ms read timeout, so a command must not trickle out.
    fn encode(&mut self, command: &Command, dst: &mut BytesMut) -> Result<(), io::Error> {
        let line = command.to_line();
        if line.len() > FIRMWARE_MAX_COMMAND {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} command of {} bytes exceeds the meter's {FIRMWARE_MAX_COMMAND}-byte line buffer",
                    command.name(),
                    line.len()
                ),
            ));
        }
        dst.reserve(line.len() + 1);
        dst.put_slice(line.as_bytes());
        dst.put_u8(b'\n');
        Ok(())
    }
}

impl Encoder<Command> for CommandCodec {
    type Error = io::Error;

    fn encode(&mut self, command: Command, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.encode(&command, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::layout::Phase;

    fn every_command() -> Vec<Command> {
        vec![
            Command::Info,
            Command::GetPower,
            Command::GetVoltage,
            Command::GetCurrent,
            Command::GetEnergy,
            Command::GetPeriod,
            Command::GetPhaseAngle,
            Command::Mdns {
                name: "smartmeter001".into(),
            },
            Command::AddWifi {
                ssid: "Test \"lab\"".into(),
                pwd: "Test\\Pwd".into(),
            },
            Command::DelWifi {
                ssid: "Test".into(),
            },
            Command::Calibration {
                cal: [1.0, 0.98, 1.02, -1.5, 0.5, 2.0],
            },
            Command::Restart,
            Command::DailyRestart { hour: 3, minute: 0 },
            Command::DailyRestart {
                hour: -1,
                minute: -1,
            },
            Command::FactoryReset,
            Command::BasicReset,
            Command::ResetEnergy {
                energy: None,
                ts: None,
            },
            Command::ResetEnergy {
                energy: Some([10149.5684, 5101.23238, 0.0]),
                ts: Some(1632219770),
            },
            Command::Sample(SampleParams::new(StreamType::Tcp, 8000)),
            Command::Sample(SampleParams {
                stream_type: StreamType::Udp,
                rate: Some(4000),
                measures: Some(Measures::Phase(Phase::L2)),
                prefix: Some(false),
                port: Some(54323),
                time: Some(1614697441),
                flow_ctr: Some(true),
                slot: Some((1, 3)),
                ntp_conf: Some(10),
            }),
            Command::Sample(SampleParams {
                measures: Some(Measures::PowerLatch),
                ..SampleParams::new(StreamType::Mqtt, 50)
            }),
            Command::ReqSamples { samples: 2000 },
            Command::Cts { value: true },
            Command::Cts { value: false },
            Command::Stop,
            Command::Log {
                level: LogLevel::Warning,
            },
            Command::ClearLog,
            Command::GetLog,
            Command::MqttServer {
                server: "192.168.0.13".into(),
            },
            Command::StreamServer {
                server: "192.168.0.10".into(),
            },
            Command::Ntp { bg: None },
            Command::Ntp { bg: Some(true) },
            Command::TimeServer {
                server: "time.google.com".into(),
            },
            Command::Ade9k {
                address: "0x4a0".into(),
                size: 16,
                write: None,
            },
            Command::Ade9k {
                address: "0x4a0".into(),
                size: 32,
                write: Some("0x1".into()),
            },
            Command::Ping,
            Command::KeepAlive,
        ]
    }

    #[test]
    fn every_command_round_trips() {
        for command in every_command() {
            let line = command.to_line();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(Command::parse_line(&line).unwrap(), command, "{line}");
        }
    }

    #[test]
    fn exact_wire_text() {
        let sample = Command::Sample(SampleParams::new(StreamType::Tcp, 8000));
        assert_eq!(
            sample.to_line(),
            r#"{"cmd":"sample","payload":{"type":"TCP","rate":8000}}"#
        );
        let cases = [
            (Command::Info, r#"{"cmd":"info"}"#),
            (Command::Stop, r#"{"cmd":"stop"}"#),
            (Command::Ping, "?"),
            (Command::KeepAlive, "!"),
            (
                Command::Log {
                    level: LogLevel::Info,
                },
                r#"{"cmd":"log","level":"info"}"#,
            ),
            (
                Command::Mdns { name: "x".into() },
                r#"{"cmd":"mdns","payload":{"name":"x"}}"#,
            ),
            (
                Command::AddWifi {
                    ssid: "a".into(),
                    pwd: "b".into(),
                },
                r#"{"cmd":"addWifi","payload":{"ssid":"a","pwd":"b"}}"#,
            ),
            (
                Command::Calibration { cal: [1.0; 6] },
                r#"{"cmd":"calibration","cal":[1.0,1.0,1.0,1.0,1.0,1.0]}"#,
            ),
            (
                Command::DailyRestart { hour: 0, minute: 5 },
                r#"{"cmd":"dailyRestart","hour":0,"minute":5}"#,
            ),
            (
                Command::ReqSamples { samples: 100 },
                r#"{"cmd":"reqSamples","samples":100}"#,
            ),
            (
                Command::Cts { value: true },
                r#"{"cmd":"cts","value":true}"#,
            ),
            (
                Command::StreamServer {
                    server: "10.0.0.1".into(),
                },
                r#"{"cmd":"streamServer","payload":{"server":"10.0.0.1"}}"#,
            ),
        ];
        for (command, line) in cases {
            assert_eq!(command.to_line(), line);
        }
        let full = Command::Sample(SampleParams {
            stream_type: StreamType::Udp,
            rate: Some(4000),
            measures: Some(Measures::SinglePhase),
            prefix: Some(true),
            port: Some(54323),
            time: Some(1614697441),
            flow_ctr: Some(false),
            slot: Some((0, 3)),
            ntp_conf: Some(10),
        });
        assert_eq!(
            full.to_line(),
            r#"{"cmd":"sample","payload":{"type":"UDP","rate":4000,"measures":"v,i","prefix":true,"port":54323,"time":1614697441,"flowCtr":false,"slot":[0,3],"ntpConf":10}}"#
        );
    }

    #[test]
    fn parses_what_the_firmware_accepts() {
        let parse = |line: &str| Command::parse_line(line).unwrap();
        let Command::Sample(p) = parse(
            r#"{"cmd":"sample", "payload":{"type":"TCP","rate":8000,"prefix":"false","flowCtr":"true"}}"#,
        ) else {
            panic!("not a sample");
        };
        assert_eq!((p.prefix, p.flow_ctr), (Some(false), Some(true)));
        let Command::Sample(p) = parse(
            r#"{"cmd":"sample","payload":{"type":"Serial","rate":8000.0,"prefix":1,"measures":null}}"#,
        ) else {
            panic!("not a sample");
        };
        assert_eq!(
            (p.rate, p.prefix, p.measures),
            (Some(8000), Some(true), None)
        );
        // Trailing \r\n and anything after the first JSON value are ignored.
        assert_eq!(parse("{\"cmd\":\"stop\"} trailing\r\n"), Command::Stop);
        assert_eq!(parse("?anything"), Command::Ping);
        assert_eq!(parse("!\r"), Command::KeepAlive);
        assert_eq!(
            parse(r#"{"cmd":"ntp","payload":{"bg":"TRUE"}}"#),
            Command::Ntp { bg: Some(true) }
        );
        assert_eq!(
            parse(r#"{"cmd":"calibration","cal":[1,1,1,1,1,1,7]}"#),
            Command::Calibration { cal: [1.0; 6] }
        );
    }

    fn field_error(line: &str) -> (String, String) {
        match Command::parse_line(line) {
            Err(CommandError::InvalidField { cmd, field, .. }) => (cmd, field),
            other => panic!("{line}: expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn refuses_what_the_firmware_refuses() {
        let s = |cmd: &str, field: &str| (cmd.to_string(), field.to_string());
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"rate":8000}}"#),
            s("sample", "payload.type")
        );
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"type":"tcp","rate":8000}}"#),
            s("sample", "payload.type")
        );
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"type":"TCP"}}"#),
            s("sample", "payload.rate")
        );
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"type":"TCP","rate":7000}}"#),
            s("sample", "payload.rate")
        );
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"type":"TCP","rate":100,"measures":"p,q"}}"#),
            s("sample", "payload.rate")
        );
        assert_eq!(
            field_error(
                r#"{"cmd":"sample","payload":{"type":"TCP","rate":50,"measures":"p,p,p,q,q,q"}}"#
            ),
            s("sample", "payload.measures")
        );
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"type":"UDP","rate":8000}}"#),
            s("sample", "payload.port")
        );
        assert_eq!(
            field_error(
                r#"{"cmd":"sample","payload":{"type":"TCP","rate":8000,"prefix":"maybe"}}"#
            ),
            s("sample", "payload.prefix")
        );
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"type":"TCP","rate":8000,"slot":[1]}}"#),
            s("sample", "payload.slot")
        );
        assert_eq!(
            field_error(r#"{"cmd":"sample","payload":{"type":"TCP","rate":-8000}}"#),
            s("sample", "payload.rate")
        );
        assert_eq!(field_error(r#"{"cmd":"mdns"}"#), s("mdns", "payload.name"));
        assert_eq!(
            field_error(r#"{"cmd":"mdns","payload":{"name":5}}"#),
            s("mdns", "payload.name")
        );
        assert_eq!(
            field_error(r#"{"cmd":"log","level":"loud"}"#),
            s("log", "level")
        );
        assert_eq!(field_error(r#"{"cmd":"cts"}"#), s("cts", "value"));
        assert_eq!(
            field_error(r#"{"cmd":"reqSamples","samples":10}"#),
            s("reqSamples", "samples")
        );
        assert_eq!(
            field_error(r#"{"cmd":"calibration","cal":[1,1]}"#),
            s("calibration", "cal")
        );
        assert_eq!(
            field_error(r#"{"cmd":"calibration","cal":[1,1,1,1,1,3]}"#),
            s("calibration", "cal")
        );
        assert_eq!(
            field_error(r#"{"cmd":"dailyRestart","hour":24,"minute":0}"#),
            s("dailyRestart", "hour")
        );
        assert_eq!(
            field_error(r#"{"cmd":"dailyRestart","hour":1}"#),
            s("dailyRestart", "minute")
        );
        assert_eq!(
            field_error(r#"{"cmd":"resetEnergy","energy":[1,2]}"#),
            s("resetEnergy", "energy")
        );
        assert_eq!(
            field_error(r#"{"cmd":"ade9k","address":"4a0","size":16}"#),
            s("ade9k", "address")
        );
        assert_eq!(field_error(r#"{"payload":{}}"#), s("", "cmd"));
        assert_eq!(field_error(r#"{"cmd":7}"#), s("", "cmd"));
        assert_eq!(field_error("[1,2]"), s("", "cmd"));
    }

    #[test]
    fn unknown_and_invalid_json() {
        assert!(matches!(
            Command::parse_line(r#"{"cmd":"selfDestruct"}"#),
            Err(CommandError::Unknown(name)) if name == "selfDestruct"
        ));
        for bad in [r#"{"cmd":"stop""#, "stop", "{'cmd':'stop'}", ""] {
            assert!(
                matches!(
                    Command::parse_line(bad),
                    Err(CommandError::InvalidJson { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Command::parse_bytes(b"{\"cmd\":\"\xff\"}"),
            Err(CommandError::InvalidJson { .. })
        ));
        let err = Command::parse_line(r#"{"cmd":"info"#).unwrap_err();
        assert!(err.to_string().contains("invalid JSON command"));
    }

    /// Decodes everything `input` holds, fed in two parts split at `at`.
    fn decode_split(
        codec: &mut CommandCodec,
        input: &[u8],
        at: usize,
    ) -> Vec<Result<Command, String>> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut drain = |codec: &mut CommandCodec, buf: &mut BytesMut, eof: bool| loop {
            let item = if eof {
                codec.decode_eof(buf).unwrap()
            } else {
                codec.decode(buf).unwrap()
            };
            match item {
                Some(item) => out.push(item.map_err(|e| e.to_string())),
                None => break,
            }
        };
        buf.extend_from_slice(&input[..at]);
        drain(codec, &mut buf, false);
        buf.extend_from_slice(&input[at..]);
        drain(codec, &mut buf, false);
        drain(codec, &mut buf, true);
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn codec_round_trip_split_at_every_byte() {
        let commands = every_command();
        let mut encoder = CommandCodec::new();
        let mut wire = BytesMut::new();
        for command in &commands {
            encoder.encode(command, &mut wire).unwrap();
        }
        let expected: Vec<Result<Command, String>> = commands.iter().cloned().map(Ok).collect();
        for at in 0..=wire.len() {
            let mut decoder = CommandCodec::new();
            assert_eq!(
                decode_split(&mut decoder, &wire, at),
                expected,
                "split at {at}"
            );
        }
    }

    #[test]
    fn codec_skips_blank_lines_strips_cr_and_keeps_going_after_errors() {
        let input =
            b"\r\n  \n{\"cmd\":\"info\"}\r\n{bad\n{\"cmd\":\"nope\"}\n?\n{\"cmd\":\"stop\"}";
        let mut codec = CommandCodec::new();
        let mut buf = BytesMut::from(&input[..]);
        let mut items = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            items.push(item);
        }
        // The last line has no \n yet.
        assert_eq!(items.len(), 4);
        assert!(matches!(items[0], Ok(Command::Info)));
        assert!(matches!(items[1], Err(CommandError::InvalidJson { .. })));
        assert!(matches!(items[2], Err(CommandError::Unknown(_))));
        assert!(matches!(items[3], Ok(Command::Ping)));
        assert!(matches!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Ok(Command::Stop))
        ));
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn codec_drops_overlong_lines_without_buffering_them() {
        let mut codec = CommandCodec::with_max_line_length(32);
        assert_eq!(codec.max_line_length(), 32);
        let mut buf = BytesMut::new();
        // Feed a 10 000-byte line in pieces: the buffer never grows past the limit.
        let head = b"{\"cmd\":\"mdns\",\"payload\":{\"name\":\"";
        buf.extend_from_slice(head);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        for _ in 0..100 {
            buf.extend_from_slice(&[b'x'; 100]);
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert!(buf.len() <= 100, "buffered {} bytes", buf.len());
        }
        buf.extend_from_slice(b"\"}}\n{\"cmd\":\"stop\"}\n");
        match codec.decode(&mut buf).unwrap() {
            Some(Err(CommandError::LineTooLong { len, max })) => {
                assert_eq!(max, 32);
                assert_eq!(len, head.len() + 10_000 + 3);
            }
            other => panic!("expected LineTooLong, got {other:?}"),
        }
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Ok(Command::Stop))
        ));

        // A whole overlong line in one read, exactly-at-limit lines pass.
        let mut codec = CommandCodec::with_max_line_length(14);
        let mut buf = BytesMut::from(&b"{\"cmd\":\"info\"} \n{\"cmd\":\"info\"}\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Err(CommandError::LineTooLong { len: 15, max: 14 }))
        ));
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Ok(Command::Info))
        ));

        // An overlong tail at EOF is reported, not lost.
        let mut codec = CommandCodec::with_max_line_length(4);
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Err(CommandError::LineTooLong { len: 10, max: 4 }))
        ));
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn encoder_refuses_lines_the_meter_would_cut() {
        let mut codec = CommandCodec::new();
        let mut buf = BytesMut::new();
        codec.encode(Command::Stop, &mut buf).unwrap();
        assert_eq!(&buf[..], b"{\"cmd\":\"stop\"}\n");
        let long = Command::Mdns {
            name: "x".repeat(FIRMWARE_MAX_COMMAND),
        };
        let err = codec.encode(long, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(buf.len(), 15, "nothing written for a refused command");
    }

    #[test]
    fn stream_types() {
        for t in StreamType::ALL {
            assert_eq!(t.as_str().parse::<StreamType>(), Ok(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
            assert_eq!(
                serde_json::from_str::<StreamType>(&format!("\"{t}\"")).unwrap(),
                t
            );
        }
        assert_eq!(StreamType::Udp.transport(), Transport::Udp);
        assert_eq!(StreamType::Ffmpeg.transport(), Transport::Tcp);
        assert!("tcp".parse::<StreamType>().is_err());
    }
}
