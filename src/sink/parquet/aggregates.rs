//! The `aggregates` table: windows folded over intervals (IEC 61000-4-30
//! 150/180 cycles ≈ 3 s, 10 min, and the BetterFleet packet interval), with
//! RMS or mean values, their extremes, and how many windows were flagged.
//!
//! Value columns are named like the `windows` table; extremes add `_min` /
//! `_max` before the unit (`v_rms_l1_min_v`). Interval energies are
//! `energy_import_*` / `energy_export_*` (sums over the interval, not
//! cumulative). `v_under_*_pct` / `v_over_*_pct` are the IEC 61000-4-30
//! under/over deviation in percent of Udin (`[dsp] declared_voltage_v`).
//! With `[dsp.pq]`, `pq_flagged_windows` counts windows overlapping a dip,
//! swell or interruption; with `[dsp.pq.flicker]`, 10-min rows carry
//! `pst_*` and 2-h rows (`interval` = `2h`) `plt_*`, with `flicker_flags`
//! (settling, gap, incomplete, no voltage, invalid samples) and the lamp
//! they were weighted with (`flicker_lamp_v`, 120 or 230) beside them.

use arrow::datatypes::SchemaRef;

use super::schema::{
    device_columns, f64_col, i32_col, i64_col, time_col, ColumnSpec, ColumnValues, DeviceRow,
    TableSpec,
};
use super::windows::PHASE_TAGS;
use crate::model::{Aggregate, AggregateRow, DeviceInfo, PhaseAggregate, Stat};

pub const TABLE: &str = "aggregates";

impl DeviceRow for AggregateRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

type StatGetter = fn(&PhaseAggregate) -> Stat;

/// Per-phase statistics: stem, unit suffix, getter.
const PHASE_STATS: [(&str, &str, StatGetter); 5] = [
    ("v_rms", "_v", |a| a.v_rms_v),
    ("i_rms", "_a", |a| a.i_rms_a),
    ("p", "_w", |a| a.p_w),
    ("q1", "_var", |a| a.q1_var),
    ("s", "_va", |a| a.s_va),
];

type TotalGetter = fn(&Aggregate) -> Stat;

const TOTAL_STATS: [(&str, &str, TotalGetter); 3] = [
    ("p_total", "_w", |a| a.p_total_w),
    ("q1_total", "_var", |a| a.q1_total_var),
    ("s_total", "_va", |a| a.s_total_va),
];

/// `value`, `min`, `max` columns of one statistic.
fn stat_columns(
    stem: &str,
    unit: &str,
    get: impl Fn(&AggregateRow) -> Option<Stat> + Clone + Send + Sync + 'static,
    nullable: bool,
) -> Vec<ColumnSpec<AggregateRow>> {
    let column = if nullable {
        ColumnSpec::optional
    } else {
        ColumnSpec::required
    };
    let (g1, g2, g3) = (get.clone(), get.clone(), get);
    vec![
        column(
            format!("{stem}{unit}"),
            f64_col(move |r| g1(r).map(|s| s.value)),
        ),
        column(
            format!("{stem}_min{unit}"),
            f64_col(move |r| g2(r).map(|s| s.min)),
        ),
        column(
            format!("{stem}_max{unit}"),
            f64_col(move |r| g3(r).map(|s| s.max)),
        ),
    ]
}

pub(crate) fn spec() -> TableSpec<AggregateRow> {
    let mut columns = device_columns::<AggregateRow>();
    columns.extend([
        ColumnSpec::required(
            "interval",
            ColumnValues::Utf8(|r: &AggregateRow| Some(r.kind.as_str())),
        ),
        ColumnSpec::required(
            "interval_start",
            time_col(|r: &AggregateRow| Some(r.aggregate.start_unix_ns)),
        ),
        ColumnSpec::required(
            "interval_end",
            time_col(|r: &AggregateRow| Some(r.aggregate.end_unix_ns)),
        ),
        ColumnSpec::required(
            "windows",
            i64_col(|r: &AggregateRow| Some(i64::from(r.aggregate.windows))),
        ),
        ColumnSpec::required(
            "flagged_windows",
            i64_col(|r: &AggregateRow| Some(i64::from(r.aggregate.flagged_windows))),
        ),
        ColumnSpec::required(
            "pq_flagged_windows",
            i64_col(|r: &AggregateRow| Some(i64::from(r.aggregate.pq_flagged_windows))),
        ),
    ]);
    columns.extend(stat_columns(
        "frequency",
        "_hz",
        |r| r.aggregate.frequency_hz,
        true,
    ));
    for (k, tag) in PHASE_TAGS.iter().enumerate() {
        for (stem, unit, get) in PHASE_STATS {
            columns.extend(stat_columns(
                &format!("{stem}_{tag}"),
                unit,
                move |r| r.aggregate.phases[k].as_ref().map(get),
                true,
            ));
        }
        let phase = move |r: &AggregateRow| r.aggregate.phases[k];
        columns.extend([
            ColumnSpec::optional(
                format!("pf_{tag}"),
                f64_col(move |r| phase(r).and_then(|p| p.pf)),
            ),
            ColumnSpec::optional(
                format!("thd_v_{tag}_pct"),
                f64_col(move |r| phase(r).and_then(|p| p.thd_v_pct)),
            ),
            ColumnSpec::optional(
                format!("thd_i_{tag}_pct"),
                f64_col(move |r| phase(r).and_then(|p| p.thd_i_pct)),
            ),
            ColumnSpec::optional(
                format!("v_under_{tag}_pct"),
                f64_col(move |r| phase(r).and_then(|p| p.v_under_pct)),
            ),
            ColumnSpec::optional(
                format!("v_over_{tag}_pct"),
                f64_col(move |r| phase(r).and_then(|p| p.v_over_pct)),
            ),
            ColumnSpec::optional(
                format!("energy_import_{tag}_wh"),
                f64_col(move |r| phase(r).map(|p| p.energy.import_wh)),
            ),
            ColumnSpec::optional(
                format!("energy_export_{tag}_wh"),
                f64_col(move |r| phase(r).map(|p| p.energy.export_wh)),
            ),
        ]);
    }
    for (stem, unit, get) in TOTAL_STATS {
        columns.extend(stat_columns(
            stem,
            unit,
            move |r| Some(get(&r.aggregate)),
            false,
        ));
    }
    columns.extend([
        ColumnSpec::optional("pf_total", f64_col(|r: &AggregateRow| r.aggregate.pf_total)),
        ColumnSpec::required(
            "energy_import_total_wh",
            f64_col(|r: &AggregateRow| Some(r.aggregate.energy_total.import_wh)),
        ),
        ColumnSpec::required(
            "energy_export_total_wh",
            f64_col(|r: &AggregateRow| Some(r.aggregate.energy_total.export_wh)),
        ),
    ]);
    for (k, tag) in PHASE_TAGS.iter().enumerate() {
        columns.extend([
            ColumnSpec::optional(
                format!("pst_{tag}"),
                f64_col(move |r: &AggregateRow| r.aggregate.pst[k]),
            ),
            ColumnSpec::optional(
                format!("plt_{tag}"),
                f64_col(move |r: &AggregateRow| r.aggregate.plt[k]),
            ),
        ]);
    }
    columns.push(ColumnSpec::required(
        "flicker_flags",
        i32_col(|r: &AggregateRow| Some(i32::from(r.aggregate.flicker_flags.bits()))),
    ));
    columns.push(ColumnSpec::optional(
        "flicker_lamp_v",
        i32_col(|r: &AggregateRow| r.aggregate.flicker_lamp_v.map(i32::from)),
    ));
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `aggregates` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
