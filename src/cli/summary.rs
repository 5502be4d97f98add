//! The summary tables printed at the end of a run.

use meterflow::model::run_report::DeviceSummary;
use meterflow::model::run_report::RunReport;

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// One row per device: duration, windows, energy, mean P, max THD.
fn print_devices(devices: &[DeviceSummary]) {
    let width = devices
        .iter()
        .map(|d| d.device.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:<width$} {:<12} {:>9} {:>8} {:>8} {:>12} {:>12} {:>10} {:>9} {:>9} {:>7}",
        "device",
        "measures",
        "duration",
        "windows",
        "flagged",
        "import Wh",
        "export Wh",
        "mean P W",
        "THD-V %",
        "THD-I %",
        "lost"
    );
    for d in devices {
        println!(
            "{:<width$} {:<12} {:>8.1}s {:>8} {:>8} {:>12.3} {:>12.3} {:>10} {:>9} {:>9} {:>7}",
            d.device,
            d.measures,
            d.duration_s,
            d.windows,
            d.flagged_windows,
            d.energy_imported_wh,
            d.energy_exported_wh,
            opt(d.mean_p_w, 1),
            opt(d.max_thd_v_pct, 2),
            opt(d.max_thd_i_pct, 2),
            d.lost_samples
        );
        let pq = &d.pq_events;
        if pq.total() > 0 {
            println!(
                "  {}: PQ events: {} dips, {} swells, {} interruptions, {} RVCs",
                d.device, pq.dips, pq.swells, pq.interruptions, pq.rapid_voltage_changes
            );
        }
        if let Some(wiring) = &d.wiring {
            println!("  {}: wiring: {wiring}", d.device);
        }
        if let Some(error) = &d.output_error {
            eprintln!("  {}: output error: {error}", d.device);
        }
    }
}

/// What a run did, whatever its source: the parts its report holds.
pub fn print_report(report: &RunReport) {
    if !report.devices.is_empty() || report.adapters.is_empty() && report.consumed.is_none() {
        print_devices(&report.devices);
    }
    if !report.adapters.is_empty() {
        println!(
            "{:<10} {:>10} {:>10} {:>10}",
            "adapter", "accepted", "rejected", "readings"
        );
        for (adapter, counts) in &report.adapters {
            println!(
                "{adapter:<10} {:>10} {:>10} {:>10}",
                counts.accepted, counts.rejected, counts.readings
            );
        }
    }
    print_outputs(report);
    let seconds = report.elapsed_s.max(1e-9);
    if !report.files.is_empty() {
        println!(
            "{} files, {:.1} MB in {:.2} s: {:.1} M samples/s, {:.1} MB/s",
            report.files.len(),
            report.bytes as f64 / 1e6,
            report.elapsed_s,
            report.values as f64 / seconds / 1e6,
            report.bytes as f64 / seconds / 1e6
        );
        for file in &report.files {
            if let Err(reason) = &file.result {
                eprintln!("failed: {}: {reason}", file.path.display());
            }
        }
    }
    if let Some(connections) = &report.connections {
        println!(
            "{} connections accepted, {} meters at most at once, dropped peers: {}",
            connections.accepted,
            connections.peak_streaming,
            if connections.dropped.is_empty() {
                "none".to_string()
            } else {
                counts(connections.dropped.iter().map(|(reason, n)| (reason, n)))
            }
        );
    }
    match (&report.consumed, &report.checkpoint) {
        (Some(consumed), _) => println!(
            "{} messages, {} records; duplicates dropped: {} messages, {} records; refused messages: {}; ran {:.1} s",
            consumed.messages,
            consumed.records,
            consumed.duplicate_messages,
            consumed.duplicate_records,
            consumed.rejected,
            report.elapsed_s
        ),
        (None, Some(checkpoint)) => println!(
            "checkpoint {}; ran {:.1} s",
            checkpoint.display(),
            report.elapsed_s
        ),
        (None, None) if report.files.is_empty() => println!("done in {:.1} s", report.elapsed_s),
        (None, None) => {}
    }
    for failure in &report.failures {
        eprintln!("failed: {failure}");
    }
}

/// `name count` pairs, comma-separated.
fn counts<K: std::fmt::Display, V: std::fmt::Display>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> String {
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k} {v}")).collect();
    pairs.join(", ")
}

/// Where the results went, as each output words it.
fn print_outputs(report: &RunReport) {
    for line in report.outputs.iter().flat_map(|output| &output.lines) {
        println!("{line}");
    }
}
