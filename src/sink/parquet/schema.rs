//! Table schemas declared column by column: each column is a name, whether
//! it may be null, and how to read its value from a row. The same list
//! builds the Arrow schema and the `RecordBatch`, so the two cannot drift.
//!
//! Only types that pyarrow, DuckDB and polars read as they are appear here
//! (see [`is_portable_type`]); timestamps are `Timestamp(Nanosecond, "UTC")`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Float64Builder, Int32Array, Int64Array, ListBuilder,
    StringArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::file::metadata::KeyValue;

use super::config::DatasetInfo;
use super::error::{ParquetSinkError, Result};
use crate::model::DeviceInfo;

/// Bumped whenever a column is renamed, removed or changes type.
pub const SCHEMA_VERSION: u32 = 1;

/// Key-value metadata keys written into every file.
pub mod keys {
    pub const SCHEMA_VERSION: &str = "meterflow.schema_version";
    pub const METERFLOW_VERSION: &str = "meterflow.version";
    pub const TABLE: &str = "meterflow.table";
    pub const SOURCE: &str = "meterflow.source";
    pub const PIPELINE: &str = "meterflow.pipeline";
    pub const THD_MAX_ORDER: &str = "meterflow.thd_max_order";
    pub const HARMONIC_GROUPING: &str = "meterflow.harmonic_grouping";
    pub const INTERHARMONIC_GROUPING: &str = "meterflow.interharmonic_grouping";
    pub const NOMINAL_FREQUENCY_HZ: &str = "meterflow.nominal_frequency_hz";
    pub const MEASURES: &str = "meterflow.measures";
}

/// The timestamp type of every time column.
pub fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Whether pyarrow, DuckDB and polars all read `data_type` without casts
/// or extensions: Utf8, Int64/UInt64/Int32, Float64/Float32, Boolean,
/// Timestamp(ns, UTC) and List<Float64>.
pub fn is_portable_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8
        | DataType::Int64
        | DataType::UInt64
        | DataType::Int32
        | DataType::Float64
        | DataType::Float32
        | DataType::Boolean => true,
        DataType::Timestamp(TimeUnit::Nanosecond, Some(tz)) => tz.as_ref() == "UTC",
        DataType::List(item) => item.data_type() == &DataType::Float64,
        _ => false,
    }
}

/// The key-value metadata of one file of `table`; tables holding THD values
/// also record H and the grouping (IEC 61000-4-7 asks for both).
pub fn file_metadata(
    table: &str,
    info: &DatasetInfo,
    with_thd: bool,
    extra: &[(&str, String)],
) -> Vec<KeyValue> {
    let mut kv = vec![
        KeyValue::new(keys::SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
        KeyValue::new(
            keys::METERFLOW_VERSION.into(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        KeyValue::new(keys::TABLE.into(), table.to_string()),
        KeyValue::new(keys::SOURCE.into(), info.source.clone()),
        KeyValue::new(keys::PIPELINE.into(), info.pipeline.clone()),
    ];
    if with_thd {
        kv.push(KeyValue::new(
            keys::THD_MAX_ORDER.into(),
            info.thd_max_order.to_string(),
        ));
        kv.push(KeyValue::new(
            keys::HARMONIC_GROUPING.into(),
            crate::model::window::HARMONIC_GROUPING.to_string(),
        ));
        kv.push(KeyValue::new(
            keys::INTERHARMONIC_GROUPING.into(),
            crate::model::window::INTERHARMONIC_GROUPING.to_string(),
        ));
        kv.push(KeyValue::new(
            keys::NOMINAL_FREQUENCY_HZ.into(),
            info.nominal_frequency_hz
                .map_or_else(|| "inferred per meter".to_string(), |hz| hz.to_string()),
        ));
    }
    kv.extend(
        extra
            .iter()
            .map(|(k, v)| KeyValue::new((*k).to_string(), v.clone())),
    );
    kv
}

type Getter<R, T> = Box<dyn Fn(&R) -> Option<T> + Send + Sync>;

/// How one column reads its value from a row.
pub(crate) enum ColumnValues<R> {
    Utf8(fn(&R) -> Option<&str>),
    UInt64(Getter<R, u64>),
    Int64(Getter<R, i64>),
    Int32(Getter<R, i32>),
    Float64(Getter<R, f64>),
    Boolean(Getter<R, bool>),
    Timestamp(Getter<R, i64>),
    ListFloat64(fn(&R) -> Option<&[f64]>),
}

impl<R> ColumnValues<R> {
    fn data_type(&self) -> DataType {
        match self {
            ColumnValues::Utf8(_) => DataType::Utf8,
            ColumnValues::UInt64(_) => DataType::UInt64,
            ColumnValues::Int64(_) => DataType::Int64,
            ColumnValues::Int32(_) => DataType::Int32,
            ColumnValues::Float64(_) => DataType::Float64,
            ColumnValues::Boolean(_) => DataType::Boolean,
            ColumnValues::Timestamp(_) => utc_timestamp(),
            ColumnValues::ListFloat64(_) => {
                DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
            }
        }
    }

    fn build(&self, rows: &[&R]) -> ArrayRef {
        match self {
            ColumnValues::Utf8(get) => {
                Arc::new(rows.iter().map(|r| get(r)).collect::<StringArray>())
            }
            ColumnValues::UInt64(get) => {
                Arc::new(rows.iter().map(|r| get(r)).collect::<UInt64Array>())
            }
            ColumnValues::Int64(get) => {
                Arc::new(rows.iter().map(|r| get(r)).collect::<Int64Array>())
            }
            ColumnValues::Int32(get) => {
                Arc::new(rows.iter().map(|r| get(r)).collect::<Int32Array>())
            }
            ColumnValues::Float64(get) => {
                Arc::new(rows.iter().map(|r| get(r)).collect::<Float64Array>())
            }
            ColumnValues::Boolean(get) => {
                Arc::new(rows.iter().map(|r| get(r)).collect::<BooleanArray>())
            }
            ColumnValues::Timestamp(get) => Arc::new(
                rows.iter()
                    .map(|r| get(r))
                    .collect::<TimestampNanosecondArray>()
                    .with_timezone("UTC"),
            ),
            ColumnValues::ListFloat64(get) => {
                let mut builder = ListBuilder::new(Float64Builder::new());
                for row in rows {
                    match get(row) {
                        Some(values) => {
                            builder.values().append_slice(values);
                            builder.append(true);
                        }
                        None => builder.append(false),
                    }
                }
                Arc::new(builder.finish())
            }
        }
    }
}

/// One column: its name, whether it may be null, where its values come from.
pub(crate) struct ColumnSpec<R> {
    pub name: String,
    pub nullable: bool,
    pub values: ColumnValues<R>,
}

impl<R> ColumnSpec<R> {
    /// A column that is never null.
    pub fn required(name: impl Into<String>, values: ColumnValues<R>) -> Self {
        ColumnSpec {
            name: name.into(),
            nullable: false,
            values,
        }
    }

    /// A column that may be null (a phase the layout lacks, an undefined ratio).
    pub fn optional(name: impl Into<String>, values: ColumnValues<R>) -> Self {
        ColumnSpec {
            name: name.into(),
            nullable: true,
            values,
        }
    }
}

/// Shorthands for getters, so table files read as column lists.
pub(crate) fn f64_col<R, F>(get: F) -> ColumnValues<R>
where
    F: Fn(&R) -> Option<f64> + Send + Sync + 'static,
{
    ColumnValues::Float64(Box::new(get))
}

pub(crate) fn u64_col<R, F>(get: F) -> ColumnValues<R>
where
    F: Fn(&R) -> Option<u64> + Send + Sync + 'static,
{
    ColumnValues::UInt64(Box::new(get))
}

pub(crate) fn i64_col<R, F>(get: F) -> ColumnValues<R>
where
    F: Fn(&R) -> Option<i64> + Send + Sync + 'static,
{
    ColumnValues::Int64(Box::new(get))
}

pub(crate) fn i32_col<R, F>(get: F) -> ColumnValues<R>
where
    F: Fn(&R) -> Option<i32> + Send + Sync + 'static,
{
    ColumnValues::Int32(Box::new(get))
}

pub(crate) fn bool_col<R, F>(get: F) -> ColumnValues<R>
where
    F: Fn(&R) -> Option<bool> + Send + Sync + 'static,
{
    ColumnValues::Boolean(Box::new(get))
}

pub(crate) fn time_col<R, F>(get: F) -> ColumnValues<R>
where
    F: Fn(&R) -> Option<i64> + Send + Sync + 'static,
{
    ColumnValues::Timestamp(Box::new(get))
}

/// Rows that belong to one device.
pub(crate) trait DeviceRow {
    fn device(&self) -> &DeviceInfo;
}

/// Rows that know their `device=` partition; telemetry rows have no
/// [`DeviceInfo`] (no meter layout), so the writer only asks for this.
pub(crate) trait PartitionRow {
    fn partition(&self) -> &str;
}

impl<R: DeviceRow> PartitionRow for R {
    fn partition(&self) -> &str {
        &self.device().name
    }
}

/// The identity columns every table starts with: `device`, `device_id`, `measures`.
pub(crate) fn device_columns<R: DeviceRow + 'static>() -> Vec<ColumnSpec<R>> {
    vec![
        ColumnSpec::required("device", ColumnValues::Utf8(|r: &R| Some(&r.device().name))),
        ColumnSpec::required("device_id", u64_col(|r: &R| Some(r.device().id))),
        ColumnSpec::required(
            "measures",
            ColumnValues::Utf8(|r: &R| Some(r.device().measures.as_str())),
        ),
    ]
}

/// A table's columns and the schema they make.
pub(crate) struct TableSpec<R> {
    pub table: &'static str,
    columns: Vec<ColumnSpec<R>>,
    schema: SchemaRef,
}

impl<R> TableSpec<R> {
    pub fn new(table: &'static str, columns: Vec<ColumnSpec<R>>) -> Self {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(c.name.clone(), c.values.data_type(), c.nullable))
            .collect();
        TableSpec {
            table,
            columns,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// One batch of `rows`, column by column.
    pub fn build(&self, rows: &[&R]) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.columns.iter().map(|c| c.values.build(rows)).collect();
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|source| {
            ParquetSinkError::Arrow {
                table: self.table,
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_types_are_the_agreed_set() {
        assert!(is_portable_type(&utc_timestamp()));
        assert!(is_portable_type(&DataType::List(Arc::new(Field::new(
            "item",
            DataType::Float64,
            true
        )))));
        assert!(!is_portable_type(&DataType::UInt32));
        assert!(!is_portable_type(&DataType::Timestamp(
            TimeUnit::Nanosecond,
            None
        )));
        assert!(!is_portable_type(&DataType::Float16));
    }
}
