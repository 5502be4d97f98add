//! The optional `raw` table: the waveform archive. One row per sample
//! instant with one Float32 column per channel, named as the layout names
//! it (`v_l1`, `i_l1`, …), in SI units exactly as the decoder produced them.
//!
//! Sample columns use BYTE_STREAM_SPLIT + ZSTD at their own level with
//! dictionaries off (the encoding made for noisy floats) and no statistics
//! (a row group's extremes of a waveform say nothing a reader prunes by;
//! computing them was 3 % of the archive's encoding time); `time` and
//! `sample_index` use DELTA_BINARY_PACKED, so the per-row timestamps cost
//! almost nothing; the columns holding one value per file carry no
//! statistics either.
//! A file holds one layout: its schema depends on the device's `measures`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Float32Array, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Schema, SchemaRef, TimestampNanosecondType,
    UInt64Type,
};
use arrow::record_batch::RecordBatch;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use super::error::{ParquetSinkError, Result};
use super::schema::{keys, utc_timestamp};
use crate::model::DeviceInfo;
use crate::wire::samples::extend_sample_times;
use crate::wire::{Measures, SampleBlock};

pub const TABLE: &str = "raw";

/// Columns before the per-channel sample columns.
const FIXED_COLUMNS: usize = 7;

/// The Arrow schema of the `raw` table for one layout.
pub fn schema(measures: Measures) -> SchemaRef {
    let mut fields = vec![
        Field::new("time", utc_timestamp(), false),
        Field::new("device", DataType::Utf8, false),
        Field::new("device_id", DataType::UInt64, false),
        Field::new("measures", DataType::Utf8, false),
        Field::new("rate_hz", DataType::Int64, false),
        Field::new("stream_start", utc_timestamp(), false),
        Field::new("sample_index", DataType::UInt64, false),
    ];
    debug_assert_eq!(fields.len(), FIXED_COLUMNS);
    fields.extend(
        measures
            .channels()
            .iter()
            .map(|c| Field::new(c.name, DataType::Float32, false)),
    );
    let metadata = HashMap::from([(keys::MEASURES.to_string(), measures.as_str().to_string())]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// Encodings of the raw table's columns for a file of `schema`, its
/// sample columns compressed at `sample_zstd_level`.
pub(crate) fn column_properties(
    mut builder: WriterPropertiesBuilder,
    schema: &Schema,
    sample_zstd_level: ZstdLevel,
) -> WriterPropertiesBuilder {
    for field in schema.fields() {
        let name = field.name().as_str();
        let path = ColumnPath::from(name);
        let encoding = match field.data_type() {
            DataType::Float32 => {
                builder = builder
                    .set_column_compression(path.clone(), Compression::ZSTD(sample_zstd_level))
                    .set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
                Encoding::BYTE_STREAM_SPLIT
            }
            _ if matches!(name, "time" | "sample_index") => Encoding::DELTA_BINARY_PACKED,
            _ => {
                // One value per file, which its folder and metadata already
                // name: min/max statistics would only compare every row.
                builder = builder.set_column_statistics_enabled(path, EnabledStatistics::None);
                continue;
            }
        };
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, encoding);
    }
    builder
}

/// Samples of one device collected until there are enough for a batch
/// (wire chunks hold ~40 samples; encoding that few at a time is slow).
#[derive(Debug)]
pub(crate) struct RawBuffer {
    device: DeviceInfo,
    measures: Measures,
    rate: u32,
    stream_start_ns: i64,
    times: Vec<i64>,
    sample_index: Vec<u64>,
    channels: Vec<Vec<f32>>,
    /// The columns that repeat one value on every row (`device` through
    /// `stream_start`), built once for the longest batch so far; each batch
    /// takes a slice instead of building them again.
    constants: Vec<ArrayRef>,
    /// Vectors of a written batch taken back (see [`RawBuffer::recycle`]),
    /// empty, for the next batch.
    spare_times: Vec<i64>,
    spare_index: Vec<u64>,
    spare_channels: Vec<Vec<f32>>,
}

impl RawBuffer {
    pub fn new(device: DeviceInfo, block: &SampleBlock) -> Self {
        RawBuffer {
            device,
            measures: block.measures,
            rate: block.rate,
            stream_start_ns: block.start_unix_ns,
            times: Vec::new(),
            sample_index: Vec::new(),
            channels: vec![Vec::new(); block.measures.channel_count()],
            constants: Vec::new(),
            spare_times: Vec::new(),
            spare_index: Vec::new(),
            spare_channels: vec![Vec::new(); block.measures.channel_count()],
        }
    }

    /// Whether `block` continues this buffer's stream (same layout, rate, clock).
    pub fn accepts(&self, block: &SampleBlock) -> bool {
        block.measures == self.measures
            && block.rate == self.rate
            && block.start_unix_ns == self.stream_start_ns
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn push(&mut self, block: &SampleBlock) -> Result<()> {
        let len = block.len();
        if block.channels.len() != self.channels.len()
            || block.channels.iter().any(|c| c.len() != len)
        {
            return Err(ParquetSinkError::Config(format!(
                "raw block of device {:?} has channels of unequal length or the wrong count",
                self.device.name
            )));
        }
        let first = block.first_index;
        self.sample_index.extend(first..first + len as u64);
        extend_sample_times(&mut self.times, block.start_unix_ns, block.rate, first, len);
        for (dst, src) in self.channels.iter_mut().zip(&block.channels) {
            dst.extend_from_slice(src);
        }
        Ok(())
    }

    /// The buffered samples as a batch (and their times), leaving the buffer
    /// empty with room for as many again.
    pub fn take_batch(&mut self) -> Result<(RecordBatch, ScalarBuffer<i64>)> {
        let rows = self.len();
        let times = ScalarBuffer::from(refill(&mut self.times, &mut self.spare_times));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(FIXED_COLUMNS + self.channels.len());
        columns.push(Arc::new(
            TimestampNanosecondArray::new(times.clone(), None).with_timezone("UTC"),
        ));
        columns.extend(self.constant_columns(rows));
        columns.push(Arc::new(UInt64Array::from(refill(
            &mut self.sample_index,
            &mut self.spare_index,
        ))));
        for (channel, spare) in self.channels.iter_mut().zip(&mut self.spare_channels) {
            columns.push(Arc::new(Float32Array::from(refill(channel, spare))));
        }
        let batch = RecordBatch::try_new(schema(self.measures), columns).map_err(|source| {
            ParquetSinkError::Arrow {
                table: TABLE,
                source,
            }
        })?;
        Ok((batch, times))
    }

    /// Takes back the vectors of `batch` (from [`RawBuffer::take_batch`],
    /// with its `times`) once written, those nothing else holds: fresh
    /// megabytes for every batch cost more in page faults than the copy
    /// into them.
    pub fn recycle(&mut self, batch: RecordBatch, times: ScalarBuffer<i64>) {
        drop(times);
        let (_, columns, _) = batch.into_parts();
        let mut columns = columns.into_iter();
        if let Some(times) = columns.next() {
            put_back(
                &mut self.spare_times,
                reclaim::<TimestampNanosecondType>(times),
            );
        }
        let mut columns = columns.skip(FIXED_COLUMNS - 2);
        if let Some(index) = columns.next() {
            put_back(&mut self.spare_index, reclaim::<UInt64Type>(index));
        }
        for (spare, channel) in self.spare_channels.iter_mut().zip(columns) {
            put_back(spare, reclaim::<Float32Type>(channel));
        }
    }

    /// `device`, `device_id`, `measures`, `rate_hz` and `stream_start` for `rows` rows.
    fn constant_columns(&mut self, rows: usize) -> Vec<ArrayRef> {
        if self.constants.first().is_none_or(|c| c.len() < rows) {
            self.constants = vec![
                Arc::new(StringArray::from(vec![&*self.device.name; rows])),
                Arc::new(UInt64Array::from(vec![self.device.id; rows])),
                Arc::new(StringArray::from(vec![self.measures.as_str(); rows])),
                Arc::new(Int64Array::from(vec![i64::from(self.rate); rows])),
                Arc::new(
                    TimestampNanosecondArray::from(vec![self.stream_start_ns; rows])
                        .with_timezone("UTC"),
                ),
            ];
        }
        self.constants.iter().map(|c| c.slice(0, rows)).collect()
    }
}

/// The contents of `values`, leaving it empty with at least the same
/// capacity (the next batch fills it without growing it step by step):
/// `spare`'s when that is large enough.
fn refill<T>(values: &mut Vec<T>, spare: &mut Vec<T>) -> Vec<T> {
    let capacity = values.capacity();
    let next = if spare.capacity() >= capacity {
        std::mem::take(spare)
    } else {
        Vec::with_capacity(capacity)
    };
    std::mem::replace(values, next)
}

/// The vector behind a written column, when nothing else holds it.
fn reclaim<T: ArrowPrimitiveType>(column: ArrayRef) -> Option<Vec<T::Native>> {
    let values = column.as_primitive_opt::<T>()?.values().clone();
    drop(column);
    values.into_inner().into_vec().ok()
}

fn put_back<T>(spare: &mut Vec<T>, reclaimed: Option<Vec<T>>) {
    if let Some(mut values) = reclaimed {
        values.clear();
        *spare = values;
    }
}
