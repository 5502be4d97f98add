//! One meter connection seen from the sink: wait for the info line, send
//! `sample`, read the sample answer, then stream the meter's chunks until it
//! stops or we ask it to.
//!
//! The meter never starts sampling by itself on a stream-server connection
//! (firmware facts), so this handshake is what every sink source shares. It
//! is split in three so a server can decide between the steps:
//! [`greet`] reads the info line (who is calling), [`Greeted::start`] sends
//! `sample` with the settings chosen for that meter, and [`MeterStream`]
//! reads the socket into the [`MeterDecoder`] and yields what it decoded
//! (chunks as slices of the read buffer, events) wherever the samples are to
//! be decoded, by a [`BlockFeed`]; [`run_session`] does all of it in one task.
//! This file owns the socket, timeouts and commands; the decoder owns
//! everything about the bytes, as it does for a capture file.

use std::time::Duration;

use bytes::BytesMut;
use futures::{FutureExt, SinkExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::time::{timeout_at, Instant, Interval};
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;

use super::capture::{CaptureVisitor, SessionDescription};
use super::decoder::{
    BlockFeed, Decoded, MeterDecoder, SessionEnd, SessionStarted, StreamCounters,
};
use crate::wire::command::{Command, CommandCodec, SampleParams, StreamType};
use crate::wire::message::{InfoAnswer, SampleAnswer, StopAnswer};
use crate::wire::{Measures, WireStats};

/// The port meters dial out to (the stream server).
pub const STREAM_SERVER_PORT: u16 = 54322;

/// What to ask a meter for and how patient to be.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub rate: u32,
    pub measures: Measures,
    /// Longest wait for the info line and for the sample answer.
    pub handshake_timeout: Duration,
    /// How often `!` is sent so idle links stay open.
    pub keepalive: Duration,
    /// Longest wait for the stop answer after `stop`.
    pub stop_timeout: Duration,
    /// Longest silence while streaming before the peer is dropped (None: no limit).
    pub idle_timeout: Option<Duration>,
    /// Ask the meter to stop after this many samples (None: stream until cancelled).
    pub stop_after_samples: Option<u64>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            rate: crate::wire::layout::DEFAULT_RATE,
            measures: Measures::ThreePhase,
            handshake_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(5),
            idle_timeout: None,
            stop_after_samples: None,
        }
    }
}

/// Why a session could not run.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("I/O error while {stage}: {source}")]
    Io {
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no {0} from the meter within the handshake timeout")]
    Timeout(&'static str),
    #[error("the meter closed the connection while waiting for {0}")]
    Closed(&'static str),
    #[error("meter {meter:?} refused sample: {answer}")]
    Refused { meter: String, answer: String },
    #[error("meter {meter:?}: {reason}")]
    InvalidAnswer { meter: String, reason: String },
    #[error("nothing received for {0:?} while streaming")]
    Idle(Duration),
}

/// What happened on one connection.
#[derive(Debug, Clone)]
pub struct SessionReport {
    pub info: InfoAnswer,
    pub answer: SampleAnswer,
    pub stop: Option<StopAnswer>,
    pub end: SessionEnd,
    pub wire: WireStats,
    /// Samples received in whole chunks.
    pub samples: u64,
    /// Samples known lost (dropped or malformed chunks).
    pub lost_samples: u64,
    /// Warnings and errors the meter logged (e.g. `MISSED 42 SAMPLES`).
    pub meter_warnings: u64,
    /// Samples the meter itself reported missing.
    pub meter_missed_samples: u64,
    /// Info lines that were not valid messages.
    pub bad_messages: u64,
}

type Commands<S> = FramedWrite<WriteHalf<S>, CommandCodec>;

/// Free room below which the read buffer grows before a read.
const MIN_READ_ROOM: usize = 8 * 1024;
/// What the read buffer grows by: a read takes whatever is there up to it.
/// Every connection keeps one such allocation (its frames' samples point
/// into it), so it is sized for a few of a meter's writes (one 40-ms write
/// of six 8-kHz channels is 7.7 kB), not for the largest read: at 64 kB
/// the read buffers were 63 MB of a 1000-meter sink's heap.
const READ_CAPACITY: usize = 16 * 1024;

/// A connection whose meter has introduced itself and waits for `sample`.
pub struct Greeted<S> {
    read: ReadHalf<S>,
    commands: Commands<S>,
    decoder: MeterDecoder,
    info: InfoAnswer,
}

/// A `startTs` before this year is an unset clock (0 is 1970).
const EARLIEST_START_YEAR: i32 = 2000;
/// How far a `startTs` may be ahead of the sink's clock (a timed start may
/// lie a little ahead; beyond a day the meter's clock is wrong).
const MAX_START_AHEAD_NS: i64 = 86_400 * 1_000_000_000;

/// Whether a meter's `startTs` can be when it started, seen at `received_ns`
/// by the sink. Old times pass (a replayed recording is old); only an unset
/// or future clock does not.
fn plausible_start(start_unix_ns: i64, received_ns: i64) -> bool {
    let earliest = chrono::NaiveDate::from_ymd_opt(EARLIEST_START_YEAR, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .and_then(|time| time.and_utc().timestamp_nanos_opt())
        .unwrap_or(0);
    start_unix_ns >= earliest && start_unix_ns <= received_ns.saturating_add(MAX_START_AHEAD_NS)
}

/// Reads the meter's info line. With `ask` the `info` command is sent
/// first (a command-port client speaks first; a dialing meter does not).
pub async fn greet<S>(stream: S, patience: Duration, ask: bool) -> Result<Greeted<S>, SessionError>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut read, write) = tokio::io::split(stream);
    let mut commands = FramedWrite::new(write, CommandCodec::new());
    let mut decoder = MeterDecoder::new();
    if ask {
        send(&mut commands, Command::Info, "sending info").await?;
    }
    let info = wait_for(
        &mut read,
        &mut decoder,
        patience,
        "info line",
        |item| match item {
            Decoded::DeviceInfo(info) => Some(*info),
            _ => None,
        },
    )
    .await?;
    Ok(Greeted {
        read,
        commands,
        decoder,
        info,
    })
}

impl<S: AsyncRead + AsyncWrite> Greeted<S> {
    pub fn info(&self) -> &InfoAnswer {
        &self.info
    }

    /// Sends `sample` and waits for the answer; the stream then yields what
    /// the decoder makes of the meter's bytes until it stops, disconnects,
    /// or `cancel` fires (which sends `stop` and drains the tail).
    pub async fn start(
        mut self,
        settings: &SessionSettings,
        cancel: CancellationToken,
    ) -> Result<MeterStream<S>, SessionError> {
        let name = self.info.name.clone();
        let mut params = SampleParams::new(StreamType::Tcp, settings.rate);
        params.measures = Some(settings.measures);
        send(
            &mut self.commands,
            Command::Sample(params),
            "sending sample",
        )
        .await?;
        let started = wait_for(
            &mut self.read,
            &mut self.decoder,
            settings.handshake_timeout,
            "sample answer",
            |item| match item {
                Decoded::SessionStart(started) => Some(Ok(started)),
                Decoded::ErrorAnswer(answer) => Some(Err(SessionError::Refused {
                    meter: name.clone(),
                    answer: answer.msg.unwrap_or_else(|| "error without message".into()),
                })),
                Decoded::InvalidAnswer(reason) => Some(Err(SessionError::InvalidAnswer {
                    meter: name.clone(),
                    reason,
                })),
                _ => None,
            },
        )
        .await??;
        let SessionStarted {
            mut description,
            answer,
        } = *started;
        let Some(answer) = answer else {
            return Err(SessionError::Closed("sample answer"));
        };
        // The meter that greeted us, whatever info lines came since.
        description.device = name;
        description.info = Some(self.info.clone());
        // `v,i` is echoed as `v,i_L1`: the same channels are the same layout.
        if answer.samplingrate != settings.rate
            || answer.measures.channels() != settings.measures.channels()
        {
            // Samples are laid out and timed as answered; the row says so.
            self.decoder.note(format!(
                "sample answer: asked for {} at {} Hz, the meter answered {} at {} Hz; \
                 samples are taken as answered",
                settings.measures, settings.rate, answer.measures, answer.samplingrate
            ));
        }
        let received_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        if !plausible_start(description.start_unix_ns, received_ns) {
            let why = format!(
                "sample answer: startTs {} is not a time this meter can have started \
                 (before {EARLIEST_START_YEAR} or over a day ahead of the sink's clock); \
                 samples are timed from the sink's clock at the answer",
                answer.start_ts
            );
            tracing::warn!(meter = %description.device, start_ts = %answer.start_ts, "{why}");
            description.start_unix_ns = received_ns;
            self.decoder.retime_session(received_ns, why);
        }
        tracing::info!(meter = %description.device, rate = answer.samplingrate, measures = %answer.measures, "sampling started");
        Ok(MeterStream {
            keepalive: tokio::time::interval_at(
                Instant::now() + settings.keepalive,
                settings.keepalive,
            ),
            read: self.read,
            commands: self.commands,
            decoder: self.decoder,
            info: self.info,
            answer,
            description,
            settings: settings.clone(),
            cancel,
            stop_deadline: None,
            stop: None,
            end: None,
            last_arrival: Instant::now(),
        })
    }
}

/// A sampling meter: yields what the decoder makes of its bytes, in order.
pub struct MeterStream<S> {
    read: ReadHalf<S>,
    commands: Commands<S>,
    decoder: MeterDecoder,
    info: InfoAnswer,
    answer: SampleAnswer,
    description: SessionDescription,
    settings: SessionSettings,
    cancel: CancellationToken,
    keepalive: Interval,
    stop_deadline: Option<Instant>,
    stop: Option<StopAnswer>,
    end: Option<SessionEnd>,
    last_arrival: Instant,
}

impl<S: AsyncRead + AsyncWrite> MeterStream<S> {
    pub fn description(&self) -> &SessionDescription {
        &self.description
    }

    pub fn answer(&self) -> &SampleAnswer {
        &self.answer
    }

    /// The decoder's counters so far.
    pub fn counters(&self) -> StreamCounters {
        self.decoder.counters()
    }

    /// The next item; `None` once the session is over (its `session_stop`
    /// event has been yielded). Sends `stop` when cancelled or at the sample
    /// limit, and keepalives while streaming.
    pub async fn next(&mut self) -> Result<Option<Decoded>, SessionError> {
        loop {
            if let Some(item) = self.poll() {
                return Ok(Some(item));
            }
            if self.end.is_some() {
                return Ok(None);
            }
            self.stop_if_wanted().await?;
            let deadline = match (self.stop_deadline, self.settings.idle_timeout) {
                (Some(deadline), _) => deadline,
                (None, Some(idle)) => self.last_arrival + idle,
                (None, None) => Instant::now() + Duration::from_secs(86_400 * 365),
            };
            tokio::select! {
                read = timeout_at(deadline, read_into(&mut self.read, self.decoder.read_buffer())) => match read {
                    Ok(read) => self.arrived(read)?,
                    Err(_) if self.stop_deadline.is_some() => {
                        self.decoder.end(SessionEnd::StopUnanswered);
                    }
                    Err(_) => {
                        let idle = self.settings.idle_timeout.unwrap_or_default();
                        return Err(SessionError::Idle(idle));
                    }
                },
                _ = self.keepalive.tick() => {
                    send(&mut self.commands, Command::KeepAlive, "sending keepalive").await?;
                }
                _ = self.cancel.cancelled(), if self.stop_deadline.is_none() => {}
            }
        }
    }

    /// The next item if one is already decoded or readable without waiting;
    /// lets a caller batch what arrived together.
    pub fn next_ready(&mut self) -> Result<Option<Decoded>, SessionError> {
        loop {
            if let Some(item) = self.poll() {
                return Ok(Some(item));
            }
            if self.end.is_some() || self.wants_stop() {
                return Ok(None);
            }
            match read_into(&mut self.read, self.decoder.read_buffer()).now_or_never() {
                None => return Ok(None),
                Some(read) => self.arrived(read)?,
            }
        }
    }

    /// Ends the session without reading further (the caller gave up on the
    /// connection, `why`): the items that closes it, its `session_stop`
    /// event last.
    pub fn abandon(&mut self, why: SessionEnd) -> Vec<Decoded> {
        self.decoder.end(why);
        std::iter::from_fn(|| self.poll()).collect()
    }

    fn poll(&mut self) -> Option<Decoded> {
        let item = self.decoder.poll();
        match &item {
            Some(Decoded::SessionEnd(ended)) => {
                self.end = Some(ended.end);
                self.stop.clone_from(&ended.stop);
            }
            Some(Decoded::DeviceInfo(_)) if self.stop_deadline.is_some() => {
                // A `?`-style reset: the meter is idle again.
                self.decoder.end(SessionEnd::Stopped);
            }
            Some(Decoded::Event(event)) if event.kind.is_trouble() => {
                let meter = &self.description.device;
                tracing::warn!(%meter, event = event.kind.name(), "{}", event.kind.detail());
            }
            None if self.decoder.is_finished() => {
                self.end.get_or_insert(SessionEnd::Disconnected);
            }
            _ => {}
        }
        item
    }

    /// Takes in what a read brought.
    fn arrived(&mut self, read: std::io::Result<usize>) -> Result<(), SessionError> {
        match read {
            Ok(0) => self.decoder.end(SessionEnd::Disconnected),
            Ok(_) => self.last_arrival = Instant::now(),
            Err(source) => {
                return Err(SessionError::Io {
                    stage: "reading frames",
                    source,
                })
            }
        }
        Ok(())
    }

    fn wants_stop(&self) -> bool {
        self.cancel.is_cancelled()
            || self
                .settings
                .stop_after_samples
                .is_some_and(|limit| self.decoder.samples() >= limit)
    }

    async fn stop_if_wanted(&mut self) -> Result<(), SessionError> {
        if self.wants_stop() && self.stop_deadline.is_none() {
            send(&mut self.commands, Command::Stop, "sending stop").await?;
            self.stop_deadline = Some(Instant::now() + self.settings.stop_timeout);
        }
        Ok(())
    }

    /// What the session did.
    pub fn finish(self) -> SessionReport {
        let counters = self.decoder.counters();
        SessionReport {
            wire: counters.wire,
            info: self.info,
            answer: self.answer,
            stop: self.stop,
            end: self.end.unwrap_or(SessionEnd::Disconnected),
            samples: counters.samples,
            lost_samples: counters.lost_samples,
            meter_warnings: counters.meter_warnings,
            meter_missed_samples: counters.meter_missed_samples,
            bad_messages: counters.bad_messages,
        }
    }
}

/// Runs the whole session in this task: handshake, then every block and
/// event into `visitor`, until the meter disconnects, `cancel` fires, or
/// `stop_after_samples` is reached.
pub async fn run_session<S, V>(
    stream: S,
    settings: &SessionSettings,
    cancel: CancellationToken,
    visitor: &mut V,
) -> Result<SessionReport, SessionError>
where
    S: AsyncRead + AsyncWrite,
    V: CaptureVisitor + ?Sized,
{
    let greeted = greet(stream, settings.handshake_timeout, false).await?;
    let mut stream = greeted.start(settings, cancel).await?;
    let mut feed = BlockFeed::default();
    feed.start(stream.description(), visitor);
    while let Some(item) = stream.next().await? {
        feed.apply(item, visitor);
    }
    Ok(stream.finish())
}

async fn send<W>(
    commands: &mut FramedWrite<W, CommandCodec>,
    command: Command,
    stage: &'static str,
) -> Result<(), SessionError>
where
    W: AsyncWrite + Unpin,
{
    commands
        .send(command)
        .await
        .map_err(|source| SessionError::Io { stage, source })
}

/// Reads what the socket has into the decoder's buffer; 0 at its end.
async fn read_into<R: AsyncRead + Unpin>(
    read: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < MIN_READ_ROOM {
        buf.reserve(READ_CAPACITY);
    }
    read.read_buf(buf).await
}

/// Reads until `pick` accepts an item; what comes before it is dropped
/// (nothing of a session is: no session has started yet).
async fn wait_for<R, T>(
    read: &mut R,
    decoder: &mut MeterDecoder,
    patience: Duration,
    what: &'static str,
    mut pick: impl FnMut(Decoded) -> Option<T>,
) -> Result<T, SessionError>
where
    R: AsyncRead + Unpin,
{
    let deadline = Instant::now() + patience;
    loop {
        while let Some(item) = decoder.poll() {
            if let Some(found) = pick(item) {
                return Ok(found);
            }
        }
        match timeout_at(deadline, read_into(read, decoder.read_buffer())).await {
            Err(_) => return Err(SessionError::Timeout(what)),
            Ok(Ok(0)) => return Err(SessionError::Closed(what)),
            Ok(Err(source)) => {
                return Err(SessionError::Io {
                    stage: what,
                    source,
                })
            }
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::source::event::{EventKind, SourceEvent};
    use crate::wire::frame::{put_data_frame, put_info_line};
    use crate::wire::message::StartTs;
    use crate::wire::samples::SampleBlock;

    /// 2026-01-01 00:00:00 UTC.
    const START_MS: u64 = 1_767_225_600_000;

    #[derive(Default)]
    struct Seen {
        samples: u64,
        events: Vec<SourceEvent>,
    }

    impl CaptureVisitor for Seen {
        fn session_start(&mut self, _: &SessionDescription) {}
        fn block(&mut self, block: &SampleBlock) {
            self.samples += block.len() as u64;
        }
        fn event(&mut self, event: SourceEvent) {
            self.events.push(event);
        }
    }

    /// The meter's side: its info line; after `sample`, the answer and
    /// `chunks` chunks of 4 `v,i` samples.
    async fn meter(mut link: DuplexStream, chunks: u32) -> DuplexStream {
        let mut out = BytesMut::new();
        let info = InfoAnswer::new("meter7", "10.0.0.7");
        put_info_line(&mut out, &serde_json::to_string(&info).unwrap());
        link.write_all(&out).await.unwrap();
        let mut command = Vec::new();
        while command.last() != Some(&b'\n') {
            command.push(link.read_u8().await.unwrap());
        }
        assert!(String::from_utf8_lossy(&command).contains("\"sample\""));
        let mut answer = SampleAnswer::new(
            Measures::SinglePhase,
            4000,
            StreamType::Tcp,
            true,
            false,
            StartTs::from_unix_millis(START_MS),
        );
        answer.chunksize = 32;
        let mut out = BytesMut::new();
        put_info_line(&mut out, &serde_json::to_string(&answer).unwrap());
        for seq in 0..chunks {
            put_data_frame(
                &mut out,
                seq,
                &[230.0, 1000.0, 231.0, 1000.0, 232.0, 0.0, 233.0, 0.0],
            );
        }
        link.write_all(&out).await.unwrap();
        link
    }

    fn settings() -> SessionSettings {
        SessionSettings {
            rate: 4000,
            measures: Measures::SinglePhase,
            handshake_timeout: Duration::from_secs(5),
            ..SessionSettings::default()
        }
    }

    /// 4 kHz: sample `index` is 250 µs after the start.
    fn at(index: i64) -> i64 {
        START_MS as i64 * 1_000_000 + index * 250_000
    }

    #[tokio::test]
    async fn a_meter_that_hangs_up_ends_its_session_with_that_reason() {
        let (sink_side, meter_side) = tokio::io::duplex(1 << 16);
        let meter = tokio::spawn(async move { drop(meter(meter_side, 3).await) });
        let mut seen = Seen::default();
        let report = run_session(sink_side, &settings(), CancellationToken::new(), &mut seen)
            .await
            .unwrap();
        meter.await.unwrap();
        assert_eq!(report.end, SessionEnd::Disconnected);
        assert!(report.stop.is_none());
        // 3 chunks of 4 samples (8 values of `v,i`).
        assert_eq!((report.samples, seen.samples), (12, 12));
        assert_eq!(
            seen.events,
            [
                SourceEvent {
                    unix_ns: at(0),
                    kind: EventKind::SessionStart
                },
                SourceEvent {
                    unix_ns: at(12),
                    kind: EventKind::SessionStop {
                        end: SessionEnd::Disconnected,
                        sent_samples: None
                    }
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_silent_meter_is_dropped_and_its_session_ends_as_idle() {
        let (sink_side, meter_side) = tokio::io::duplex(1 << 16);
        // The meter keeps the link open and says nothing after one chunk.
        let meter = tokio::spawn(meter(meter_side, 1));
        let settings = SessionSettings {
            idle_timeout: Some(Duration::from_millis(200)),
            ..settings()
        };
        let greeted = greet(sink_side, settings.handshake_timeout, false)
            .await
            .unwrap();
        let mut stream = greeted
            .start(&settings, CancellationToken::new())
            .await
            .unwrap();
        let mut items = Vec::new();
        let error = loop {
            match stream.next().await {
                Ok(Some(item)) => items.push(item),
                Ok(None) => panic!("the session ended by itself"),
                Err(error) => break error,
            }
        };
        assert!(matches!(error, SessionError::Idle(_)), "{error}");
        items.extend(stream.abandon(SessionEnd::Idle));
        let last = items.last().expect("items");
        let Decoded::Event(event) = last else {
            panic!("last is {last:?}");
        };
        assert_eq!(
            *event,
            SourceEvent {
                unix_ns: at(4),
                kind: EventKind::SessionStop {
                    end: SessionEnd::Idle,
                    sent_samples: None
                }
            }
        );
        assert_eq!(stream.finish().end, SessionEnd::Idle);
        drop(meter.await.unwrap());
    }
}
