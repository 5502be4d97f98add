//! Framing of the meter → sink byte stream.
//!
//! The meter interleaves text lines (`Info:` + text + `\r\n`) with binary
//! chunks (`Data:` | u16 LE length | u32 LE packet number | samples). The
//! decoder hands out sample payloads as slices of its read buffer and turns
//! everything wrong on the wire into a counted [`Anomaly`] item instead of an
//! error, because a `FramedRead` ends the stream at its first error and one
//! bad byte must not cost a meter its connection.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use memchr::memmem;
use tokio_util::codec::{Decoder, Encoder};

/// Marks a binary chunk.
pub const DATA_TAG: &[u8; 5] = b"Data:";
/// Marks a text line.
pub const INFO_TAG: &[u8; 5] = b"Info:";
/// `Data:` + u16 length + u32 packet number.
pub const DATA_HEADER_LEN: usize = 11;
/// Longest Info line accepted; longer ones are discarded and counted.
pub const MAX_INFO_LINE: usize = 64 * 1024;

const TAG_LEN: usize = 5;

/// One item of the meter → sink stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The text after `Info:`, without the line ending.
    Info(String),
    /// A chunk of interleaved little-endian f32 samples, sliced from the read buffer.
    Data { seq: u32, payload: Bytes },
    /// Something wrong on the wire, already counted in [`WireStats`]; the stream goes on.
    Anomaly(Anomaly),
}

/// Bad input the decoder met and stepped over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// Bytes that were neither a frame nor a line, skipped up to the next tag.
    Resync { skipped: usize },
    /// Packet numbers jumped and the next frame went on from the new
    /// number: `lost_chunks` chunks never arrived.
    Gap {
        expected: u32,
        received: u32,
        lost_chunks: u32,
    },
    /// A packet number lower than expected, confirmed by the next frame,
    /// but not a restart at 0.
    SequenceBackwards { expected: u32, received: u32 },
    /// A packet number off the sequence that the next frame contradicted (it
    /// went on from `expected`) or nothing confirmed: the counter was
    /// corrupt, the chunk is the one that was due and nothing was lost.
    SequenceGlitch { expected: u32, received: u32 },
    /// A chunk whose length is not a whole number of samples; its bytes were dropped.
    BadDataLength {
        seq: u32,
        len: usize,
        bytes_per_sample: usize,
    },
    /// An Info line longer than [`MAX_INFO_LINE`]; discarded up to its line end.
    InfoTooLong { len: usize },
    /// An Info line that is not UTF-8; discarded.
    InvalidUtf8 { len: usize },
    /// The stream ended inside a frame or line.
    Truncated { bytes: usize },
}

/// Counters of what the decoder has seen, for telemetry and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    pub data_frames: u64,
    pub payload_bytes: u64,
    pub info_lines: u64,
    pub resyncs: u64,
    pub skipped_bytes: u64,
    pub gaps: u64,
    pub lost_chunks: u64,
    pub sequence_backwards: u64,
    pub sequence_glitches: u64,
    pub bad_lengths: u64,
    pub oversize_info: u64,
    pub invalid_utf8: u64,
    pub truncated: u64,
}

impl WireStats {
    fn count(&mut self, anomaly: &Anomaly) {
        match *anomaly {
            Anomaly::Resync { skipped } => {
                self.resyncs += 1;
                self.skipped_bytes += skipped as u64;
            }
            Anomaly::Gap { lost_chunks, .. } => {
                self.gaps += 1;
                self.lost_chunks += u64::from(lost_chunks);
            }
            Anomaly::SequenceBackwards { .. } => self.sequence_backwards += 1,
            Anomaly::SequenceGlitch { .. } => self.sequence_glitches += 1,
            Anomaly::BadDataLength { .. } => self.bad_lengths += 1,
            Anomaly::InfoTooLong { .. } => self.oversize_info += 1,
            Anomaly::InvalidUtf8 { .. } => self.invalid_utf8 += 1,
            Anomaly::Truncated { .. } => self.truncated += 1,
        }
    }

    /// Every anomaly counted so far.
    pub fn anomalies(&self) -> u64 {
        self.resyncs
            + self.gaps
            + self.sequence_backwards
            + self.sequence_glitches
            + self.bad_lengths
            + self.oversize_info
            + self.invalid_utf8
            + self.truncated
    }
}

/// Where the decoder is between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary (or in garbage, looking for one).
    Boundary,
    /// Inside an Info line whose line end is not yet buffered; bytes after
    /// `Info:` up to `scanned` hold no newline.
    InfoLine { scanned: usize },
    /// Dropping an oversized Info line up to its newline.
    DiscardingInfo { dropped: usize },
}

/// A data frame whose packet number was not the one due, held until the
/// next frame says whether the stream or only the counter jumped.
#[derive(Debug)]
struct Suspect {
    expected: u32,
    received: u32,
    frame: Frame,
}

/// Decoder (and encoder, for the virtual meter) of the prefixed meter stream.
///
/// A packet number is believed only when the stream goes on from it: on TCP
/// the bytes of every chunk sent arrive, so a jump that the next frame does
/// not continue (e.g. 190, 4294967295, 191) is one corrupt counter, not
/// billions of lost chunks. The jumped frame is therefore held until the next
/// frame (or anything else) arrives; it costs one chunk of latency.
#[derive(Debug)]
pub struct MeterCodec {
    state: State,
    bytes_per_sample: Option<usize>,
    next_seq: Option<u32>,
    suspect: Option<Suspect>,
    garbage: usize,
    ready: VecDeque<Frame>,
    stats: WireStats,
}

impl Default for MeterCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl MeterCodec {
    pub fn new() -> Self {
        MeterCodec {
            state: State::Boundary,
            bytes_per_sample: None,
            next_seq: None,
            suspect: None,
            garbage: 0,
            ready: VecDeque::new(),
            stats: WireStats::default(),
        }
    }

    /// Once the sample answer is known, chunks are checked for whole samples.
    pub fn set_bytes_per_sample(&mut self, bytes_per_sample: usize) {
        self.bytes_per_sample = (bytes_per_sample > 0).then_some(bytes_per_sample);
    }

    /// A new `sample` session numbers its chunks from 0. A frame held for
    /// its packet number is judged first (nothing confirmed it).
    pub fn reset_sequence(&mut self) {
        self.settle_unconfirmed();
        self.next_seq = Some(0);
    }

    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    fn anomaly(&mut self, anomaly: Anomaly) -> Frame {
        self.stats.count(&anomaly);
        Frame::Anomaly(anomaly)
    }

    /// Reports garbage skipped so far before the next real item.
    fn flush_garbage(&mut self) -> Option<Frame> {
        if self.garbage == 0 {
            return None;
        }
        let skipped = std::mem::take(&mut self.garbage);
        Some(self.anomaly(Anomaly::Resync { skipped }))
    }

    /// Drops bytes up to the next possible tag; true when `src` starts with one.
    fn seek_tag(&mut self, src: &mut BytesMut) -> bool {
        if src.starts_with(DATA_TAG) || src.starts_with(INFO_TAG) {
            return true;
        }
        let next = [DATA_TAG, INFO_TAG]
            .iter()
            .filter_map(|tag| memmem::find(src, *tag))
            .min();
        let drop = match next {
            Some(at) => at,
            // Keep a tail that may be the start of a tag split across reads.
            None => src.len() - partial_tag_suffix(src),
        };
        src.advance(drop);
        self.garbage += drop;
        next.is_some()
    }

    /// Takes one `Data:` frame off `src` into the output (or holds it for
    /// its packet number); false when more bytes are needed.
    fn decode_data(&mut self, src: &mut BytesMut) -> bool {
        if src.len() < DATA_HEADER_LEN {
            src.reserve(DATA_HEADER_LEN - src.len());
            return false;
        }
        let len = usize::from(u16::from_le_bytes([src[5], src[6]]));
        let seq = u32::from_le_bytes([src[7], src[8], src[9], src[10]]);
        let total = DATA_HEADER_LEN + len;
        if src.len() < total {
            // Room for the whole announced chunk now, so it lands without regrowth.
            src.reserve(total - src.len());
            return false;
        }
        src.advance(DATA_HEADER_LEN);
        let payload = src.split_to(len).freeze();
        let frame = match self.bytes_per_sample {
            Some(bytes_per_sample) if !len.is_multiple_of(bytes_per_sample) => {
                self.anomaly(Anomaly::BadDataLength {
                    seq,
                    len,
                    bytes_per_sample,
                })
            }
            _ => {
                self.stats.data_frames += 1;
                self.stats.payload_bytes += len as u64;
                Frame::Data { seq, payload }
            }
        };
        self.sequence(seq, frame);
        true
    }

    /// Places a data frame by its packet number: settles a held frame with
    /// it, then passes it on, or holds it if its own number jumped.
    fn sequence(&mut self, seq: u32, frame: Frame) {
        if let Some(suspect) = self.suspect.take() {
            if seq == suspect.received.wrapping_add(1) {
                // The stream went on from the jumped number: the jump was real.
                self.next_seq = Some(seq);
                if let Some(jump) = jump(suspect.expected, suspect.received) {
                    let anomaly = self.anomaly(jump);
                    self.ready.push_back(anomaly);
                }
                self.ready.push_back(suspect.frame);
            } else {
                self.suspect = Some(suspect);
                self.settle_unconfirmed();
            }
        }
        match self.next_seq {
            Some(expected) if seq != expected => {
                self.suspect = Some(Suspect {
                    expected,
                    received: seq,
                    frame,
                });
            }
            _ => {
                self.next_seq = Some(seq.wrapping_add(1));
                self.ready.push_back(frame);
            }
        }
    }

    /// Nothing confirmed the held frame's jump: its counter was corrupt and
    /// it is the chunk that was due.
    fn settle_unconfirmed(&mut self) {
        if let Some(Suspect {
            expected,
            received,
            frame,
        }) = self.suspect.take()
        {
            self.next_seq = Some(expected.wrapping_add(1));
            let anomaly = self.anomaly(Anomaly::SequenceGlitch { expected, received });
            self.ready.push_back(anomaly);
            self.ready.push_back(frame);
        }
    }

    /// One step over `src`: items go to `ready`; false when more bytes are needed.
    fn step(&mut self, src: &mut BytesMut) -> bool {
        let item = match self.state {
            State::InfoLine { scanned } => self.decode_info(src, scanned),
            State::DiscardingInfo { dropped } => self.discard_info(src, dropped),
            State::Boundary => {
                if src.len() < TAG_LEN && (DATA_TAG.starts_with(src) || INFO_TAG.starts_with(src)) {
                    return false;
                }
                if !self.seek_tag(src) {
                    return false;
                }
                if let Some(resync) = self.flush_garbage() {
                    Some(resync)
                } else if src.starts_with(DATA_TAG) {
                    return self.decode_data(src);
                } else {
                    self.decode_info(src, 0)
                }
            }
        };
        match item {
            Some(frame) => {
                // Not a data frame: it cannot confirm a held jump.
                self.settle_unconfirmed();
                self.ready.push_back(frame);
                true
            }
            None => false,
        }
    }

    fn decode_info(&mut self, src: &mut BytesMut, scanned: usize) -> Option<Frame> {
        let start = TAG_LEN + scanned;
        match memchr::memchr(b'\n', &src[start..]) {
            Some(offset) => {
                self.state = State::Boundary;
                let line_len = scanned + offset;
                let mut line = src.split_to(start + offset + 1);
                line.advance(TAG_LEN);
                line.truncate(line_len);
                if line.last() == Some(&b'\r') {
                    line.truncate(line_len - 1);
                }
                if line.len() > MAX_INFO_LINE {
                    return Some(self.anomaly(Anomaly::InfoTooLong { len: line.len() }));
                }
                match String::from_utf8(line.to_vec()) {
                    Ok(text) => {
                        self.stats.info_lines += 1;
                        Some(Frame::Info(text))
                    }
                    Err(_) => Some(self.anomaly(Anomaly::InvalidUtf8 { len: line.len() })),
                }
            }
            None => {
                let scanned = src.len() - TAG_LEN;
                if scanned > MAX_INFO_LINE + 1 {
                    let dropped = src.len();
                    src.clear();
                    self.state = State::DiscardingInfo { dropped };
                } else {
                    self.state = State::InfoLine { scanned };
                }
                None
            }
        }
    }

    fn discard_info(&mut self, src: &mut BytesMut, dropped: usize) -> Option<Frame> {
        match memchr::memchr(b'\n', src) {
            Some(at) => {
                src.advance(at + 1);
                self.state = State::Boundary;
                let len = dropped + at - TAG_LEN;
                Some(self.anomaly(Anomaly::InfoTooLong { len }))
            }
            None => {
                let dropped = dropped + src.len();
                src.clear();
                self.state = State::DiscardingInfo { dropped };
                None
            }
        }
    }
}

/// What a confirmed jump of the packet number from `expected` to `received`
/// means: lost chunks, a step back, or nothing (a restart at 0).
fn jump(expected: u32, received: u32) -> Option<Anomaly> {
    let ahead = received.wrapping_sub(expected);
    if received == 0 {
        None
    } else if ahead < u32::MAX / 2 {
        Some(Anomaly::Gap {
            expected,
            received,
            lost_chunks: ahead,
        })
    } else {
        Some(Anomaly::SequenceBackwards { expected, received })
    }
}

/// Length of the longest suffix of `buf` that is a proper prefix of a tag.
fn partial_tag_suffix(buf: &[u8]) -> usize {
    (1..TAG_LEN)
        .rev()
        .find(|&n| {
            n <= buf.len() && {
                let tail = &buf[buf.len() - n..];
                DATA_TAG.starts_with(tail) || INFO_TAG.starts_with(tail)
            }
        })
        .unwrap_or(0)
}

impl Decoder for MeterCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            if !self.step(src) {
                return Ok(None);
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        self.settle_unconfirmed();
        if let Some(frame) = self.ready.pop_front() {
            return Ok(Some(frame));
        }
        if let State::DiscardingInfo { dropped } = self.state {
            self.state = State::Boundary;
            return Ok(Some(self.anomaly(Anomaly::InfoTooLong {
                len: dropped + src.len() - TAG_LEN,
            })));
        }
        if let Some(resync) = self.flush_garbage() {
            return Ok(Some(resync));
        }
        self.state = State::Boundary;
        if src.is_empty() {
            return Ok(None);
        }
        let bytes = src.len();
        src.clear();
        Ok(Some(self.anomaly(Anomaly::Truncated { bytes })))
    }
}

impl Encoder<Frame> for MeterCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        match frame {
            Frame::Info(text) => put_info_line(dst, &text),
            Frame::Data { seq, payload } => {
                let len = u16::try_from(payload.len()).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("data chunk of {} bytes exceeds u16", payload.len()),
                    )
                })?;
                put_data_header(dst, len, seq);
                dst.extend_from_slice(&payload);
            }
            Frame::Anomaly(anomaly) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("an anomaly is not sent on the wire: {anomaly:?}"),
                ))
            }
        }
        Ok(())
    }
}

/// Writes `Info:` + text + `\r\n`.
pub fn put_info_line(dst: &mut BytesMut, text: &str) {
    dst.reserve(TAG_LEN + text.len() + 2);
    dst.put_slice(INFO_TAG);
    dst.put_slice(text.as_bytes());
    dst.put_slice(b"\r\n");
}

/// The 11-byte `Data:` header of a payload of `len` bytes.
pub fn data_header(len: u16, seq: u32) -> [u8; DATA_HEADER_LEN] {
    let mut header = [0u8; DATA_HEADER_LEN];
    header[..5].copy_from_slice(DATA_TAG);
    header[5..7].copy_from_slice(&len.to_le_bytes());
    header[7..].copy_from_slice(&seq.to_le_bytes());
    header
}

/// Writes the 11-byte `Data:` header.
pub fn put_data_header(dst: &mut BytesMut, len: u16, seq: u32) {
    dst.put_slice(&data_header(len, seq));
}

/// Writes a whole `Data:` chunk of samples as the firmware does (native LE floats).
/// `values.len() * 4` must fit a u16, as the firmware's chunks always do.
pub fn put_data_frame(dst: &mut BytesMut, seq: u32, values: &[f32]) {
    let len = values.len() * 4;
    debug_assert!(len <= usize::from(u16::MAX));
    dst.reserve(DATA_HEADER_LEN + len);
    put_data_header(dst, len as u16, seq);
    put_f32le(dst, values);
}

/// Appends values as little-endian f32: converted a stack buffer at a time
/// and appended in one copy (a `put_f32_le` per value is a call each).
pub fn put_f32le(dst: &mut BytesMut, values: &[f32]) {
    const AT_ONCE: usize = 256;
    dst.reserve(values.len() * 4);
    let mut bytes = [0u8; AT_ONCE * 4];
    for chunk in values.chunks(AT_ONCE) {
        for (out, value) in bytes.chunks_exact_mut(4).zip(chunk) {
            out.copy_from_slice(&value.to_le_bytes());
        }
        dst.extend_from_slice(&bytes[..chunk.len() * 4]);
    }
}

/// Decoder of bare little-endian f32 streams (the meter's raw 54322 port,
/// `-f f32le` files): chunks of whole samples, numbered from 0.
#[derive(Debug)]
pub struct RawCodec {
    bytes_per_sample: usize,
    chunk_bytes: usize,
    seq: u32,
    stats: WireStats,
}

impl RawCodec {
    /// `samples_per_chunk` whole samples of `bytes_per_sample` bytes per item.
    pub fn new(bytes_per_sample: usize, samples_per_chunk: usize) -> Self {
        let bytes_per_sample = bytes_per_sample.max(1);
        RawCodec {
            bytes_per_sample,
            chunk_bytes: bytes_per_sample * samples_per_chunk.max(1),
            seq: 0,
            stats: WireStats::default(),
        }
    }

    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    fn take(&mut self, src: &mut BytesMut, len: usize) -> Frame {
        let payload = src.split_to(len).freeze();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.stats.data_frames += 1;
        self.stats.payload_bytes += len as u64;
        Frame::Data { seq, payload }
    }
}

impl Decoder for RawCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if src.len() < self.chunk_bytes {
            src.reserve(self.chunk_bytes - src.len());
            return Ok(None);
        }
        Ok(Some(self.take(src, self.chunk_bytes)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let whole = src.len() - src.len() % self.bytes_per_sample;
        if whole > 0 {
            return Ok(Some(self.take(src, whole)));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let anomaly = Anomaly::Truncated { bytes: src.len() };
        src.clear();
        self.stats.count(&anomaly);
        Ok(Some(Frame::Anomaly(anomaly)))
    }
}
