//! Reads the column chunks of a small Parquet file held in memory with one
//! zstd context per thread. parquet's own page reader builds a compression
//! and a decompression context for every column chunk it opens: with a
//! fleet's thousands of files of a few rows each, that was a third of a
//! report's time. Anything this reader does not handle (other codecs,
//! index pages, a header it cannot parse) makes `reader` return
//! `None`, and the caller takes parquet's own path, which reports the error.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, RowGroups};
use parquet::arrow::{parquet_to_arrow_field_levels, ProjectionMask};
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{Page, PageIterator, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result as PqResult};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};

/// Files up to this size are read whole, in one read.
pub const SMALL_FILE: u64 = 8 << 20;

thread_local! {
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// A record batch reader of the `mask` columns of `file` (the whole file's
/// bytes; `metadata` its footer); `None` where parquet's reader is needed.
pub fn reader(
    file: &Bytes,
    metadata: &Arc<ParquetMetaData>,
    mask: ProjectionMask,
    batch_size: usize,
) -> Option<ParquetRecordBatchReader> {
    let schema = metadata.file_metadata().schema_descr();
    let mut chunks = BTreeMap::new();
    for leaf in (0..schema.num_columns()).filter(|&i| mask.leaf_included(i)) {
        let mut groups = Vec::with_capacity(metadata.num_row_groups());
        for group in metadata.row_groups() {
            groups.push(chunk_pages(file, group, leaf)?);
        }
        chunks.insert(leaf, groups);
    }
    let levels = parquet_to_arrow_field_levels(schema, mask, None).ok()?;
    let groups = Prepared {
        metadata: metadata.clone(),
        chunks,
    };
    ParquetRecordBatchReader::try_new_with_row_groups(&levels, &groups, batch_size, None).ok()
}

/// Every page of column `leaf` in row group `group`, decompressed.
fn chunk_pages(file: &Bytes, group: &RowGroupMetaData, leaf: usize) -> Option<Vec<Page>> {
    let column = group.columns().get(leaf)?;
    let zstd = match column.compression() {
        Compression::UNCOMPRESSED => false,
        Compression::ZSTD(_) => true,
        _ => return None,
    };
    let (start, len) = column.byte_range();
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let bytes = file.get(start..end)?;
    let mut pages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let mut input = Compact {
            bytes,
            at,
            depth: 0,
        };
        let header = page_header(&mut input)?;
        let body_start = input.at;
        let body_end = body_start.checked_add(usize::try_from(header.compressed).ok()?)?;
        let body = file.slice(start + body_start..start + body_end.min(bytes.len()));
        if body.len() != body_end - body_start {
            return None;
        }
        at = body_end;
        pages.push(page(header, body, zstd)?);
    }
    Some(pages)
}

fn page(header: Header, body: Bytes, zstd: bool) -> Option<Page> {
    let size = usize::try_from(header.uncompressed).ok()?;
    let (levels, compressed) = match &header.kind {
        Kind::DataV2 {
            def_len,
            rep_len,
            is_compressed,
            ..
        } => (
            usize::try_from(i64::from(*def_len) + i64::from(*rep_len)).ok()?,
            *is_compressed,
        ),
        _ => (0, true),
    };
    let buf = if zstd && compressed {
        if levels > body.len() || levels > size {
            return None;
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&body[..levels]);
        // A page of nulls only has no values to decompress.
        if size > levels {
            decompress(&body[levels..], size - levels, &mut out)?;
        }
        if out.len() != size {
            return None;
        }
        Bytes::from(out)
    } else {
        body
    };
    let count = |v: i32| u32::try_from(v).ok();
    Some(match header.kind {
        Kind::Dictionary {
            values,
            encoding,
            sorted,
        } => Page::DictionaryPage {
            buf,
            num_values: count(values)?,
            encoding: encoding_of(encoding)?,
            is_sorted: sorted,
        },
        Kind::Data {
            values,
            encoding,
            def,
            rep,
        } => Page::DataPage {
            buf,
            num_values: count(values)?,
            encoding: encoding_of(encoding)?,
            def_level_encoding: encoding_of(def)?,
            rep_level_encoding: encoding_of(rep)?,
            statistics: None,
        },
        Kind::DataV2 {
            values,
            nulls,
            rows,
            encoding,
            def_len,
            rep_len,
            is_compressed,
        } => Page::DataPageV2 {
            buf,
            num_values: count(values)?,
            encoding: encoding_of(encoding)?,
            num_nulls: count(nulls)?,
            num_rows: count(rows)?,
            def_levels_byte_len: count(def_len)?,
            rep_levels_byte_len: count(rep_len)?,
            is_compressed,
            statistics: None,
        },
    })
}

fn decompress(input: &[u8], size: usize, out: &mut Vec<u8>) -> Option<()> {
    ZSTD.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new().ok()?);
        }
        let decompressor = cell.as_mut()?;
        let offset = out.len();
        out.reserve(size);
        let mut cursor = Cursor::new(out);
        cursor.set_position(offset as u64);
        decompressor.decompress_to_buffer(input, &mut cursor).ok()?;
        Some(())
    })
}

#[allow(deprecated)]
fn encoding_of(value: i32) -> Option<Encoding> {
    Some(match value {
        0 => Encoding::PLAIN,
        2 => Encoding::PLAIN_DICTIONARY,
        3 => Encoding::RLE,
        4 => Encoding::BIT_PACKED,
        5 => Encoding::DELTA_BINARY_PACKED,
        6 => Encoding::DELTA_LENGTH_BYTE_ARRAY,
        7 => Encoding::DELTA_BYTE_ARRAY,
        8 => Encoding::RLE_DICTIONARY,
        9 => Encoding::BYTE_STREAM_SPLIT,
        10 => Encoding::ALP,
        _ => return None,
    })
}

/// A page header: sizes and what its kind says.
struct Header {
    uncompressed: i32,
    compressed: i32,
    kind: Kind,
}

enum Kind {
    Data {
        values: i32,
        encoding: i32,
        def: i32,
        rep: i32,
    },
    Dictionary {
        values: i32,
        encoding: i32,
        sorted: bool,
    },
    DataV2 {
        values: i32,
        nulls: i32,
        rows: i32,
        encoding: i32,
        def_len: i32,
        rep_len: i32,
        is_compressed: bool,
    },
}

/// Thrift's compact protocol, as much of it as a page header needs.
struct Compact<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const I32: u8 = 5;
const STRUCT: u8 = 12;

impl Compact<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Option<i32> {
        i32::try_from(self.zigzag()?).ok()
    }

    /// The next field of a struct: (id, type), `None` at its end.
    fn field(&mut self, last: &mut i16) -> Option<Option<(i16, u8)>> {
        let b = self.byte()?;
        let kind = b & 0x0f;
        if kind == STOP {
            return Some(None);
        }
        let delta = i16::from(b >> 4);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).ok()?
        } else {
            last.checked_add(delta)?
        };
        *last = id;
        Some(Some((id, kind)))
    }

    fn skip(&mut self, kind: u8) -> Option<()> {
        match kind {
            TRUE | FALSE => {}
            3 => self.at += 1,
            4..=6 => {
                self.varint()?;
            }
            7 => self.at += 8,
            8 => {
                let len = usize::try_from(self.varint()?).ok()?;
                self.at = self.at.checked_add(len)?;
            }
            9 | 10 => {
                let b = self.byte()?;
                let size = match b >> 4 {
                    15 => usize::try_from(self.varint()?).ok()?,
                    n => usize::from(n),
                };
                let element = b & 0x0f;
                for _ in 0..size {
                    self.element(element)?;
                }
            }
            11 => {
                let size = usize::try_from(self.varint()?).ok()?;
                if size > 0 {
                    let b = self.byte()?;
                    for _ in 0..size {
                        self.element(b >> 4)?;
                        self.element(b & 0x0f)?;
                    }
                }
            }
            STRUCT => self.skip_struct()?,
            _ => return None,
        }
        (self.at <= self.bytes.len()).then_some(())
    }

    /// A list or map element: booleans there take a byte each.
    fn element(&mut self, kind: u8) -> Option<()> {
        if kind == TRUE || kind == FALSE {
            self.byte().map(|_| ())
        } else {
            self.skip(kind)
        }
    }

    fn skip_struct(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > 32 {
            return None;
        }
        let mut last = 0;
        while let Some((_, kind)) = self.field(&mut last)? {
            self.skip(kind)?;
        }
        self.depth -= 1;
        Some(())
    }

    /// The i32 fields 1..=`required` of a struct (all of them there) and
    /// its booleans (field id → value); everything else is skipped.
    fn ints(&mut self, required: usize) -> Option<([i32; 8], BTreeMap<i16, bool>)> {
        let mut ints = [0; 8];
        let mut seen = [false; 8];
        let mut bools = BTreeMap::new();
        let mut last = 0;
        while let Some((id, kind)) = self.field(&mut last)? {
            match kind {
                I32 if (1..=8).contains(&id) => {
                    let k = usize::try_from(id - 1).ok()?;
                    ints[k] = self.i32()?;
                    seen[k] = true;
                }
                TRUE => {
                    bools.insert(id, true);
                }
                FALSE => {
                    bools.insert(id, false);
                }
                _ => self.skip(kind)?,
            }
        }
        seen[..required].iter().all(|&s| s).then_some((ints, bools))
    }
}

/// Parquet's `PageHeader`: type 1, uncompressed size 2, compressed size 3,
/// and the data (5), dictionary (7) or data v2 (8) header.
fn page_header(input: &mut Compact) -> Option<Header> {
    let (mut kind_id, mut uncompressed, mut compressed) = (None, None, None);
    let mut kind = None;
    let mut last = 0;
    while let Some((id, field)) = input.field(&mut last)? {
        match (id, field) {
            (1, I32) => kind_id = Some(input.i32()?),
            (2, I32) => uncompressed = Some(input.i32()?),
            (3, I32) => compressed = Some(input.i32()?),
            (5, STRUCT) => {
                let (v, _) = input.ints(4)?;
                kind = Some(Kind::Data {
                    values: v[0],
                    encoding: v[1],
                    def: v[2],
                    rep: v[3],
                });
            }
            (7, STRUCT) => {
                let (v, b) = input.ints(2)?;
                kind = Some(Kind::Dictionary {
                    values: v[0],
                    encoding: v[1],
                    sorted: b.get(&3).copied().unwrap_or(false),
                });
            }
            (8, STRUCT) => {
                let (v, b) = input.ints(6)?;
                kind = Some(Kind::DataV2 {
                    values: v[0],
                    nulls: v[1],
                    rows: v[2],
                    encoding: v[3],
                    def_len: v[4],
                    rep_len: v[5],
                    // Absent means compressed.
                    is_compressed: b.get(&7).copied().unwrap_or(true),
                });
            }
            _ => input.skip(field)?,
        }
    }
    let kind = kind?;
    // The kind must be the one the header says (0 data, 2 dictionary, 3 v2).
    let matches = matches!(
        (kind_id?, &kind),
        (0, Kind::Data { .. }) | (2, Kind::Dictionary { .. }) | (3, Kind::DataV2 { .. })
    );
    matches.then_some(Header {
        uncompressed: uncompressed?,
        compressed: compressed?,
        kind,
    })
}

/// The decompressed pages of the projected columns, one list per row group.
struct Prepared {
    metadata: Arc<ParquetMetaData>,
    chunks: BTreeMap<usize, Vec<Vec<Page>>>,
}

impl RowGroups for Prepared {
    fn num_rows(&self) -> usize {
        usize::try_from(self.metadata.file_metadata().num_rows()).unwrap_or(0)
    }

    fn column_chunks(&self, i: usize) -> PqResult<Box<dyn PageIterator>> {
        let groups = self
            .chunks
            .get(&i)
            .ok_or_else(|| ParquetError::General(format!("column {i} was not prepared")))?;
        let readers: Vec<PqResult<Box<dyn PageReader>>> = groups
            .iter()
            .map(|pages| {
                Ok(Box::new(Pages {
                    pages: pages.clone().into(),
                }) as Box<dyn PageReader>)
            })
            .collect();
        Ok(Box::new(Chunks(readers.into_iter())))
    }

    fn row_groups(&self) -> Box<dyn Iterator<Item = &RowGroupMetaData> + '_> {
        Box::new(self.metadata.row_groups().iter())
    }

    fn metadata(&self) -> &ParquetMetaData {
        &self.metadata
    }
}

struct Chunks(std::vec::IntoIter<PqResult<Box<dyn PageReader>>>);

impl Iterator for Chunks {
    type Item = PqResult<Box<dyn PageReader>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl PageIterator for Chunks {}

/// One column chunk's pages.
struct Pages {
    pages: std::collections::VecDeque<Page>,
}

impl Iterator for Pages {
    type Item = PqResult<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for Pages {
    fn get_next_page(&mut self) -> PqResult<Option<Page>> {
        Ok(self.pages.pop_front())
    }

    fn peek_next_page(&mut self) -> PqResult<Option<PageMetadata>> {
        Ok(self.pages.front().map(|page| match page {
            Page::DataPage { num_values, .. } => PageMetadata {
                num_rows: None,
                num_levels: Some(*num_values as usize),
                is_dict: false,
            },
            Page::DataPageV2 {
                num_values,
                num_rows,
                ..
            } => PageMetadata {
                num_rows: Some(*num_rows as usize),
                num_levels: Some(*num_values as usize),
                is_dict: false,
            },
            Page::DictionaryPage { .. } => PageMetadata {
                num_rows: None,
                num_levels: None,
                is_dict: true,
            },
        }))
    }

    fn skip_next_page(&mut self) -> PqResult<()> {
        self.pages.pop_front();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Float64Type, Schema};
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{WriterProperties, WriterVersion};

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("v", DataType::Float64, true),
            Field::new("kind", DataType::Utf8, true),
            Field::new(
                "list",
                DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
                true,
            ),
        ]));
        let t = Int64Array::from_iter_values((0..rows).map(|i| i as i64 * 7));
        let v: Float64Array = (0..rows)
            .map(|i| (i % 5 != 0).then_some(i as f64 * 0.5))
            .collect();
        let kind: StringArray = (0..rows)
            .map(|i| (i % 3 != 0).then(|| ["dip", "swell", "gap"][i % 3]))
            .collect();
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>(
            (0..rows).map(|i| (i % 4 != 0).then(|| vec![Some(i as f64); i % 3])),
        );
        let columns: Vec<ArrayRef> = vec![Arc::new(t), Arc::new(v), Arc::new(kind), Arc::new(list)];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn file(props: WriterProperties, rows: usize) -> Bytes {
        let data = batch(rows);
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, data.schema(), Some(props)).unwrap();
        writer.write(&data).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    /// Every projection of files with zstd and no compression, v1 and v2
    /// pages, dictionaries, several pages and row groups reads exactly as
    /// parquet's own reader reads it.
    #[test]
    fn pages_read_as_parquets_own_reader_reads_them() {
        let level = parquet::basic::ZstdLevel::try_new(3).unwrap();
        let mut cases = Vec::new();
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for compression in [Compression::ZSTD(level), Compression::UNCOMPRESSED] {
                for dictionary in [false, true] {
                    let props = WriterProperties::builder()
                        .set_writer_version(version)
                        .set_compression(compression)
                        .set_dictionary_enabled(dictionary)
                        .set_data_page_row_count_limit(100)
                        .set_write_batch_size(50)
                        .set_max_row_group_row_count(Some(700))
                        .build();
                    cases.push(file(props, 1000));
                }
            }
        }
        for bytes in cases {
            let metadata = ArrowReaderMetadata::load(&bytes, Default::default()).unwrap();
            let schema = metadata.parquet_schema();
            for roots in [vec![0], vec![0, 1], vec![2], vec![3], vec![0, 1, 2, 3]] {
                let mask = ProjectionMask::roots(schema, roots.clone());
                let ours: Vec<RecordBatch> = reader(&bytes, metadata.metadata(), mask.clone(), 300)
                    .expect("handled")
                    .map(|b| b.unwrap())
                    .collect();
                let theirs: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    bytes.clone(),
                    metadata.clone(),
                )
                .with_projection(mask)
                .with_batch_size(300)
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect();
                assert_eq!(ours, theirs, "{roots:?}");
                let rows: usize = ours.iter().map(RecordBatch::num_rows).sum();
                assert_eq!(rows, 1000);
            }
        }
    }

    #[test]
    fn a_damaged_page_header_takes_parquets_path() {
        let level = parquet::basic::ZstdLevel::try_new(3).unwrap();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .build();
        let bytes = file(props, 10);
        let metadata = ArrowReaderMetadata::load(&bytes, Default::default()).unwrap();
        assert!(reader(&bytes, metadata.metadata(), ProjectionMask::all(), 10).is_some());
        // The first page header (right after the magic) overwritten.
        let mut damaged = bytes.to_vec();
        damaged[4..12].fill(0xff);
        let damaged = Bytes::from(damaged);
        assert!(reader(&damaged, metadata.metadata(), ProjectionMask::all(), 10).is_none());
    }
}
