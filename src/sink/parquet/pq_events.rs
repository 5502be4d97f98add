//! The `pq_events` table: one row per dip, swell, interruption or rapid
//! voltage change (IEC 61000-4-30 §5.4, §5.11), written when it ends, with
//! its residual or maximum voltage, the ΔU of an RVC, the Udin they are
//! percent of (and whether it was inferred), the phases involved and why
//! its times may be less certain (flags).

use arrow::datatypes::SchemaRef;

use super::schema::{
    bool_col, device_columns, f64_col, i32_col, time_col, ColumnSpec, ColumnValues, DeviceRow,
    TableSpec,
};
use crate::model::{DeviceInfo, PqEventFlags, PqEventRow};

pub const TABLE: &str = "pq_events";

/// One boolean column per event flag.
const FLAG_COLUMNS: [(&str, PqEventFlags); 4] = [
    ("open_at_start", PqEventFlags::OPEN_AT_START),
    ("open_at_end", PqEventFlags::OPEN_AT_END),
    ("gap", PqEventFlags::GAP),
    ("extrapolated_timing", PqEventFlags::EXTRAPOLATED_TIMING),
];

impl DeviceRow for PqEventRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

pub(crate) fn spec() -> TableSpec<PqEventRow> {
    let mut columns = device_columns::<PqEventRow>();
    columns.extend([
        ColumnSpec::required(
            "kind",
            ColumnValues::Utf8(|r: &PqEventRow| Some(r.event.kind.name())),
        ),
        ColumnSpec::required(
            "start",
            time_col(|r: &PqEventRow| Some(r.event.start_unix_ns)),
        ),
        ColumnSpec::required("end", time_col(|r: &PqEventRow| Some(r.event.end_unix_ns))),
        ColumnSpec::required(
            "duration_s",
            f64_col(|r: &PqEventRow| Some(r.event.duration_s)),
        ),
        ColumnSpec::required(
            "extreme_v",
            f64_col(|r: &PqEventRow| Some(r.event.extreme_v)),
        ),
        ColumnSpec::required(
            "extreme_pct_udin",
            f64_col(|r: &PqEventRow| Some(r.event.extreme_pct_udin)),
        ),
        ColumnSpec::optional(
            "delta_u_max_v",
            f64_col(|r: &PqEventRow| r.event.delta_u_max_v),
        ),
        ColumnSpec::optional(
            "delta_u_max_pct_udin",
            f64_col(|r: &PqEventRow| r.event.delta_u_max_pct_udin),
        ),
        ColumnSpec::optional(
            "delta_u_ss_v",
            f64_col(|r: &PqEventRow| r.event.delta_u_ss_v),
        ),
        ColumnSpec::optional(
            "delta_u_ss_pct_udin",
            f64_col(|r: &PqEventRow| r.event.delta_u_ss_pct_udin),
        ),
        ColumnSpec::required("udin_v", f64_col(|r: &PqEventRow| Some(r.udin_v))),
        ColumnSpec::required(
            "udin_inferred",
            bool_col(|r: &PqEventRow| Some(r.udin_inferred)),
        ),
        ColumnSpec::required(
            "phases",
            ColumnValues::Utf8(|r: &PqEventRow| Some(r.event.phases.label())),
        ),
        ColumnSpec::required(
            "flags",
            i32_col(|r: &PqEventRow| Some(i32::from(r.event.flags.bits()))),
        ),
    ]);
    for (name, flag) in FLAG_COLUMNS {
        columns.push(ColumnSpec::required(
            name,
            bool_col(move |r: &PqEventRow| Some(r.event.flags.contains(flag))),
        ));
    }
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `pq_events` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
