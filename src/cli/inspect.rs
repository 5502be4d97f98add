//! `meterflow inspect`: what a capture file holds, without computing anything.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Capture files (meter byte streams as `simulate --capture` writes them,
    /// Matroska recordings as the vendor's `recordingServer.py` writes them).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in &args.files {
        match inspect(path) {
            Ok(()) => {}
            Err(error) => {
                failed += 1;
                eprintln!("{}: {error:#}", path.display());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} captures could not be read",
            args.files.len()
        );
    }
    Ok(())
}

fn inspect(path: &std::path::Path) -> anyhow::Result<()> {
    if crate::source::recording::is_recording(path) {
        return inspect_recording(path);
    }
    let summary = crate::source::capture::replay_file(path, |_| {})
        .with_context(|| format!("reading {}", path.display()))?;
    println!("{}", path.display());
    match &summary.info {
        Some(info) => println!(
            "  meter {} (firmware {}, ip {}, state {})",
            info.name,
            info.version,
            info.ip,
            info.state
                .map_or_else(|| "not given".to_string(), |s| s.to_string())
        ),
        None => println!("  no device info line"),
    }
    for (k, session) in summary.sessions.iter().enumerate() {
        let description = &session.description;
        println!(
            "  session {k}: {} Hz, measures {}, unit {}, chunk {} B, start {}",
            description.rate,
            description.measures,
            description.measures.unit_string(),
            session.answer.as_ref().map_or(0, |answer| answer.chunksize),
            format_start(description.start_unix_ns)
        );
        println!(
            "    {} frames, {} samples ({:.3} s), {} samples lost{}",
            session.data_frames,
            session.samples,
            session.samples as f64 / f64::from(description.rate.max(1)),
            session.lost_samples,
            match &session.stop {
                Some(stop) => format!(", stopped: {} samples sent", stop.sent_samples),
                None => ", no stop answer".to_string(),
            }
        );
    }
    let wire = &summary.wire;
    println!(
        "  {} info lines ({} log, {} warnings), {} bad messages, {} anomalies (resyncs {}, gaps {}, bad lengths {}, truncated {})",
        wire.info_lines,
        summary.log_lines,
        summary.meter_warnings,
        summary.bad_messages,
        wire.anomalies(),
        wire.resyncs,
        wire.gaps,
        wire.bad_lengths,
        wire.truncated
    );
    Ok(())
}

/// A recording's tags, as ffprobe reads them (nothing is decoded).
fn inspect_recording(path: &std::path::Path) -> anyhow::Result<()> {
    let recording = crate::source::recording::open_recording(
        path,
        &crate::source::capture::RawParams::default(),
    )
    .with_context(|| format!("reading {}", path.display()))?;
    let session = &recording.session;
    println!("{}", path.display());
    println!(
        "  recording of {} ({} audio), CHANNEL_TAGS {}",
        session.device,
        recording.codec,
        recording.channel_tags.as_deref().unwrap_or("(none)")
    );
    println!(
        "  {} Hz, measures {}, unit {}, start {}, {}",
        session.rate,
        session.measures,
        session.measures.unit_string(),
        format_start(session.start_unix_ns),
        match (recording.expected_samples, recording.duration_s()) {
            (Some(samples), Some(seconds)) => format!("{samples} samples ({seconds:.3} s)"),
            _ => "length unknown".to_string(),
        }
    );
    Ok(())
}

fn format_start(unix_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_ns)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string()
}
