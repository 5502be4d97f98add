//! The raw archive's parallel column writer: from the same batches and
//! properties it writes the row groups `ArrowWriter` writes, chunk for
//! chunk byte for byte (pages cut at the same rows, dictionary pages first,
//! for strings on the Arrow path and for integers on the typed path alike);
//! a column holding one value in a row group is the chunk `ArrowWriter`
//! writes for that row group handed over as one batch (reused for the next
//! row group of the value, re-encoded for another value, and given up as
//! soon as a second value shows); the file reads back value for value
//! against the analytic signal, and a batch of another schema is an error,
//! not a panic.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float32Array, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use meterflow::sink::parquet::parallel_writer::ParallelArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnPath;

/// 2023-11-15T00:00:00Z.
const T0_NS: i64 = 1_700_006_400_000_000_000;
const RATE_HZ: f64 = 8000.0;
const PERIOD_NS: i64 = 125_000;
const ROW_GROUP_ROWS: usize = 12_000;
/// Batch sizes: row groups end inside batches and across them, and one
/// batch is longer than the writer's leaf slices (8 mini-batches of 1024).
const BATCHES: [usize; 7] = [1000, 2500, 20_000, 1, 3000, 9000, 777];
/// Rows per data page: several pages per column chunk.
const PAGE_ROWS: usize = 5000;

fn schema() -> SchemaRef {
    let utc = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("time", utc, false),
        Field::new("device", DataType::Utf8, false),
        Field::new("device_id", DataType::UInt64, false),
        Field::new("rate_hz", DataType::Int64, false),
        Field::new("sample_index", DataType::UInt64, false),
        Field::new("v_l1", DataType::Float32, false),
        Field::new("i_l1", DataType::Float32, false),
    ]))
}

/// The archive's encodings; `dictionaries`: also on `device`, `device_id`
/// and `rate_hz`, so the dictionary page's place in the chunk is checked.
fn properties(dictionaries: bool) -> WriterProperties {
    let level = ZstdLevel::try_new(3).unwrap_or_else(|e| panic!("{e}"));
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_column_dictionary_enabled(ColumnPath::from("device"), dictionaries)
        .set_column_dictionary_enabled(ColumnPath::from("device_id"), dictionaries)
        .set_column_dictionary_enabled(ColumnPath::from("rate_hz"), dictionaries);
    for name in ["v_l1", "i_l1"] {
        builder = builder.set_column_encoding(ColumnPath::from(name), Encoding::BYTE_STREAM_SPLIT);
    }
    for name in ["time", "sample_index"] {
        builder =
            builder.set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    builder.build()
}

/// The device id: above `i64::MAX`, so its reinterpretation as Parquet's
/// INT64 shows.
const DEVICE_ID: u64 = u64::MAX - 41;

/// The device name: `m1`, then from the third row group `m2`, so a whole
/// row group of as many rows holds another value.
fn device_of(n: u64) -> &'static str {
    if n < 2 * ROW_GROUP_ROWS as u64 {
        "m1"
    } else {
        "m2"
    }
}

/// The device id: changes inside the second row group (and inside a batch).
fn device_id_of(n: u64) -> u64 {
    if n < 18_000 {
        DEVICE_ID
    } else {
        DEVICE_ID - 1
    }
}

/// Sample `n` of a 50 Hz voltage and a current with a 3rd harmonic, with
/// a NaN payload, -0.0, an infinity and a subnormal planted.
fn analytic(n: u64) -> (f32, f32) {
    let phase = 2.0 * std::f64::consts::PI * 50.0 * n as f64 / RATE_HZ;
    let v = (325.0 * phase.sin()) as f32;
    let i = (28.0 * (phase - 0.5).sin() + 2.8 * (3.0 * (phase - 0.5)).sin()) as f32;
    match n {
        17 => (f32::from_bits(0x7fc0_1234), i),
        18 => (-0.0, i),
        19 => (v, f32::INFINITY),
        20 => (f32::MIN_POSITIVE / 2.0, i),
        _ => (v, i),
    }
}

fn batch(first: u64, len: usize) -> RecordBatch {
    let index: Vec<u64> = (first..first + len as u64).collect();
    let time: Vec<i64> = index
        .iter()
        .map(|&n| T0_NS + n as i64 * PERIOD_NS)
        .collect();
    let (v, i): (Vec<f32>, Vec<f32>) = index.iter().map(|&n| analytic(n)).unzip();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(time).with_timezone("UTC")),
        Arc::new(StringArray::from(
            index.iter().map(|&n| device_of(n)).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from(
            index.iter().map(|&n| device_id_of(n)).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(vec![RATE_HZ as i64; len])),
        Arc::new(UInt64Array::from(index)),
        Arc::new(Float32Array::from(v)),
        Arc::new(Float32Array::from(i)),
    ];
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|e| panic!("{e}"))
}

fn batches(lengths: &[usize]) -> Vec<RecordBatch> {
    let mut first = 0;
    lengths
        .iter()
        .map(|&len| {
            let b = batch(first, len);
            first += len as u64;
            b
        })
        .collect()
}

fn create(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .unwrap_or_else(|| panic!("column {name}"))
}

/// Writes `batches` with `ArrowWriter` to `path`.
fn serial_file(path: &Path, batches: &[RecordBatch], dictionaries: bool) {
    let mut serial = ArrowWriter::try_new(create(path), schema(), Some(properties(dictionaries)))
        .unwrap_or_else(|e| panic!("{e}"));
    for b in batches {
        serial.write(b).unwrap_or_else(|e| panic!("{e}"));
    }
    serial.finish().unwrap_or_else(|e| panic!("{e}"));
}

/// The bytes of every column chunk, per row group.
fn chunks(path: &Path) -> Vec<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let reader = SerializedFileReader::new(File::open(path).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    reader
        .metadata()
        .row_groups()
        .iter()
        .map(|group| {
            group
                .columns()
                .iter()
                .map(|chunk| {
                    let (start, len) = chunk.byte_range();
                    bytes[start as usize..(start + len) as usize].to_vec()
                })
                .collect()
        })
        .collect()
}

#[test]
fn parallel_file_is_the_serial_file_and_reads_back_the_signal() {
    for dictionaries in [true, false] {
        parallel_file_is_the_serial_file(dictionaries);
    }
}

fn parallel_file_is_the_serial_file(dictionaries: bool) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let serial_path = dir.path().join("serial.parquet");
    let whole_path = dir.path().join("whole.parquet");
    let parallel_path = dir.path().join("parallel.parquet");

    let total: usize = BATCHES.iter().sum();
    serial_file(&serial_path, &batches(&BATCHES), dictionaries);
    // The same rows handed over a row group at a time.
    let whole_groups: Vec<usize> = (0..total.div_ceil(ROW_GROUP_ROWS))
        .map(|g| (total - g * ROW_GROUP_ROWS).min(ROW_GROUP_ROWS))
        .collect();
    serial_file(&whole_path, &batches(&whole_groups), dictionaries);

    let mut parallel =
        ParallelArrowWriter::try_new(create(&parallel_path), schema(), properties(dictionaries))
            .unwrap_or_else(|e| panic!("{e}"));
    for b in batches(&BATCHES) {
        parallel.write(&b).unwrap_or_else(|e| panic!("{e}"));
    }
    parallel.finish().unwrap_or_else(|e| panic!("{e}"));
    drop(parallel);

    // Per row group, the columns that hold one value there: `device` and
    // `rate_hz` always, `device_id` but in the second.
    let serial_chunks = chunks(&serial_path);
    let whole_chunks = chunks(&whole_path);
    let parallel_chunks = chunks(&parallel_path);
    assert_eq!(parallel_chunks.len(), whole_groups.len());
    for (g, parallel_group) in parallel_chunks.iter().enumerate() {
        for (c, chunk) in parallel_group.iter().enumerate() {
            let constant = matches!(c, 1 | 3) || (c == 2 && g != 1);
            let expected = if constant {
                &whole_chunks[g][c]
            } else {
                &serial_chunks[g][c]
            };
            assert!(
                chunk == expected,
                "row group {g} column {c} (constant: {constant}, dictionaries: {dictionaries}) differs"
            );
        }
    }

    let reader =
        SerializedFileReader::new(File::open(&parallel_path).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    let groups: Vec<i64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    let expected_groups: Vec<i64> = (0..total.div_ceil(ROW_GROUP_ROWS))
        .map(|g| (total - g * ROW_GROUP_ROWS).min(ROW_GROUP_ROWS) as i64)
        .collect();
    assert_eq!(groups, expected_groups);
    for (column, name) in [(1, "device"), (2, "device_id"), (3, "rate_hz")] {
        for group in reader.metadata().row_groups() {
            assert_eq!(
                group.column(column).dictionary_page_offset().is_some(),
                dictionaries,
                "{name} keeps its dictionary (or none)"
            );
        }
    }

    let file = File::open(&parallel_path).unwrap_or_else(|e| panic!("{e}"));
    let mut row = 0u64;
    for read in ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{e}"))
    {
        let read = read.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.schema().fields(), schema().fields());
        let time = column::<TimestampNanosecondArray>(&read, "time");
        let device = column::<StringArray>(&read, "device");
        let device_id = column::<UInt64Array>(&read, "device_id");
        let rate = column::<Int64Array>(&read, "rate_hz");
        let index = column::<UInt64Array>(&read, "sample_index");
        let v = column::<Float32Array>(&read, "v_l1");
        let i = column::<Float32Array>(&read, "i_l1");
        for r in 0..read.num_rows() {
            let (want_v, want_i) = analytic(row);
            assert_eq!(index.value(r), row);
            assert_eq!(time.value(r), T0_NS + row as i64 * PERIOD_NS, "row {row}");
            assert_eq!(device.value(r), device_of(row), "row {row}");
            assert_eq!(device_id.value(r), device_id_of(row), "row {row}");
            assert_eq!(rate.value(r), RATE_HZ as i64);
            assert_eq!(v.value(r).to_bits(), want_v.to_bits(), "v_l1 row {row}");
            assert_eq!(i.value(r).to_bits(), want_i.to_bits(), "i_l1 row {row}");
            row += 1;
        }
    }
    assert_eq!(row, total as u64, "every row exactly once");
}

#[test]
fn a_batch_of_another_schema_is_an_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("file.parquet");
    let mut writer = ParallelArrowWriter::try_new(create(&path), schema(), properties(false))
        .unwrap_or_else(|e| panic!("{e}"));
    writer
        .write(&batch(0, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "v_l1",
            DataType::Float32,
            false,
        )])),
        vec![Arc::new(Float32Array::from(vec![1.0f32; 4])) as ArrayRef],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = writer
        .write(&other)
        .err()
        .unwrap_or_else(|| panic!("a batch of another schema was accepted"));
    assert!(err.to_string().contains("schema"), "{err}");
    // The rows written before still make a readable file.
    writer.finish().unwrap_or_else(|e| panic!("{e}"));
    let reader = SerializedFileReader::new(File::open(&path).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reader.metadata().file_metadata().num_rows(), 10);
}
