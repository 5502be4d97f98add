//! The one meter-stream decoder: bytes in; sessions, sample chunks, stream
//! events and counters out.
//!
//! Sans I/O, as quinn-proto and rustls are: whoever owns the socket or the
//! file puts bytes into [`MeterDecoder::read_buffer`] (or
//! [`receive`](MeterDecoder::receive)s them), drains [`MeterDecoder::poll`],
//! and says when the bytes ended and why ([`MeterDecoder::end`]). A socket
//! session, a capture file and a bare f32le recording are decoded by this
//! one state machine, so the same bytes give the same blocks, the same
//! events and the same counters however they arrived.
//!
//! Chunks come out as slices of the read buffer with their sample indices
//! ([`SampleChunk`]), not as decoded floats: a socket session splits frames
//! on its connection task and a worker thread decodes the samples
//! ([`BlockFeed`]), as a capture reader does on its own thread.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::capture::{CaptureVisitor, Continuation, SessionDescription};
use super::event::{EventKind, SourceEvent};
use crate::wire::message::{
    ErrorAnswer, InfoAnswer, InfoMessage, LogLevel, SampleAnswer, StopAnswer,
};
use crate::wire::samples::{append_payload, sample_time, SampleBlock};
use crate::wire::{Anomaly, Frame, MeterCodec, RawCodec, WireStats};

/// How a sampling session ended: the reason its `session_stop` event gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The meter answered `stop` (or went idle after it).
    Stopped,
    /// `stop` was sent and not answered in time.
    StopUnanswered,
    /// The bytes ended (connection closed, end of file) without a stop answer.
    Disconnected,
    /// A new sample answer began another session without a stop answer.
    Restarted,
    /// Nothing arrived for longer than the idle timeout.
    Idle,
    /// Reading the stream failed.
    ReadFailed,
}

impl SessionEnd {
    /// Why, in words, for logs and the `events` table.
    pub fn describe(self) -> &'static str {
        match self {
            SessionEnd::Stopped => "meter stopped",
            SessionEnd::StopUnanswered => "stop not answered in time",
            SessionEnd::Disconnected => "stream ended without a stop answer",
            SessionEnd::Restarted => "a new session began without a stop answer",
            SessionEnd::Idle => "meter silent beyond the idle timeout",
            SessionEnd::ReadFailed => "reading the stream failed",
        }
    }
}

/// A sampling session that began.
#[derive(Debug, Clone)]
pub struct SessionStarted {
    pub description: SessionDescription,
    /// The meter's sample answer (meter byte streams only).
    pub answer: Option<SampleAnswer>,
}

/// What one session carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// Samples in whole chunks.
    pub samples: u64,
    /// Samples known lost (dropped or malformed chunks).
    pub lost_samples: u64,
    pub data_frames: u64,
}

/// A sampling session that ended.
#[derive(Debug, Clone)]
pub struct SessionEnded {
    pub end: SessionEnd,
    pub stop: Option<StopAnswer>,
    pub totals: SessionTotals,
}

/// One chunk of samples as the wire carried it, placed in its session.
#[derive(Debug, Clone)]
pub struct SampleChunk {
    /// Interleaved little-endian f32 in wire units, whole samples.
    pub payload: Bytes,
    /// Index of its first sample since the session's start.
    pub first_index: u64,
    /// Samples known lost right before it.
    pub gap_before: u64,
}

/// What the decoder made of the bytes, in stream order.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// The meter introduced itself.
    DeviceInfo(Box<InfoAnswer>),
    /// The meter refused a command (e.g. `sample`); also a `meter_warning` event.
    ErrorAnswer(Box<ErrorAnswer>),
    /// A sampling session began; its `session_start` event follows.
    SessionStart(Box<SessionStarted>),
    /// A sample answer that cannot start a session (e.g. rate 0, or `p,q`
    /// at 8000 Hz, which the firmware never gives): the reason. Its chunks
    /// are orphans; a `bad_message` event says so.
    InvalidAnswer(String),
    Chunk(SampleChunk),
    /// Something that happened to the stream, for the `events` table.
    Event(SourceEvent),
    /// The session ended; its `session_stop` event follows (unless the
    /// bytes were a slice of a longer session).
    SessionEnd(Box<SessionEnded>),
}

/// Everything the decoder counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounters {
    pub wire: WireStats,
    pub sessions: u64,
    /// Samples in whole chunks, over all sessions.
    pub samples: u64,
    /// Samples known lost (dropped or malformed chunks).
    pub lost_samples: u64,
    pub log_lines: u64,
    /// Warnings and errors the meter logged, and its error answers.
    pub meter_warnings: u64,
    /// Samples the meter itself reported missing (`MISSED n SAMPLES`).
    pub meter_missed_samples: u64,
    /// Info lines that were not valid messages.
    pub bad_messages: u64,
    /// Chunks malformed for the session's layout, dropped.
    pub bad_chunks: u64,
    /// Data chunks outside any session (their layout is unknown).
    pub orphan_frames: u64,
}

/// The framing below the decoder.
#[derive(Debug)]
enum Framing {
    /// `Info:` lines and `Data:` frames.
    Meter(MeterCodec),
    /// Bare interleaved f32le, cut into chunks of whole samples.
    Raw(RawCodec),
}

impl Framing {
    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        // Neither codec returns errors: everything wrong is an anomaly item.
        let decoded = match (self, eof) {
            (Framing::Meter(codec), false) => codec.decode(buf),
            (Framing::Meter(codec), true) => codec.decode_eof(buf),
            (Framing::Raw(codec), false) => codec.decode(buf),
            (Framing::Raw(codec), true) => codec.decode_eof(buf),
        };
        decoded.ok().flatten()
    }

    fn stats(&self) -> WireStats {
        match self {
            Framing::Meter(codec) => *codec.stats(),
            Framing::Raw(codec) => *codec.stats(),
        }
    }
}

/// The session being decoded.
#[derive(Debug)]
struct OpenSession {
    start_unix_ns: i64,
    rate: u32,
    bytes_per_sample: usize,
    samples_per_chunk: u64,
    next_index: u64,
    pending_gap: u64,
    /// Bytes skipped since the last frame, not yet placed: what they cost
    /// is known when the next item shows whether packet numbers count it.
    skipped: u64,
    totals: SessionTotals,
    /// False for a file that continues a session an earlier file began: it
    /// neither starts nor stops it.
    announce_end: bool,
}

impl OpenSession {
    fn new(description: &SessionDescription, chunk_bytes: usize) -> Self {
        let bytes_per_sample = description.measures.bytes_per_sample().max(1);
        OpenSession {
            start_unix_ns: description.start_unix_ns,
            rate: description.rate,
            bytes_per_sample,
            samples_per_chunk: (chunk_bytes / bytes_per_sample).max(1) as u64,
            next_index: 0,
            pending_gap: 0,
            skipped: 0,
            totals: SessionTotals::default(),
            announce_end: true,
        }
    }

    /// Meter time of the next sample: when an event between chunks happened.
    fn now(&self) -> i64 {
        sample_time(self.start_unix_ns, self.rate, self.next_index)
    }

    fn lose(&mut self, samples: u64) {
        self.pending_gap += samples;
        self.next_index += samples;
        self.totals.lost_samples += samples;
    }
}

/// The sans-I/O meter-stream decoder. See the module docs.
#[derive(Debug)]
pub struct MeterDecoder {
    framing: Framing,
    buf: BytesMut,
    info: Option<InfoAnswer>,
    session: Option<OpenSession>,
    /// Meter time of the last thing placed, for events outside a session.
    last_time_ns: i64,
    counters: StreamCounters,
    /// Counters of sessions already ended.
    ended_sessions: SessionTotals,
    out: VecDeque<Decoded>,
    /// Set once the bytes have ended, with the reason an open session gets.
    eof: Option<SessionEnd>,
    closed: bool,
}

impl Default for MeterDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MeterDecoder {
    /// A decoder of a meter byte stream (`Info:` lines, `Data:` frames).
    pub fn new() -> Self {
        Self::with_framing(Framing::Meter(MeterCodec::new()))
    }

    /// A decoder of bare interleaved f32le in wire units: one session of
    /// `description`'s layout, cut into chunks of `chunk_samples`. It starts
    /// that session (and stops it at the end) unless it `continues` one.
    pub fn raw(
        description: SessionDescription,
        answer: Option<SampleAnswer>,
        continues: Option<Continuation>,
        chunk_samples: usize,
    ) -> Self {
        let bytes_per_sample = description.measures.bytes_per_sample();
        let mut decoder =
            Self::with_framing(Framing::Raw(RawCodec::new(bytes_per_sample, chunk_samples)));
        let mut session = OpenSession::new(&description, bytes_per_sample * chunk_samples);
        decoder.last_time_ns = description.start_unix_ns;
        match continues {
            Some(at) => {
                session.next_index = at.first_index;
                session.pending_gap = at.gap_before;
                session.totals.lost_samples = at.gap_before;
                session.announce_end = false;
                decoder.session = Some(session);
            }
            None => {
                decoder.session = Some(session);
                decoder.announce_start(description, answer);
            }
        }
        decoder
    }

    fn with_framing(framing: Framing) -> Self {
        MeterDecoder {
            framing,
            buf: BytesMut::new(),
            info: None,
            session: None,
            last_time_ns: 0,
            counters: StreamCounters::default(),
            ended_sessions: SessionTotals::default(),
            out: VecDeque::new(),
            eof: None,
            closed: false,
        }
    }

    /// Where the next bytes go: read straight into it (its spare capacity).
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Appends `bytes` to what is to be decoded.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// No more bytes will come: what is buffered is decoded to its end and an
    /// open session ends with `why`.
    pub fn end(&mut self, why: SessionEnd) {
        self.eof.get_or_insert(why);
    }

    /// Whether [`end`](Self::end) was called and everything is drained.
    pub fn is_finished(&self) -> bool {
        self.closed && self.out.is_empty()
    }

    /// The meter's first device info, once seen.
    pub fn info(&self) -> Option<&InfoAnswer> {
        self.info.as_ref()
    }

    /// Re-anchors the open session at `start_unix_ns` (the caller found the
    /// meter's `startTs` implausible) and records why in a `meter_warning`
    /// event. Its `session_start` event, if not yet drained, moves too.
    pub fn retime_session(&mut self, start_unix_ns: i64, why: String) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let old = session.start_unix_ns;
        session.start_unix_ns = start_unix_ns;
        if self.last_time_ns == old {
            self.last_time_ns = start_unix_ns;
        }
        for item in &mut self.out {
            if let Decoded::Event(event) = item {
                if event.unix_ns == old && event.kind == EventKind::SessionStart {
                    event.unix_ns = start_unix_ns;
                }
            }
        }
        self.note(why);
    }

    /// Records something the caller found about the session (e.g. a sample
    /// answer other than asked for) as a `meter_warning` event, now.
    pub fn note(&mut self, message: String) {
        self.counters.meter_warnings += 1;
        self.event_now(EventKind::MeterWarning {
            message,
            missed_samples: None,
        });
    }

    /// Samples in whole chunks so far (what a sample limit counts).
    pub fn samples(&self) -> u64 {
        let open = self.session.as_ref().map_or(0, |s| s.totals.samples);
        self.ended_sessions.samples + open
    }

    pub fn counters(&self) -> StreamCounters {
        let mut counters = self.counters;
        counters.wire = self.framing.stats();
        let open = self.session.as_ref().map(|s| s.totals).unwrap_or_default();
        counters.samples = self.samples();
        counters.lost_samples = self.ended_sessions.lost_samples + open.lost_samples;
        counters
    }

    /// The next decoded item; `None` when more bytes are needed (or, after
    /// [`end`](Self::end), when all is drained).
    pub fn poll(&mut self) -> Option<Decoded> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if self.closed {
                return None;
            }
            match self.framing.decode(&mut self.buf, self.eof.is_some()) {
                Some(frame) => self.frame(frame),
                None => match self.eof {
                    Some(why) => {
                        self.close_session(why, None);
                        self.closed = true;
                    }
                    None => return None,
                },
            }
        }
    }

    fn now(&self) -> i64 {
        self.session
            .as_ref()
            .map_or(self.last_time_ns, OpenSession::now)
    }

    fn event_now(&mut self, kind: EventKind) {
        let unix_ns = self.now();
        self.out
            .push_back(Decoded::Event(SourceEvent { unix_ns, kind }));
    }

    fn frame(&mut self, frame: Frame) {
        let counted = matches!(frame, Frame::Anomaly(Anomaly::Gap { .. }));
        if !matches!(frame, Frame::Anomaly(Anomaly::Resync { .. })) {
            self.settle_skipped(counted);
        }
        match frame {
            Frame::Data { payload, .. } => self.chunk(payload),
            Frame::Anomaly(anomaly) => self.anomaly(&anomaly),
            Frame::Info(text) => self.info_line(&text),
        }
    }

    fn chunk(&mut self, payload: Bytes) {
        let Some(session) = self.session.as_mut() else {
            self.counters.orphan_frames += 1;
            return;
        };
        if !payload.len().is_multiple_of(session.bytes_per_sample) {
            // The sample answer's floats per sample disagree with its measures.
            let lost = session.samples_per_chunk;
            let len = payload.len() as u64;
            session.lose(lost);
            self.counters.bad_chunks += 1;
            self.event_now(EventKind::BadChunk {
                len,
                lost_samples: lost,
            });
            return;
        }
        let samples = (payload.len() / session.bytes_per_sample) as u64;
        if samples == 0 {
            // An empty frame (e.g. a length cut to 0): nothing to place.
            session.totals.data_frames += 1;
            return;
        }
        let chunk = SampleChunk {
            payload,
            first_index: session.next_index,
            gap_before: std::mem::take(&mut session.pending_gap),
        };
        session.next_index += samples;
        session.totals.samples += samples;
        session.totals.data_frames += 1;
        self.last_time_ns = session.now();
        self.out.push_back(Decoded::Chunk(chunk));
    }

    fn anomaly(&mut self, anomaly: &Anomaly) {
        let lost = match self.session.as_mut() {
            Some(session) => {
                let lost = match *anomaly {
                    Anomaly::Gap { lost_chunks, .. } => {
                        u64::from(lost_chunks) * session.samples_per_chunk
                    }
                    Anomaly::BadDataLength { .. } => session.samples_per_chunk,
                    Anomaly::Resync { skipped } => {
                        // Placed with the next item (see `settle_skipped`).
                        session.skipped += skipped as u64;
                        return;
                    }
                    _ => 0,
                };
                session.lose(lost);
                lost
            }
            None => 0,
        };
        if matches!(anomaly, Anomaly::BadDataLength { .. }) {
            self.counters.bad_chunks += 1;
        }
        self.event_now(EventKind::from_anomaly(anomaly, lost));
    }

    /// Places bytes skipped in a session. When packet numbers then report
    /// a gap, the gap counts that span (`counted`); otherwise the bytes
    /// arrived in place of samples (e.g. after a `Data:` header whose length
    /// was cut to 0): time follows the bytes received, so they are whole
    /// samples lost. A damaged log line costs its length in samples too;
    /// nothing in the bytes tells the two apart.
    fn settle_skipped(&mut self, counted: bool) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let skipped = std::mem::take(&mut session.skipped);
        if skipped == 0 {
            return;
        }
        let lost = if counted {
            0
        } else {
            skipped / session.bytes_per_sample as u64
        };
        session.lose(lost);
        self.event_now(EventKind::Resync {
            skipped_bytes: skipped,
            lost_samples: lost,
        });
    }

    fn info_line(&mut self, text: &str) {
        match InfoMessage::parse(text) {
            Ok(InfoMessage::DeviceInfo(info)) => {
                if self.info.is_none() {
                    self.info = Some((*info).clone());
                }
                self.out.push_back(Decoded::DeviceInfo(info));
            }
            Ok(InfoMessage::SampleAnswer(answer)) => {
                self.close_session(SessionEnd::Restarted, None);
                if let Err(error) = answer.measures.validate_rate(answer.samplingrate) {
                    // Its samples could be neither timed nor trusted.
                    self.counters.bad_messages += 1;
                    let reason = format!("sample answer not usable: {error}");
                    self.event_now(EventKind::BadMessage {
                        reason: reason.clone(),
                    });
                    self.out.push_back(Decoded::InvalidAnswer(reason));
                    return;
                }
                if let Framing::Meter(codec) = &mut self.framing {
                    codec.set_bytes_per_sample(answer.bytes_per_sample());
                    codec.reset_sequence();
                }
                let description = SessionDescription {
                    device: self
                        .info
                        .as_ref()
                        .map_or_else(|| "unknown".to_string(), |info| info.name.clone()),
                    info: self.info.clone(),
                    measures: answer.measures,
                    rate: answer.samplingrate,
                    start_unix_ns: answer.start_ts.to_unix_nanos(),
                };
                self.session = Some(OpenSession::new(&description, answer.chunksize));
                self.announce_start(description, Some(answer));
            }
            Ok(InfoMessage::StopAnswer(stop)) => {
                let stop_ns = stop.stop_ts.to_unix_nanos();
                if self.close_session(SessionEnd::Stopped, Some(stop)) {
                    self.last_time_ns = stop_ns;
                }
            }
            Ok(InfoMessage::Log(line)) => {
                self.counters.log_lines += 1;
                if matches!(line.level, LogLevel::Warning | LogLevel::Error) {
                    self.counters.meter_warnings += 1;
                    let missed_samples = line.missed_samples();
                    self.counters.meter_missed_samples += missed_samples.unwrap_or(0);
                    self.event_now(EventKind::MeterWarning {
                        message: line.message,
                        missed_samples,
                    });
                }
            }
            Ok(InfoMessage::Error(answer)) => {
                self.counters.meter_warnings += 1;
                let message = format!(
                    "error answer: {}",
                    answer.msg.as_deref().unwrap_or("no message")
                );
                self.event_now(EventKind::MeterWarning {
                    message,
                    missed_samples: None,
                });
                self.out.push_back(Decoded::ErrorAnswer(Box::new(answer)));
            }
            Ok(_) => {}
            Err(error) => {
                self.counters.bad_messages += 1;
                self.event_now(EventKind::BadMessage {
                    reason: error.to_string(),
                });
            }
        }
    }

    fn announce_start(&mut self, description: SessionDescription, answer: Option<SampleAnswer>) {
        self.counters.sessions += 1;
        let unix_ns = description.start_unix_ns;
        self.last_time_ns = unix_ns;
        self.out
            .push_back(Decoded::SessionStart(Box::new(SessionStarted {
                description,
                answer,
            })));
        self.out.push_back(Decoded::Event(SourceEvent {
            unix_ns,
            kind: EventKind::SessionStart,
        }));
    }

    /// Ends the open session, if any (true then).
    fn close_session(&mut self, end: SessionEnd, stop: Option<StopAnswer>) -> bool {
        self.settle_skipped(false);
        let Some(session) = self.session.take() else {
            return false;
        };
        let totals = session.totals;
        self.ended_sessions.samples += totals.samples;
        self.ended_sessions.lost_samples += totals.lost_samples;
        let unix_ns = stop
            .as_ref()
            .map_or_else(|| session.now(), |stop| stop.stop_ts.to_unix_nanos());
        self.last_time_ns = unix_ns;
        let sent_samples = stop.as_ref().map(|stop| stop.sent_samples);
        self.out
            .push_back(Decoded::SessionEnd(Box::new(SessionEnded {
                end,
                stop,
                totals,
            })));
        if session.announce_end {
            self.out.push_back(Decoded::Event(SourceEvent {
                unix_ns,
                kind: EventKind::SessionStop { end, sent_samples },
            }));
        }
        true
    }
}

/// Turns decoded items into sample blocks (SI units) and events for a
/// [`CaptureVisitor`]; the one place where chunks become blocks.
#[derive(Debug, Default)]
pub struct BlockFeed {
    block: Option<SampleBlock>,
    lost_samples: u64,
    /// A run of chunks is handed over once it holds this many samples
    /// (None: runs end only where the items given together end).
    run_limit: Option<usize>,
}

impl BlockFeed {
    /// A feed whose runs hold at most about `samples` samples (one chunk
    /// more at most): a file's reads hold a megabyte of chunks, too much
    /// for the engine's passes to find in cache.
    pub fn with_run_limit(samples: usize) -> Self {
        BlockFeed {
            run_limit: Some(samples),
            ..BlockFeed::default()
        }
    }

    /// Continues a session an earlier file started: its layout, no start.
    pub fn resume(&mut self, description: &SessionDescription) {
        self.block = Some(SampleBlock::new(
            description.measures,
            description.rate,
            description.start_unix_ns,
        ));
    }

    /// Starts a session of `description`'s layout.
    pub fn start<V: CaptureVisitor + ?Sized>(
        &mut self,
        description: &SessionDescription,
        visitor: &mut V,
    ) {
        self.block = Some(SampleBlock::new(
            description.measures,
            description.rate,
            description.start_unix_ns,
        ));
        visitor.session_start(description);
    }

    pub fn apply<V: CaptureVisitor + ?Sized>(&mut self, item: Decoded, visitor: &mut V) {
        match item {
            Decoded::SessionStart(started) => self.start(&started.description, visitor),
            Decoded::Chunk(chunk) => {
                let mut run = false;
                self.append_chunk(&chunk, &mut run, visitor);
                self.end_run(&mut run, visitor);
            }
            Decoded::Event(event) => visitor.event(event),
            Decoded::SessionEnd(ended) => {
                self.lost_samples += ended.totals.lost_samples;
                self.block = None;
            }
            Decoded::DeviceInfo(_) | Decoded::ErrorAnswer(_) | Decoded::InvalidAnswer(_) => {}
        }
    }

    /// [`Self::apply`] for items that arrived together: a run of chunks
    /// that follow one another without a gap reaches the visitor as one
    /// block, so what the engine and the outputs do per block is done once
    /// per run instead of once per chunk (a 6-channel 8 kHz chunk is 42
    /// samples). The samples, their order and the events between them are
    /// the same.
    pub fn apply_all<V: CaptureVisitor + ?Sized>(
        &mut self,
        items: impl IntoIterator<Item = Decoded>,
        visitor: &mut V,
    ) {
        let mut run = false;
        for item in items {
            match item {
                Decoded::Chunk(chunk) => self.append_chunk(&chunk, &mut run, visitor),
                other => {
                    self.end_run(&mut run, visitor);
                    self.apply(other, visitor);
                }
            }
        }
        self.end_run(&mut run, visitor);
    }

    /// Adds a chunk's samples to the run (`run`: the block holds one),
    /// first handing over the run it does not continue.
    fn append_chunk<V: CaptureVisitor + ?Sized>(
        &mut self,
        chunk: &SampleChunk,
        run: &mut bool,
        visitor: &mut V,
    ) {
        let limit = self.run_limit.unwrap_or(usize::MAX);
        let continues = *run
            && self.block.as_ref().is_some_and(|block| {
                chunk.gap_before == 0
                    && chunk.first_index == block.first_index + block.len() as u64
                    && block.len() < limit
            });
        if !continues {
            self.end_run(run, visitor);
        }
        let Some(block) = self.block.as_mut() else {
            return;
        };
        if !continues {
            for channel in &mut block.channels {
                channel.clear();
            }
            block.first_index = chunk.first_index;
            block.gap_before = chunk.gap_before;
        }
        // The decoder passes whole samples of the session's layout only;
        // a payload that is not leaves the block as it was.
        if append_payload(block.measures, &chunk.payload, &mut block.channels).is_ok() {
            *run = !block.is_empty();
        }
    }

    /// Hands the run of chunks gathered so far to the visitor.
    fn end_run<V: CaptureVisitor + ?Sized>(&mut self, run: &mut bool, visitor: &mut V) {
        if std::mem::take(run) {
            if let Some(block) = self.block.as_mut() {
                visitor.block_owned(block);
            }
        }
    }

    /// Samples the sessions this feed saw end had lost.
    pub fn lost_samples(&self) -> u64 {
        self.lost_samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::command::StreamType;
    use crate::wire::frame::{put_data_frame, put_data_header, put_info_line};
    use crate::wire::message::StartTs;
    use crate::wire::Measures;

    /// 2026-01-01 00:00:00 UTC.
    const START_MS: u64 = 1_767_225_600_000;
    const START_NS: i64 = 1_767_225_600_000_000_000;
    /// One sample at 4000 Hz.
    const SAMPLE_NS: i64 = 250_000;
    /// Samples per chunk of the hand-made session (32 bytes of `v,i`).
    const CHUNK: u64 = 4;

    fn answer() -> SampleAnswer {
        let mut answer = SampleAnswer::new(
            Measures::SinglePhase,
            4000,
            StreamType::Tcp,
            true,
            false,
            StartTs::from_unix_millis(START_MS),
        );
        answer.chunksize = 32;
        answer
    }

    fn line(buf: &mut BytesMut, message: &impl serde::Serialize) {
        put_info_line(buf, &serde_json::to_string(message).unwrap());
    }

    /// One chunk of `CHUNK` samples whose values say where they are.
    fn chunk(buf: &mut BytesMut, seq: u32) {
        let values: Vec<f32> = (0..CHUNK as u32 * 2)
            .map(|k| (seq * 100 + k) as f32)
            .collect();
        put_data_frame(buf, seq, &values);
    }

    /// A session with a dropped chunk (2), a bad length (4), a meter
    /// warning and an `Error` answer, ending without a stop answer.
    fn troubled_stream() -> Vec<u8> {
        let mut buf = BytesMut::new();
        line(&mut buf, &InfoAnswer::new("meter7", "10.0.0.7"));
        line(&mut buf, &answer());
        chunk(&mut buf, 0);
        chunk(&mut buf, 1);
        chunk(&mut buf, 3);
        put_data_header(&mut buf, 12, 4);
        buf.extend_from_slice(&[0u8; 12]);
        put_info_line(&mut buf, "[W]01/01 00:00:01: MISSED 42 SAMPLES");
        line(
            &mut buf,
            &ErrorAnswer::new(Some("frobnicate"), "unknown command"),
        );
        chunk(&mut buf, 5);
        buf.to_vec()
    }

    /// Items in a comparable form.
    fn describe(item: &Decoded) -> String {
        match item {
            Decoded::DeviceInfo(info) => format!("info {}", info.name),
            Decoded::ErrorAnswer(answer) => format!("error {:?}", answer.msg),
            Decoded::InvalidAnswer(reason) => format!("invalid answer {reason}"),
            Decoded::SessionStart(started) => format!(
                "start {} {} {}",
                started.description.device,
                started.description.rate,
                started.description.start_unix_ns
            ),
            Decoded::Chunk(chunk) => format!(
                "chunk {} {} {:?}",
                chunk.first_index, chunk.gap_before, chunk.payload
            ),
            Decoded::Event(event) => format!("event {} {:?}", event.unix_ns, event.kind),
            Decoded::SessionEnd(ended) => format!("end {:?} {:?}", ended.end, ended.totals),
        }
    }

    /// Feeds `parts` in order, then ends the stream.
    fn decode_parts(parts: &[&[u8]]) -> (Vec<String>, StreamCounters) {
        let mut decoder = MeterDecoder::new();
        let mut items = Vec::new();
        for part in parts {
            decoder.receive(part);
            items.extend(std::iter::from_fn(|| decoder.poll()).map(|i| describe(&i)));
        }
        decoder.end(SessionEnd::Disconnected);
        items.extend(std::iter::from_fn(|| decoder.poll()).map(|i| describe(&i)));
        assert!(decoder.is_finished());
        (items, decoder.counters())
    }

    fn decode_all(bytes: &[u8]) -> (Vec<Decoded>, StreamCounters) {
        let mut decoder = MeterDecoder::new();
        decoder.receive(bytes);
        decoder.end(SessionEnd::Disconnected);
        let items = std::iter::from_fn(|| decoder.poll()).collect();
        (items, decoder.counters())
    }

    fn events(items: &[Decoded]) -> Vec<SourceEvent> {
        items
            .iter()
            .filter_map(|item| match item {
                Decoded::Event(event) => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    fn at(index: i64) -> i64 {
        START_NS + index * SAMPLE_NS
    }

    #[test]
    fn split_at_every_byte_gives_what_whole_gives() {
        let bytes = troubled_stream();
        let whole = decode_parts(&[&bytes]);
        for cut in 0..=bytes.len() {
            let split = decode_parts(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(split, whole, "split at byte {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_parts(&singles), whole, "one byte at a time");
    }

    #[test]
    fn a_troubled_session_gives_its_events_in_meter_time() {
        let (items, counters) = decode_all(&troubled_stream());
        let want = vec![
            SourceEvent {
                unix_ns: START_NS,
                kind: EventKind::SessionStart,
            },
            // Chunk 2 of 4 samples never came: stamped where the lost
            // samples end and chunk 3 begins (sample 12).
            SourceEvent {
                unix_ns: at(12),
                kind: EventKind::Gap {
                    lost_chunks: 1,
                    lost_samples: CHUNK,
                },
            },
            // Chunk 4 (12 bytes, not whole 8-byte samples) dropped: its 4
            // samples are lost, the next sample is 20.
            SourceEvent {
                unix_ns: at(20),
                kind: EventKind::BadChunk {
                    len: 12,
                    lost_samples: CHUNK,
                },
            },
            SourceEvent {
                unix_ns: at(20),
                kind: EventKind::MeterWarning {
                    message: "MISSED 42 SAMPLES".into(),
                    missed_samples: Some(42),
                },
            },
            SourceEvent {
                unix_ns: at(20),
                kind: EventKind::MeterWarning {
                    message: "error answer: unknown command".into(),
                    missed_samples: None,
                },
            },
            // Four chunks of four samples came, the last ending at sample 24.
            SourceEvent {
                unix_ns: at(24),
                kind: EventKind::SessionStop {
                    end: SessionEnd::Disconnected,
                    sent_samples: None,
                },
            },
        ];
        assert_eq!(events(&items), want);
        let chunks: Vec<(u64, u64, usize)> = items
            .iter()
            .filter_map(|item| match item {
                Decoded::Chunk(c) => Some((c.first_index, c.gap_before, c.payload.len())),
                _ => None,
            })
            .collect();
        assert_eq!(chunks, [(0, 0, 32), (4, 0, 32), (12, 4, 32), (20, 4, 32)]);
        let ended = items.iter().find_map(|item| match item {
            Decoded::SessionEnd(ended) => Some(ended),
            _ => None,
        });
        let ended = ended.expect("the session ends");
        assert_eq!(ended.end, SessionEnd::Disconnected);
        assert!(ended.stop.is_none());
        assert_eq!(
            ended.totals,
            SessionTotals {
                samples: 16,
                lost_samples: 8,
                data_frames: 4
            }
        );
        assert_eq!(counters.samples, 16);
        assert_eq!(counters.lost_samples, 8);
        assert_eq!(counters.meter_warnings, 2);
        assert_eq!(counters.meter_missed_samples, 42);
        assert_eq!(counters.log_lines, 1);
        assert_eq!(counters.bad_chunks, 1);
        assert_eq!(counters.sessions, 1);
        assert_eq!((counters.wire.gaps, counters.wire.lost_chunks), (1, 1));
        assert_eq!(counters.wire.bad_lengths, 1);
        assert!(items.iter().any(
            |item| matches!(item, Decoded::ErrorAnswer(a) if a.cmd.as_deref() == Some("frobnicate"))
        ));
    }

    #[test]
    fn a_stop_answer_ends_the_session_at_its_stop_time() {
        let mut buf = BytesMut::new();
        line(&mut buf, &InfoAnswer::new("meter7", "10.0.0.7"));
        line(&mut buf, &answer());
        chunk(&mut buf, 0);
        let stop = StopAnswer::new(
            StartTs::from_unix_millis(START_MS),
            StartTs::from_unix_millis(START_MS + 1),
            1,
            4,
            4,
            "10.0.0.7",
        );
        line(&mut buf, &stop);
        // Whatever follows the stop answer belongs to no session.
        chunk(&mut buf, 1);
        let (items, counters) = decode_all(&buf);
        let stops: Vec<SourceEvent> = events(&items).into_iter().skip(1).collect();
        assert_eq!(
            stops,
            [SourceEvent {
                unix_ns: START_NS + 1_000_000,
                kind: EventKind::SessionStop {
                    end: SessionEnd::Stopped,
                    sent_samples: Some(4)
                },
            }]
        );
        assert_eq!(counters.orphan_frames, 1);
        assert_eq!(counters.samples, 4);
    }

    #[test]
    fn a_new_sample_answer_ends_the_session_before() {
        let mut buf = BytesMut::new();
        line(&mut buf, &InfoAnswer::new("meter7", "10.0.0.7"));
        line(&mut buf, &answer());
        chunk(&mut buf, 0);
        line(&mut buf, &answer());
        chunk(&mut buf, 0);
        let (items, counters) = decode_all(&buf);
        let kinds: Vec<String> = events(&items)
            .iter()
            .map(|e| format!("{} {}", e.kind.name(), e.kind.detail()))
            .collect();
        assert_eq!(
            kinds,
            [
                "session_start ",
                "session_stop a new session began without a stop answer",
                "session_start ",
                "session_stop stream ended without a stop answer",
            ]
        );
        assert_eq!((counters.sessions, counters.samples), (2, 8));
        // Packet numbers restart with the session: no gap, no backwards jump.
        assert_eq!(counters.wire.anomalies(), 0);
    }

    #[test]
    fn a_raw_slice_continues_its_session_without_starting_or_stopping_it() {
        let description = SessionDescription {
            device: "rec".into(),
            info: None,
            measures: Measures::SinglePhase,
            rate: 4000,
            start_unix_ns: START_NS,
        };
        let continues = Continuation {
            first_index: 100,
            gap_before: 10,
        };
        let mut decoder = MeterDecoder::raw(description, None, Some(continues), 4);
        // Two whole chunks, a short tail and 3 stray bytes.
        decoder.receive(&[0u8; 8 * 4 * 2 + 8 + 3]);
        decoder.end(SessionEnd::Disconnected);
        let items: Vec<Decoded> = std::iter::from_fn(|| decoder.poll()).collect();
        let chunks: Vec<(u64, u64, usize)> = items
            .iter()
            .filter_map(|item| match item {
                Decoded::Chunk(c) => Some((c.first_index, c.gap_before, c.payload.len())),
                _ => None,
            })
            .collect();
        assert_eq!(chunks, [(100, 10, 32), (104, 0, 32), (108, 0, 8)]);
        assert_eq!(
            events(&items),
            [SourceEvent {
                unix_ns: at(109),
                kind: EventKind::Truncated { bytes: 3 },
            }]
        );
        assert_eq!(decoder.counters().lost_samples, 10);
    }

    #[test]
    fn the_feed_turns_chunks_into_blocks_in_si_units() {
        #[derive(Default)]
        struct Seen {
            blocks: Vec<SampleBlock>,
            events: usize,
        }
        impl CaptureVisitor for Seen {
            fn session_start(&mut self, _: &SessionDescription) {}
            fn block(&mut self, block: &SampleBlock) {
                self.blocks.push(block.clone());
            }
            fn event(&mut self, _: SourceEvent) {
                self.events += 1;
            }
        }
        let (items, _) = decode_all(&troubled_stream());
        let mut feed = BlockFeed::default();
        let mut seen = Seen::default();
        for item in items {
            feed.apply(item, &mut seen);
        }
        assert_eq!(seen.events, 6);
        assert_eq!(feed.lost_samples(), 8);
        let third = &seen.blocks[2];
        assert_eq!((third.first_index, third.gap_before), (12, 4));
        // Chunk 3 carries 300, 301, … alternating volts and milliamps.
        assert_eq!(third.channels[0], [300.0, 302.0, 304.0, 306.0]);
        assert_eq!(third.channels[1], [0.301, 0.303, 0.305, 0.307]);
    }

    #[test]
    fn items_that_arrived_together_reach_the_visitor_as_runs_of_chunks() {
        /// What the visitor saw, in order.
        #[derive(Debug, Clone, PartialEq)]
        enum Call {
            Block(u64, u64, Vec<Vec<f32>>),
            Event(String),
        }
        #[derive(Default)]
        struct Calls(Vec<Call>);
        impl CaptureVisitor for Calls {
            fn session_start(&mut self, _: &SessionDescription) {}
            fn block(&mut self, block: &SampleBlock) {
                let call = Call::Block(block.first_index, block.gap_before, block.channels.clone());
                self.0.push(call);
            }
            fn event(&mut self, event: SourceEvent) {
                self.0.push(Call::Event(event.kind.name().to_string()));
            }
        }
        let (items, _) = decode_all(&troubled_stream());
        let mut one_by_one = Calls::default();
        let mut feed = BlockFeed::default();
        for item in items.clone() {
            feed.apply(item, &mut one_by_one);
        }
        // The truth: adjacent blocks joined where the second follows the
        // first without a gap and nothing came between them.
        let mut joined: Vec<Call> = Vec::new();
        for call in one_by_one.0 {
            if let (Some(Call::Block(first, _, samples)), Call::Block(next, 0, more)) =
                (joined.last_mut(), &call)
            {
                if *next == *first + samples[0].len() as u64 {
                    for (channel, tail) in samples.iter_mut().zip(more) {
                        channel.extend_from_slice(tail);
                    }
                    continue;
                }
            }
            joined.push(call);
        }
        let mut together = Calls::default();
        let mut feed = BlockFeed::default();
        feed.apply_all(items, &mut together);
        assert_eq!(together.0, joined);
        // Chunks 0 and 1 (samples 0..8) are one block; chunk 3 starts another after its gap.
        assert!(
            matches!(&together.0[1], Call::Block(0, 0, samples) if samples[0].len() == 8),
            "{:?}",
            together.0
        );
        assert_eq!(feed.lost_samples(), 8);
    }

    #[test]
    fn a_run_limit_ends_runs_and_a_visitor_may_take_their_samples() {
        /// Takes every block's vectors, as a visitor that keeps them does.
        #[derive(Default)]
        struct Taker(Vec<(u64, Vec<Vec<f32>>)>);
        impl CaptureVisitor for Taker {
            fn session_start(&mut self, _: &SessionDescription) {}
            fn block(&mut self, block: &SampleBlock) {
                self.0.push((block.first_index, block.channels.clone()));
            }
            fn event(&mut self, _: SourceEvent) {}
            fn block_owned(&mut self, block: &mut SampleBlock) {
                let channels = block.channels.iter_mut().map(std::mem::take).collect();
                self.0.push((block.first_index, channels));
            }
        }
        let (items, _) = decode_all(&troubled_stream());
        let mut one_by_one = Taker::default();
        let mut feed = BlockFeed::default();
        for item in items.clone() {
            feed.apply(item, &mut one_by_one);
        }
        // A limit of one chunk: every chunk is a run of its own.
        let mut limited = Taker::default();
        let mut feed = BlockFeed::with_run_limit(CHUNK as usize);
        feed.apply_all(items.clone(), &mut limited);
        assert_eq!(limited.0, one_by_one.0);
        // One sample more: a run takes a second chunk, then ends.
        let mut pairs = Taker::default();
        let mut feed = BlockFeed::with_run_limit(CHUNK as usize + 1);
        feed.apply_all(items, &mut pairs);
        assert_eq!(pairs.0[0].0, 0);
        assert_eq!(pairs.0[0].1[0].len(), 2 * CHUNK as usize);
        assert!(pairs
            .0
            .iter()
            .all(|(_, c)| c[0].len() <= 2 * CHUNK as usize));
        let samples =
            |runs: &Taker| -> Vec<f32> { runs.0.iter().flat_map(|(_, c)| c[0].clone()).collect() };
        assert_eq!(samples(&pairs), samples(&one_by_one));
    }
}
