//! Measures `meterflow report` on a fleet: writes N meters × 1 day of
//! 10-minute aggregates (what the report plots for a day) and their events
//! with the project's own Parquet writer, then renders the report and
//! prints the render time and file size. The third argument is `--detail`
//! (devices drawn with all their charts; default 20).
//!
//!     cargo run --release --example report_fleet -- /tmp/fleet 1000 [20]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use meterflow::model::{
    Aggregate, AggregateRow, DeviceInfo, EnergyFlow, EventRow, EventRowKind, IntervalKind,
    PhaseAggregate, Stat,
};
use meterflow::report::{write_report, ReportOptions};
use meterflow::sink::parquet::{DatasetInfo, DatasetWriter, ParquetConfig};
use meterflow::wire::Measures;

const NS: i64 = 1_000_000_000;
const TEN_MIN_NS: i64 = 600 * NS;
/// 2026-12-01T00:00:00Z.
const DAY_START_NS: i64 = 1_796_083_200 * NS;

/// A repeatable pseudo-random number in [0, 1) (SplitMix64).
fn noise(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

fn stat(value: f64, spread: f64) -> Stat {
    Stat {
        value,
        min: value - spread,
        max: value + spread,
    }
}

/// Interval `k` of meter `m`: a daily load curve (PV meters export at noon).
fn aggregate(m: u64, k: i64, phases: usize) -> Aggregate {
    let hour = k as f64 / 6.0;
    let base = 500.0 + 4000.0 * noise(m);
    let daily = 0.6 + 0.4 * (std::f64::consts::PI * (hour - 6.0) / 12.0).sin().max(-0.5);
    let pv = m.is_multiple_of(7);
    let p_phase = if pv {
        -base * (std::f64::consts::PI * (hour - 6.0) / 12.0).sin().max(0.0)
    } else {
        base * daily * (0.9 + 0.2 * noise(m * 1000 + k as u64))
    } / phases as f64;
    let q_phase = 0.3 * p_phase.abs();
    let s_phase = p_phase.hypot(q_phase);
    let v = 230.0 + 3.0 * (hour / 24.0 * std::f64::consts::TAU).cos() + noise(m * 7 + k as u64);
    let mut energy = EnergyFlow::default();
    energy.add(p_phase * phases as f64 / 6.0);
    let phase = |_: usize| PhaseAggregate {
        v_rms_v: stat(v, 2.0),
        i_rms_a: stat(s_phase / v, 0.1 * s_phase / v),
        p_w: stat(p_phase, 0.2 * p_phase.abs()),
        q1_var: stat(q_phase, 0.1 * q_phase),
        s_va: stat(s_phase, 0.2 * s_phase),
        pf: Some(p_phase / s_phase.max(1e-9)),
        thd_v_pct: Some(1.5 + noise(m + 3 * k as u64)),
        thd_i_pct: Some(5.0 + 20.0 * noise(m)),
        energy: EnergyFlow {
            import_wh: energy.import_wh / phases as f64,
            export_wh: energy.export_wh / phases as f64,
        },
        v_under_pct: None,
        v_over_pct: None,
    };
    let start = DAY_START_NS + k * TEN_MIN_NS;
    Aggregate {
        start_unix_ns: start,
        end_unix_ns: start + TEN_MIN_NS,
        windows: 3000,
        flagged_windows: u32::from(noise(m * 31 + k as u64) < 0.01) * 5,
        pq_flagged_windows: 0,
        phases: [0, 1, 2].map(|p| (p < phases).then(|| phase(p))),
        p_total_w: stat(
            p_phase * phases as f64,
            0.2 * (p_phase * phases as f64).abs(),
        ),
        q1_total_var: stat(q_phase * phases as f64, 0.1 * q_phase * phases as f64),
        s_total_va: stat(s_phase * phases as f64, 0.2 * s_phase * phases as f64),
        pf_total: Some(p_phase / s_phase.max(1e-9)),
        energy_total: energy,
        frequency_hz: Some(stat(50.0 + 0.02 * (noise(k as u64) - 0.5), 0.03)),
        ..Aggregate::default()
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).map_or("/tmp/meterflow-fleet", String::as_str));
    let meters: u64 = args
        .get(2)
        .map_or(Ok(1000), |n| n.parse())
        .context("meter count")?;
    let detail: usize = args
        .get(3)
        .map_or(Ok(meterflow::report::DEFAULT_DETAIL), |n| n.parse())
        .context("detail count")?;
    let dataset = out.join("parquet");
    if !dataset.join("aggregates").is_dir() {
        let started = Instant::now();
        let mut config = ParquetConfig::new(&dataset);
        config.fsync = false;
        let mut writer = DatasetWriter::create(&config, &DatasetInfo::default())?;
        for m in 0..meters {
            let (measures, phases) = if m % 2 == 0 {
                (Measures::ThreePhase, 3)
            } else {
                (Measures::SinglePhase, 1)
            };
            let device = DeviceInfo::new(format!("meter-{m:04}"), m, measures);
            writer.write_event(EventRow::new(
                device.clone(),
                DAY_START_NS,
                EventRowKind::Connect,
                "dialled in",
            ))?;
            for k in 0..144 {
                // Every 10th meter loses 40 minutes at midday.
                if m % 10 == 3 && (72..76).contains(&k) {
                    continue;
                }
                writer.write_aggregate(AggregateRow {
                    device: device.clone(),
                    kind: IntervalKind::TenMinutes,
                    aggregate: aggregate(m, k, phases),
                })?;
            }
            if m % 10 == 3 {
                let mut gap = EventRow::new(
                    device.clone(),
                    DAY_START_NS + 72 * TEN_MIN_NS,
                    EventRowKind::Gap,
                    "expected packet 1, received 9",
                );
                gap.lost_samples = Some(2400 * 8000);
                writer.write_event(gap)?;
            }
            writer.write_event(EventRow::new(
                device.clone(),
                DAY_START_NS + 86_400 * NS - 1,
                EventRowKind::Disconnect,
                "closed",
            ))?;
            writer.finish_device(&device.name)?;
        }
        let summary = writer.close()?;
        println!(
            "dataset: {} files, {:?} rows in {:.1} s",
            summary.files.len(),
            summary.rows,
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let summary = write_report(&ReportOptions {
        dataset: dataset.clone(),
        devices: Vec::new(),
        from: None,
        to: None,
        zone: chrono_tz::Europe::Vienna,
        out: out.join("report.html"),
        png_dir: None,
        detail,
    })?;
    println!(
        "report: {} devices ({} in full), {} charts, {:.1} MB, in {:.2} s ({:?})",
        summary.devices,
        summary.detailed,
        summary.charts,
        summary.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        summary.sources
    );
    let phases: Vec<String> = summary
        .phases
        .iter()
        .map(|(name, s)| format!("{name} {s:.2} s"))
        .collect();
    println!("phases: {}", phases.join(", "));
    Ok(())
}
