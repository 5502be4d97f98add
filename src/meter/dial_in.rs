//! Dial-in mode: the meter connects to its stream server (the sink), like the
//! firmware does every 30 s while idle, and runs the protocol on that link.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::capture::CaptureTarget;
use super::command_port::{finish_capture, open_capture};
use super::firmware::{ConnectionEnd, VirtualMeter};

/// The firmware's retry period for the stream server.
pub const DEFAULT_RECONNECT: Duration = Duration::from_secs(30);

/// Where and how often to dial.
#[derive(Debug, Clone)]
pub struct DialInConfig {
    /// `host:port` of the stream server; several, comma-separated, are
    /// tried in turn (a cluster of sinks behind one DNS name).
    pub server: String,
    /// Wait between a failed or ended connection and the next attempt.
    pub reconnect: Duration,
    /// Longest wait for a TCP connect.
    pub connect_timeout: Duration,
    /// Which of the servers is dialed first (counted modulo their number).
    pub first_turn: usize,
}

impl DialInConfig {
    pub fn new(server: impl Into<String>) -> Self {
        DialInConfig {
            server: server.into(),
            reconnect: DEFAULT_RECONNECT,
            connect_timeout: Duration::from_secs(5),
            first_turn: 0,
        }
    }
}

/// What one meter did until it was cancelled or reached its session limit.
#[derive(Debug, Clone, Default)]
pub struct DialInReport {
    /// Connections that were established.
    pub connections: u64,
    /// Connect attempts that failed.
    pub failed_attempts: u64,
    pub sent_samples: u64,
    pub dropped_samples: u64,
    /// True when a session limit ended the meter's work.
    pub limit_reached: bool,
}

/// Dials until `cancel` fires or a session reaches its limit.
pub async fn run_dial_in(
    meter: VirtualMeter,
    config: DialInConfig,
    capture: Option<CaptureTarget>,
    cancel: CancellationToken,
) -> DialInReport {
    let mut report = DialInReport::default();
    let servers: Vec<&str> = config
        .server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut turn = config.first_turn;
    while !cancel.is_cancelled() {
        let server = servers
            .get(turn % servers.len().max(1))
            .copied()
            .unwrap_or("");
        let attempt = tokio::select! {
            _ = cancel.cancelled() => break,
            attempt = timeout(config.connect_timeout, TcpStream::connect(server)) => attempt,
        };
        match attempt {
            Ok(Ok(stream)) => {
                report.connections += 1;
                if let Some(end) = serve_one(
                    &meter,
                    stream,
                    capture.as_ref(),
                    report.connections,
                    &cancel,
                    &mut report,
                )
                .await
                {
                    if matches!(end, ConnectionEnd::LimitReached | ConnectionEnd::Cancelled) {
                        report.limit_reached = end == ConnectionEnd::LimitReached;
                        break;
                    }
                }
            }
            Ok(Err(error)) => {
                report.failed_attempts += 1;
                tracing::debug!(meter = %meter.name(), server, %error, "stream server not reachable");
            }
            Err(_) => {
                report.failed_attempts += 1;
                tracing::debug!(meter = %meter.name(), server, "connect timed out");
            }
        }
        // Ended or failed: the next attempt goes to the next server.
        turn += 1;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(config.reconnect) => {}
        }
    }
    report
}

/// Runs one connection; returns how it ended (None on an I/O error).
async fn serve_one(
    meter: &VirtualMeter,
    stream: TcpStream,
    capture: Option<&CaptureTarget>,
    connection: u64,
    cancel: &CancellationToken,
    report: &mut DialInReport,
) -> Option<ConnectionEnd> {
    let name = meter.name();
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(meter = %name, %error, "TCP_NODELAY not set");
    }
    if let Ok(local) = stream.local_addr() {
        meter.set_ip(local.ip().to_string());
    }
    let mut file = open_capture(capture, connection, &name);
    let result = meter.serve(stream, cancel, file.as_mut()).await;
    finish_capture(file, &name);
    match result {
        Ok(done) => {
            report.sent_samples += done.sent_samples;
            report.dropped_samples += done.dropped_samples;
            tracing::info!(meter = %name, end = ?done.end, sent = done.sent_samples, "stream server connection ended");
            Some(done.end)
        }
        Err(error) => {
            tracing::warn!(meter = %name, %error, "stream server connection failed");
            None
        }
    }
}
