//! The live view of a running sink: virtual meters of known signals dial
//! in, and what `/metrics` and the JSON API show of each meter's last
//! window matches the analytic truth of its signal; the waveform endpoint
//! returns the very samples the meter sent; the event stream delivers
//! fleet updates.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::live_sink::{self, dial_in, start_sink, wait_for_meters, RATE};
use meterflow::meter::signal::{Harmonic, SignalConfig, SignalGenerator};
use meterflow::pipeline::runner;
use meterflow::pipeline::PipelineConfig;
use meterflow::wire::Measures;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

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
    sink_config_with(out, "")
}

fn sink_config_with(out: &Path, more: &str) -> PipelineConfig {
    live_sink::sink_config("live-view-test", out, more)
}

async fn get(http: std::net::SocketAddr, path: &str) -> String {
    reqwest::get(format!("http://{http}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Samples of `/metrics` by their name and labels as written
/// (`name{labels}`); each must appear once, and each name's type once.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut types = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let name = typed.split(' ').next().unwrap_or_default();
            assert!(types.insert(name.to_string()), "{name} typed twice");
        }
        if line.starts_with('#') {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap();
        let value = value.parse().unwrap_or(f64::NAN);
        assert!(
            samples.insert(key.to_string(), value).is_none(),
            "{key} twice"
        );
    }
    samples
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
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
    let load = dial_in(sink.addr, "load", 1, signal(10.0, 20.0), &meters).await;
    let export = dial_in(sink.addr, "pv", 1, signal(5.0, 150.0), &meters).await;

    // Five windows in, each meter's last window is a steady one.
    wait_for_meters(sink.http, 2, |m| {
        m["quality"]["windows"].as_u64() >= Some(5)
            && m["last_window_flags"] == serde_json::json!([])
    })
    .await;
    let metrics = samples(&get(sink.http, "/metrics").await);
    check_meter(&metrics, "load001", 10.0, 20.0);
    check_meter(&metrics, "pv001", 5.0, 150.0);
    assert_eq!(value(&metrics, "meterflow_live_meters"), 2.0);

    // The meters stop; their registers freeze and the view says they are gone.
    meters.cancel();
    load.wait().await;
    export.wait().await;
    wait_for_meters(sink.http, 2, |m| {
        m["connected"] == false && m["stream_ended"] == true
    })
    .await;
    let frozen = samples(&get(sink.http, "/metrics").await);
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

async fn get_json(http: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{http}{path}")).await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn number(value: &Value, what: &str) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"))
}

/// Checks a meter's line of the API against its signal's truth (the
/// tolerances of [`check_meter`]).
fn check_api_meter(m: &Value, current_a: f64, angle_deg: f64) {
    let t = truth(current_a, angle_deg);
    let name = m["name"].as_str().unwrap_or_default();
    assert_eq!(m["layout"], "v,i,v,i,v,i", "{name}");
    assert_eq!(m["connected"], true, "{name}");
    assert_eq!(m["last_window_flags"], serde_json::json!([]), "{name}");
    for (k, phase) in m["phases"].as_array().unwrap().iter().enumerate() {
        let v = |key: &str| number(&phase[key], &format!("{name} L{} {key}", k + 1));
        let what = |key: &str| format!("{name} L{} {key}", k + 1);
        close(v("v_rms_v"), t.v_rms, 1e-3, &what("V"));
        close(v("i_rms_a"), t.i_rms, 1e-3, &what("I"));
        close(v("p_w"), t.p_w, 1e-3, &what("P"));
        close(v("q_var"), t.q1_var, 2e-3, &what("Q1"));
        close(v("s_va"), t.s_va, 1e-3, &what("S"));
        assert!(
            (v("angle_deg") - angle_deg).abs() < 0.1,
            "{}",
            what("angle")
        );
        assert!(
            (v("thd_v_pct") - 100.0 * THD_V).abs() < 0.05,
            "{}",
            what("THD-V")
        );
        assert!(
            (v("thd_i_pct") - 100.0 * THD_I).abs() < 0.05,
            "{}",
            what("THD-I")
        );
    }
    close(
        number(&m["p_total_w"], "P"),
        3.0 * t.p_w,
        1e-3,
        &format!("{name} P"),
    );
    close(
        number(&m["pf_total"], "PF"),
        t.p_w / t.s_va,
        1e-3,
        &format!("{name} PF"),
    );
    assert!(
        (number(&m["frequency_hz"], "f") - 50.0).abs() < 0.01,
        "{name} f"
    );
    assert!(number(&m["quality"]["windows"], "windows") >= 5.0, "{name}");
}

/// A meter whose L2 clamp faces the wrong way, beside one wired right: the
/// API and `/metrics` carry the wiring checks' finding for the one, and no
/// fault for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversed_clamp_shows_in_the_api_and_as_a_wiring_fault_gauge() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(sink_config(dir.path())).await;
    let meters = CancellationToken::new();
    let mut reversed = signal(10.0, 20.0);
    reversed.wiring.reversed_clamps = vec![2];
    let miswired = dial_in(sink.addr, "miswired", 1, reversed, &meters).await;
    let clean = dial_in(sink.addr, "clean", 1, signal(10.0, 20.0), &meters).await;

    // The checks conclude after about 3 s of windows; the clean meter has
    // streamed as long by then.
    wait_for_meters(sink.http, 2, |m| {
        m["name"] == "clean001" || m["wiring"].as_str().is_some()
    })
    .await;
    let (_, fleet_now) = get_json(sink.http, "/api/meters").await;
    let by_name = |name: &str| {
        fleet_now["meters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {fleet_now}"))
    };
    let wiring = by_name("miswired001")["wiring"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        wiring.starts_with("reversed_clamp L2 (confidence"),
        "{wiring}"
    );
    // The finding as the API reads it, for the page.
    assert_eq!(
        by_name("miswired001")["wiring_finding"],
        "reversed_clamp L2"
    );
    assert_eq!(by_name("miswired001")["wiring_fault"], true);
    assert_eq!(by_name("clean001")["wiring_fault"], false);
    let metrics = samples(&get(sink.http, "/metrics").await);
    assert_eq!(
        value(
            &metrics,
            "meterflow_meter_wiring_fault{meter=\"miswired001\",finding=\"reversed_clamp L2\"}"
        ),
        1.0
    );
    let clean_faults: Vec<(&String, &f64)> = metrics
        .iter()
        .filter(|(k, v)| k.contains("wiring_fault{meter=\"clean001\"") && **v != 0.0)
        .collect();
    assert!(clean_faults.is_empty(), "{clean_faults:?}");
    meters.cancel();
    miswired.wait().await;
    clean.wait().await;
    sink.cancel.cancel();
    sink.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_the_fleet_a_meter_its_last_cycles_and_streams_updates() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(sink_config(dir.path())).await;
    let meters = CancellationToken::new();
    let load_signal = signal(10.0, 20.0);
    let load = dial_in(sink.addr, "load", 1, load_signal.clone(), &meters).await;
    let export = dial_in(sink.addr, "pv", 1, signal(5.0, 150.0), &meters).await;
    wait_for_meters(sink.http, 2, |m| {
        m["quality"]["windows"].as_u64() >= Some(5)
            && m["last_window_flags"] == serde_json::json!([])
    })
    .await;

    // The fleet: both meters, each as its signal says.
    let (status, fleet_now) = get_json(sink.http, "/api/meters").await;
    assert_eq!(status, 200, "{fleet_now}");
    let listed = fleet_now["meters"].as_array().unwrap();
    let names: Vec<&str> = listed.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["load001", "pv001"]);
    check_api_meter(&listed[0], 10.0, 20.0);
    check_api_meter(&listed[1], 5.0, 150.0);
    assert!(number(&listed[0]["energy"]["import_wh"], "import") > 0.0);
    assert_eq!(number(&listed[0]["energy"]["export_wh"], "export"), 0.0);
    assert!(number(&listed[1]["energy"]["export_wh"], "export") > 0.0);
    assert_eq!(number(&listed[1]["energy"]["import_wh"], "import"), 0.0);
    assert_eq!(fleet_now["node"], Value::Null, "not a cluster node");

    // One meter in full: the last window, the trend at one point a second.
    let (status, detail) = get_json(sink.http, "/api/meters/load001").await;
    assert_eq!(status, 200, "{detail}");
    check_api_meter(&detail, 10.0, 20.0);
    let window = &detail["last_window"];
    assert_eq!(
        number(&window["end_unix_ns"], "end"),
        number(&detail["last_window_end_unix_ns"], "end")
    );
    let trend = detail["trend"].as_array().unwrap();
    assert!(!trend.is_empty());
    let seconds: Vec<i64> = trend
        .iter()
        .filter_map(|p| p["t_unix_s"].as_i64())
        .collect();
    assert!(
        seconds.windows(2).all(|w| w[0] < w[1]),
        "one point a second: {seconds:?}"
    );
    let last = &trend[trend.len() - 1];
    close(
        number(&last["p_total_w"], "trend P"),
        3.0 * truth(10.0, 20.0).p_w,
        1e-3,
        "trend P",
    );

    // The last cycles, sample-exact: the very samples the meter generated
    // for those indices, in SI units; and their RMS over the whole cycles
    // held is the signal's.
    let (status, wave) = get_json(sink.http, "/api/meters/load001/waveform").await;
    assert_eq!(status, 200, "{wave}");
    assert_eq!(number(&wave["rate_hz"], "rate"), f64::from(RATE));
    let first = wave["first_index"].as_u64().unwrap();
    let channels = wave["channels"].as_array().unwrap();
    let names: Vec<&str> = channels.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["v_l1", "i_l1", "v_l2", "i_l2", "v_l3", "i_l3"]);
    let held: Vec<Vec<f32>> = channels
        .iter()
        .map(|c| {
            c["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let n = held[0].len();
    assert_eq!(n, (f64::from(RATE) * 0.1) as usize, "0.1 s of samples");
    let mut generator = SignalGenerator::new(load_signal, Measures::ThreePhase, RATE).unwrap();
    generator.seek(first);
    let mut sent = vec![0f32; n * 6];
    generator.fill(&mut sent);
    for (c, (channel, layout)) in held.iter().zip(Measures::ThreePhase.channels()).enumerate() {
        let expected: Vec<f32> = (0..n)
            .map(|k| sent[k * 6 + c] / layout.si_divisor())
            .collect();
        assert_eq!(channel, &expected, "{} samples {first}..", layout.name);
        let rms = (channel.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n as f64).sqrt();
        let t = truth(10.0, 20.0);
        let expected_rms = if c % 2 == 0 { t.v_rms } else { t.i_rms };
        close(rms, expected_rms, 1e-3, &format!("{} RMS", layout.name));
    }
    let start_ns = wave["start_unix_ns"].as_i64().unwrap();
    let first_ns = wave["first_unix_ns"].as_i64().unwrap();
    assert_eq!(
        first_ns - start_ns,
        (i128::from(first) * 1_000_000_000 / i128::from(RATE)) as i64
    );

    // Unknown meters are a 404 naming the meter.
    let (status, body) = get_json(sink.http, "/api/meters/nobody").await;
    assert_eq!(status, 404);
    assert!(
        body.as_str().unwrap_or_default().contains("nobody"),
        "{body}"
    );
    let (status, _) = get_json(sink.http, "/api/meters/nobody/waveform").await;
    assert_eq!(status, 404);

    // The stream: `fleet` events, each newer than the last, whose windows grow.
    let mut response = reqwest::get(format!("http://{}/api/stream", sink.http))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut text = String::new();
    let mut events: Vec<Value> = Vec::new();
    while events.len() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: fleet") {
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                events.push(serde_json::from_str(&data).unwrap());
            }
        }
    }
    let times: Vec<i64> = events
        .iter()
        .map(|e| e["time_unix_ns"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let load_windows = |e: &Value| number(&e["meters"][0]["quality"]["windows"], "windows");
    assert!(
        load_windows(&events[2]) > load_windows(&events[0]),
        "updates"
    );
    drop(response);

    meters.cancel();
    load.wait().await;
    export.wait().await;
    sink.cancel.cancel();
    // A stream still open does not hold the sink's shutdown.
    let mut open = reqwest::get(format!("http://{}/api/stream", sink.http))
        .await
        .unwrap();
    let _ = open.chunk().await;
    tokio::time::timeout(Duration::from_secs(60), sink.task)
        .await
        .expect("the sink stops within 60 s with a stream open")
        .unwrap()
        .unwrap();
}

/// `GET path` with an optional bearer token: the status.
async fn status_of(http: std::net::SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("http://{http}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_guards_the_page_the_api_and_metrics_but_not_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-Token_42\n").unwrap();
    let mut config = sink_config(dir.path());
    config.service.http_token_file = Some(token_file.clone());
    let sink = start_sink(config).await;
    let token = "s3cret-Token_42";
    for path in [
        "/",
        "/metrics",
        "/api/meters",
        "/api/stream",
        "/api/meters/x",
    ] {
        assert_eq!(
            status_of(sink.http, path, None).await,
            401,
            "{path} without"
        );
        assert_eq!(
            status_of(sink.http, path, Some("s3cret-Token_43")).await,
            401,
            "{path} wrong"
        );
    }
    for path in ["/", "/metrics", "/api/meters"] {
        assert_eq!(
            status_of(sink.http, path, Some(token)).await,
            200,
            "{path} with"
        );
    }
    // The page as a browser opens it, with the token in the query.
    assert_eq!(
        status_of(sink.http, &format!("/?token={token}"), None).await,
        200
    );
    assert_eq!(
        status_of(sink.http, &format!("/api/meters?token={token}"), None).await,
        401
    );
    assert_eq!(status_of(sink.http, "/healthz", None).await, 200);
    sink.cancel.cancel();
    sink.task.await.unwrap().unwrap();

    // A token file that says nothing stops the start, naming key and file.
    std::fs::write(&token_file, " \n").unwrap();
    let mut config = sink_config(dir.path());
    config.service.http_token_file = Some(token_file.clone());
    let server = meterflow::pipeline::sources::bind_meter_stream(&config)
        .await
        .unwrap();
    let error = match runner::start_source(config, Box::new(server)).await {
        Ok(_) => panic!("an empty token file is refused"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("service.http_token_file")
            && error.contains(&token_file.display().to_string()),
        "{error}"
    );
}

/// A `p,q` and a `v,i_RMS` meter (latch layouts: the meter averaged): the
/// API and `/metrics` show what each latch window carries, as the signal's
/// truth says, and leave out what it does not (no S, PF, angle, THD,
/// frequency; no V or I of `p,q`, no P or Q of `v,i_RMS`). Latch values
/// are constant without noise, so only f32 rounding separates them from
/// the truth: 1e-6 relative.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latch_meters_show_what_their_windows_carry() {
    let dir = tempfile::tempdir().unwrap();
    let latch_meters = r#"
[source.meters."pq001"]
measures = "p,q"
rate = 50
[source.meters."rms001"]
measures = "v,i_RMS"
rate = 50
"#;
    let sink = start_sink(sink_config_with(dir.path(), latch_meters)).await;
    let meters = CancellationToken::new();
    let power = dial_in(sink.addr, "pq", 1, signal(10.0, 20.0), &meters).await;
    let rms = dial_in(sink.addr, "rms", 1, signal(10.0, 20.0), &meters).await;
    wait_for_meters(sink.http, 2, |m| {
        m["quality"]["windows"].as_u64() >= Some(5)
            && m["last_window_flags"] == serde_json::json!([])
    })
    .await;
    let t = truth(10.0, 20.0);
    let exact = 1e-6;
    let (_, fleet_now) = get_json(sink.http, "/api/meters").await;
    let listed = fleet_now["meters"].as_array().unwrap();
    let (pq, rms_meter) = (&listed[0], &listed[1]);
    assert_eq!(
        (&pq["name"], &pq["layout"]),
        (&"pq001".into(), &"p,q".into())
    );
    assert_eq!(
        (&rms_meter["name"], &rms_meter["layout"]),
        (&"rms001".into(), &"v,i_RMS".into())
    );
    for m in [pq, rms_meter] {
        let name = m["name"].as_str().unwrap_or_default();
        assert_eq!(m["latch"], true, "{name}");
        for absent in ["s_total_va", "pf_total", "frequency_hz"] {
            assert_eq!(m[absent], Value::Null, "{name} {absent}");
        }
        let phases = m["phases"].as_array().unwrap();
        assert_eq!(phases.len(), 3, "{name}");
        for phase in phases {
            for absent in ["s_va", "pf", "angle_deg", "thd_v_pct", "thd_i_pct"] {
                assert_eq!(phase[absent], Value::Null, "{name} {absent}");
            }
        }
    }
    for (k, phase) in pq["phases"].as_array().unwrap().iter().enumerate() {
        let what = |key: &str| format!("pq001 L{} {key}", k + 1);
        close(number(&phase["p_w"], &what("P")), t.p_w, exact, &what("P"));
        close(
            number(&phase["q_var"], &what("Q")),
            t.q1_var,
            exact,
            &what("Q"),
        );
        assert_eq!(phase["v_rms_v"], Value::Null, "{}", what("V"));
        assert_eq!(phase["i_rms_a"], Value::Null, "{}", what("I"));
    }
    close(number(&pq["p_total_w"], "P"), 3.0 * t.p_w, exact, "pq001 P");
    close(
        number(&pq["q_total_var"], "Q"),
        3.0 * t.q1_var,
        exact,
        "pq001 Q",
    );
    assert!(number(&pq["energy"]["import_wh"], "import") > 0.0);
    for (k, phase) in rms_meter["phases"].as_array().unwrap().iter().enumerate() {
        let what = |key: &str| format!("rms001 L{} {key}", k + 1);
        close(
            number(&phase["v_rms_v"], &what("V")),
            t.v_rms,
            exact,
            &what("V"),
        );
        close(
            number(&phase["i_rms_a"], &what("I")),
            t.i_rms,
            exact,
            &what("I"),
        );
        assert_eq!(phase["p_w"], Value::Null, "{}", what("P"));
        assert_eq!(phase["q_var"], Value::Null, "{}", what("Q"));
    }
    assert_eq!(rms_meter["p_total_w"], Value::Null);
    assert_eq!(rms_meter["energy"], Value::Null, "v,i_RMS counts no energy");

    // The meter in full: its latch window, and the trend of what it has.
    let (_, detail) = get_json(sink.http, "/api/meters/pq001").await;
    assert_eq!(detail["last_window"], Value::Null);
    let latch_window = &detail["last_latch_window"];
    assert_eq!(
        latch_window["end_unix_ns"], detail["last_window_end_unix_ns"],
        "{detail}"
    );
    let trend = detail["trend"].as_array().unwrap();
    let last = &trend[trend.len() - 1];
    close(
        number(&last["p_total_w"], "trend P"),
        3.0 * t.p_w,
        exact,
        "trend P",
    );
    let (_, detail) = get_json(sink.http, "/api/meters/rms001").await;
    let trend = detail["trend"].as_array().unwrap();
    let last = &trend[trend.len() - 1];
    assert_eq!(last["p_total_w"], Value::Null);
    close(
        number(&last["v_rms_v"][0], "trend V"),
        t.v_rms,
        exact,
        "trend V",
    );

    // `/metrics`: each meter's gauges of what it carries, none of the rest.
    let metrics = samples(&get(sink.http, "/metrics").await);
    let phase_key = |meter: &str, name: &str| {
        format!("meterflow_meter_phase_{name}{{meter=\"{meter}\",phase=\"L2\"}}")
    };
    close(
        value(&metrics, &phase_key("pq001", "active_power_watts")),
        t.p_w,
        exact,
        "pq001 P gauge",
    );
    close(
        value(&metrics, &phase_key("pq001", "reactive_power_vars")),
        t.q1_var,
        exact,
        "pq001 Q gauge",
    );
    close(
        value(&metrics, &phase_key("rms001", "voltage_rms_volts")),
        t.v_rms,
        exact,
        "rms001 V gauge",
    );
    close(
        value(&metrics, &phase_key("rms001", "current_rms_amperes")),
        t.i_rms,
        exact,
        "rms001 I gauge",
    );
    for (meter, absent) in [
        ("pq001", phase_key("pq001", "voltage_rms_volts")),
        ("pq001", phase_key("pq001", "apparent_power_voltamperes")),
        ("rms001", phase_key("rms001", "active_power_watts")),
        ("rms001", phase_key("rms001", "voltage_thd_ratio")),
        (
            "pq001",
            "meterflow_meter_frequency_hertz{meter=\"pq001\"}".to_string(),
        ),
        (
            "rms001",
            "meterflow_meter_active_power_watts{meter=\"rms001\"}".to_string(),
        ),
    ] {
        assert!(!metrics.contains_key(&absent), "{meter}: {absent} shown");
    }
    close(
        value(
            &metrics,
            "meterflow_meter_active_power_watts{meter=\"pq001\"}",
        ),
        3.0 * t.p_w,
        exact,
        "pq001 total P gauge",
    );
    meters.cancel();
    power.wait().await;
    rms.wait().await;
    sink.cancel.cancel();
    sink.task.await.unwrap().unwrap();
}
