//! Reading Parquet files back, for the table tests: every cell of every row
//! as a comparable value.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray,
    StringArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    F64(f64),
    F32(f32),
    U64(u64),
    I64(i64),
    I32(i32),
    Bool(bool),
    Str(String),
    Ts(i64),
    List(Vec<f64>),
}

pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

pub fn read_file(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn cell(array: &dyn Array, i: usize) -> Cell {
    if array.is_null(i) {
        return Cell::Null;
    }
    let any = array.as_any();
    match array.data_type() {
        DataType::Float64 => Cell::F64(
            any.downcast_ref::<Float64Array>()
                .map_or(f64::NAN, |a| a.value(i)),
        ),
        DataType::Float32 => Cell::F32(
            any.downcast_ref::<Float32Array>()
                .map_or(f32::NAN, |a| a.value(i)),
        ),
        DataType::UInt64 => Cell::U64(any.downcast_ref::<UInt64Array>().map_or(0, |a| a.value(i))),
        DataType::Int64 => Cell::I64(any.downcast_ref::<Int64Array>().map_or(0, |a| a.value(i))),
        DataType::Int32 => Cell::I32(any.downcast_ref::<Int32Array>().map_or(0, |a| a.value(i))),
        DataType::Boolean => Cell::Bool(
            any.downcast_ref::<BooleanArray>()
                .is_some_and(|a| a.value(i)),
        ),
        DataType::Utf8 => Cell::Str(
            any.downcast_ref::<StringArray>()
                .map_or(String::new(), |a| a.value(i).to_string()),
        ),
        DataType::Timestamp(_, _) => Cell::Ts(
            any.downcast_ref::<TimestampNanosecondArray>()
                .map_or(0, |a| a.value(i)),
        ),
        DataType::List(_) => {
            let list = any
                .downcast_ref::<ListArray>()
                .unwrap_or_else(|| panic!("list"));
            let values = list.value(i);
            Cell::List(
                values
                    .as_primitive::<arrow::datatypes::Float64Type>()
                    .values()
                    .to_vec(),
            )
        }
        other => panic!("unexpected type {other}"),
    }
}

/// Every row of every file under `dir`, as column name → cell, in file order.
pub fn read_rows(dir: &Path) -> Vec<BTreeMap<String, Cell>> {
    let mut rows = Vec::new();
    for path in parquet_files(dir) {
        for batch in read_file(&path) {
            let schema = batch.schema();
            for i in 0..batch.num_rows() {
                rows.push(
                    schema
                        .fields()
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), i)))
                        .collect(),
                );
            }
        }
    }
    rows
}

pub fn column_names(dir: &Path) -> BTreeSet<String> {
    let files = parquet_files(dir);
    let first = files
        .first()
        .unwrap_or_else(|| panic!("no files in {}", dir.display()));
    read_file(first)[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

pub fn f(x: Option<f64>) -> Cell {
    x.map_or(Cell::Null, Cell::F64)
}
