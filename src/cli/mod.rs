//! The command line: one file per subcommand, each parsing its arguments,
//! calling the library and printing what it returns.

pub mod batch;
pub mod benchmark;
pub mod cluster;
pub mod config;
pub mod inspect;
pub mod report;
pub mod run;
pub mod simulate;
pub mod sink;
pub mod summary;
pub mod telemetry;
pub mod writer;

/// Whether stderr takes colour and a progress bar: a terminal, and no
/// `NO_COLOR` (https://no-color.org: set and not empty). Logs piped into a
/// file or a collector stay plain text.
pub fn stderr_is_styled() -> bool {
    use std::io::IsTerminal;
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_colour
}

/// Whether stderr is a terminal a progress bar can redraw in place.
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Cancels `cancel` on Ctrl-C or SIGTERM, telling the user `message` first.
pub fn cancel_on_signal(
    cancel: &tokio_util::sync::CancellationToken,
    message: &'static str,
) -> tokio::task::JoinHandle<()> {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("{message}");
        cancel.cancel();
    })
}

/// Resolves on Ctrl-C or SIGTERM, so every long-running command drains the same way.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
