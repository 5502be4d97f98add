//! `meterflow inspect`: what a capture file holds (sessions, frames, wire
//! anomalies) and, for waveform sessions, the power-quality events in it;
//! nothing is written.

use std::path::{Path, PathBuf};

use meterflow::pipeline::inspect::{
    engine_config, inspect, CaptureInspection, Inspection, SessionNominal,
};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Capture files (meter byte streams as `simulate --capture` writes them,
    /// Matroska recordings as the vendor's `recordingServer.py` writes them).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Pipeline file whose `[dsp]` and `[dsp.pq]` the event counts use
    /// (default: Udin and frequency inferred per session from its first
    /// second, as `batch` does; the IEC 61000-4-30 thresholds).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Nominal grid frequency, Hz (overrides the pipeline's).
    #[arg(long, value_name = "HZ")]
    pub nominal_hz: Option<f64>,
    /// Udin, the declared supply voltage, V (overrides the pipeline's).
    #[arg(long, value_name = "V")]
    pub udin: Option<f64>,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let engine = engine_config(args.pipeline.as_deref(), args.nominal_hz, args.udin)?;
    let mut failed = 0;
    for path in &args.files {
        match inspect(path, &engine) {
            Ok(Inspection::Capture(capture)) => print_capture(path, &capture),
            Ok(Inspection::Recording(recording)) => {
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
                        (Some(samples), Some(seconds)) => {
                            format!("{samples} samples ({seconds:.3} s)")
                        }
                        _ => "length unknown".to_string(),
                    }
                );
            }
            Err(error) => {
                failed += 1;
                eprintln!("{}: {}", path.display(), super::error_text(&error));
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

fn print_capture(path: &Path, capture: &CaptureInspection) {
    let summary = &capture.summary;
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
    for (k, (session, pq)) in summary.sessions.iter().zip(&capture.pq_events).enumerate() {
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
        let nominal = capture.nominal.get(k).and_then(Option::as_ref);
        if let Some(inferred) = nominal.and_then(|n| n.inferred.as_deref()) {
            println!("    nominal: {inferred}");
        }
        match pq {
            Some(Ok(counts)) => println!(
                "    PQ events: {} dips, {} swells, {} interruptions, {} RVCs ({})",
                counts.dips,
                counts.swells,
                counts.interruptions,
                counts.rapid_voltage_changes,
                nominal.map_or_else(String::new, settings),
            ),
            Some(Err(reason)) => println!("    PQ events: not measured ({reason})"),
            None => println!("    PQ events: no samples"),
        }
        if let Some(Some(wiring)) = capture.wiring.get(k) {
            println!("    wiring: {wiring}");
        }
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
}

/// The Udin and nominal frequency a session's PQ counts ran with.
fn settings(nominal: &SessionNominal) -> String {
    match nominal.udin_v {
        Some(udin) => format!("Udin {udin} V, {} Hz", nominal.frequency_hz),
        None => format!("no Udin, {} Hz", nominal.frequency_hz),
    }
}

fn format_start(unix_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_ns)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string()
}
