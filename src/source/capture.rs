//! Recorded captures: meter byte streams (what `meterflow simulate --capture`
//! writes, or a tap of a real meter's connection), bare f32le files and WAV
//! float32 files. The kind is recognised by content, not by file name, and
//! every kind comes out the same way: a session description, sample blocks in
//! SI units, and events.

use std::io::Read;
use std::path::Path;

use super::decoder::{BlockFeed, Decoded, MeterDecoder, SessionEnd};
use super::event::{EventKind, SourceEvent};
use super::recording::{read_recording, RecordingError, RecordingTools};
use super::wav::{parse_wav_header, WavError};
use crate::wire::message::{InfoAnswer, SampleAnswer, StopAnswer};
use crate::wire::samples::SampleBlock;
use crate::wire::{Measures, WireStats};

/// Bytes read from a file at a time: large enough to amortise syscalls,
/// small enough that a batch of parallel files stays in memory.
const READ_CHUNK: usize = 1 << 20;
/// Samples per block for files without their own chunking.
const FILE_BLOCK_SAMPLES: usize = 4096;
/// The first four bytes of every EBML (Matroska, WebM) file.
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("not a meter byte stream (it does not start with \"Info:\")")]
    NotAMeterStream,
    #[error("{0}")]
    Wav(#[from] WavError),
    #[error(
        "a bare f32le capture needs {missing} (its layout cannot be determined from the file)"
    )]
    MissingRawParams { missing: String },
    #[error("no sampling session in the capture: no sample answer, so the layout is unknown")]
    NoSession,
    #[error("the capture ends {bytes} bytes into a line or frame, before any sampling session")]
    CutShort { bytes: u64 },
    #[error(
        "the capture has an Info line longer than {} bytes (no line end), and no sampling session",
        crate::wire::frame::MAX_INFO_LINE
    )]
    InfoLineTooLong,
    #[error("{0}")]
    Recording(#[from] RecordingError),
}

/// How a capture file is laid out, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureKind {
    /// `Info:` lines and `Data:` frames as a meter sends them.
    MeterStream,
    /// RIFF/WAVE with float32 samples.
    Wav,
    /// Matroska (EBML), as the vendor's `recordingServer.py` writes: decoded
    /// with ffmpeg, described by its tags.
    Matroska,
    /// Anything else: bare interleaved little-endian float32.
    RawF32,
}

/// Recognises a capture by its content.
pub fn detect_kind(head: &[u8]) -> CaptureKind {
    if head.starts_with(crate::wire::frame::INFO_TAG) {
        CaptureKind::MeterStream
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        CaptureKind::Wav
    } else if head.starts_with(&EBML_MAGIC) {
        CaptureKind::Matroska
    } else {
        CaptureKind::RawF32
    }
}

/// What a file without a self-description needs (bare f32le; WAV takes its
/// rate and channel count from its header), or overrides for what a file
/// says (WAV, recordings); and the programs that decode recordings.
#[derive(Debug, Clone, Default)]
pub struct RawParams {
    pub name: Option<String>,
    pub measures: Option<Measures>,
    pub rate: Option<u32>,
    /// Time of the first sample, ns since the epoch.
    pub start_unix_ns: Option<i64>,
    pub tools: RecordingTools,
}

/// Where a bare f32le stream sits when it continues a session an earlier
/// file began (the next time slice of a recording): no session start or
/// stop of its own, sample indices counting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    /// Index of its first sample in the session.
    pub first_index: u64,
    /// Samples missing right before it.
    pub gap_before: u64,
}

/// One sampling session as its consumer needs to know it.
#[derive(Debug, Clone)]
pub struct SessionDescription {
    pub device: String,
    pub info: Option<InfoAnswer>,
    pub measures: Measures,
    pub rate: u32,
    pub start_unix_ns: i64,
}

/// Receives what a capture holds, in order.
pub trait CaptureVisitor {
    fn session_start(&mut self, session: &SessionDescription);
    fn block(&mut self, block: &SampleBlock);
    fn event(&mut self, event: SourceEvent);
    /// [`block`](Self::block) from a feed that is done with the samples: a
    /// visitor that keeps them may take the channel vectors instead of
    /// copying them, leaving each channel empty.
    fn block_owned(&mut self, block: &mut SampleBlock) {
        self.block(block)
    }
}

/// One sampling session found in a capture.
#[derive(Debug, Clone)]
pub struct CapturedSession {
    pub description: SessionDescription,
    /// The meter's sample answer (meter byte streams only).
    pub answer: Option<SampleAnswer>,
    pub stop: Option<StopAnswer>,
    pub samples: u64,
    pub lost_samples: u64,
    pub data_frames: u64,
}

/// What a capture held.
#[derive(Debug, Clone, Default)]
pub struct CaptureSummary {
    pub kind: Option<CaptureKind>,
    pub info: Option<InfoAnswer>,
    pub sessions: Vec<CapturedSession>,
    pub bytes: u64,
    pub log_lines: u64,
    pub meter_warnings: u64,
    pub bad_messages: u64,
    /// Data chunks seen before any sample answer (their layout is unknown).
    pub orphan_frames: u64,
    pub wire: WireStats,
    /// Bytes of the line or frame the capture ended inside, if it did.
    pub truncated_bytes: Option<u64>,
}

impl CaptureSummary {
    pub fn samples(&self) -> u64 {
        self.sessions.iter().map(|s| s.samples).sum()
    }
}

/// Reads any capture file, streaming it through `visitor`.
pub fn read_capture(
    path: &Path,
    raw: &RawParams,
    visitor: &mut dyn CaptureVisitor,
) -> Result<CaptureSummary, CaptureError> {
    let mut file = std::fs::File::open(path).map_err(CaptureError::Read)?;
    let mut head = vec![0u8; 64];
    let got = read_full(&mut file, &mut head)?;
    head.truncate(got);
    if head.is_empty() {
        return Err(CaptureError::Empty);
    }
    let kind = detect_kind(&head);
    let default_name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().to_string())
        .unwrap_or_else(|| "capture".to_string());
    let reader = move || std::io::Cursor::new(head).chain(file);
    let mut summary = match kind {
        CaptureKind::MeterStream => read_meter_stream(reader(), visitor)?,
        CaptureKind::Wav => read_wav(reader(), raw, &default_name, visitor)?,
        // ffmpeg reads the file itself.
        CaptureKind::Matroska => read_recording(path, raw, visitor)?,
        CaptureKind::RawF32 => {
            let (measures, rate, start, name) = require_raw(raw)?;
            let session = SessionDescription {
                device: name,
                info: None,
                measures,
                rate,
                start_unix_ns: start,
            };
            read_f32le(reader(), session, None, None, visitor)?
        }
    };
    summary.kind = Some(kind);
    Ok(summary)
}

fn require_raw(raw: &RawParams) -> Result<(Measures, u32, i64, String), CaptureError> {
    match (raw.measures, raw.rate, raw.start_unix_ns, &raw.name) {
        (Some(measures), Some(rate), Some(start), Some(name)) => {
            Ok((measures, rate, start, name.clone()))
        }
        _ => {
            let missing: Vec<&str> = [
                (raw.rate.is_none(), "--rate"),
                (raw.measures.is_none(), "--measures"),
                (raw.start_unix_ns.is_none(), "--start"),
                (raw.name.is_none(), "--name"),
            ]
            .iter()
            .filter(|(absent, _)| *absent)
            .map(|(_, flag)| *flag)
            .collect();
            Err(CaptureError::MissingRawParams {
                missing: missing.join(", "),
            })
        }
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, CaptureError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(CaptureError::Read(error)),
        }
    }
    Ok(filled)
}

/// Reads the next bytes of `reader` into the decoder; false at end of file.
fn refill(
    reader: &mut impl Read,
    decoder: &mut MeterDecoder,
    bytes: &mut u64,
) -> Result<bool, CaptureError> {
    let buf = decoder.read_buffer();
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let got = match read_full(reader, &mut buf[start..]) {
        Ok(got) => got,
        Err(error) => {
            buf.truncate(start);
            return Err(error);
        }
    };
    buf.truncate(start + got);
    *bytes += got as u64;
    Ok(got > 0)
}

/// Feeds a whole file to `decoder` and everything decoded to `visitor`,
/// keeping the tally of `summary`.
fn decode_file(
    reader: &mut impl Read,
    decoder: &mut MeterDecoder,
    mut feed: BlockFeed,
    summary: &mut CaptureSummary,
    visitor: &mut dyn CaptureVisitor,
) -> Result<(), CaptureError> {
    loop {
        // What one read decoded, as runs of up to a block's worth of samples.
        let items = std::iter::from_fn(|| decoder.poll()).inspect(|item| summary.note(item));
        feed.apply_all(items, visitor);
        if decoder.is_finished() {
            break;
        }
        if !refill(reader, decoder, &mut summary.bytes)? {
            // A file's end is a stream's end: no stop answer came.
            decoder.end(SessionEnd::Disconnected);
        }
    }
    let counters = decoder.counters();
    summary.wire = counters.wire;
    summary.log_lines = counters.log_lines;
    summary.meter_warnings = counters.meter_warnings;
    summary.bad_messages = counters.bad_messages;
    summary.orphan_frames = counters.orphan_frames;
    Ok(())
}

impl CaptureSummary {
    /// Keeps what the summary reports of one decoded item.
    fn note(&mut self, item: &Decoded) {
        match item {
            Decoded::DeviceInfo(info) if self.info.is_none() => {
                self.info = Some((**info).clone());
            }
            Decoded::SessionStart(started) => self.sessions.push(CapturedSession {
                description: started.description.clone(),
                answer: started.answer.clone(),
                stop: None,
                samples: 0,
                lost_samples: 0,
                data_frames: 0,
            }),
            Decoded::Event(SourceEvent {
                kind: EventKind::Truncated { bytes },
                ..
            }) => self.truncated_bytes = Some(*bytes),
            Decoded::SessionEnd(ended) => {
                if let Some(session) = self.sessions.last_mut() {
                    session.stop.clone_from(&ended.stop);
                    session.samples = ended.totals.samples;
                    session.lost_samples = ended.totals.lost_samples;
                    session.data_frames = ended.totals.data_frames;
                }
            }
            _ => {}
        }
    }
}

/// Streams a meter byte stream through the decoder a live connection uses.
pub fn read_meter_stream(
    mut reader: impl Read,
    visitor: &mut dyn CaptureVisitor,
) -> Result<CaptureSummary, CaptureError> {
    let mut decoder = MeterDecoder::new();
    let mut summary = CaptureSummary::default();
    if !refill(&mut reader, &mut decoder, &mut summary.bytes)? {
        return Err(CaptureError::Empty);
    }
    if !decoder.buffered().starts_with(crate::wire::frame::INFO_TAG) {
        return Err(CaptureError::NotAMeterStream);
    }
    decode_file(
        &mut reader,
        &mut decoder,
        BlockFeed::with_run_limit(FILE_BLOCK_SAMPLES),
        &mut summary,
        visitor,
    )?;
    if summary.sessions.is_empty() {
        // Not a word and no rows would be worse: say why nothing was read.
        return Err(if summary.wire.oversize_info > 0 {
            CaptureError::InfoLineTooLong
        } else if let Some(bytes) = summary.truncated_bytes {
            CaptureError::CutShort { bytes }
        } else {
            CaptureError::NoSession
        });
    }
    Ok(summary)
}

fn read_wav(
    mut reader: impl Read,
    raw: &RawParams,
    default_name: &str,
    visitor: &mut dyn CaptureVisitor,
) -> Result<CaptureSummary, CaptureError> {
    let header = parse_wav_header(&mut reader)?;
    let measures = match raw.measures {
        Some(measures) if measures.channel_count() == usize::from(header.channels) => measures,
        Some(measures) => {
            return Err(WavError::ChannelMismatch {
                channels: header.channels,
                measures: measures.as_str(),
            }
            .into())
        }
        None => match header.channels {
            6 => Measures::ThreePhase,
            2 => Measures::SinglePhase,
            other => return Err(WavError::UnknownLayout(other).into()),
        },
    };
    let Some(start_unix_ns) = raw.start_unix_ns else {
        return Err(CaptureError::MissingRawParams {
            missing: "--start (a WAV file has no start time)".to_string(),
        });
    };
    let session = SessionDescription {
        device: raw.name.clone().unwrap_or_else(|| default_name.to_string()),
        info: None,
        measures,
        rate: header.sample_rate,
        start_unix_ns,
    };
    let mut summary = read_f32le(reader.take(header.data_len), session, None, None, visitor)?;
    summary.bytes += header.data_offset;
    Ok(summary)
}

/// Bare interleaved f32le in wire units (currents in mA, as ffmpeg recorded
/// them); a session of its own unless it `continues` one.
pub(crate) fn read_f32le(
    mut reader: impl Read,
    session: SessionDescription,
    answer: Option<SampleAnswer>,
    continues: Option<Continuation>,
    visitor: &mut dyn CaptureVisitor,
) -> Result<CaptureSummary, CaptureError> {
    let mut decoder = MeterDecoder::raw(
        session.clone(),
        answer.clone(),
        continues,
        FILE_BLOCK_SAMPLES,
    );
    let mut summary = CaptureSummary::default();
    if !refill(&mut reader, &mut decoder, &mut summary.bytes)? {
        return Err(CaptureError::Empty);
    }
    let mut feed = BlockFeed::with_run_limit(FILE_BLOCK_SAMPLES);
    if continues.is_some() {
        // An earlier file started the session: no start of its own.
        feed.resume(&session);
        summary.sessions.push(CapturedSession {
            description: session,
            answer,
            stop: None,
            samples: 0,
            lost_samples: 0,
            data_frames: 0,
        });
    }
    decode_file(&mut reader, &mut decoder, feed, &mut summary, visitor)?;
    Ok(summary)
}

/// A closure over blocks is a visitor that ignores sessions and events.
impl<F: FnMut(&SampleBlock)> CaptureVisitor for F {
    fn session_start(&mut self, _: &SessionDescription) {}
    fn block(&mut self, block: &SampleBlock) {
        self(block)
    }
    fn event(&mut self, _: SourceEvent) {}
}

/// Reads a meter byte stream file, handing every sample block to `on_block`.
pub fn replay_file(
    path: &Path,
    on_block: impl FnMut(&SampleBlock),
) -> Result<CaptureSummary, CaptureError> {
    let file = std::fs::File::open(path).map_err(CaptureError::Read)?;
    read_meter_stream(file, &mut { on_block })
}

/// Decodes an in-memory meter byte stream, handing every sample block to `on_block`.
pub fn replay(
    bytes: &[u8],
    on_block: impl FnMut(&SampleBlock),
) -> Result<CaptureSummary, CaptureError> {
    read_meter_stream(bytes, &mut { on_block })
}
