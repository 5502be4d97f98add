//! The `latch` table: one row per device per 200 ms window of a latch-mode
//! stream (`p,q` or `v,i_RMS`), the meter's own averages as the latch engine
//! aggregated them, plus the device's cumulative energy registers after the
//! window.
//!
//! Per-phase columns are named `<quantity>_l<n>_<unit>` like the `windows`
//! table; a quantity the layout does not carry (V and I of a `p,q` stream,
//! P, Q and energy of a `v,i_RMS` stream) or a phase without valid values is
//! null, never 0.

use arrow::datatypes::SchemaRef;

use super::schema::{
    bool_col, device_columns, f64_col, i32_col, time_col, u64_col, ColumnSpec, DeviceRow, TableSpec,
};
use super::windows::{cumulative_energy_columns, PHASE_TAGS};
use crate::model::{DeviceInfo, LatchPhase, LatchRow};

pub const TABLE: &str = "latch";

impl DeviceRow for LatchRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

type PhaseGetter = fn(&LatchPhase) -> Option<f64>;

/// Per-phase values: column stem, unit suffix, getter.
const PHASE_COLUMNS: [(&str, &str, PhaseGetter); 5] = [
    ("p", "_w", |p| p.p_w),
    ("q", "_var", |p| p.q_var),
    ("v_rms", "_v", |p| p.v_rms_v),
    ("i_rms", "_a", |p| p.i_rms_a),
    ("energy", "_wh", |p| p.energy_wh),
];

pub(crate) fn spec() -> TableSpec<LatchRow> {
    let mut columns = device_columns::<LatchRow>();
    columns.extend([
        ColumnSpec::required(
            "window_start",
            time_col(|r: &LatchRow| Some(r.window.start_unix_ns)),
        ),
        ColumnSpec::required(
            "window_end",
            time_col(|r: &LatchRow| Some(r.window.end_unix_ns)),
        ),
        ColumnSpec::required(
            "first_sample",
            u64_col(|r: &LatchRow| Some(r.window.first_sample)),
        ),
        ColumnSpec::required(
            "sample_count",
            u64_col(|r: &LatchRow| Some(r.window.sample_count)),
        ),
        ColumnSpec::required(
            "duration_s",
            f64_col(|r: &LatchRow| Some(r.window.duration_s)),
        ),
        ColumnSpec::required(
            "flags",
            i32_col(|r: &LatchRow| Some(i32::from(r.window.flags.bits()))),
        ),
        ColumnSpec::required(
            "flagged",
            bool_col(|r: &LatchRow| Some(!r.window.flags.is_clean())),
        ),
    ]);
    for (k, tag) in PHASE_TAGS.iter().enumerate() {
        for (stem, unit, get) in PHASE_COLUMNS {
            columns.push(ColumnSpec::optional(
                format!("{stem}_{tag}{unit}"),
                f64_col(move |r: &LatchRow| r.window.phases[k].as_ref().and_then(get)),
            ));
        }
    }
    columns.extend(cumulative_energy_columns(|r: &LatchRow| r.energy.as_ref()));
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `latch` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
