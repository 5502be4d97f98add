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
pub mod writer;

/// Runs `config` through the library's one entry point and prints what it
/// did: what the source says at start, then the run report. Ctrl-C or
/// SIGTERM stops a source that drains in order.
pub async fn execute(
    config: meterflow::pipeline::PipelineConfig,
    options: meterflow::pipeline::sources::RunOptions,
) -> anyhow::Result<meterflow::model::run_report::RunReport> {
    let source = meterflow::pipeline::runner::start(config, options).await?;
    for line in source.started() {
        println!("{line}");
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let signal = source
        .stopping()
        .map(|stopping| cancel_on_signal(&cancel, stopping));
    let report = source.run(cancel).await;
    if let Some(signal) = signal {
        signal.abort();
    }
    let report = report?;
    summary::print_report(&report);
    Ok(report)
}

/// `error` and its causes as one line, `a: b: c`. Many errors already end
/// with their cause's text (`cannot open x: No such file … (os error 2)`),
/// so a cause the line already ends with is not printed again.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

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
