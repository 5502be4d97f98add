//! One meter connection seen from the sink: wait for the info line, send
//! `sample`, read the sample answer, then decode chunks into sample blocks
//! until the meter stops or we ask it to.
//!
//! The meter never starts sampling by itself on a stream-server connection
//! (firmware facts), so this handshake is what every sink source shares.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::assembler::BlockAssembler;
use super::capture::{CaptureVisitor, SessionDescription};
use super::event::{EventKind, SourceEvent};
use crate::wire::command::{Command, CommandCodec, SampleParams, StreamType};
use crate::wire::message::LogLevel;
use crate::wire::message::{DeviceInfo, ErrorAnswer, InfoMessage, SampleAnswer, StopAnswer};
use crate::wire::samples::sample_time;
use crate::wire::{Frame, Measures, MeterCodec, WireStats};

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
    pub info: DeviceInfo,
    pub answer: SampleAnswer,
    pub stop: Option<StopAnswer>,
    pub end: SessionEnd,
    pub wire: WireStats,
    /// Samples delivered to the block handler.
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

/// Runs the handshake and streams blocks to `on_block` until the meter
/// disconnects, `cancel` fires, or `stop_after_samples` is reached.
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
    let (read, write) = tokio::io::split(stream);
    let mut frames = FramedRead::with_capacity(read, MeterCodec::new(), 64 * 1024);
    let mut commands = FramedWrite::new(write, CommandCodec::new());
    let mut counters = Counters::default();

    let info = wait_for(
        &mut frames,
        settings.handshake_timeout,
        "info line",
        &mut counters,
        |m| match m {
            InfoMessage::DeviceInfo(info) => Some(Ok(*info)),
            _ => None,
        },
    )
    .await??;
    let name = info.name.clone();

    let mut params = SampleParams::new(StreamType::Tcp, settings.rate);
    params.measures = Some(settings.measures);
    send(&mut commands, Command::Sample(params), "sending sample").await?;
    let answer = wait_for(
        &mut frames,
        settings.handshake_timeout,
        "sample answer",
        &mut counters,
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
    frames
        .decoder_mut()
        .set_bytes_per_sample(answer.bytes_per_sample());
    frames.decoder_mut().reset_sequence();
    tracing::info!(meter = %name, rate = answer.samplingrate, measures = %answer.measures, "sampling started");

    let description = SessionDescription {
        device: name.clone(),
        info: Some(info.clone()),
        measures: answer.measures,
        rate: answer.samplingrate,
        start_unix_ns: answer.start_ts.to_unix_nanos(),
    };
    visitor.session_start(&description);
    visitor.event(SourceEvent {
        unix_ns: description.start_unix_ns,
        kind: EventKind::SessionStart,
    });
    let mut assembler = BlockAssembler::new(&answer);
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + settings.keepalive, settings.keepalive);
    let mut stop_deadline: Option<Instant> = None;
    let mut stop = None;
    let mut samples = 0u64;
    let end = loop {
        let wants_stop = cancel.is_cancelled()
            || settings
                .stop_after_samples
                .is_some_and(|limit| samples >= limit);
        if wants_stop && stop_deadline.is_none() {
            send(&mut commands, Command::Stop, "sending stop").await?;
            stop_deadline = Some(Instant::now() + settings.stop_timeout);
        }
        let deadline =
            stop_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        let next = tokio::select! {
            next = timeout_at(deadline, frames.next()) => match next {
                Ok(next) => next,
                Err(_) => break SessionEnd::StopUnanswered,
            },
            _ = keepalive.tick() => {
                send(&mut commands, Command::KeepAlive, "sending keepalive").await?;
                continue;
            }
            _ = cancel.cancelled(), if stop_deadline.is_none() => continue,
        };
        let frame = match next {
            None => break SessionEnd::Disconnected,
            Some(Err(source)) => {
                return Err(SessionError::Io {
                    stage: "reading frames",
                    source,
                })
            }
            Some(Ok(frame)) => frame,
        };
        match frame {
            Frame::Data { payload, .. } => match assembler.push_payload(&payload) {
                Ok(block) => {
                    samples += block.len() as u64;
                    visitor.block(block);
                }
                Err(error) => tracing::warn!(meter = %name, %error, "chunk dropped"),
            },
            Frame::Anomaly(anomaly) => {
                let lost = assembler.note_anomaly(&anomaly);
                tracing::warn!(meter = %name, ?anomaly, lost_samples = lost, "wire anomaly");
                visitor.event(SourceEvent {
                    unix_ns: sample_time(
                        description.start_unix_ns,
                        description.rate,
                        assembler.next_index(),
                    ),
                    kind: EventKind::from_anomaly(&anomaly, lost),
                });
            }
            Frame::Info(text) => match counters.classify(&name, &text) {
                Some(InfoMessage::StopAnswer(answer)) => {
                    visitor.event(SourceEvent {
                        unix_ns: answer.stop_ts.to_unix_nanos(),
                        kind: EventKind::SessionStop {
                            sent_samples: Some(answer.sent_samples),
                        },
                    });
                    stop = Some(answer);
                    break SessionEnd::Stopped;
                }
                Some(InfoMessage::Log(line))
                    if matches!(line.level, LogLevel::Warning | LogLevel::Error) =>
                {
                    let missed_samples = line.missed_samples();
                    visitor.event(SourceEvent {
                        unix_ns: sample_time(
                            description.start_unix_ns,
                            description.rate,
                            assembler.next_index(),
                        ),
                        kind: EventKind::MeterWarning {
                            message: line.message,
                            missed_samples,
                        },
                    });
                }
                Some(InfoMessage::DeviceInfo(_)) if stop_deadline.is_some() => {
                    // A `?`-style reset: the meter is idle again.
                    break SessionEnd::Stopped;
                }
                _ => {}
            },
        }
    };
    Ok(SessionReport {
        info,
        answer,
        stop,
        end,
        wire: *frames.decoder().stats(),
        samples,
        lost_samples: assembler.lost_samples(),
        meter_warnings: counters.warnings,
        meter_missed_samples: counters.missed_samples,
        bad_messages: counters.bad_messages,
    })
}

#[derive(Debug, Default)]
struct Counters {
    warnings: u64,
    missed_samples: u64,
    bad_messages: u64,
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
