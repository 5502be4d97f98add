//! Replays a recorded meter byte stream (what `meterflow simulate --capture`
//! writes, or a tap of a real meter's connection): the same decoder and block
//! bookkeeping as a live connection, fed from memory.

use std::path::Path;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::assembler::BlockAssembler;
use crate::wire::message::{DeviceInfo, InfoMessage, LogLevel, SampleAnswer, StopAnswer};
use crate::wire::samples::SampleBlock;
use crate::wire::{Frame, MeterCodec, WireStats};

/// Why a capture could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read capture {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a meter byte stream (it does not start with \"Info:\")")]
    NotAMeterStream,
    #[error("decoder failed: {0}")]
    Decode(#[from] std::io::Error),
}

/// One sampling session found in a capture.
#[derive(Debug, Clone)]
pub struct CapturedSession {
    pub answer: SampleAnswer,
    pub stop: Option<StopAnswer>,
    pub samples: u64,
    pub lost_samples: u64,
    pub data_frames: u64,
}

/// What a capture held.
#[derive(Debug, Clone, Default)]
pub struct CaptureSummary {
    pub info: Option<DeviceInfo>,
    pub sessions: Vec<CapturedSession>,
    pub log_lines: u64,
    pub meter_warnings: u64,
    pub bad_messages: u64,
    /// Data chunks seen before any sample answer (their layout is unknown).
    pub orphan_frames: u64,
    pub wire: WireStats,
}

/// Reads a capture file and replays it; see [`replay`].
pub fn replay_file(
    path: &Path,
    on_block: impl FnMut(&SampleBlock),
) -> Result<CaptureSummary, CaptureError> {
    let bytes = std::fs::read(path).map_err(|source| CaptureError::Read {
        path: path.display().to_string(),
        source,
    })?;
    replay(&bytes, on_block)
}

/// Decodes a meter byte stream, handing every sample block to `on_block`.
pub fn replay(
    bytes: &[u8],
    mut on_block: impl FnMut(&SampleBlock),
) -> Result<CaptureSummary, CaptureError> {
    if !bytes.starts_with(crate::wire::frame::INFO_TAG) {
        return Err(CaptureError::NotAMeterStream);
    }
    let mut buf = BytesMut::from(bytes);
    let mut codec = MeterCodec::new();
    let mut summary = CaptureSummary::default();
    let mut current: Option<(CapturedSession, BlockAssembler)> = None;
    loop {
        let frame = match codec.decode(&mut buf)? {
            Some(frame) => frame,
            None => match codec.decode_eof(&mut buf)? {
                Some(frame) => frame,
                None => break,
            },
        };
        match frame {
            Frame::Data { payload, .. } => match current.as_mut() {
                Some((session, assembler)) => match assembler.push_payload(&payload) {
                    Ok(block) => {
                        session.samples += block.len() as u64;
                        session.data_frames += 1;
                        on_block(block);
                    }
                    Err(_) => summary.bad_messages += 1,
                },
                None => summary.orphan_frames += 1,
            },
            Frame::Anomaly(anomaly) => {
                if let Some((session, assembler)) = current.as_mut() {
                    session.lost_samples += assembler.note_anomaly(&anomaly);
                }
            }
            Frame::Info(text) => match InfoMessage::parse(&text) {
                Ok(InfoMessage::DeviceInfo(info)) => {
                    if summary.info.is_none() {
                        summary.info = Some(*info);
                    }
                }
                Ok(InfoMessage::SampleAnswer(answer)) => {
                    codec.set_bytes_per_sample(answer.bytes_per_sample());
                    codec.reset_sequence();
                    if let Some((session, _)) = current.take() {
                        summary.sessions.push(session);
                    }
                    let assembler = BlockAssembler::new(&answer);
                    current = Some((
                        CapturedSession {
                            answer,
                            stop: None,
                            samples: 0,
                            lost_samples: 0,
                            data_frames: 0,
                        },
                        assembler,
                    ));
                }
                Ok(InfoMessage::StopAnswer(stop)) => {
                    if let Some((mut session, _)) = current.take() {
                        session.stop = Some(stop);
                        summary.sessions.push(session);
                    }
                }
                Ok(InfoMessage::Log(line)) => {
                    summary.log_lines += 1;
                    if matches!(line.level, LogLevel::Warning | LogLevel::Error) {
                        summary.meter_warnings += 1;
                    }
                }
                Ok(_) => {}
                Err(_) => summary.bad_messages += 1,
            },
        }
    }
    if let Some((session, _)) = current.take() {
        summary.sessions.push(session);
    }
    summary.wire = *codec.stats();
    Ok(summary)
}
