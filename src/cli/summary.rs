//! The summary tables printed at the end of a run.

use meterflow::pipeline::config::PipelineConfig;
use meterflow::pipeline::device::DeviceSummary;
use meterflow::sink::output::OutputSummary;

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// One row per device: duration, windows, energy, mean P, max THD.
pub fn print_devices(devices: &[DeviceSummary]) {
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
        if let Some(error) = &d.output_error {
            eprintln!("  {}: output error: {error}", d.device);
        }
    }
}

/// Where the results went.
pub fn print_outputs(outputs: &OutputSummary, config: &PipelineConfig) {
    if let (Some(dataset), Some(parquet)) = (&outputs.dataset, &config.sink.parquet) {
        let rows: Vec<String> = dataset
            .rows
            .iter()
            .map(|(table, rows)| format!("{table} {rows}"))
            .collect();
        println!(
            "parquet: {} files under {} (rows: {})",
            dataset.files.len(),
            parquet.out.display(),
            rows.join(", ")
        );
    }
    if config.sink.packets.is_some() {
        println!(
            "packets: {} built, {} spooled",
            outputs.packets_built, outputs.spooled
        );
        for target in &outputs.targets {
            println!(
                "  packets to {}: {target}",
                target_place(&target.target, config)
            );
        }
    }
}

/// Where a delivery target sends, as its pipeline section says.
fn target_place(name: &str, config: &PipelineConfig) -> String {
    let Some(packets) = &config.sink.packets else {
        return name.to_string();
    };
    let targets = &packets.targets;
    match name {
        "ndjson" => targets.ndjson.as_ref().map_or_else(
            || name.to_string(),
            |n| format!("NDJSON files in {}", n.dir.display()),
        ),
        "http" => targets
            .http
            .as_ref()
            .map_or_else(|| name.to_string(), |h| h.url.clone()),
        "mqtt" => targets.mqtt.as_ref().map_or_else(
            || name.to_string(),
            |m| format!("mqtt://{}:{} {}", m.host, m.port, m.topic),
        ),
        "stdout" => "standard output".to_string(),
        other => other.to_string(),
    }
}
