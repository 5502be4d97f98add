//! The live page in a real headless Chromium: a running sink with five
//! virtual meters, the page at `/` loaded over HTTP, its script run, and
//! the DOM read back: the fleet table has a row per meter with its live
//! values, and the meter view draws the phasor diagram at the angles the
//! signal has. A screenshot of each view is written for a person to see.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::chromium;
use common::live_sink::{sink_config, start_sink, RATE};
use meterflow::meter::firmware::MeterSettings;
use meterflow::meter::fleet::{start_fleet, FleetConfig, FleetMode};
use meterflow::meter::signal::SignalConfig;
use tokio_util::sync::CancellationToken;

const METERS: usize = 5;
const CURRENT_A: f64 = 10.0;
/// The current lags the voltage by this much on every phase.
const ANGLE_DEG: f64 = 30.0;
/// How long Chromium lets the page's script run (virtual time).
const SCRIPT_BUDGET: &str = "--virtual-time-budget=5000";

/// Where the screenshots go: kept after the test for a person to look at.
fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("live_page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of attribute `name` in an HTML start tag `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// The start tags in `dom` that begin with `prefix` (e.g. `<tr `).
fn tags<'a>(dom: &'a str, prefix: &str) -> Vec<&'a str> {
    dom.match_indices(prefix)
        .filter_map(|(at, _)| dom[at..].find('>').map(|end| &dom[at..=at + end]))
        .collect()
}

/// The text of the `<td class="{class}">` cell of the row of `meter`.
fn cell<'a>(dom: &'a str, meter: &str, class: &str) -> &'a str {
    let row = dom
        .find(&format!("data-meter=\"{meter}\""))
        .unwrap_or_else(|| panic!("no row of {meter}"));
    let row = &dom[row..dom[row..].find("</tr>").map_or(dom.len(), |end| row + end)];
    let open = format!("<td class=\"{class}\">");
    let start = row
        .find(&open)
        .unwrap_or_else(|| panic!("{meter}: no {class} cell"))
        + open.len();
    let len = row[start..].find("</td>").unwrap_or(0);
    &row[start..start + len]
}

/// A screenshot of `url` at `width` × `height` (a phone: 412 × 915).
fn screenshot(url: &str, name: &str, (width, height): (u32, u32)) -> PathBuf {
    let shot = shots_dir().join(name);
    let _ = std::fs::remove_file(&shot);
    chromium::run_url(
        url,
        &[
            &format!("--screenshot={}", shot.display()),
            &format!("--window-size={width},{height}"),
            SCRIPT_BUDGET,
        ],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let info = decoder.read_info().unwrap();
    assert_eq!(
        (info.info().width, info.info().height),
        (width, height),
        "{name}"
    );
    shot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_fleet_and_a_meters_phasors() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(sink_config("live-page-test", dir.path(), "")).await;
    let (addr, http) = (sink.addr, sink.http);

    let meters = CancellationToken::new();
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: addr.to_string(),
            reconnect: Duration::from_millis(200),
        },
        METERS,
    );
    fleet.name_prefix = "meter".into();
    fleet.template = MeterSettings {
        signal: SignalConfig {
            current_rms_a: CURRENT_A,
            current_angle_deg: ANGLE_DEG,
            ..SignalConfig::default()
        },
        raw_rate: RATE,
        ..MeterSettings::new("meter")
    };
    let fleet = start_fleet(fleet, meters.clone()).await.unwrap();

    // Every meter has a few clean windows on the live view before the page opens.
    let steady = || async {
        let text = reqwest::get(format!("http://{http}/api/meters"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let fleet: serde_json::Value = serde_json::from_str(&text).unwrap();
        let meters = fleet["meters"].as_array().cloned().unwrap_or_default();
        meters.len() == METERS
            && meters.iter().all(|m| {
                m["quality"]["windows"].as_u64() >= Some(5)
                    && m["last_window_flags"] == serde_json::json!([])
            })
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        while !steady().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every meter's windows within 60 s");

    let url = format!("http://{http}/");
    let meter_url = format!("http://{http}/#meter/meter003");
    let (fleet_dom, meter_dom, shots) = tokio::task::spawn_blocking(move || {
        let fleet_dom = chromium::run_url(&url, &["--dump-dom", SCRIPT_BUDGET]);
        let meter_dom = chromium::run_url(&meter_url, &["--dump-dom", SCRIPT_BUDGET]);
        let (phone, desktop) = ((412, 915), (1280, 1400));
        let shots = [
            screenshot(&url, "fleet-phone.png", phone),
            screenshot(&meter_url, "meter-phone.png", phone),
            screenshot(&url, "fleet-desktop.png", desktop),
            screenshot(&meter_url, "meter-desktop.png", desktop),
        ];
        (fleet_dom, meter_dom, shots)
    })
    .await
    .unwrap();
    for shot in &shots {
        eprintln!("screenshot: {}", shot.display());
    }

    // No script errors.
    for dom in [&fleet_dom, &meter_dom] {
        let console = chromium::console_messages(&dom.stderr);
        assert!(console.is_empty(), "console: {console:?}");
    }

    // The fleet table: a row per meter, each with its live values (P in kW,
    // the mean phase voltage, the mean current, PF).
    let dom = &fleet_dom.stdout;
    let rows = tags(dom, "<tr ");
    let meter_rows: Vec<&str> = rows
        .iter()
        .filter_map(|tag| attribute(tag, "data-meter"))
        .collect();
    assert_eq!(
        meter_rows,
        ["meter001", "meter002", "meter003", "meter004", "meter005"],
        "{dom}"
    );
    let p_kw = 3.0 * 230.0 * CURRENT_A * ANGLE_DEG.to_radians().cos() / 1000.0;
    for meter in &meter_rows {
        let value = |class: &str| -> f64 {
            cell(dom, meter, class)
                .parse()
                .unwrap_or_else(|_| panic!("{meter} {class}: {:?}", cell(dom, meter, class)))
        };
        assert!(
            (value("p") - p_kw).abs() < 1e-3 * p_kw + 0.0005,
            "{meter} P"
        );
        assert!((value("v") - 230.0).abs() < 0.25, "{meter} V");
        assert!((value("i") - CURRENT_A).abs() < 0.01, "{meter} I");
        let pf = ANGLE_DEG.to_radians().cos();
        assert!((value("pf") - pf).abs() < 0.0015, "{meter} PF");
        assert_eq!(cell(dom, meter, "status"), "ok");
    }
    assert!(dom.contains("id=\"count-meters\">5<"), "count at the top");
    assert!(
        dom.contains("id=\"count-connected\">5<"),
        "connected at the top"
    );
    // Five meters wired right: none counted as a wiring suspect.
    assert!(
        dom.contains("id=\"count-wiring\">0<"),
        "wiring suspects at the top"
    );

    // The meter view: six phasors, voltages 120° apart in positive
    // sequence, each current ANGLE_DEG behind its voltage (angles
    // counter-clockwise from L1's voltage).
    let dom = &meter_dom.stdout;
    let phasors: Vec<(String, String, f64)> = tags(dom, "<line ")
        .into_iter()
        .filter(|tag| attribute(tag, "class") == Some("phasor"))
        .map(|tag| {
            (
                attribute(tag, "data-kind").unwrap_or_default().to_string(),
                attribute(tag, "data-phase").unwrap_or_default().to_string(),
                attribute(tag, "data-angle-deg")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(phasors.len(), 6, "{phasors:?}");
    for (kind, phase, angle) in &phasors {
        let voltage = match phase.as_str() {
            "L1" => 0.0,
            "L2" => -120.0,
            _ => 120.0,
        };
        let expected: f64 = if kind == "V" {
            voltage
        } else {
            voltage - ANGLE_DEG
        };
        let off = (angle - expected + 540.0).rem_euclid(360.0) - 180.0;
        assert!(off.abs() < 1.0, "{kind} {phase}: {angle}° vs {expected}°");
    }
    assert!(
        dom.contains("id=\"meter-name\">meter003<"),
        "the meter's name"
    );

    meters.cancel();
    fleet.wait().await;
    sink.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(60), sink.task)
        .await
        .expect("the sink stops within 60 s")
        .unwrap()
        .unwrap();
}
