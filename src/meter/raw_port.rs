//! Raw mode: the meter's ffmpeg port (54322 on the firmware). A client that
//! connects gets bare f32le samples at once: no prefix, no Info lines. One
//! client at a time, as the firmware has a single stream client.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::capture::CaptureTarget;
use super::command_port::{finish_capture, open_capture, PortReport};
use super::firmware::VirtualMeter;

/// The firmware's raw streaming port.
pub const RAW_PORT: u16 = 54322;

/// Streams to one client after the other until `cancel` fires.
pub async fn serve_raw_port(
    meter: VirtualMeter,
    listener: TcpListener,
    capture: Option<CaptureTarget>,
    cancel: CancellationToken,
) -> PortReport {
    let mut report = PortReport::default();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
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
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        report.connections += 1;
        let name = meter.name();
        tracing::info!(meter = %name, %peer, "raw client connected");
        let mut file = open_capture(capture.as_ref(), report.connections, &name);
        let result = meter.serve_raw(stream, &cancel, file.as_mut()).await;
        finish_capture(file, &name);
        match result {
            Ok(done) => {
                report.sent_samples += done.sent_samples;
                report.dropped_samples += done.dropped_samples;
            }
            Err(error) => tracing::warn!(meter = %name, %peer, %error, "raw client failed"),
        }
    }
    report
}
