//! The live view on `/metrics`: the last window of every meter as gauges in
//! base units (volts, amperes, watts, ratios), its energy registers as
//! counters in joules, and how old its last window is. Transport counters
//! (`meterflow_meter_connected`, `..._windows_total` …) are the source's:
//! a name here must never repeat one of them.

use crate::model::metric::Metric;
use crate::model::{EnergyCounters, EnergyFlow};
use crate::sink::output::OutputMetrics;

use super::api::{meter_now, MeterNow, PhaseNow};
use super::board::{lock, LiveBoard};
use crate::model::clock::unix_now_ns;

const JOULES_PER_WH: f64 = 3600.0;
const PHASES: [&str; 3] = ["L1", "L2", "L3"];

/// One per-phase gauge: its name, help and how it reads a phase.
type PhaseGauge = (&'static str, &'static str, fn(&PhaseNow) -> Option<f64>);

const PHASE_GAUGES: &[PhaseGauge] = &[
    (
        "meterflow_meter_phase_voltage_rms_volts",
        "RMS voltage of the phase in the meter's last window",
        |p| p.v_rms_v,
    ),
    (
        "meterflow_meter_phase_current_rms_amperes",
        "RMS current of the phase in the meter's last window",
        |p| p.i_rms_a,
    ),
    (
        "meterflow_meter_phase_active_power_watts",
        "active power of the phase in the meter's last window (negative: export)",
        |p| p.p_w,
    ),
    (
        "meterflow_meter_phase_reactive_power_vars",
        "fundamental reactive power of the phase in the meter's last window (positive: current lags; a p,q meter's as it defines it)",
        |p| p.q_var,
    ),
    (
        "meterflow_meter_phase_apparent_power_voltamperes",
        "apparent power V*I of the phase in the meter's last window",
        |p| p.s_va,
    ),
    (
        "meterflow_meter_phase_power_factor_ratio",
        "power factor P/S of the phase in the meter's last window, signed with P",
        |p| p.pf,
    ),
    (
        "meterflow_meter_phase_voltage_thd_ratio",
        "voltage total harmonic distortion of the phase in the meter's last window",
        |p| p.thd_v_pct.map(|pct| pct / 100.0),
    ),
    (
        "meterflow_meter_phase_current_thd_ratio",
        "current total harmonic distortion of the phase in the meter's last window",
        |p| p.thd_i_pct.map(|pct| pct / 100.0),
    ),
];

fn gauge(name: &'static str, help: &'static str, meter: &MeterNow, value: f64) -> Metric {
    Metric::gauge(name, help, value).with("meter", meter.name.as_str())
}

fn counter(name: &'static str, help: &'static str, meter: &MeterNow, value: u64) -> Metric {
    Metric::counter(name, help, value).with("meter", meter.name.as_str())
}

fn joules(name: &'static str, help: &'static str, meter: &MeterNow, wh: f64) -> Metric {
    // Registers only grow; whole joules are finer than any meter's register.
    counter(
        name,
        help,
        meter,
        (wh.max(0.0) * JOULES_PER_WH).floor() as u64,
    )
}

fn energy(out: &mut Vec<Metric>, meter: &MeterNow, energy: &EnergyCounters) {
    let flows = |out: &mut Vec<Metric>, flow: &EnergyFlow, phase: Option<&'static str>| {
        let (imported, exported) = if phase.is_some() {
            (
                "meterflow_meter_phase_energy_imported_joules_total",
                "meterflow_meter_phase_energy_exported_joules_total",
            )
        } else {
            (
                "meterflow_meter_energy_imported_joules_total",
                "meterflow_meter_energy_exported_joules_total",
            )
        };
        let mut pair = [
            joules(
                imported,
                "energy imported (register)",
                meter,
                flow.import_wh,
            ),
            joules(
                exported,
                "energy exported (register)",
                meter,
                flow.export_wh,
            ),
        ];
        if let Some(phase) = phase {
            pair = pair.map(|m| m.with("phase", phase));
        }
        out.extend(pair);
    };
    flows(out, &energy.total, None);
    for (flow, phase) in energy.phases.iter().zip(PHASES) {
        if let Some(flow) = flow {
            flows(out, flow, Some(phase));
        }
    }
}

/// The metrics of one meter, from a copy of it (rendered outside its lock).
fn meter_metrics(out: &mut Vec<Metric>, meter: &MeterNow, registers: Option<&EnergyCounters>) {
    if let Some(registers) = registers {
        energy(out, meter, registers);
    }
    let quality = &meter.quality;
    for (name, help, value) in [
        (
            "meterflow_meter_flagged_windows_total",
            "windows flagged (gap, resync, invalid samples, PQ event …)",
            quality.flagged_windows,
        ),
        (
            "meterflow_meter_lost_samples_total",
            "samples the meter's stream lost in gaps",
            quality.lost_samples,
        ),
        (
            "meterflow_meter_pq_events_total",
            "dips, swells, interruptions and RVCs",
            quality.pq_events,
        ),
    ] {
        out.push(counter(name, help, meter, value));
    }
    if let Some(finding) = &meter.wiring_finding {
        out.push(
            gauge(
                "meterflow_meter_wiring_fault",
                "1 while the wiring checks' last finding is a fault (label finding: reason and phase); absent until they find something",
                meter,
                if meter.wiring_fault { 1.0 } else { 0.0 },
            )
            .with("finding", finding.as_str()),
        );
    }
    if let Some(age) = meter.last_window_age_s {
        out.push(gauge(
            "meterflow_meter_last_window_age_seconds",
            "seconds from the end of the meter's last window to now",
            meter,
            age,
        ));
    }
    let totals: [(&'static str, &'static str, Option<f64>); 5] = [
        (
            "meterflow_meter_active_power_watts",
            "active power of all phases in the meter's last window (negative: export)",
            meter.p_total_w,
        ),
        (
            "meterflow_meter_reactive_power_vars",
            "fundamental reactive power of all phases in the meter's last window (a p,q meter's as it defines it)",
            meter.q_total_var,
        ),
        (
            "meterflow_meter_apparent_power_voltamperes",
            "arithmetic sum of the phases' apparent power in the meter's last window",
            meter.s_total_va,
        ),
        (
            "meterflow_meter_power_factor_ratio",
            "power factor of all phases in the meter's last window",
            meter.pf_total,
        ),
        (
            "meterflow_meter_frequency_hertz",
            "frequency in the meter's last window",
            meter.frequency_hz,
        ),
    ];
    for (metric, help, value) in totals {
        if let Some(value) = value {
            out.push(gauge(metric, help, meter, value));
        }
    }
    for (phase, name) in meter.phases.iter().zip(PHASES) {
        let Some(phase) = phase else {
            continue;
        };
        for (metric, help, read) in PHASE_GAUGES {
            if let Some(value) = read(phase) {
                out.push(gauge(metric, help, meter, value).with("phase", name));
            }
        }
    }
}

impl OutputMetrics for LiveBoard {
    fn metrics(&self) -> Vec<Metric> {
        let now = unix_now_ns();
        let cells = self.cells();
        let mut out = Vec::with_capacity(cells.len() * 40 + 1);
        out.push(Metric::gauge(
            "meterflow_live_meters",
            "meters the live view shows",
            cells.len() as f64,
        ));
        for cell in &cells {
            // Copy under the meter's lock; build the metrics after letting go.
            let (meter, registers) = {
                let live = lock(cell);
                (meter_now(&live, now), live.energy.clone())
            };
            meter_metrics(&mut out, &meter, registers.as_ref());
        }
        out
    }
}
