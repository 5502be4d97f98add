//! Standard output target: one packet per line, for piping into other tools.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;

use super::target::{DeliveryError, PacketTarget};

/// Writes each packet as one line to standard output (on a blocking thread:
/// a stalled pipe must not stall the async workers).
#[derive(Debug, Default)]
pub struct StdoutTarget;

impl StdoutTarget {
    pub fn new() -> Self {
        Self
    }
}

impl PacketTarget for StdoutTarget {
    fn name(&self) -> &str {
        "stdout"
    }

    async fn deliver(&mut self, packet: &Bytes) -> Result<(), DeliveryError> {
        let mut line = Vec::with_capacity(packet.len() + 1);
        line.extend_from_slice(packet);
        line.push(b'\n');
        tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&line)?;
            out.flush()
        })
        .await
        .context("standard output writer thread failed")
        .and_then(|r| r.context("writing a packet to standard output"))
        .map_err(DeliveryError::Unavailable)
    }
}
