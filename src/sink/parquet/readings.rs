//! The `readings` table: telemetry in long format, one row per reading
//! (device, time, key, value, unit), partitioned like the meter tables, so
//! any low-rate sensor lands in one schema whatever its keys.

use arrow::datatypes::SchemaRef;

use super::schema::{
    bool_col, f64_col, time_col, ColumnSpec, ColumnValues, PartitionRow, TableSpec,
};
use crate::model::{Reading, Value};

pub const TABLE: &str = "readings";

impl PartitionRow for Reading {
    fn partition(&self) -> &str {
        &self.device
    }
}

pub(crate) fn spec() -> TableSpec<Reading> {
    TableSpec::new(
        TABLE,
        vec![
            ColumnSpec::required("time", time_col(|r: &Reading| Some(r.time_ns))),
            ColumnSpec::optional("span_start", time_col(|r: &Reading| r.span_start_ns)),
            ColumnSpec::required("device", ColumnValues::Utf8(|r: &Reading| Some(&r.device))),
            ColumnSpec::required("source", ColumnValues::Utf8(|r: &Reading| Some(r.source))),
            ColumnSpec::optional(
                "model",
                ColumnValues::Utf8(|r: &Reading| r.model.as_deref()),
            ),
            ColumnSpec::required("key", ColumnValues::Utf8(|r: &Reading| Some(&r.key))),
            ColumnSpec::optional("value", f64_col(|r: &Reading| r.value.as_f64())),
            ColumnSpec::optional(
                "text",
                ColumnValues::Utf8(|r: &Reading| match &r.value {
                    Value::Text(t) => Some(t),
                    _ => None,
                }),
            ),
            ColumnSpec::optional(
                "flag",
                bool_col(|r: &Reading| match r.value {
                    Value::Bool(b) => Some(b),
                    _ => None,
                }),
            ),
            ColumnSpec::optional("unit", ColumnValues::Utf8(|r: &Reading| r.unit)),
            ColumnSpec::optional("standard_key", ColumnValues::Utf8(|r: &Reading| r.standard)),
        ],
    )
}

/// The Arrow schema of the `readings` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
