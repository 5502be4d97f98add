//! One meter connection seen from the sink: wait for the info line, send
//! `sample`, read the sample answer, then stream the meter's chunks until it
//! stops or we ask it to.
//!
//! The meter never starts sampling by itself on a stream-server connection
//! (firmware facts), so this handshake is what every sink source shares. It
//! is split in three so a server can decide between the steps:
//! [`greet`] reads the info line (who is calling), [`Greeted::start`] sends
//! `sample` with the settings chosen for that meter, and [`MeterStream`]
//! yields the raw items (chunks as slices of the read buffer, anomalies,
//! meter warnings) wherever they are to be decoded. [`SessionFeed`] turns
//! those items into sample blocks and events; [`run_session`] does all of it
//! in one task.

use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::time::{timeout_at, Instant, Interval};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::assembler::BlockAssembler;
use super::capture::{CaptureVisitor, SessionDescription};
use super::event::{EventKind, SourceEvent};
use crate::wire::command::{Command, CommandCodec, SampleParams, StreamType};
use crate::wire::message::{ErrorAnswer, InfoAnswer, InfoMessage, SampleAnswer, StopAnswer};
use crate::wire::message::{LogLevel, LogLine};
use crate::wire::samples::sample_time;
use crate::wire::{Anomaly, Frame, Measures, MeterCodec, WireStats};

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
    #[error("nothing received for {0:?} while streaming")]
    Idle(Duration),
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The meter answered our `stop`.
    Stopped,
    /// Cancelled and the meter did not answer `stop` in time.
    StopUnanswered,
    /// The meter closed the connection.
    Disconnected,
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

/// What a streaming meter sent, not yet decoded into samples.
#[derive(Debug, Clone)]
pub enum SessionItem {
    /// One chunk's payload: a slice of the read buffer, never copied.
    Chunk(Bytes),
    /// Something wrong on the wire (gap, resync, bad length…).
    Anomaly(Anomaly),
    /// A warning or error the meter logged.
    MeterLog(LogLine),
    /// The stop answer; nothing follows.
    Stopped(StopAnswer),
    /// An info line that could not be read (why), kept as an event as a
    /// capture file's would be.
    BadMessage(String),
}

type Frames<S> = FramedRead<ReadHalf<S>, MeterCodec>;
type Commands<S> = FramedWrite<WriteHalf<S>, CommandCodec>;

/// A connection whose meter has introduced itself and waits for `sample`.
pub struct Greeted<S> {
    frames: Frames<S>,
    commands: Commands<S>,
    counters: Counters,
    info: InfoAnswer,
}

/// Reads the meter's info line. With `ask` the `info` command is sent
/// first (a command-port client speaks first; a dialing meter does not).
pub async fn greet<S>(stream: S, patience: Duration, ask: bool) -> Result<Greeted<S>, SessionError>
where
    S: AsyncRead + AsyncWrite,
{
    let (read, write) = tokio::io::split(stream);
    let mut frames = FramedRead::with_capacity(read, MeterCodec::new(), 64 * 1024);
    let mut commands = FramedWrite::new(write, CommandCodec::new());
    let mut counters = Counters::default();
    if ask {
        send(&mut commands, Command::Info, "sending info").await?;
    }
    let info = wait_for(
        &mut frames,
        patience,
        "info line",
        &mut counters,
        |m| match m {
            InfoMessage::DeviceInfo(info) => Some(*info),
            _ => None,
        },
    )
    .await?;
    Ok(Greeted {
        frames,
        commands,
        counters,
        info,
    })
}

impl<S: AsyncRead + AsyncWrite> Greeted<S> {
    pub fn info(&self) -> &InfoAnswer {
        &self.info
    }

    /// Sends `sample` and waits for the answer; the stream then yields the
    /// meter's items until it stops, disconnects, or `cancel` fires (which
    /// sends `stop` and drains the tail).
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
        let answer = wait_for(
            &mut self.frames,
            settings.handshake_timeout,
            "sample answer",
            &mut self.counters,
            |m| match m {
                InfoMessage::SampleAnswer(answer) => Some(Ok(answer)),
                InfoMessage::Error(ErrorAnswer { msg, .. }) => Some(Err(SessionError::Refused {
                    meter: name.clone(),
                    answer: msg.unwrap_or_else(|| "error without message".into()),
                })),
                _ => None,
            },
        )
        .await??;
        self.frames
            .decoder_mut()
            .set_bytes_per_sample(answer.bytes_per_sample());
        self.frames.decoder_mut().reset_sequence();
        tracing::info!(meter = %name, rate = answer.samplingrate, measures = %answer.measures, "sampling started");
        let description = SessionDescription {
            device: name,
            info: Some(self.info.clone()),
            measures: answer.measures,
            rate: answer.samplingrate,
            start_unix_ns: answer.start_ts.to_unix_nanos(),
        };
        Ok(MeterStream {
            keepalive: tokio::time::interval_at(
                Instant::now() + settings.keepalive,
                settings.keepalive,
            ),
            bytes_per_sample: answer.bytes_per_sample().max(1),
            frames: self.frames,
            commands: self.commands,
            counters: self.counters,
            info: self.info,
            answer,
            description,
            settings: settings.clone(),
            cancel,
            stop_deadline: None,
            stop: None,
            end: None,
            samples: 0,
            last_arrival: Instant::now(),
        })
    }
}

/// A sampling meter: yields its items in order.
pub struct MeterStream<S> {
    frames: Frames<S>,
    commands: Commands<S>,
    counters: Counters,
    info: InfoAnswer,
    answer: SampleAnswer,
    description: SessionDescription,
    settings: SessionSettings,
    cancel: CancellationToken,
    keepalive: Interval,
    bytes_per_sample: usize,
    stop_deadline: Option<Instant>,
    stop: Option<StopAnswer>,
    end: Option<SessionEnd>,
    samples: u64,
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
    pub fn wire_stats(&self) -> &WireStats {
        self.frames.decoder().stats()
    }

    /// The next item; `None` once the session is over. Sends `stop` when
    /// cancelled or at the sample limit, and keepalives while streaming.
    pub async fn next(&mut self) -> Result<Option<SessionItem>, SessionError> {
        loop {
            if self.end.is_some() {
                return Ok(None);
            }
            self.stop_if_wanted().await?;
            let deadline = match (self.stop_deadline, self.settings.idle_timeout) {
                (Some(deadline), _) => deadline,
                (None, Some(idle)) => self.last_arrival + idle,
                (None, None) => Instant::now() + Duration::from_secs(86_400 * 365),
            };
            let next = tokio::select! {
                next = timeout_at(deadline, self.frames.next()) => match next {
                    Ok(next) => next,
                    Err(_) if self.stop_deadline.is_some() => {
                        self.end = Some(SessionEnd::StopUnanswered);
                        return Ok(None);
                    }
                    Err(_) => {
                        let idle = self.settings.idle_timeout.unwrap_or_default();
                        return Err(SessionError::Idle(idle));
                    }
                },
                _ = self.keepalive.tick() => {
                    send(&mut self.commands, Command::KeepAlive, "sending keepalive").await?;
                    continue;
                }
                _ = self.cancel.cancelled(), if self.stop_deadline.is_none() => continue,
            };
            if let Some(item) = self.frame(next)? {
                return Ok(Some(item));
            }
        }
    }

    /// The next item if one is already decoded or readable without waiting;
    /// lets a caller batch what arrived together.
    pub fn next_ready(&mut self) -> Result<Option<SessionItem>, SessionError> {
        while self.end.is_none() && !self.wants_stop() {
            let Some(next) = self.frames.next().now_or_never() else {
                return Ok(None);
            };
            if let Some(item) = self.frame(next)? {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }

    fn wants_stop(&self) -> bool {
        self.cancel.is_cancelled()
            || self
                .settings
                .stop_after_samples
                .is_some_and(|limit| self.samples >= limit)
    }

    async fn stop_if_wanted(&mut self) -> Result<(), SessionError> {
        if self.wants_stop() && self.stop_deadline.is_none() {
            send(&mut self.commands, Command::Stop, "sending stop").await?;
            self.stop_deadline = Some(Instant::now() + self.settings.stop_timeout);
        }
        Ok(())
    }

    /// One decoded frame: the item it is, if any.
    fn frame(
        &mut self,
        next: Option<std::io::Result<Frame>>,
    ) -> Result<Option<SessionItem>, SessionError> {
        let frame = match next {
            None => {
                self.end = Some(SessionEnd::Disconnected);
                return Ok(None);
            }
            Some(Err(source)) => {
                return Err(SessionError::Io {
                    stage: "reading frames",
                    source,
                })
            }
            Some(Ok(frame)) => frame,
        };
        self.last_arrival = Instant::now();
        let name = &self.description.device;
        Ok(match frame {
            Frame::Data { payload, .. } => {
                self.samples += (payload.len() / self.bytes_per_sample) as u64;
                Some(SessionItem::Chunk(payload))
            }
            Frame::Anomaly(anomaly) => {
                tracing::warn!(meter = %name, ?anomaly, "wire anomaly");
                Some(SessionItem::Anomaly(anomaly))
            }
            Frame::Info(text) => match self.counters.classify(name, &text) {
                Some(InfoMessage::StopAnswer(answer)) => {
                    self.stop = Some(answer.clone());
                    self.end = Some(SessionEnd::Stopped);
                    Some(SessionItem::Stopped(answer))
                }
                Some(InfoMessage::Log(line))
                    if matches!(line.level, LogLevel::Warning | LogLevel::Error) =>
                {
                    Some(SessionItem::MeterLog(line))
                }
                Some(InfoMessage::DeviceInfo(_)) if self.stop_deadline.is_some() => {
                    // A `?`-style reset: the meter is idle again.
                    self.end = Some(SessionEnd::Stopped);
                    None
                }
                None => self.counters.bad.take().map(SessionItem::BadMessage),
                _ => None,
            },
        })
    }

    /// What the session did (`lost_samples` is the feed's to know: 0 here).
    pub fn finish(self) -> SessionReport {
        SessionReport {
            wire: *self.frames.decoder().stats(),
            info: self.info,
            answer: self.answer,
            stop: self.stop,
            end: self.end.unwrap_or(SessionEnd::Disconnected),
            samples: self.samples,
            lost_samples: 0,
            meter_warnings: self.counters.warnings,
            meter_missed_samples: self.counters.missed_samples,
            bad_messages: self.counters.bad_messages,
        }
    }
}

/// Turns one session's items into sample blocks and events, in order.
#[derive(Debug)]
pub struct SessionFeed {
    assembler: BlockAssembler,
    description: SessionDescription,
}

impl SessionFeed {
    pub fn new(description: &SessionDescription, answer: &SampleAnswer) -> Self {
        SessionFeed {
            assembler: BlockAssembler::new(answer),
            description: description.clone(),
        }
    }

    /// Tells `visitor` the session began (its description and a start event).
    pub fn start<V: CaptureVisitor + ?Sized>(&self, visitor: &mut V) {
        visitor.session_start(&self.description);
        visitor.event(SourceEvent {
            unix_ns: self.description.start_unix_ns,
            kind: EventKind::SessionStart,
        });
    }

    pub fn apply<V: CaptureVisitor + ?Sized>(&mut self, item: &SessionItem, visitor: &mut V) {
        match item {
            SessionItem::Chunk(payload) => match self.assembler.push_payload(payload) {
                Ok(block) => visitor.block(block),
                Err(error) => {
                    tracing::warn!(meter = %self.description.device, %error, "chunk dropped");
                    // As a capture file's reader records it: one decode story.
                    visitor.event(SourceEvent {
                        unix_ns: self.now(),
                        kind: EventKind::BadMessage {
                            reason: error.to_string(),
                        },
                    });
                }
            },
            SessionItem::BadMessage(reason) => visitor.event(SourceEvent {
                unix_ns: self.now(),
                kind: EventKind::BadMessage {
                    reason: reason.clone(),
                },
            }),
            SessionItem::Anomaly(anomaly) => {
                let lost = self.assembler.note_anomaly(anomaly);
                let unix_ns = self.now();
                visitor.event(SourceEvent {
                    unix_ns,
                    kind: EventKind::from_anomaly(anomaly, lost),
                });
            }
            SessionItem::MeterLog(line) => {
                visitor.event(SourceEvent {
                    unix_ns: self.now(),
                    kind: EventKind::MeterWarning {
                        message: line.message.clone(),
                        missed_samples: line.missed_samples(),
                    },
                });
            }
            SessionItem::Stopped(answer) => visitor.event(SourceEvent {
                unix_ns: answer.stop_ts.to_unix_nanos(),
                kind: EventKind::SessionStop {
                    sent_samples: Some(answer.sent_samples),
                },
            }),
        }
    }

    /// Meter time of the next sample: when an event between chunks happened.
    fn now(&self) -> i64 {
        sample_time(
            self.description.start_unix_ns,
            self.description.rate,
            self.assembler.next_index(),
        )
    }

    pub fn lost_samples(&self) -> u64 {
        self.assembler.lost_samples()
    }
}

/// Runs the whole session in this task: handshake, then every item into
/// `visitor`, until the meter disconnects, `cancel` fires, or
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
    let mut feed = SessionFeed::new(stream.description(), stream.answer());
    feed.start(visitor);
    while let Some(item) = stream.next().await? {
        feed.apply(&item, visitor);
    }
    let mut report = stream.finish();
    report.lost_samples = feed.lost_samples();
    Ok(report)
}
#[derive(Debug, Default)]
struct Counters {
    warnings: u64,
    missed_samples: u64,
    bad_messages: u64,
    /// Why the last info line could not be read, until it becomes an item.
    bad: Option<String>,
}

impl Counters {
    /// Parses an Info line, counting and logging what needs attention.
    fn classify(&mut self, meter: &str, text: &str) -> Option<InfoMessage> {
        match InfoMessage::parse(text) {
            Ok(InfoMessage::Log(line)) => {
                if matches!(line.level, LogLevel::Warning | LogLevel::Error) {
                    self.warnings += 1;
                    if let Some(missed) = line.missed_samples() {
                        self.missed_samples += missed;
                    }
                    tracing::warn!(meter, message = %line.message, "meter warning");
                }
                Some(InfoMessage::Log(line))
            }
            Ok(InfoMessage::Error(answer)) => {
                self.warnings += 1;
                tracing::warn!(meter, message = ?answer.msg, "meter error answer");
                Some(InfoMessage::Error(answer))
            }
            Ok(message) => Some(message),
            Err(error) => {
                self.bad_messages += 1;
                tracing::warn!(meter, %error, "bad info line");
                self.bad = Some(error.to_string());
                None
            }
        }
    }
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

/// Reads until `pick` accepts a message; data and other lines before it are skipped.
async fn wait_for<R, T>(
    frames: &mut FramedRead<R, MeterCodec>,
    patience: Duration,
    what: &'static str,
    counters: &mut Counters,
    mut pick: impl FnMut(InfoMessage) -> Option<T>,
) -> Result<T, SessionError>
where
    R: AsyncRead + Unpin,
{
    let deadline = Instant::now() + patience;
    loop {
        let frame = match timeout_at(deadline, frames.next()).await {
            Err(_) => return Err(SessionError::Timeout(what)),
            Ok(None) => return Err(SessionError::Closed(what)),
            Ok(Some(Err(source))) => {
                return Err(SessionError::Io {
                    stage: what,
                    source,
                })
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Frame::Info(text) = frame {
            if let Some(message) = counters.classify("?", &text) {
                if let Some(found) = pick(message) {
                    return Ok(found);
                }
            }
        }
    }
}
