//! The opt-in `half_cycle` table: every `Urms(1/2)` value (RMS over one
//! cycle, refreshed every half cycle) per phase, the quantity dips, swells
//! and interruptions are detected on; about 100 rows per second per device.

use arrow::datatypes::SchemaRef;

use super::schema::{
    bool_col, device_columns, f64_col, time_col, ColumnSpec, DeviceRow, TableSpec,
};
use super::windows::PHASE_TAGS;
use crate::model::{DeviceInfo, HalfCycleRow};

pub const TABLE: &str = "half_cycle";

impl DeviceRow for HalfCycleRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

pub(crate) fn spec() -> TableSpec<HalfCycleRow> {
    let mut columns = device_columns::<HalfCycleRow>();
    columns.extend([
        ColumnSpec::required(
            "start",
            time_col(|r: &HalfCycleRow| Some(r.value.start_unix_ns)),
        ),
        ColumnSpec::required(
            "end",
            time_col(|r: &HalfCycleRow| Some(r.value.end_unix_ns)),
        ),
        ColumnSpec::required(
            "extrapolated",
            bool_col(|r: &HalfCycleRow| Some(r.value.extrapolated)),
        ),
    ]);
    for (k, tag) in PHASE_TAGS.iter().enumerate() {
        columns.push(ColumnSpec::optional(
            format!("v_rms_{tag}_v"),
            f64_col(move |r: &HalfCycleRow| r.value.v_rms_v[k]),
        ));
    }
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `half_cycle` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
