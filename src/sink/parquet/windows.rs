//! The `windows` table: one row per device per basic window (IEC 61000-4-30,
//! 10/12 cycles), every metric the engine computed, plus the device's
//! cumulative energy registers after the window.
//!
//! Per-phase columns are named `<quantity>_l<n>_<unit>`; a phase the layout
//! does not carry is null in every one of its columns, never 0.

use arrow::datatypes::SchemaRef;

use super::schema::{
    bool_col, device_columns, f64_col, i32_col, i64_col, time_col, u64_col, ColumnSpec, DeviceRow,
    TableSpec,
};
use crate::model::{DeviceInfo, EnergyCounters, PhaseMetrics, WindowFlags, WindowRow};

pub const TABLE: &str = "windows";

impl DeviceRow for WindowRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

/// Flags with a Boolean column of their own, for readers that filter on them.
const FLAG_COLUMNS: [(&str, WindowFlags); 5] = [
    ("flag_gap", WindowFlags::GAP),
    ("flag_no_zero_crossing", WindowFlags::NO_ZERO_CROSSING),
    ("flag_resync", WindowFlags::RESYNC),
    ("flag_invalid_samples", WindowFlags::INVALID_SAMPLES),
    ("flag_truncated", WindowFlags::TRUNCATED),
];

type PhaseGetter = fn(&PhaseMetrics) -> Option<f64>;

/// Per-phase metrics: column stem, unit suffix (may be empty), getter.
const PHASE_COLUMNS: [(&str, &str, PhaseGetter); 14] = [
    ("v_rms", "_v", |m| Some(m.v_rms_v)),
    ("i_rms", "_a", |m| Some(m.i_rms_a)),
    ("p", "_w", |m| Some(m.p_w)),
    ("s", "_va", |m| Some(m.s_va)),
    ("n", "_var", |m| Some(m.n_var)),
    ("v1_rms", "_v", |m| Some(m.v1_rms_v)),
    ("i1_rms", "_a", |m| Some(m.i1_rms_a)),
    ("angle", "_deg", |m| Some(m.angle_deg)),
    ("q1", "_var", |m| Some(m.q1_var)),
    ("pf", "", |m| m.pf),
    ("dpf", "", |m| m.dpf),
    ("thd_v", "_pct", |m| m.thd_v_pct),
    ("thd_i", "_pct", |m| m.thd_i_pct),
    ("energy", "_wh", |m| Some(m.energy_wh)),
];

/// Lowercase phase tags used in column names.
pub(crate) const PHASE_TAGS: [&str; 3] = ["l1", "l2", "l3"];

pub(crate) fn spec() -> TableSpec<WindowRow> {
    let mut columns = device_columns::<WindowRow>();
    columns.extend([
        ColumnSpec::required(
            "window_start",
            time_col(|r: &WindowRow| Some(r.metrics.start_unix_ns)),
        ),
        ColumnSpec::required(
            "window_end",
            time_col(|r: &WindowRow| Some(r.metrics.end_unix_ns)),
        ),
        ColumnSpec::required(
            "first_sample",
            u64_col(|r: &WindowRow| Some(r.metrics.first_sample)),
        ),
        ColumnSpec::required(
            "sample_count",
            u64_col(|r: &WindowRow| Some(r.metrics.sample_count)),
        ),
        ColumnSpec::required(
            "duration_s",
            f64_col(|r: &WindowRow| Some(r.metrics.duration_s)),
        ),
        ColumnSpec::required(
            "cycles",
            i64_col(|r: &WindowRow| Some(i64::from(r.metrics.cycles))),
        ),
        ColumnSpec::required(
            "flags",
            i32_col(|r: &WindowRow| Some(i32::from(r.metrics.flags.bits()))),
        ),
        ColumnSpec::required(
            "flagged",
            bool_col(|r: &WindowRow| Some(!r.metrics.flags.is_clean())),
        ),
    ]);
    for (name, flag) in FLAG_COLUMNS {
        columns.push(ColumnSpec::required(
            name,
            bool_col(move |r: &WindowRow| Some(r.metrics.flags.contains(flag))),
        ));
    }
    columns.push(ColumnSpec::optional(
        "frequency_hz",
        f64_col(|r: &WindowRow| r.metrics.frequency_hz),
    ));
    for (k, tag) in PHASE_TAGS.iter().enumerate() {
        for (stem, unit, get) in PHASE_COLUMNS {
            columns.push(ColumnSpec::optional(
                format!("{stem}_{tag}{unit}"),
                f64_col(move |r: &WindowRow| r.metrics.phases[k].as_ref().and_then(get)),
            ));
        }
    }
    for (k, pair) in ["l1_l2", "l2_l3", "l3_l1"].iter().enumerate() {
        columns.push(ColumnSpec::optional(
            format!("v_{pair}_v"),
            f64_col(move |r: &WindowRow| r.metrics.line_to_line_v[k]),
        ));
    }
    columns.extend([
        ColumnSpec::required(
            "p_total_w",
            f64_col(|r: &WindowRow| Some(r.metrics.p_total_w)),
        ),
        ColumnSpec::required(
            "q1_total_var",
            f64_col(|r: &WindowRow| Some(r.metrics.q1_total_var)),
        ),
        ColumnSpec::required(
            "s_total_va",
            f64_col(|r: &WindowRow| Some(r.metrics.s_total_va)),
        ),
        ColumnSpec::optional("pf_total", f64_col(|r: &WindowRow| r.metrics.pf_total)),
        ColumnSpec::required(
            "energy_total_wh",
            f64_col(|r: &WindowRow| Some(r.metrics.energy_total_wh)),
        ),
        ColumnSpec::optional(
            "unbalance_u2",
            f64_col(|r: &WindowRow| r.metrics.unbalance.map(|u| u.u2)),
        ),
        ColumnSpec::optional(
            "unbalance_u0",
            f64_col(|r: &WindowRow| r.metrics.unbalance.map(|u| u.u0)),
        ),
        ColumnSpec::required(
            "harmonic_orders",
            i64_col(|r: &WindowRow| Some(i64::from(r.metrics.harmonic_orders))),
        ),
    ]);
    columns.extend(cumulative_energy_columns(|r: &WindowRow| r.energy.as_ref()));
    TableSpec::new(TABLE, columns)
}

/// The device's energy registers after a row (`None` leaves them null):
/// per phase and total import/export, and the measured time behind them.
pub(crate) fn cumulative_energy_columns<R: 'static>(
    energy: fn(&R) -> Option<&EnergyCounters>,
) -> Vec<ColumnSpec<R>> {
    let mut columns = Vec::new();
    for (k, tag) in PHASE_TAGS.iter().enumerate() {
        columns.push(ColumnSpec::optional(
            format!("cum_import_{tag}_wh"),
            f64_col(move |r: &R| energy(r).and_then(|e| e.phases[k]).map(|f| f.import_wh)),
        ));
        columns.push(ColumnSpec::optional(
            format!("cum_export_{tag}_wh"),
            f64_col(move |r: &R| energy(r).and_then(|e| e.phases[k]).map(|f| f.export_wh)),
        ));
    }
    columns.extend([
        ColumnSpec::optional(
            "cum_import_total_wh",
            f64_col(move |r: &R| energy(r).map(|e| e.total.import_wh)),
        ),
        ColumnSpec::optional(
            "cum_export_total_wh",
            f64_col(move |r: &R| energy(r).map(|e| e.total.export_wh)),
        ),
        ColumnSpec::optional(
            "cum_measured_s",
            f64_col(move |r: &R| energy(r).map(|e| e.measured_s)),
        ),
    ]);
    columns
}

/// The Arrow schema of the `windows` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
