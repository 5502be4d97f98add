//! The live view of a running sink: virtual meters of known signals dial
//! in, and what `/metrics` shows of each meter's last window matches the
//! analytic truth of its signal.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meterflow::meter::firmware::MeterSettings;
use meterflow::meter::fleet::{start_fleet, FleetConfig, FleetMode, RunningFleet};
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::pipeline::run_report::RunReport;
use meterflow::pipeline::runner;
use meterflow::pipeline::server::StreamSink;
use meterflow::pipeline::PipelineConfig;
use tokio_util::sync::CancellationToken;

const RATE: u32 = 4000;
const V1: f64 = 230.0;
/// THD of the voltage (a 5th at 4 %) and of the current (a 3rd at 10 %).
const THD_V: f64 = 0.04;
const THD_I: f64 = 0.10;

/// A meter's signal: balanced, `current_a` at `angle_deg` behind the
/// voltage, with the harmonics above.
fn signal(current_a: f64, angle_deg: f64) -> SignalConfig {
    SignalConfig {
        current_rms_a: current_a,
        current_angle_deg: angle_deg,
        voltage_harmonics: vec![Harmonic {
            order: 5,
            magnitude: THD_V,
            phase_deg: 0.0,
        }],
        current_harmonics: vec![Harmonic {
            order: 3,
            magnitude: THD_I,
            phase_deg: 0.0,
        }],
        ..SignalConfig::default()
    }
}

/// What every phase of that signal measures, worked by hand: the harmonics
/// add to the RMS values; P and Q1 come from the fundamentals only (the
/// voltage has no 3rd, the current no 5th).
struct PhaseTruth {
    v_rms: f64,
    i_rms: f64,
    p_w: f64,
    q1_var: f64,
    s_va: f64,
}

fn truth(current_a: f64, angle_deg: f64) -> PhaseTruth {
    let v_rms = V1 * (1.0 + THD_V * THD_V).sqrt();
    let i_rms = current_a * (1.0 + THD_I * THD_I).sqrt();
    let angle = angle_deg.to_radians();
    PhaseTruth {
        v_rms,
        i_rms,
        p_w: V1 * current_a * angle.cos(),
        q1_var: V1 * current_a * angle.sin(),
        s_va: v_rms * i_rms,
    }
}

fn sink_config(out: &Path) -> PipelineConfig {
    let text = format!(
        r#"
name = "live-view-test"
[source]
kind = "smartmeter_server"
listen = "127.0.0.1:0"
rate = {RATE}
[sink.parquet]
out = "{out}/parquet"
fsync = false
[service]
state_dir = "{out}/state"
metrics_listen = "127.0.0.1:0"
"#,
        out = out.display(),
    );
    PipelineConfig::parse(&text).unwrap()
}

struct Sink {
    addr: std::net::SocketAddr,
    http: std::net::SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<RunReport>>,
}

async fn start_sink(config: PipelineConfig) -> Sink {
    let sink = StreamSink::bind(&config).await.unwrap();
    let addr = sink.local_addr().unwrap();
    let run = runner::start_source(config, Box::new(sink)).await.unwrap();
    let http = run.metrics_addr().unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run.run(cancel.clone()));
    Sink {
        addr,
        http,
        cancel,
        task,
    }
}

async fn fleet(
    server: std::net::SocketAddr,
    prefix: &str,
    signal: SignalConfig,
    cancel: &CancellationToken,
) -> RunningFleet {
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: server.to_string(),
            reconnect: Duration::from_millis(200),
        },
        1,
    );
    fleet.name_prefix = prefix.to_string();
    fleet.template = MeterSettings {
        signal,
        raw_rate: RATE,
        ..MeterSettings::new(prefix)
    };
    start_fleet(fleet, cancel.clone()).await.unwrap()
}

async fn get(http: std::net::SocketAddr, path: &str) -> String {
    reqwest::get(format!("http://{http}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Samples of `/metrics` by their name and labels as written (`name{labels}`).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
}

/// Polls `/metrics` until `ready` holds (the test's own timeout bounds it).
async fn metrics_when(
    http: std::net::SocketAddr,
    ready: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    loop {
        let now = samples(&get(http, "/metrics").await);
        if ready(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn close(actual: f64, expected: f64, relative: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= relative * expected.abs(),
        "{what}: {actual} vs {expected} (±{:.3} %)",
        relative * 100.0
    );
}

/// Checks every gauge of `meter`'s last window against its signal's truth.
/// Tolerances are the windows' own: 0.1 % for RMS and power of a clean
/// synthetic signal, 0.05 percentage points of THD, 0.01 Hz.
fn check_meter(metrics: &BTreeMap<String, f64>, meter: &str, current_a: f64, angle_deg: f64) {
    let t = truth(current_a, angle_deg);
    for phase in ["L1", "L2", "L3"] {
        let key = |name: &str| {
            format!("meterflow_meter_phase_{name}{{meter=\"{meter}\",phase=\"{phase}\"}}")
        };
        let v = |name: &str| value(metrics, &key(name));
        let what = |name: &str| format!("{meter} {phase} {name}");
        close(v("voltage_rms_volts"), t.v_rms, 1e-3, &what("V"));
        close(v("current_rms_amperes"), t.i_rms, 1e-3, &what("I"));
        close(v("active_power_watts"), t.p_w, 1e-3, &what("P"));
        close(v("reactive_power_vars"), t.q1_var, 2e-3, &what("Q1"));
        close(v("apparent_power_voltamperes"), t.s_va, 1e-3, &what("S"));
        close(v("power_factor_ratio"), t.p_w / t.s_va, 1e-3, &what("PF"));
        assert!(
            (v("voltage_thd_ratio") - THD_V).abs() < 5e-4,
            "{}",
            what("THD-V")
        );
        assert!(
            (v("current_thd_ratio") - THD_I).abs() < 5e-4,
            "{}",
            what("THD-I")
        );
    }
    let key = |name: &str| format!("meterflow_meter_{name}{{meter=\"{meter}\"}}");
    let v = |name: &str| value(metrics, &key(name));
    close(
        v("active_power_watts"),
        3.0 * t.p_w,
        1e-3,
        &format!("{meter} P"),
    );
    close(
        v("reactive_power_vars"),
        3.0 * t.q1_var,
        2e-3,
        &format!("{meter} Q1"),
    );
    close(
        v("apparent_power_voltamperes"),
        3.0 * t.s_va,
        1e-3,
        &format!("{meter} S"),
    );
    close(
        v("power_factor_ratio"),
        t.p_w / t.s_va,
        1e-3,
        &format!("{meter} PF"),
    );
    assert!((v("frequency_hertz") - 50.0).abs() < 0.01, "{meter} f");
    assert_eq!(v("connected"), 1.0, "{meter} connected");
    // Meter time runs on the wall clock: the last window ended before now
    // (allowing for the two clocks being read apart).
    let age = v("last_window_age_seconds");
    assert!(age > -0.5 && age < 60.0, "{meter} age {age}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_every_meters_last_window_as_its_signal_says() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(sink_config(dir.path())).await;
    let meters = CancellationToken::new();
    let load = fleet(sink.addr, "load", signal(10.0, 20.0), &meters).await;
    let export = fleet(sink.addr, "pv", signal(5.0, 150.0), &meters).await;

    // Five windows in, each meter's last window is a steady one.
    let windows = |m: &BTreeMap<String, f64>, meter: &str| {
        m.get(&format!(
            "meterflow_meter_windows_total{{meter=\"{meter}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };
    let metrics = tokio::time::timeout(
        Duration::from_secs(60),
        metrics_when(sink.http, |m| {
            windows(m, "load001") >= 5.0 && windows(m, "pv001") >= 5.0
        }),
    )
    .await
    .expect("both meters' windows within 60 s");
    check_meter(&metrics, "load001", 10.0, 20.0);
    check_meter(&metrics, "pv001", 5.0, 150.0);
    assert_eq!(value(&metrics, "meterflow_live_meters"), 2.0);

    // The meters stop; their registers freeze and the view says they are gone.
    meters.cancel();
    load.wait().await;
    export.wait().await;
    let gone = |m: &BTreeMap<String, f64>, meter: &str| {
        m.get(&format!("meterflow_meter_connected{{meter=\"{meter}\"}}")) == Some(&0.0)
    };
    let frozen = tokio::time::timeout(
        Duration::from_secs(60),
        metrics_when(sink.http, |m| gone(m, "load001") && gone(m, "pv001")),
    )
    .await
    .expect("both meters gone within 60 s");
    sink.cancel.cancel();
    let report = sink.task.await.unwrap().unwrap();

    // Registers in whole joules, as the engine counted them; and what the
    // engine counted is P × the seconds streamed (the last window may be
    // partial, hence 1 %).
    for (meter, current_a, angle_deg) in [("load001", 10.0, 20.0), ("pv001", 5.0, 150.0)] {
        let device = report
            .devices
            .iter()
            .find(|d| d.device == meter)
            .unwrap_or_else(|| panic!("{meter} in the report"));
        let key =
            |way: &str| format!("meterflow_meter_energy_{way}_joules_total{{meter=\"{meter}\"}}");
        let imported = value(&frozen, &key("imported"));
        let exported = value(&frozen, &key("exported"));
        assert_eq!(
            imported,
            (device.energy_imported_wh * 3600.0).floor(),
            "{meter}"
        );
        assert_eq!(
            exported,
            (device.energy_exported_wh * 3600.0).floor(),
            "{meter}"
        );
        let p_total = 3.0 * truth(current_a, angle_deg).p_w;
        let expected_j = p_total * device.duration_s;
        let net_j = imported - exported;
        close(net_j, expected_j, 0.01, &format!("{meter} energy"));
        for phase in ["L1", "L2", "L3"] {
            let key = format!(
                "meterflow_meter_phase_energy_imported_joules_total{{meter=\"{meter}\",phase=\"{phase}\"}}"
            );
            assert!(frozen.contains_key(&key), "{key}");
        }
    }
}
