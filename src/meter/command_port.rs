//! Command-port mode: the meter listens (port 54321 on the firmware) for
//! command clients; each runs the same protocol, data on the same link. All
//! clients share the one device, so a second `sample` is refused as busy.

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::capture::CaptureTarget;
use super::firmware::VirtualMeter;

/// The firmware's command port.
pub const COMMAND_PORT: u16 = 54321;

/// Totals of one listening meter.
#[derive(Debug, Clone, Default)]
pub struct PortReport {
    pub connections: u64,
    pub sent_samples: u64,
    pub dropped_samples: u64,
}

/// Accepts command clients until `cancel` fires, then waits for them.
pub async fn serve_command_port(
    meter: VirtualMeter,
    listener: TcpListener,
    capture: Option<CaptureTarget>,
    cancel: CancellationToken,
) -> PortReport {
    let mut report = PortReport::default();
    let mut clients: JoinSet<(u64, u64)> = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(done) = clients.join_next(), if !clients.is_empty() => {
                add(&mut report, done);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(meter = %meter.name(), %error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        report.connections += 1;
        let connection = report.connections;
        let meter = meter.clone();
        let capture = capture.clone();
        let cancel = cancel.clone();
        clients.spawn(async move {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
            if let Ok(local) = stream.local_addr() {
                meter.set_ip(local.ip().to_string());
            }
            let name = meter.name();
            tracing::info!(meter = %name, %peer, "command client connected");
            let mut file = open_capture(capture.as_ref(), connection, &name);
            let result = meter.serve(stream, &cancel, file.as_mut()).await;
            finish_capture(file, &name);
            match result {
                Ok(done) => (done.sent_samples, done.dropped_samples),
                Err(error) => {
                    tracing::warn!(meter = %name, %peer, %error, "command client failed");
                    (0, 0)
                }
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        add(&mut report, done);
    }
    report
}

fn add(report: &mut PortReport, done: Result<(u64, u64), tokio::task::JoinError>) {
    match done {
        Ok((sent, dropped)) => {
            report.sent_samples += sent;
            report.dropped_samples += dropped;
        }
        Err(error) => tracing::error!(%error, "meter connection task failed"),
    }
}

/// Opens the capture of one connection; a failure costs the capture, not the link.
pub(crate) fn open_capture(
    capture: Option<&CaptureTarget>,
    connection: u64,
    name: &str,
) -> Option<super::capture::CaptureFile> {
    match capture.map(|target| target.open(connection)).transpose() {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(meter = %name, error = %format!("{error:#}"), "capture not started");
            None
        }
    }
}

/// Renames a finished capture into place.
pub(crate) fn finish_capture(file: Option<super::capture::CaptureFile>, name: &str) {
    if let Some(file) = file {
        if let Err(error) = file.finish() {
            tracing::warn!(meter = %name, error = %format!("{error:#}"), "capture not finished");
        }
    }
}
