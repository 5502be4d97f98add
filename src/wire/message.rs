//! Typed models of what the meter sends after `Info:`: log lines, the device
//! info, the answers to `sample` and `stop`, and the plain answers of every
//! other command.
//!
//! The firmware (`Firmware/Version_2`) is the authority on key names and key
//! order, not the vendor guide; see `smartmeter-firmware-facts.md`. Parsing is
//! tolerant where real meters differ (older guide examples, extra keys),
//! serialization writes exactly what the firmware writes, so a virtual meter
//! built on these types is byte-compatible with the vendor's host tools.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::command::StreamType;
use super::layout::{chunk_size, LayoutError, Measures, Phase};

/// What the meter sends when it gets `?` (after `Info:`).
pub const SETUP_DONE: &str = "Setup done";

/// The stop answer's fixed `msg`.
pub const STOP_MSG: &str = "Received stop command";

/// Longest excerpt of offending text kept in an error.
const EXCERPT_CHARS: usize = 80;

/// Why an `Info:` payload could not be turned into a typed message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The text starts with `{` but is not a JSON object.
    #[error("invalid JSON in Info line: {source}; text: {excerpt:?}")]
    InvalidJson {
        #[source]
        source: serde_json::Error,
        excerpt: String,
    },
    /// Valid JSON whose keys or value types do not fit the message its `cmd` names.
    #[error("{kind} message does not fit the firmware's schema: {source}; text: {excerpt:?}")]
    Schema {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
        excerpt: String,
    },
    #[error("not a log line (expected \"[I]MM/DD HH:MM:SS: message\"): {0:?}")]
    InvalidLogLine(String),
    #[error("invalid timestamp {0:?} (expected \"<unix seconds>.<3-digit millis>\")")]
    InvalidTimestamp(String),
    #[error("invalid number list {0:?} (expected \"[1.5, 2, 3]\")")]
    InvalidNumberList(String),
}

/// The first characters of `text`, for error messages that must stay short.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Serializes one of our own message types. Only non-string map keys or a
/// failing custom `Serialize` can make serde_json fail, and ours have neither.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("message types serialize to JSON infallibly")
}

// ---------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------

/// A meter timestamp as the firmware prints it: `"%u.%03u"`, Unix seconds and
/// milliseconds, e.g. `"1614697441.119"`. Sample n of a session is at
/// `startTs + n / samplingrate`, so this is the anchor of every sample time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StartTs {
    pub secs: u64,
    /// 0..=999 for timestamps the firmware makes.
    pub millis: u16,
}

impl StartTs {
    /// Nanoseconds since the Unix epoch, saturating past the year 2262.
    pub fn to_unix_nanos(self) -> i64 {
        let secs = i64::try_from(self.secs).unwrap_or(i64::MAX);
        secs.saturating_mul(1_000_000_000)
            .saturating_add(i64::from(self.millis) * 1_000_000)
    }

    /// Milliseconds since the Unix epoch, saturating.
    pub fn to_unix_millis(self) -> u64 {
        self.secs
            .saturating_mul(1000)
            .saturating_add(u64::from(self.millis))
    }

    pub fn from_unix_millis(millis: u64) -> Self {
        StartTs {
            secs: millis / 1000,
            // < 1000, so it fits.
            millis: (millis % 1000) as u16,
        }
    }
}

impl fmt::Display for StartTs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.secs, self.millis)
    }
}

impl FromStr for StartTs {
    type Err = MessageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MessageError::InvalidTimestamp(excerpt(s));
        let (secs, millis) = s.split_once('.').ok_or_else(bad)?;
        let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        // "%03u" always gives three digits for the millis the firmware keeps.
        if !all_digits(secs) || !all_digits(millis) || millis.len() != 3 {
            return Err(bad());
        }
        Ok(StartTs {
            secs: secs.parse().map_err(|_| bad())?,
            millis: millis.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for StartTs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StartTs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StartTsVisitor;

        impl Visitor<'_> for StartTsVisitor {
            type Value = StartTs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a \"<unix seconds>.<millis>\" string or whole unix seconds")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<StartTs, E> {
                v.parse().map_err(E::custom)
            }

            // `getEnergy` sends its `startTs` as a bare number of seconds.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StartTs, E> {
                Ok(StartTs { secs: v, millis: 0 })
            }
        }

        deserializer.deserialize_any(StartTsVisitor)
    }
}

// ---------------------------------------------------------------------------
// `cmd` tags
// ---------------------------------------------------------------------------

macro_rules! cmd_tag {
    ($(#[$doc:meta])* $name:ident = $value:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name;

        impl $name {
            /// The `cmd` value on the wire.
            pub const VALUE: &'static str = $value;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let got = String::deserialize(deserializer)?;
                if got == $value {
                    Ok($name)
                } else {
                    Err(de::Error::custom(format!(
                        "expected cmd {:?}, got {:?}",
                        $value, got
                    )))
                }
            }
        }
    };
}

cmd_tag!(
    /// `"cmd":"info"`: keeps a device info from being mistaken for another answer.
    InfoCmd = "info"
);
cmd_tag!(
    /// `"cmd":"sample"` of the sample answer.
    SampleCmd = "sample"
);
cmd_tag!(
    /// `"cmd":"stop"` of the stop answer.
    StopCmd = "stop"
);

// ---------------------------------------------------------------------------
// Device info
// ---------------------------------------------------------------------------

/// Whether the meter is sampling for someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    Idle,
    Busy,
    /// Any other value, so a newer firmware does not break parsing.
    #[serde(other)]
    Unknown,
}

/// The firmware's word for it: `idle`, `busy`, or `unknown`.
impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceState::Idle => "idle",
            DeviceState::Busy => "busy",
            DeviceState::Unknown => "unknown",
        })
    }
}

/// The `info` message: sent on every new connection and as the answer to
/// `info`. Fields are in the firmware's key order; everything the firmware
/// may leave out (or older firmware and the guide lack) is optional, and
/// unknown keys are kept in `extra` (the guide's `calV`, `calI`, `relay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoAnswer {
    pub cmd: InfoCmd,
    /// `"smartmeter"` from the firmware, `"SmartMeter"` in the guide.
    #[serde(rename = "type")]
    pub device_type: String,
    pub version: String,
    /// `__DATE__ " " __TIME__`, e.g. `"Mar  2 2021 09:57:58"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled: Option<String>,
    /// `"MM/DD/YYYY HH:MM:SS.mmm"`; see [`InfoAnswer::sys_time_parsed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sys_time: Option<String>,
    pub name: String,
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_server: Option<String>,
    /// The rate of the last (or default) sampling session, Hz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rate: Option<u32>,
    /// Ring buffer bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psram: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DeviceState>,
    /// Energy per phase in Wh, as the firmware's string `"[%.4f, %.4f, %.4f]"`;
    /// see [`InfoAnswer::energy_values`]. An array is accepted and kept as that string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "energy_string"
    )]
    pub energy: Option<String>,
    /// `"None"` or `"@HH:MM:00"`.
    #[serde(
        rename = "dailyReset",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub daily_reset: Option<String>,
    /// v1, i1, v2, i2, v3, i3 factors (the guide's example has two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Vec<f64>>,
    /// Known access points as one string, `"[ssid1, ssid2]"`; see [`InfoAnswer::ssid_list`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssids: Option<String>,
    /// Only on WiFi (absent on Ethernet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bssid: Option<String>,
    /// Keys this model does not know, kept so nothing a meter says is lost.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Accepts the firmware's energy string or a plain number array.
fn energy_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Energy {
        Text(String),
        Values(Vec<f64>),
    }
    Ok(match Option::<Energy>::deserialize(deserializer)? {
        None => None,
        Some(Energy::Text(text)) => Some(text),
        Some(Energy::Values(values)) => Some(InfoAnswer::format_energy(&values)),
    })
}

impl InfoAnswer {
    /// A device info with the firmware's constant fields; the rest is unset.
    pub fn new(name: impl Into<String>, ip: impl Into<String>) -> Self {
        InfoAnswer {
            cmd: InfoCmd,
            device_type: "smartmeter".to_string(),
            version: "2.2".to_string(),
            compiled: None,
            sys_time: None,
            name: name.into(),
            ip: ip.into(),
            mqtt_server: None,
            stream_server: None,
            time_server: None,
            sampling_rate: None,
            buffer_size: None,
            psram: None,
            rtc: None,
            state: Some(DeviceState::Idle),
            energy: None,
            daily_reset: None,
            calibration: None,
            ssids: None,
            ssid: None,
            rssi: None,
            bssid: None,
            extra: Map::new(),
        }
    }

    /// The guide says `SmartMeter`, the firmware `smartmeter`.
    pub fn is_smartmeter(&self) -> bool {
        self.device_type.eq_ignore_ascii_case("smartmeter")
    }

    /// Energy per phase in Wh; `Ok(None)` when the meter did not send it.
    pub fn energy_values(&self) -> Result<Option<Vec<f64>>, MessageError> {
        self.energy.as_deref().map(parse_number_list).transpose()
    }

    /// The firmware's energy string, `"[%.4f, %.4f, %.4f]"`.
    pub fn format_energy(values: &[f64]) -> String {
        let parts: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
        format!("[{}]", parts.join(", "))
    }

    /// The known SSIDs; tolerates the trailing `", "` that `addWifi` answers have.
    pub fn ssid_list(&self) -> Vec<String> {
        self.ssids
            .as_deref()
            .map(parse_name_list)
            .unwrap_or_default()
    }

    /// `sys_time` as a naive date-time (the meter's local time, no zone).
    pub fn sys_time_parsed(&self) -> Option<chrono::NaiveDateTime> {
        let text = self.sys_time.as_deref()?;
        chrono::NaiveDateTime::parse_from_str(text, "%m/%d/%Y %H:%M:%S%.3f").ok()
    }

    pub fn is_idle(&self) -> bool {
        self.state == Some(DeviceState::Idle)
    }
}

/// Parses `"[1.5, 2, 3]"` (brackets optional, empty list allowed).
pub fn parse_number_list(text: &str) -> Result<Vec<f64>, MessageError> {
    let bad = || MessageError::InvalidNumberList(excerpt(text));
    let inner = text.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(inner)
        .trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|part| part.trim().parse::<f64>().map_err(|_| bad()))
        .collect()
}

/// Parses `"[a, b, ]"`-style name lists, dropping empty entries.
fn parse_name_list(text: &str) -> Vec<String> {
    let inner = text.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(inner);
    inner
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Sample answer
// ---------------------------------------------------------------------------

/// The `measures` string the firmware echoes in its sample answer. It is not
/// always what was asked: `"v,i"` is sampled as L1 and echoed `"v,i_L1"`, and
/// the latch layouts are echoed in their long forms.
pub fn measures_echo(measures: Measures) -> &'static str {
    match measures {
        Measures::ThreePhase => "v,i,v,i,v,i",
        Measures::SinglePhase | Measures::Phase(Phase::L1) => "v,i_L1",
        Measures::Phase(Phase::L2) => "v,i_L2",
        Measures::Phase(Phase::L3) => "v,i_L3",
        Measures::PowerLatch => "p,p,p,q,q,q",
        Measures::RmsLatch => "v,v,v,i,i,i_RMS",
    }
}

/// Reads a `measures` echo: the short request forms and the firmware's long forms.
pub fn parse_measures_echo(text: &str) -> Result<Measures, LayoutError> {
    match text.trim() {
        "p,p,p,q,q,q" => Ok(Measures::PowerLatch),
        "v,v,v,i,i,i_RMS" => Ok(Measures::RmsLatch),
        other => other.parse(),
    }
}

/// Serde for `measures` in the sample answer (see [`measures_echo`]).
mod echoed_measures {
    use super::*;

    pub fn serialize<S: Serializer>(measures: &Measures, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(measures_echo(*measures))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Measures, D::Error> {
        let text = String::deserialize(d)?;
        parse_measures_echo(&text).map_err(de::Error::custom)
    }
}

/// The answer to a successful `sample`, sent before the first `Data:` frame.
/// Field order is the firmware's key order: `port` (UDP) and `slot` come
/// right after `cmd` because the firmware adds them while reading the
/// request, before it writes `measures`; `msg` follows `startTs` on a timed
/// start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleAnswer {
    /// Always false here; a failed `sample` is an [`ErrorAnswer`].
    #[serde(default)]
    pub error: bool,
    pub cmd: SampleCmd,
    /// The UDP port the data goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `[slot, slots]` of slot mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<(u32, u32)>,
    #[serde(with = "echoed_measures")]
    pub measures: Measures,
    /// Data bytes per `Data:` chunk (the tail chunk may be shorter).
    pub chunksize: usize,
    pub samplingrate: u32,
    pub conn_type: StreamType,
    /// Floats per sample.
    pub measurements: usize,
    pub prefix: bool,
    #[serde(rename = "flowCtr")]
    pub flow_ctr: bool,
    /// Wire units per channel, e.g. `"V,mA,V,mA,V,mA"`.
    pub unit: String,
    /// Time of sample 0 (the requested start time on a timed start).
    #[serde(rename = "startTs")]
    pub start_ts: StartTs,
    /// Only on a timed start: `"Should sample at: …//nStart sampling in: …ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
}

impl SampleAnswer {
    /// The answer the firmware gives for an immediate start with these settings.
    pub fn new(
        measures: Measures,
        rate: u32,
        conn_type: StreamType,
        prefix: bool,
        flow_ctr: bool,
        start_ts: StartTs,
    ) -> Self {
        SampleAnswer {
            error: false,
            cmd: SampleCmd,
            port: None,
            slot: None,
            measures,
            chunksize: chunk_size(rate, measures.bytes_per_sample(), conn_type.transport()),
            samplingrate: rate,
            conn_type,
            measurements: measures.channel_count(),
            prefix,
            flow_ctr,
            unit: measures.unit_string(),
            start_ts,
            msg: None,
        }
    }

    /// Bytes of one interleaved sample in the `Data:` payloads.
    pub fn bytes_per_sample(&self) -> usize {
        self.measurements * super::layout::BYTES_PER_VALUE
    }
}

// ---------------------------------------------------------------------------
// Stop answer
// ---------------------------------------------------------------------------

/// The answer to `stop`, sent after the tail chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopAnswer {
    /// `"Received stop command"`.
    pub msg: String,
    /// Milliseconds the session ran.
    pub sample_duration: u64,
    /// Samples taken.
    pub samples: u64,
    /// Samples written to the sink; fewer than `samples` means data was lost.
    pub sent_samples: u64,
    pub start_ts: StartTs,
    pub stop_ts: StartTs,
    pub ip: String,
    /// Samples per second over the session. The firmware divides by the
    /// duration, so a zero-length session sends `null`, read here as NaN.
    #[serde(deserialize_with = "nullable_f64")]
    pub avg_rate: f64,
    pub cmd: StopCmd,
    /// Missing in the guide's example; false from the firmware.
    #[serde(default)]
    pub error: bool,
}

fn nullable_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

impl StopAnswer {
    /// The answer the firmware gives, with `avg_rate` computed as it does.
    pub fn new(
        start_ts: StartTs,
        stop_ts: StartTs,
        sample_duration: u64,
        samples: u64,
        sent_samples: u64,
        ip: impl Into<String>,
    ) -> Self {
        StopAnswer {
            msg: STOP_MSG.to_string(),
            sample_duration,
            samples,
            sent_samples,
            start_ts,
            stop_ts,
            ip: ip.into(),
            avg_rate: samples as f64 / (sample_duration as f64 / 1000.0),
            cmd: StopCmd,
            error: false,
        }
    }
}

// ---------------------------------------------------------------------------
// Other answers
// ---------------------------------------------------------------------------

/// A failed command: `{"error":true,"cmd":…,"msg":…}`. A busy meter adds
/// `"state":"busy"`; `stop` while idle sends no `msg` at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorAnswer {
    pub fn new(cmd: Option<&str>, msg: impl Into<String>) -> Self {
        ErrorAnswer {
            error: true,
            cmd: cmd.map(str::to_string),
            msg: Some(msg.into()),
            extra: Map::new(),
        }
    }
}

/// Any other answer: `{"error":false,"cmd":…,"msg":…}` plus command-specific
/// keys (`mdns_name`, `current_time`, `energy`, …) in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default)]
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Answer {
    /// A command-specific key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.extra.get(key)
    }
}

// ---------------------------------------------------------------------------
// Log lines
// ---------------------------------------------------------------------------

/// Log levels, lowest first. The letter appears in log lines, the name in
/// the `log` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    All,
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub const ALL_LEVELS: [LogLevel; 5] = [
        LogLevel::All,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
    ];

    /// The letter between brackets in a log line.
    pub fn letter(self) -> char {
        match self {
            LogLevel::All => 'A',
            LogLevel::Debug => 'D',
            LogLevel::Info => 'I',
            LogLevel::Warning => 'W',
            LogLevel::Error => 'E',
        }
    }

    pub fn from_letter(letter: char) -> Option<Self> {
        Self::ALL_LEVELS.into_iter().find(|l| l.letter() == letter)
    }

    /// The name the `log` command takes.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::All => "all",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL_LEVELS
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("unknown log level {s:?} (all, debug, info, warning, error)"))
    }
}

/// A log line, `[I]MM/DD HH:MM:SS: message`. The once-a-second lifeness
/// line of an idle meter has an empty message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogLine {
    pub level: LogLevel,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub message: String,
}

/// `[I]MM/DD HH:MM:SS:` is 18 bytes.
const LOG_HEAD_LEN: usize = 18;

impl LogLine {
    /// Parses a log line; a trailing `\r\n` is ignored, the message is kept verbatim.
    pub fn parse(text: &str) -> Result<LogLine, MessageError> {
        let line = text.trim_end_matches(['\r', '\n']);
        let bad = || MessageError::InvalidLogLine(excerpt(line));
        let b = line.as_bytes();
        if b.len() < LOG_HEAD_LEN {
            return Err(bad());
        }
        let two = |at: usize| -> Option<u8> {
            let (hi, lo) = (b[at], b[at + 1]);
            (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| (hi - b'0') * 10 + (lo - b'0'))
        };
        let level = LogLevel::from_letter(char::from(b[1]));
        let punctuation_ok = b[0] == b'['
            && b[2] == b']'
            && b[5] == b'/'
            && b[8] == b' '
            && b[11] == b':'
            && b[14] == b':'
            && b[17] == b':';
        let (Some(level), true, Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
            level,
            punctuation_ok,
            two(3),
            two(6),
            two(9),
            two(12),
            two(15),
        ) else {
            return Err(bad());
        };
        // The head is ASCII, so byte 18 is a char boundary.
        let rest = &line[LOG_HEAD_LEN..];
        let message = match rest.strip_prefix(' ') {
            Some(message) => message,
            // A lifeness line whose trailing space was trimmed on the way.
            None if rest.is_empty() => "",
            None => return Err(bad()),
        };
        Ok(LogLine {
            level,
            month,
            day,
            hour,
            minute,
            second,
            message: message.to_string(),
        })
    }

    /// The idle meter's once-a-second sign of life.
    pub fn is_lifeness(&self) -> bool {
        self.message.is_empty()
    }

    /// See [`parse_rate_report`].
    pub fn rate_report(&self) -> Option<RateReport> {
        parse_rate_report(&self.message)
    }

    /// See [`parse_missed_samples`].
    pub fn missed_samples(&self) -> Option<u64> {
        parse_missed_samples(&self.message)
    }

    /// See [`parse_loop_behind`].
    pub fn loop_behind_secs(&self) -> Option<u64> {
        parse_loop_behind(&self.message)
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}]{:02}/{:02} {:02}:{:02}:{:02}: {}",
            self.level.letter(),
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.message
        )
    }
}

impl FromStr for LogLine {
    type Err = MessageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLine::parse(s)
    }
}

/// The once-a-second report of a sampling meter, `"%.2fHz, %us"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateReport {
    /// Samples per second measured over the last second.
    pub rate_hz: f64,
    /// Samples taken since the start (the number before `s` is a sample
    /// count, not seconds).
    pub total_samples: u64,
}

/// Recognises `7999.87Hz, 123456s`.
pub fn parse_rate_report(message: &str) -> Option<RateReport> {
    let (rate, total) = message.trim().strip_suffix('s')?.split_once("Hz, ")?;
    let numeric = !rate.is_empty()
        && rate
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    if !numeric || total.is_empty() || !total.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(RateReport {
        rate_hz: rate.parse().ok()?,
        total_samples: total.parse().ok()?,
    })
}

/// Recognises `MISSED 42 SAMPLES` (logged at level E), returning 42: samples
/// the meter did not take in the last second.
pub fn parse_missed_samples(message: &str) -> Option<u64> {
    let count = message
        .trim()
        .strip_prefix("MISSED ")?
        .strip_suffix(" SAMPLES")?;
    digits(count)
}

/// Recognises `Loop 2s behind` (level W), returning 2: seconds the send loop
/// lags the sampling clock, a sign of a slow sink.
pub fn parse_loop_behind(message: &str) -> Option<u64> {
    let secs = message
        .trim()
        .strip_prefix("Loop ")?
        .strip_suffix("s behind")?;
    digits(secs)
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

/// The payload of one `Info:` line, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum InfoMessage {
    Log(LogLine),
    DeviceInfo(Box<InfoAnswer>),
    SampleAnswer(SampleAnswer),
    StopAnswer(StopAnswer),
    Error(ErrorAnswer),
    Answer(Answer),
    /// The answer to `?`.
    SetupDone,
    /// Any other plain text.
    Text(String),
}

impl InfoMessage {
    /// Classifies the text after `Info:` (a trailing `\r\n` is ignored).
    ///
    /// JSON objects are classified by their `error` flag first, then by `cmd`.
    /// Two firmware bugs invert the flag, and are corrected here: a
    /// successful `ntp` ("Time synced") and a successful `addWifi` ("New Ap,
    /// …") come with `"error":true`, a failed `ntp` and a full AP list with
    /// `"error":false`.
    pub fn parse(text: &str) -> Result<InfoMessage, MessageError> {
        let text = text.trim_end_matches(['\r', '\n']);
        if text.starts_with('[') {
            if let Ok(line) = LogLine::parse(text) {
                return Ok(InfoMessage::Log(line));
            }
        }
        let trimmed = text.trim();
        if trimmed.starts_with('{') {
            return parse_json(trimmed);
        }
        if trimmed == SETUP_DONE {
            return Ok(InfoMessage::SetupDone);
        }
        Ok(InfoMessage::Text(text.to_string()))
    }

    /// The text the meter puts after `Info:` for this message.
    pub fn to_text(&self) -> String {
        match self {
            InfoMessage::Log(line) => line.to_string(),
            InfoMessage::DeviceInfo(info) => to_json(info),
            InfoMessage::SampleAnswer(answer) => to_json(answer),
            InfoMessage::StopAnswer(answer) => to_json(answer),
            InfoMessage::Error(answer) => to_json(answer),
            InfoMessage::Answer(answer) => to_json(answer),
            InfoMessage::SetupDone => SETUP_DONE.to_string(),
            InfoMessage::Text(text) => text.clone(),
        }
    }
}

/// Deserializes a classified object into its message type.
fn typed<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    object: Map<String, Value>,
    text: &str,
) -> Result<T, MessageError> {
    serde_json::from_value(Value::Object(object)).map_err(|source| MessageError::Schema {
        kind,
        source,
        excerpt: excerpt(text),
    })
}

fn parse_json(text: &str) -> Result<InfoMessage, MessageError> {
    let mut object: Map<String, Value> =
        serde_json::from_str(text).map_err(|source| MessageError::InvalidJson {
            source,
            excerpt: excerpt(text),
        })?;
    let cmd = object
        .get("cmd")
        .and_then(Value::as_str)
        .map(str::to_string);
    let msg = object.get("msg").and_then(Value::as_str);
    let sent_error = object
        .get("error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let error = corrected_error_flag(cmd.as_deref(), msg, sent_error);
    if error != sent_error {
        object.insert("error".to_string(), Value::Bool(error));
    }

    if error {
        return typed("error", object, text).map(InfoMessage::Error);
    }
    match cmd.as_deref() {
        Some(InfoCmd::VALUE) => {
            typed("info", object, text).map(|info| InfoMessage::DeviceInfo(Box::new(info)))
        }
        Some(SampleCmd::VALUE) => typed("sample", object, text).map(InfoMessage::SampleAnswer),
        Some(StopCmd::VALUE) => typed("stop", object, text).map(InfoMessage::StopAnswer),
        _ => typed("answer", object, text).map(InfoMessage::Answer),
    }
}

/// Undoes the firmware's inverted `error` flags (see [`InfoMessage::parse`]).
fn corrected_error_flag(cmd: Option<&str>, msg: Option<&str>, sent: bool) -> bool {
    match (cmd, msg) {
        (Some("ntp"), Some(msg)) => msg != "Time synced",
        (Some("addWifi"), Some(msg)) => !msg.starts_with("New Ap, SSID: "),
        _ => sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendor guide's device info, verbatim.
    const GUIDE_INFO: &str = r#"{"cmd":"info","type":"SmartMeter","version":"2.2","compiled":"Mar_2_2021_09:57:58","sys_time":"03/02/2021 10:37:07.662","name":"smartmeterX","ip":"192.168.4.1","mqtt_server":"-","stream_server":"-","time_server":"time.google.com","sampling_rate":4000,"buffer_size":3670016,"psram":true,"rtc":false,"calV":1,"calI":1,"state":"idle","relay":1,"calibration":[1,1],"ssids":"[energywifi]","ssid":"-","rssi":-71,"bssid":"-"}"#;

    /// What firmware 2.2 sends, key for key.
    const FIRMWARE_INFO: &str = r#"{"cmd":"info","type":"smartmeter","version":"2.2","compiled":"Mar  2 2021 09:57:58","sys_time":"03/02/2021 10:37:07.662","name":"smartmeter001","ip":"192.168.0.138","mqtt_server":"192.168.0.13","stream_server":"192.168.0.10","time_server":"time.google.com","sampling_rate":8000,"buffer_size":3670016,"psram":true,"rtc":true,"state":"idle","energy":"[10149.5684, 5101.2324, 4509.2102]","dailyReset":"None","calibration":[1,1,1,1,1,1],"ssids":"[energywifi, lab]","ssid":"energywifi","rssi":-71,"bssid":"AA:BB:CC:DD:EE:FF"}"#;

    const GUIDE_STOP: &str = r#"{"msg":"Received stop command","sample_duration":16157,"samples":16,"sent_samples":16,"start_ts":"1614697441.119","stop_ts":"1614697457.276","ip":"192.168.0.138","avg_rate":0.955618,"cmd":"stop"}"#;

    fn ts(secs: u64, millis: u16) -> StartTs {
        StartTs { secs, millis }
    }

    #[test]
    fn start_ts_format_and_parse() {
        let t: StartTs = "1614697441.119".parse().unwrap();
        assert_eq!(t, ts(1614697441, 119));
        assert_eq!(t.to_string(), "1614697441.119");
        assert_eq!(ts(1614697441, 7).to_string(), "1614697441.007");
        assert_eq!(t.to_unix_nanos(), 1_614_697_441_119_000_000);
        assert_eq!(StartTs::from_unix_millis(1_614_697_441_119), t);
        assert_eq!(t.to_unix_millis(), 1_614_697_441_119);
        for bad in [
            "",
            "1614697441",
            "1614697441.1",
            "1614697441.1190",
            "x.119",
            ".119",
            "1.-19",
            "1 .119",
        ] {
            assert!(
                matches!(
                    bad.parse::<StartTs>(),
                    Err(MessageError::InvalidTimestamp(_))
                ),
                "{bad:?}"
            );
        }
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#""1614697441.119""#);
        assert_eq!(serde_json::from_str::<StartTs>(&json).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<StartTs>("1632219770").unwrap(),
            ts(1632219770, 0)
        );
        assert!(serde_json::from_str::<StartTs>(r#""soon""#).is_err());
        assert_eq!(ts(u64::MAX, 999).to_unix_nanos(), i64::MAX);
    }

    #[test]
    fn guide_device_info_parses_with_extras() {
        let InfoMessage::DeviceInfo(info) = InfoMessage::parse(GUIDE_INFO).unwrap() else {
            panic!("not a device info");
        };
        assert!(info.is_smartmeter());
        assert_eq!(info.name, "smartmeterX");
        assert_eq!(info.sampling_rate, Some(4000));
        assert_eq!(info.state, Some(DeviceState::Idle));
        assert_eq!(info.calibration, Some(vec![1.0, 1.0]));
        assert_eq!(info.energy_values().unwrap(), None);
        assert_eq!(info.extra.get("calV"), Some(&Value::from(1)));
        assert_eq!(info.extra.get("relay"), Some(&Value::from(1)));
        assert_eq!(info.extra.len(), 3);
        assert_eq!(info.ssid_list(), vec!["energywifi"]);
        let when = info.sys_time_parsed().unwrap();
        assert_eq!(when.to_string(), "2021-03-02 10:37:07.662");
    }

    #[test]
    fn firmware_device_info_round_trips_in_key_order() {
        let InfoMessage::DeviceInfo(info) = InfoMessage::parse(FIRMWARE_INFO).unwrap() else {
            panic!("not a device info");
        };
        assert!(info.extra.is_empty());
        assert_eq!(
            info.energy_values().unwrap(),
            Some(vec![10149.5684, 5101.2324, 4509.2102])
        );
        assert_eq!(info.ssid_list(), vec!["energywifi", "lab"]);
        assert_eq!(info.rssi, Some(-71));
        assert_eq!(info.daily_reset.as_deref(), Some("None"));
        // ArduinoJson prints 1.0 as `1`, serde_json as `1.0`: compare the
        // parsed values, then the key order.
        let again: InfoAnswer = serde_json::from_str(&to_json(&info)).unwrap();
        assert_eq!(&again, info.as_ref());
        let keys = |text: &str| -> Vec<String> {
            text.split("\":")
                .filter_map(|part| part.rsplit('"').next().map(str::to_string))
                .collect()
        };
        assert_eq!(keys(&to_json(&info)), keys(FIRMWARE_INFO));
    }

    #[test]
    fn device_info_energy_helpers() {
        let mut info = InfoAnswer::new("m", "10.0.0.2");
        info.energy = Some(InfoAnswer::format_energy(&[10149.5684, 5101.23238, 0.0]));
        assert_eq!(
            info.energy.as_deref(),
            Some("[10149.5684, 5101.2324, 0.0000]")
        );
        info.energy = Some("[1, oops]".into());
        assert!(matches!(
            info.energy_values(),
            Err(MessageError::InvalidNumberList(_))
        ));
        assert_eq!(parse_number_list("[]").unwrap(), Vec::<f64>::new());
        let from_array: InfoAnswer = serde_json::from_str(
            r#"{"cmd":"info","type":"smartmeter","version":"2.2","name":"m","ip":"x","energy":[1.5,2,3]}"#,
        )
        .unwrap();
        assert_eq!(
            from_array.energy_values().unwrap(),
            Some(vec![1.5, 2.0, 3.0])
        );
        let ssids = InfoAnswer {
            ssids: Some("[energywifi, Test, ]".into()),
            ..InfoAnswer::new("m", "x")
        };
        assert_eq!(ssids.ssid_list(), vec!["energywifi", "Test"]);
    }

    #[test]
    fn sample_answer_has_the_firmware_key_order() {
        let answer = SampleAnswer::new(
            Measures::ThreePhase,
            8000,
            StreamType::Tcp,
            true,
            false,
            ts(1614697441, 119),
        );
        assert_eq!(answer.chunksize, 1008);
        assert_eq!(answer.measurements, 6);
        assert_eq!(answer.bytes_per_sample(), 24);
        let expected = r#"{"error":false,"cmd":"sample","measures":"v,i,v,i,v,i","chunksize":1008,"samplingrate":8000,"conn_type":"TCP","measurements":6,"prefix":true,"flowCtr":false,"unit":"V,mA,V,mA,V,mA","startTs":"1614697441.119"}"#;
        assert_eq!(to_json(&answer), expected);
        let parsed = InfoMessage::parse(expected).unwrap();
        assert_eq!(parsed, InfoMessage::SampleAnswer(answer));
    }

    #[test]
    fn sample_answer_udp_slot_and_timed_start() {
        let mut answer = SampleAnswer::new(
            Measures::PowerLatch,
            50,
            StreamType::Udp,
            true,
            false,
            ts(1614697500, 0),
        );
        answer.port = Some(54323);
        answer.slot = Some((1, 3));
        answer.msg = Some("Should sample at: x//nStart sampling in: 1200ms".into());
        assert_eq!(answer.chunksize, 120);
        let text = to_json(&answer);
        assert_eq!(
            text,
            r#"{"error":false,"cmd":"sample","port":54323,"slot":[1,3],"measures":"p,p,p,q,q,q","chunksize":120,"samplingrate":50,"conn_type":"UDP","measurements":6,"prefix":true,"flowCtr":false,"unit":"W,W,W,VAR,VAR,VAR","startTs":"1614697500.000","msg":"Should sample at: x//nStart sampling in: 1200ms"}"#
        );
        assert_eq!(
            InfoMessage::parse(&text).unwrap(),
            InfoMessage::SampleAnswer(answer)
        );
    }

    #[test]
    fn measures_echo_round_trips() {
        for m in Measures::ALL {
            let back = parse_measures_echo(measures_echo(m)).unwrap();
            assert_eq!(back.channels(), m.channels(), "{m}");
            assert_eq!(parse_measures_echo(m.as_str()).unwrap(), m);
        }
        assert_eq!(measures_echo(Measures::SinglePhase), "v,i_L1");
    }

    #[test]
    fn guide_sample_answer_parses() {
        let guide = r#"{"error":false,"measures":"v,i","chunksize":8,"samplingrate":1,"conn_type":"TCP","measurements":2,"prefix":true,"flowCtr":false,"cmd":"sample","unit":"V,mA","startTs":"1614697441.119"}"#;
        let InfoMessage::SampleAnswer(answer) = InfoMessage::parse(guide).unwrap() else {
            panic!("not a sample answer");
        };
        assert_eq!(answer.measures, Measures::SinglePhase);
        assert_eq!(answer.start_ts, ts(1614697441, 119));
        assert_eq!(answer.chunksize, 8);
    }

    #[test]
    fn guide_stop_answer_parses_and_round_trips() {
        let InfoMessage::StopAnswer(stop) = InfoMessage::parse(GUIDE_STOP).unwrap() else {
            panic!("not a stop answer");
        };
        assert_eq!(stop.sample_duration, 16157);
        assert_eq!(stop.samples, 16);
        assert_eq!(stop.stop_ts, ts(1614697457, 276));
        assert!(!stop.error);
        let expected = GUIDE_STOP.replace(r#""cmd":"stop"}"#, r#""cmd":"stop","error":false}"#);
        assert_eq!(to_json(&stop), expected);

        let built = StopAnswer::new(ts(10, 0), ts(12, 0), 2000, 16000, 16000, "10.0.0.2");
        assert_eq!(built.avg_rate, 8000.0);
        let again = InfoMessage::parse(&to_json(&built)).unwrap();
        assert_eq!(again, InfoMessage::StopAnswer(built));
        let zero = StopAnswer::new(ts(10, 0), ts(10, 0), 0, 0, 0, "x");
        let text = to_json(&zero);
        assert!(text.contains(r#""avg_rate":null"#));
        let InfoMessage::StopAnswer(back) = InfoMessage::parse(&text).unwrap() else {
            panic!("not a stop answer");
        };
        assert!(back.avg_rate.is_nan());
    }

    #[test]
    fn errors_and_plain_answers() {
        let busy = r#"{"error":true,"cmd":"sample","msg":"Device with IP: 10.0.0.3 currently sampling","state":"busy"}"#;
        let InfoMessage::Error(e) = InfoMessage::parse(busy).unwrap() else {
            panic!("not an error");
        };
        assert_eq!(e.cmd.as_deref(), Some("sample"));
        assert_eq!(e.extra.get("state"), Some(&Value::from("busy")));
        assert_eq!(to_json(&e), busy);

        // `stop` while idle: no msg.
        let idle_stop = InfoMessage::parse(r#"{"error":true,"cmd":"stop"}"#).unwrap();
        assert!(matches!(
            idle_stop,
            InfoMessage::Error(ErrorAnswer { msg: None, .. })
        ));

        let mdns = r#"{"error":false,"cmd":"mdns","msg":"Set MDNS name to: smartmeterX","mdns_name":"smartmeterX"}"#;
        let InfoMessage::Answer(a) = InfoMessage::parse(mdns).unwrap() else {
            panic!("not an answer");
        };
        assert_eq!(a.get("mdns_name"), Some(&Value::from("smartmeterX")));
        assert_eq!(to_json(&a), mdns);
        let log_level = InfoMessage::parse(r#"{"error":false,"msg":"Log Level set to: warning"}"#);
        assert!(matches!(
            log_level,
            Ok(InfoMessage::Answer(Answer { cmd: None, .. }))
        ));
        let made = ErrorAnswer::new(Some("log"), "Unknown log level: loud");
        assert_eq!(
            to_json(&made),
            r#"{"error":true,"cmd":"log","msg":"Unknown log level: loud"}"#
        );
    }

    #[test]
    fn inverted_error_flags_are_corrected() {
        let synced = r#"{"error":true,"cmd":"ntp","msg":"Time synced","current_time":"03/02/2021 11:27:40.182"}"#;
        let InfoMessage::Answer(a) = InfoMessage::parse(synced).unwrap() else {
            panic!("a synced ntp is a success");
        };
        assert!(!a.error);
        let failed = r#"{"error":false,"cmd":"ntp","msg":"Error syncing time","current_time":"x"}"#;
        assert!(matches!(
            InfoMessage::parse(failed),
            Ok(InfoMessage::Error(ErrorAnswer { error: true, .. }))
        ));
        let added = r#"{"error":true,"cmd":"addWifi","ssid":"Test","pwd":"TestPwd","msg":"New Ap, SSID: Test, PW: TestPwd","ssids":"[energywifi, Test, ]"}"#;
        assert!(matches!(
            InfoMessage::parse(added),
            Ok(InfoMessage::Answer(_))
        ));
        let full = r#"{"error":false,"cmd":"addWifi","msg":"MAX # APs reached, need to delete first","ssids":"[a, ]"}"#;
        assert!(matches!(
            InfoMessage::parse(full),
            Ok(InfoMessage::Error(_))
        ));
    }

    #[test]
    fn invalid_json_is_a_typed_error() {
        let broken = r#"{"cmd":"info","name":"#;
        match InfoMessage::parse(broken) {
            Err(MessageError::InvalidJson { excerpt, .. }) => assert_eq!(excerpt, broken),
            other => panic!("expected InvalidJson, got {other:?}"),
        }
        let long = format!("{{\"msg\":\"{}", "x".repeat(500));
        match InfoMessage::parse(&long) {
            Err(MessageError::InvalidJson { excerpt, .. }) => {
                assert_eq!(excerpt.chars().count(), EXCERPT_CHARS + 1)
            }
            other => panic!("expected InvalidJson, got {other:?}"),
        }
        // Valid JSON that does not fit its cmd is a schema error, not a silent Answer.
        let wrong = r#"{"error":false,"cmd":"sample","measures":"x,y"}"#;
        assert!(matches!(
            InfoMessage::parse(wrong),
            Err(MessageError::Schema { kind: "sample", .. })
        ));
        let err = InfoMessage::parse(broken).unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn log_lines_parse_and_format() {
        let line = LogLine::parse("[I]03/02 10:42:24: MDNS Name: smartmeterX").unwrap();
        assert_eq!(line.level, LogLevel::Info);
        assert_eq!((line.month, line.day), (3, 2));
        assert_eq!((line.hour, line.minute, line.second), (10, 42, 24));
        assert_eq!(line.message, "MDNS Name: smartmeterX");
        assert_eq!(
            line.to_string(),
            "[I]03/02 10:42:24: MDNS Name: smartmeterX"
        );

        let life = LogLine::parse("[I]03/02 10:42:24: \r\n").unwrap();
        assert!(life.is_lifeness());
        assert_eq!(life.to_string(), "[I]03/02 10:42:24: ");
        assert!(LogLine::parse("[I]03/02 10:42:24:").unwrap().is_lifeness());

        for level in LogLevel::ALL_LEVELS {
            let text = format!("[{}]12/31 23:59:59: x: y", level.letter());
            let parsed: LogLine = text.parse().unwrap();
            assert_eq!(parsed.level, level);
            assert_eq!(parsed.message, "x: y");
            assert_eq!(parsed.to_string(), text);
        }
        for bad in [
            "",
            "[X]03/02 10:42:24: a",
            "[I]3/02 10:42:24: a",
            "[I]03/02 10:42:24x",
            "[I]03-02 10:42:24: a",
            "[I]03/02 10:42:2a: a",
        ] {
            assert!(
                matches!(LogLine::parse(bad), Err(MessageError::InvalidLogLine(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            InfoMessage::parse("[E]03/02 11:26:20: MISSED 42 SAMPLES"),
            Ok(InfoMessage::Log(LogLine {
                level: LogLevel::Error,
                ..
            }))
        ));
    }

    #[test]
    fn log_message_helpers() {
        let report = parse_rate_report("7999.87Hz, 123456s").unwrap();
        assert_eq!(report.rate_hz, 7999.87);
        assert_eq!(report.total_samples, 123456);
        assert_eq!(parse_rate_report("50.00Hz, 0s").unwrap().total_samples, 0);
        assert!(parse_rate_report("7999.87Hz 123456s").is_none());
        assert!(parse_rate_report("infHz, 1s").is_none());
        assert!(parse_rate_report("Hz, 1s").is_none());
        assert_eq!(parse_missed_samples("MISSED 42 SAMPLES"), Some(42));
        assert_eq!(parse_missed_samples("MISSED -1 SAMPLES"), None);
        assert_eq!(parse_missed_samples("MISSED SAMPLES"), None);
        assert_eq!(parse_loop_behind("Loop 12s behind"), Some(12));
        assert_eq!(parse_loop_behind("Loop behind"), None);
        let line = LogLine::parse("[I]03/02 10:42:25: 7999.87Hz, 8000s").unwrap();
        assert_eq!(line.rate_report().map(|r| r.total_samples), Some(8000));
        assert_eq!(line.missed_samples(), None);
        assert_eq!(
            LogLine::parse("[W]03/02 10:42:25: Loop 3s behind")
                .unwrap()
                .loop_behind_secs(),
            Some(3)
        );
    }

    #[test]
    fn setup_done_and_text() {
        assert_eq!(
            InfoMessage::parse("Setup done").unwrap(),
            InfoMessage::SetupDone
        );
        assert_eq!(
            InfoMessage::parse(" Setup done\r\n").unwrap(),
            InfoMessage::SetupDone
        );
        assert_eq!(
            InfoMessage::parse("Sending... ").unwrap(),
            InfoMessage::Text("Sending... ".into())
        );
        assert_eq!(
            InfoMessage::parse("[not a log").unwrap(),
            InfoMessage::Text("[not a log".into())
        );
        assert_eq!(
            InfoMessage::parse("").unwrap(),
            InfoMessage::Text(String::new())
        );
    }

    #[test]
    fn every_message_round_trips_through_its_text() {
        let messages = vec![
            InfoMessage::Log(LogLine::parse("[W]01/09 00:00:01: Loop 1s behind").unwrap()),
            InfoMessage::parse(FIRMWARE_INFO).unwrap(),
            InfoMessage::SampleAnswer(SampleAnswer::new(
                Measures::Phase(Phase::L2),
                4000,
                StreamType::Serial,
                false,
                true,
                ts(1, 2),
            )),
            InfoMessage::parse(GUIDE_STOP).unwrap(),
            InfoMessage::Error(ErrorAnswer::new(None, "unknown command")),
            InfoMessage::parse(r#"{"error":false,"cmd":"getEnergy","energy":[1.5,2.5,3.5],"unit":"Wh","startTs":1632219770}"#).unwrap(),
            InfoMessage::SetupDone,
            InfoMessage::Text("hello".into()),
        ];
        for message in messages {
            let text = message.to_text();
            assert_eq!(InfoMessage::parse(&text).unwrap(), message, "{text}");
        }
    }

    #[test]
    fn log_level_names() {
        for level in LogLevel::ALL_LEVELS {
            assert_eq!(level.as_str().parse::<LogLevel>(), Ok(level));
            assert_eq!(
                serde_json::to_string(&level).unwrap(),
                format!("\"{}\"", level.as_str())
            );
        }
        assert!("loud".parse::<LogLevel>().is_err());
        assert!(LogLevel::Debug < LogLevel::Error);
    }
}
