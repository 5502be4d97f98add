//! The opt-in `pinst` table: the flickermeter's instantaneous flicker
//! sensation per voltage channel, one row per phase and clock-aligned 10-ms
//! slot (mean and maximum over the slot), for looking into a high `Pst`.

use arrow::datatypes::SchemaRef;

use super::schema::{
    device_columns, f64_col, i32_col, time_col, ColumnSpec, ColumnValues, DeviceRow, TableSpec,
};
use crate::model::{DeviceInfo, PhaseSet, PinstRow};

pub const TABLE: &str = "pinst";

impl DeviceRow for PinstRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

pub(crate) fn spec() -> TableSpec<PinstRow> {
    let mut columns = device_columns::<PinstRow>();
    columns.extend([
        ColumnSpec::required("time", time_col(|r: &PinstRow| Some(r.value.time_unix_ns))),
        ColumnSpec::required(
            "phase",
            ColumnValues::Utf8(|r: &PinstRow| Some(PhaseSet::of(usize::from(r.phase)).label())),
        ),
        ColumnSpec::required("pinst", f64_col(|r: &PinstRow| Some(r.value.mean))),
        ColumnSpec::required("pinst_max", f64_col(|r: &PinstRow| Some(r.value.max))),
        ColumnSpec::required(
            "flicker_flags",
            i32_col(|r: &PinstRow| Some(i32::from(r.value.flags.bits()))),
        ),
    ]);
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `pinst` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
