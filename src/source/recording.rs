//! The vendor's recordings: Matroska files with WavPack float audio, one per
//! meter and time slice, as `recordingServer.py` writes them (and as the
//! FIRED dataset is stored). Its command line, per meter and slice, is
//!
//! ```text
//! ffmpeg -hide_banner -f f32le -ar <rate> -guess_layout_max 0 -ac <channels> -i pipe:0
//!   -c:a wavpack -metadata:s:a:0 CHANNELS=<channels>
//!   -metadata:s:a:0 CHANNEL_TAGS="<v_l1,i_l1,...>" -metadata:s:a:0 title="<name>"
//!   -metadata:s:a:0 timestamp="<unix seconds>" -y <folder>/<name>_<time>.mkv
//! ```
//!
//! The stream's tags carry the layout, the meter name and the time of the
//! first sample; the samples are the wire's values (currents in mA).
//! `ffprobe` reads the tags and `ffmpeg` decodes, streamed through its
//! stdout, into the same f32le path bare captures take.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::capture::{
    detect_kind, read_f32le, CaptureError, CaptureKind, CaptureSummary, CaptureVisitor,
    Continuation, RawParams, SessionDescription,
};
use super::recording_layout::{layout_for_tags, ChannelMap, TagsError};

/// The programs that read recordings. `None`: the `MFLOW_FFMPEG` /
/// `MFLOW_FFPROBE` environment variables, else `ffmpeg` / `ffprobe` on PATH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingTools {
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

impl RecordingTools {
    pub fn ffmpeg(&self) -> PathBuf {
        resolve(self.ffmpeg.as_ref(), "MFLOW_FFMPEG", "ffmpeg")
    }

    pub fn ffprobe(&self) -> PathBuf {
        resolve(self.ffprobe.as_ref(), "MFLOW_FFPROBE", "ffprobe")
    }
}

fn resolve(explicit: Option<&PathBuf>, variable: &str, name: &str) -> PathBuf {
    explicit
        .cloned()
        .or_else(|| std::env::var_os(variable).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(
        "{program} not found (tried {path:?}): reading Matroska recordings needs ffmpeg's \
         `ffmpeg` and `ffprobe` programs; install ffmpeg (Debian: apt-get install ffmpeg) \
         or point MFLOW_FFMPEG / MFLOW_FFPROBE at them"
    )]
    ToolMissing {
        program: &'static str,
        path: PathBuf,
    },
    #[error("cannot run {program} ({path:?}): {source}")]
    ToolFailed {
        program: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ffprobe cannot read it: {0}")]
    Probe(String),
    #[error("ffprobe output is not the JSON expected: {0}")]
    ProbeOutput(String),
    #[error("no audio stream in the recording")]
    NoAudio,
    #[error("the audio stream has {0} samples, not float: not a meter recording")]
    NotFloat(String),
    #[error("the audio stream has no usable sample rate ({0:?})")]
    BadRate(Option<String>),
    #[error("the recording has no CHANNEL_TAGS tag, so its layout is unknown: give --measures")]
    NoChannelTags,
    #[error("{0}")]
    Tags(#[from] TagsError),
    #[error("CHANNEL_TAGS {tags:?} name {named} channels but the audio stream has {channels}")]
    TagCount {
        tags: String,
        named: usize,
        channels: usize,
    },
    #[error(
        "the audio stream has {channels} channels but measures {measures} has a different count"
    )]
    MeasuresMismatch {
        channels: usize,
        measures: &'static str,
    },
    #[error("the recording has no TIMESTAMP tag (time of its first sample): give --start")]
    NoTimestamp,
    #[error("TIMESTAMP tag {0:?} is not Unix seconds")]
    BadTimestamp(String),
    #[error(
        "ffmpeg stopped decoding after {seconds:.3} s ({samples} samples, which were processed): {message}"
    )]
    Decode {
        samples: u64,
        seconds: f64,
        message: String,
    },
    #[error(
        "truncated: {samples} samples ({seconds:.3} s) decoded of the {expected} its header announces"
    )]
    Truncated {
        samples: u64,
        seconds: f64,
        expected: u64,
    },
    #[error(
        "starts {seconds:.6} s ({samples} samples) before the previous slice of {device}, {}, ends: \
         overlapping slices, this one is skipped",
        previous.display()
    )]
    Overlap {
        device: String,
        /// The slice it overlaps.
        previous: PathBuf,
        samples: u64,
        seconds: f64,
    },
}

/// A recording, probed: what it is and how to read it.
#[derive(Debug, Clone)]
pub struct Recording {
    pub path: PathBuf,
    pub session: SessionDescription,
    pub map: ChannelMap,
    /// The `CHANNEL_TAGS` value, if any.
    pub channel_tags: Option<String>,
    pub codec: String,
    /// Samples the container says it holds.
    pub expected_samples: Option<u64>,
}

impl Recording {
    /// Seconds the container says it holds.
    pub fn duration_s(&self) -> Option<f64> {
        self.expected_samples
            .map(|n| n as f64 / f64::from(self.session.rate.max(1)))
    }
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Debug, Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    sample_fmt: Option<String>,
    sample_rate: Option<String>,
    channels: Option<usize>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Whether a file is Matroska, by its first bytes.
pub fn is_recording(path: &Path) -> bool {
    let mut head = [0u8; 4];
    let got = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    detect_kind(&head[..got]) == CaptureKind::Matroska
}

/// `file:` keeps a path that starts with `-` or holds `:` a path for ffmpeg.
fn file_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    url
}

fn spawn_error(program: &'static str, path: PathBuf, error: std::io::Error) -> RecordingError {
    if error.kind() == std::io::ErrorKind::NotFound {
        RecordingError::ToolMissing { program, path }
    } else {
        RecordingError::ToolFailed {
            program,
            path,
            source: error,
        }
    }
}

/// First lines of a tool's complaints, enough to say what went wrong.
fn first_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    lines.join("; ")
}

fn tag<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Unix seconds with a fraction (`"1614697441.119"`) as ns, exactly.
pub fn parse_unix_seconds(text: &str) -> Option<i64> {
    let text = text.trim().trim_matches('"');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let mut nanos = 0i64;
    for (k, digit) in fraction.bytes().take(9).enumerate() {
        nanos += i64::from(digit - b'0') * 10i64.pow(8 - k as u32);
    }
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// `HH:MM:SS.fffffffff` (Matroska's DURATION tag) as seconds.
fn parse_clock(text: &str) -> Option<f64> {
    let mut parts = text.trim().split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// Reads a recording's stream description with `ffprobe`.
pub fn open_recording(path: &Path, raw: &RawParams) -> Result<Recording, RecordingError> {
    let ffprobe = raw.tools.ffprobe();
    let output = Command::new(&ffprobe)
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(file_url(path))
        .stdin(Stdio::null())
        .output()
        .map_err(|error| spawn_error("ffprobe", ffprobe.clone(), error))?;
    if !output.status.success() {
        let message = first_lines(&String::from_utf8_lossy(&output.stderr));
        return Err(RecordingError::Probe(if message.is_empty() {
            format!("exit status {}", output.status)
        } else {
            message
        }));
    }
    let probe: Probe = serde_json::from_slice(&output.stdout)
        .map_err(|error| RecordingError::ProbeOutput(error.to_string()))?;
    describe(path, &probe, raw)
}

fn describe(path: &Path, probe: &Probe, raw: &RawParams) -> Result<Recording, RecordingError> {
    let stream = probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"))
        .ok_or(RecordingError::NoAudio)?;
    let empty = BTreeMap::new();
    let format_tags = probe.format.as_ref().map_or(&empty, |f| &f.tags);
    let find = |key: &str| tag(&stream.tags, key).or_else(|| tag(format_tags, key));
    let sample_fmt = stream.sample_fmt.clone().unwrap_or_default();
    if !matches!(sample_fmt.as_str(), "flt" | "fltp" | "dbl" | "dblp") {
        return Err(RecordingError::NotFloat(sample_fmt));
    }
    let file_rate = stream
        .sample_rate
        .as_deref()
        .and_then(|r| r.trim().parse::<u32>().ok())
        .filter(|&r| crate::wire::samples::rate_in_range(r));
    let rate = match (raw.rate, file_rate) {
        (Some(rate), _) | (None, Some(rate)) => rate,
        (None, None) => return Err(RecordingError::BadRate(stream.sample_rate.clone())),
    };
    let channels = stream.channels.unwrap_or(0);
    let channel_tags = find("CHANNEL_TAGS").map(str::to_string);
    let from_tags = match &channel_tags {
        Some(tags) => {
            let map = layout_for_tags(tags);
            if let Ok(map) = &map {
                if map.recorded != channels {
                    return Err(RecordingError::TagCount {
                        tags: tags.clone(),
                        named: map.recorded,
                        channels,
                    });
                }
            }
            Some(map)
        }
        None => None,
    };
    let map = match (raw.measures, from_tags) {
        // --measures relabels the layout the tags give (e.g. `v,i` → v,i_L2)
        // or, failing that, names the recorded channels one to one.
        (Some(measures), Some(Ok(map))) if map.sources.len() == measures.channel_count() => {
            ChannelMap { measures, ..map }
        }
        (Some(measures), _) if channels == measures.channel_count() => {
            ChannelMap::identity(measures)
        }
        (Some(measures), _) => {
            return Err(RecordingError::MeasuresMismatch {
                channels,
                measures: measures.as_str(),
            })
        }
        (None, Some(map)) => map?,
        (None, None) => return Err(RecordingError::NoChannelTags),
    };
    let start_unix_ns = match raw.start_unix_ns {
        Some(start) => start,
        None => {
            let text = find("TIMESTAMP").ok_or(RecordingError::NoTimestamp)?;
            parse_unix_seconds(text)
                .ok_or_else(|| RecordingError::BadTimestamp(text.to_string()))?
        }
    };
    let device = raw
        .name
        .clone()
        .or_else(|| find("title").map(str::to_string))
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().to_string()))
        .unwrap_or_else(|| "recording".to_string());
    let duration_s = find("DURATION").and_then(parse_clock).or_else(|| {
        probe
            .format
            .as_ref()
            .and_then(|f| f.duration.as_deref())
            .and_then(|d| d.trim().parse::<f64>().ok())
    });
    Ok(Recording {
        path: path.to_path_buf(),
        session: SessionDescription {
            device,
            info: None,
            measures: map.measures,
            rate,
            start_unix_ns,
        },
        map,
        channel_tags,
        codec: stream.codec_name.clone().unwrap_or_default(),
        expected_samples: duration_s
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| (d * f64::from(file_rate.unwrap_or(rate))).round() as u64),
    })
}

/// Decodes a probed recording with `ffmpeg`, streaming its samples through
/// `visitor`; `continues` places them in a session an earlier slice began.
pub fn decode_recording(
    recording: &Recording,
    raw: &RawParams,
    continues: Option<Continuation>,
    visitor: &mut dyn CaptureVisitor,
) -> Result<CaptureSummary, CaptureError> {
    let ffmpeg = raw.tools.ffmpeg();
    // crccheck: a damaged WavPack block is an error, not garbage samples;
    // -xerror: stop there, so no later sample shifts into its place.
    let mut child = Command::new(&ffmpeg)
        .args([
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-err_detect",
            "crccheck",
            "-xerror",
            "-i",
        ])
        .arg(file_url(&recording.path))
        .args(["-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| spawn_error("ffmpeg", ffmpeg.clone(), error))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(RecordingError::ToolFailed {
            program: "ffmpeg",
            path: ffmpeg,
            source: std::io::Error::other("no pipes to the child process"),
        }
        .into());
    };
    // Drained on its own thread so a talkative ffmpeg never blocks on it.
    let complaints = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut text);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&text).to_string()
    });
    let read = read_f32le(
        recording.map.reader(stdout),
        recording.session.clone(),
        None,
        continues,
        visitor,
    );
    if read.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    let complaints = complaints.join().unwrap_or_default();
    let rate = f64::from(recording.session.rate.max(1));
    let decoded = read.as_ref().map_or(0, |summary| {
        summary.sessions.iter().map(|s| s.samples).sum()
    });
    if let Err(error) = &read {
        // The decoder's own failure is told below; anything else is ours.
        if !matches!(error, CaptureError::Empty) {
            return read;
        }
    }
    let failed = match &status {
        Ok(status) => !status.success() || !complaints.trim().is_empty(),
        Err(_) => true,
    };
    if failed {
        let message = match (&status, first_lines(&complaints)) {
            (_, text) if !text.is_empty() => text,
            (Ok(status), _) => format!("exit status {status}"),
            (Err(error), _) => format!("waiting for ffmpeg: {error}"),
        };
        return Err(RecordingError::Decode {
            samples: decoded,
            seconds: decoded as f64 / rate,
            message,
        }
        .into());
    }
    let mut summary = read?;
    if let Some(expected) = recording.expected_samples {
        // The header's duration is in ms: a couple of ms of slack.
        let slack = (rate * 0.002).ceil() as u64 + 1;
        if decoded + slack < expected {
            return Err(RecordingError::Truncated {
                samples: decoded,
                seconds: decoded as f64 / rate,
                expected,
            }
            .into());
        }
    }
    summary.bytes = std::fs::metadata(&recording.path).map_or(summary.bytes, |m| m.len());
    Ok(summary)
}

/// One recording file on its own: probe, then decode as its own session.
pub fn read_recording(
    path: &Path,
    raw: &RawParams,
    visitor: &mut dyn CaptureVisitor,
) -> Result<CaptureSummary, CaptureError> {
    let recording = open_recording(path, raw)?;
    decode_recording(&recording, raw, None, visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_exactly() {
        assert_eq!(
            parse_unix_seconds("1614697441.119"),
            Some(1_614_697_441_119_000_000)
        );
        assert_eq!(
            parse_unix_seconds("1614697441"),
            Some(1_614_697_441_000_000_000)
        );
        assert_eq!(parse_unix_seconds("\"12.000000001\""), Some(12_000_000_001));
        assert_eq!(parse_unix_seconds("-3.5"), None);
        assert_eq!(parse_unix_seconds("1e9"), None);
        assert_eq!(parse_clock("00:10:00.000000000"), Some(600.0));
        assert_eq!(parse_clock("01:00:02.5"), Some(3602.5));
        assert_eq!(parse_clock("12.5"), None);
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).unwrap()
    }

    const VENDOR: &str = r#"{"streams":[{"codec_type":"audio","codec_name":"wavpack",
        "sample_fmt":"fltp","sample_rate":"8000","channels":6,
        "tags":{"title":"smartmeter001","CHANNELS":"6",
        "CHANNEL_TAGS":"v_l1,i_l1,v_l2,i_l2,v_l3,i_l3","TIMESTAMP":"1614697441.119",
        "DURATION":"00:00:03.000000000"}}],"format":{"duration":"3.000000","tags":{}}}"#;

    #[test]
    fn the_vendors_tags_describe_the_session() {
        let recording = describe(
            Path::new("x/sm_1.mkv"),
            &probe(VENDOR),
            &RawParams::default(),
        )
        .unwrap();
        assert_eq!(recording.session.device, "smartmeter001");
        assert_eq!(recording.session.rate, 8000);
        assert_eq!(recording.session.start_unix_ns, 1_614_697_441_119_000_000);
        assert_eq!(
            recording.session.measures,
            crate::wire::Measures::ThreePhase
        );
        assert_eq!(recording.expected_samples, Some(24_000));
        assert_eq!(recording.codec, "wavpack");
    }

    #[test]
    fn flags_override_the_tags() {
        let raw = RawParams {
            name: Some("other".into()),
            start_unix_ns: Some(5),
            rate: Some(4000),
            ..RawParams::default()
        };
        let recording = describe(Path::new("a.mkv"), &probe(VENDOR), &raw).unwrap();
        assert_eq!(
            (
                recording.session.device.as_str(),
                recording.session.start_unix_ns
            ),
            ("other", 5)
        );
        assert_eq!(recording.session.rate, 4000);
        let two = VENDOR
            .replace("v_l1,i_l1,v_l2,i_l2,v_l3,i_l3", "v,i")
            .replace("\"channels\":6", "\"channels\":2");
        let raw = RawParams {
            measures: Some("v,i_L2".parse().unwrap()),
            ..RawParams::default()
        };
        let recording = describe(Path::new("a.mkv"), &probe(&two), &raw).unwrap();
        assert_eq!(recording.session.measures.as_str(), "v,i_L2");
        let error = describe(Path::new("a.mkv"), &probe(VENDOR), &raw).unwrap_err();
        assert!(
            matches!(error, RecordingError::MeasuresMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn missing_or_odd_tags_are_named() {
        let no_ts = VENDOR.replace("\"TIMESTAMP\":\"1614697441.119\",", "");
        let error = describe(Path::new("a.mkv"), &probe(&no_ts), &RawParams::default());
        assert!(matches!(error, Err(RecordingError::NoTimestamp)));
        let wrong_count = VENDOR.replace("\"channels\":6", "\"channels\":4");
        let error = describe(
            Path::new("a.mkv"),
            &probe(&wrong_count),
            &RawParams::default(),
        );
        assert!(matches!(error, Err(RecordingError::TagCount { .. })));
        let int = VENDOR.replace("fltp", "s16");
        let error = describe(Path::new("a.mkv"), &probe(&int), &RawParams::default());
        assert!(matches!(error, Err(RecordingError::NotFloat(_))));
        let odd = VENDOR.replace("v_l1,i_l1,v_l2,i_l2,v_l3,i_l3", "a,b,c,d,e,f");
        let error = describe(Path::new("a.mkv"), &probe(&odd), &RawParams::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"a,b,c,d,e,f\""), "{error}");
    }
}
