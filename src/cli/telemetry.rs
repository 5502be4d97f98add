//! `meterflow run` of a telemetry pipeline: starts the adapters, stops on
//! Ctrl-C (or when files and stdin are read / `seconds` are over), then prints
//! what each adapter took and refused.

use tokio_util::sync::CancellationToken;

use meterflow::pipeline::config::PipelineConfig;
use meterflow::pipeline::telemetry::start_telemetry;
use meterflow::pipeline::telemetry::TelemetryConfig;

use super::summary::print_outputs;

pub async fn run(config: &PipelineConfig, telemetry: &TelemetryConfig) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let run = start_telemetry(config, telemetry, cancel.clone()).await?;
    println!(
        "meterflow: pipeline {:?}: telemetry ({} rtl_433 input(s){}{})",
        config.name,
        telemetry.rtl433.len(),
        run.mppt_address
            .map_or(String::new(), |a| format!(", MPPT endpoint http://{a}")),
        run.airlink_address
            .map_or(String::new(), |a| format!(", AirLink endpoint http://{a}")),
    );
    let signal = super::cancel_on_signal(
        &cancel,
        "stopping: closing the inputs, then flushing the outputs",
    );
    let report = run.finish().await;
    signal.abort();
    let report = report?;
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
    print_outputs(&report.outputs, config);
    println!("done in {:.1} s", report.elapsed_s);
    for failure in &report.failures {
        eprintln!("failed: {failure}");
    }
    if !report.failures.is_empty() {
        anyhow::bail!("{} telemetry input(s) failed", report.failures.len());
    }
    Ok(())
}
