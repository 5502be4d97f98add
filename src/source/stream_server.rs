//! A stream server meters dial into (the vendor calls it the stream server,
//! port 54322): one task per connection, each running a meter session.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::wire::SampleBlock;

use super::meter_session::{run_session, SessionError, SessionReport, SessionSettings};

/// The port meters dial out to.
pub const STREAM_SERVER_PORT: u16 = 54322;

/// One finished connection.
#[derive(Debug)]
pub struct ConnectionOutcome {
    pub peer: SocketAddr,
    pub result: Result<SessionReport, SessionError>,
}

/// Accepts meters until `cancel` fires, then cancels their sessions (which
/// send `stop` and wait for the tail) and waits for them all.
///
/// `max_sessions` ends the accept loop after that many connections, for
/// demos and tests that know how many meters will call.
pub async fn serve(
    listener: TcpListener,
    settings: SessionSettings,
    cancel: CancellationToken,
    max_sessions: Option<usize>,
    outcomes: mpsc::UnboundedSender<ConnectionOutcome>,
) -> std::io::Result<()> {
    let mut sessions = JoinSet::new();
    let mut accepted = 0usize;
    while max_sessions.is_none_or(|max| accepted < max) {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: wait and go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => break,
        };
        accepted += 1;
        let _ = socket.set_nodelay(true);
        tracing::info!(%peer, "meter connected");
        let settings = settings.clone();
        let session_cancel = cancel.child_token();
        let outcomes = outcomes.clone();
        sessions.spawn(async move {
            let result =
                run_session(socket, &settings, session_cancel, &mut |_: &SampleBlock| {}).await;
            let _ = outcomes.send(ConnectionOutcome { peer, result });
        });
    }
    while sessions.join_next().await.is_some() {}
    Ok(())
}
