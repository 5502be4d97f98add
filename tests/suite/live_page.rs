//! The live page in a real headless Chromium: a running sink with five
//! virtual meters, the page at `/` loaded over HTTP, its script run, and
//! the DOM read back: the fleet table has a row per meter with its live
//! values, and the meter view draws the phasor diagram at the angles the
//! signal has. A screenshot of each view is written for a person to see.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::chromium;
use common::live_sink::{dial_in, sink_config, start_sink, wait_for_meters};
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
    let signal = SignalConfig {
        current_rms_a: CURRENT_A,
        current_angle_deg: ANGLE_DEG,
        ..SignalConfig::default()
    };
    let fleet = dial_in(addr, "meter", METERS, signal, &meters).await;

    // Every meter has a few clean windows on the live view before the page opens.
    wait_for_meters(http, METERS, |m| {
        m["quality"]["windows"].as_u64() >= Some(5)
            && m["last_window_flags"] == serde_json::json!([])
    })
    .await;

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

/// A `p,q` latch meter and a meter whose L2 clamp faces the wrong way: the
/// page counts one wiring suspect and shows its finding (as the API parsed
/// it) in red; the latch meter's row has its P (3 × V·I·cos φ of the
/// signal, within the table's 3 decimals) and no V, I or PF; its meter
/// view says it averaged and draws no phasors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_a_wiring_fault_and_a_latch_meter() {
    let dir = tempfile::tempdir().unwrap();
    let latch = "[source.meters.\"pq001\"]\nmeasures = \"p,q\"\nrate = 50\n";
    let sink = start_sink(sink_config("live-page-test", dir.path(), latch)).await;
    let meters = CancellationToken::new();
    let signal = SignalConfig {
        current_rms_a: CURRENT_A,
        current_angle_deg: ANGLE_DEG,
        ..SignalConfig::default()
    };
    let mut reversed = signal.clone();
    reversed.wiring.reversed_clamps = vec![2];
    let miswired = dial_in(sink.addr, "miswired", 1, reversed, &meters).await;
    let averaged = dial_in(sink.addr, "pq", 1, signal, &meters).await;
    let http = sink.http;
    wait_for_meters(http, 2, |m| {
        m["quality"]["windows"].as_u64() >= Some(5)
            && (m["latch"] == true || m["wiring_fault"] == true)
    })
    .await;

    let url = format!("http://{http}/");
    let meter_url = format!("http://{http}/#meter/pq001");
    let (fleet_dom, meter_dom) = tokio::task::spawn_blocking(move || {
        let fleet_dom = chromium::run_url(&url, &["--dump-dom", SCRIPT_BUDGET]);
        let meter_dom = chromium::run_url(&meter_url, &["--dump-dom", SCRIPT_BUDGET]);
        screenshot(&meter_url, "latch-meter-desktop.png", (1280, 1400));
        (fleet_dom, meter_dom)
    })
    .await
    .unwrap();
    for dom in [&fleet_dom, &meter_dom] {
        let console = chromium::console_messages(&dom.stderr);
        assert!(console.is_empty(), "console: {console:?}");
    }

    let dom = &fleet_dom.stdout;
    assert!(dom.contains("id=\"count-wiring\">1<"), "one wiring suspect");
    let wiring = "<td class=\"wiring wiring-fault\"";
    let at = dom
        .find(wiring)
        .unwrap_or_else(|| panic!("no fault cell in {dom}"));
    let text_at = at + dom[at..].find('>').unwrap_or(0) + 1;
    assert!(
        dom[text_at..].starts_with("reversed_clamp L2<"),
        "{}",
        &dom[at..(at + 200).min(dom.len())]
    );
    let p_kw = 3.0 * 230.0 * CURRENT_A * ANGLE_DEG.to_radians().cos() / 1000.0;
    let p: f64 = cell(dom, "pq001", "p").parse().unwrap_or(f64::NAN);
    assert!((p - p_kw).abs() <= 0.0005, "pq001 P {p} vs {p_kw}");
    for absent in ["v", "i", "pf", "f", "thdv"] {
        assert_eq!(cell(dom, "pq001", absent), "–", "pq001 {absent}");
    }

    let dom = &meter_dom.stdout;
    let body = tags(dom, "<body");
    let class = body.first().and_then(|tag| attribute(tag, "class"));
    assert!(
        class.is_some_and(|c| c.split(' ').any(|c| c == "latch")),
        "body {body:?}"
    );
    assert!(
        !tags(dom, "<line ")
            .iter()
            .any(|tag| attribute(tag, "class") == Some("phasor")),
        "no phasors for a latch meter"
    );

    meters.cancel();
    miswired.wait().await;
    averaged.wait().await;
    sink.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(60), sink.task)
        .await
        .expect("the sink stops within 60 s")
        .unwrap()
        .unwrap();
}
