//! The live path: virtual meters dial into the loopback stream server and
//! their streams go through the engine into Parquet and packets, as the
//! README's main job does.

use meterflow::pipeline::runner;
use meterflow::pipeline::sources::RunOptions;
use meterflow::pipeline::PipelineConfig;
use tokio_util::sync::CancellationToken;

fn config(out: &std::path::Path) -> PipelineConfig {
    let text = format!(
        r#"
name = "live-test"
[source]
kind = "virtual_meters"
seconds = 1.2
realtime = false
[[source.meter]]
name = "load"
signal = {{ current_rms_a = 10.0, current_angle_deg = 20.0, seed = 1 }}
[[source.meter]]
name = "export"
signal = {{ current_rms_a = 5.0, current_angle_deg = 180.0, seed = 2 }}
[aggregation]
packet_interval_s = 0.5
[sink.parquet]
out = "{out}/parquet"
fsync = false
[sink.packets.targets.ndjson]
dir = "{out}/packets"
[sink.packets.targets.spool]
dir = "{out}/spool"
"#,
        out = out.display()
    );
    PipelineConfig::parse(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_meters_through_the_engine_into_parquet_and_packets() {
    let out = tempfile::tempdir().unwrap();
    let config = config(out.path());
    let report = runner::start(config, RunOptions::default())
        .await
        .unwrap()
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.devices.len(), 2);
    let export = &report.devices[0];
    let load = &report.devices[1];
    assert_eq!(
        (export.device.as_str(), load.device.as_str()),
        ("export", "load")
    );
    // At least the 1.2 s asked for, in whole windows of 200 ms.
    assert!(load.duration_s >= 1.0, "{}", load.duration_s);
    // P = 3 · 230 V · 10 A · cos 20°; the exporting meter's P is negative.
    let p_load = 3.0 * 230.0 * 10.0 * 20f64.to_radians().cos();
    let mean_p = load.mean_p_w.unwrap();
    assert!(
        (mean_p - p_load).abs() < 0.005 * p_load,
        "{mean_p} vs {p_load}"
    );
    assert!(export.mean_p_w.unwrap() < 0.0);
    assert!(export.energy_exported_wh > 0.0 && export.energy_imported_wh == 0.0);
    assert!(load.energy_imported_wh > 0.0 && load.energy_exported_wh == 0.0);

    let windows = report.output_total("parquet", "rows.windows");
    assert!(windows >= 10, "{:?}", report.outputs);
    assert!(out.path().join("parquet/windows/device=load").is_dir());
    assert!(report.output_total("packets", "built") >= 2);
    assert_eq!(report.output_total("packets", "spooled"), 0);
    let ndjson: Vec<_> = std::fs::read_dir(out.path().join("packets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    assert!(!ndjson.is_empty());
}
