//! What every delivery target implements, so the deliverer can run, spool
//! and retry them all the same way.

use std::future::Future;

use bytes::Bytes;

/// Why a packet was not delivered; decides what happens to it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The target cannot take packets now (down, timed out, 5xx…): the
    /// packet is spooled and sent again later, in order.
    #[error("target unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The target refused this packet for good (e.g. HTTP 400): sending it
    /// again cannot help, so it goes to the target's `rejected.ndjson` and
    /// the queue moves on.
    #[error("packet rejected: {0:#}")]
    Rejected(anyhow::Error),
}

/// A place packets go. Each target runs on its own task, so `deliver` may
/// take its time without holding up other targets.
pub trait PacketTarget: Send + 'static {
    /// Short and unique among the targets: names the spool folder and logs.
    fn name(&self) -> &str;

    /// Delivers one serialised packet (one JSON document, no newline).
    /// `Ok` means the target has it (e.g. HTTP 2xx, MQTT PUBACK).
    fn deliver(&mut self, packet: &Bytes)
        -> impl Future<Output = Result<(), DeliveryError>> + Send;

    /// Called about once a second when idle (time-based rotation and such).
    fn maintain(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Flushes and closes; called once at shutdown.
    fn close(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}
