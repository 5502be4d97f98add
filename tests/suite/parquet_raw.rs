//! The raw waveform archive: samples read back bit-exactly (NaN payloads,
//! -0.0 and infinities included) with their index, time, rate and stream
//! start; sample columns are stored with BYTE_STREAM_SPLIT + ZSTD and no
//! dictionary; only `time` and `sample_index` carry statistics; a layout change starts a file of its own; samples after
//! midnight UTC go to the next date folder.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, Float32Array, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::record_batch::RecordBatch;
use meterflow::meter::signal::SignalConfig;
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::DeviceInfo;
use meterflow::sink::parquet::{DatasetInfo, DatasetWriter, ParquetConfig, TableSelection};
use meterflow::wire::{Measures, SampleBlock};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding};
use parquet::file::reader::{FileReader, SerializedFileReader};

/// 2023-11-15T00:00:00Z.
const MIDNIGHT_NS: i64 = 1_700_006_400_000_000_000;
const RATE: u32 = 8000;

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
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
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .unwrap_or_else(|| panic!("column {name}"))
}

/// A noisy three-phase stream starting 0.5 s before midnight, with odd values
/// planted, cut into wire-sized chunks and with a gap of 100 samples.
fn three_phase_blocks() -> Vec<SampleBlock> {
    let config = SignalConfig {
        voltage_noise_rms_v: 0.5,
        current_noise_rms_a: 0.01,
        seed: 7,
        ..SignalConfig::default()
    };
    let start = MIDNIGHT_NS - 500_000_000;
    let mut whole = generate_block(&config, Measures::ThreePhase, RATE, start, RATE as usize)
        .unwrap_or_else(|e| panic!("{e}"));
    whole.channels[0][3] = f32::from_bits(0x7fc0_1234); // NaN with a payload
    whole.channels[1][4] = -0.0;
    whole.channels[2][5] = f32::INFINITY;
    whole.channels[5][6] = f32::MIN_POSITIVE / 2.0; // subnormal
    let mut blocks = split_block(&whole, &mut std::iter::repeat(42));
    // Lose 100 samples after the 10th block.
    for block in blocks.iter_mut().skip(10) {
        block.first_index += 100;
    }
    blocks
}

/// The raw archive and no other table.
fn raw_only() -> TableSelection {
    TableSelection {
        windows: false,
        latch: false,
        aggregates: false,
        harmonics: false,
        raw: true,
        events: false,
        ..TableSelection::default()
    }
}

#[test]
fn raw_samples_round_trip_bit_exactly_with_stream_split_and_zstd() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path();
    let config = ParquetConfig {
        tables: raw_only(),
        raw_row_group_rows: 3000,
        fsync: false,
        ..ParquetConfig::new(out)
    };
    let info = DatasetInfo {
        source: "raw test".into(),
        pipeline: "raw".into(),
        ..DatasetInfo::default()
    };
    let three = DeviceInfo::new("m1", 11, Measures::ThreePhase);
    let blocks = three_phase_blocks();
    // Afterwards the same device streams a single phase (a new session).
    let single_start = MIDNIGHT_NS + 10_000_000_000;
    let single = generate_block(
        &SignalConfig::default(),
        Measures::SinglePhase,
        RATE,
        single_start,
        500,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let single_info = DeviceInfo::new("m1", 11, Measures::SinglePhase);

    let mut sink = DatasetWriter::create(&config, &info).unwrap_or_else(|e| panic!("{e}"));
    for block in &blocks {
        sink.write_raw(&three, block)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    sink.write_raw(&single_info, &single)
        .unwrap_or_else(|e| panic!("{e}"));
    let summary = sink.close().unwrap_or_else(|e| panic!("{e}"));
    let samples = blocks.iter().map(SampleBlock::len).sum::<usize>() + single.len();
    assert_eq!(summary.rows.get("raw"), Some(&(samples as u64)));

    // Expected values per sample index of each layout.
    let mut expected: BTreeMap<(String, u64), (i64, Vec<u32>)> = BTreeMap::new();
    for block in blocks.iter().chain([&single]) {
        for n in 0..block.len() {
            let index = block.first_index + n as u64;
            let bits = block.channels.iter().map(|c| c[n].to_bits()).collect();
            expected.insert(
                (block.measures.as_str().to_string(), index),
                (block.time_of(index), bits),
            );
        }
    }

    let files = parquet_files(out);
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(out)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "raw/device=m1/date=2023-11-14/part-00000.parquet",
            "raw/device=m1/date=2023-11-15/part-00000.parquet",
            "raw/device=m1/date=2023-11-15/part-00001.parquet",
        ],
        "split at midnight, and a layout change starts a new file"
    );

    let mut seen = 0;
    let mut raw_bytes = 0u64;
    for path in &files {
        for batch in read(path) {
            let measures = column::<StringArray>(&batch, "measures")
                .value(0)
                .to_string();
            let layout: Measures = measures.parse().unwrap_or_else(|e| panic!("{e}"));
            let channel_names: Vec<&str> = layout.channels().iter().map(|c| c.name).collect();
            let schema = batch.schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(
                &names[..7],
                [
                    "time",
                    "device",
                    "device_id",
                    "measures",
                    "rate_hz",
                    "stream_start",
                    "sample_index"
                ]
            );
            assert_eq!(&names[7..], channel_names.as_slice());
            let time = column::<TimestampNanosecondArray>(&batch, "time");
            let index = column::<UInt64Array>(&batch, "sample_index");
            let rate = column::<Int64Array>(&batch, "rate_hz");
            let start = column::<TimestampNanosecondArray>(&batch, "stream_start");
            let device = column::<StringArray>(&batch, "device");
            let id = column::<UInt64Array>(&batch, "device_id");
            for i in 0..batch.num_rows() {
                let key = (measures.clone(), index.value(i));
                let (want_time, want_bits) = expected
                    .get(&key)
                    .unwrap_or_else(|| panic!("unexpected sample {key:?}"));
                assert_eq!(time.value(i), *want_time, "{key:?}");
                assert_eq!(rate.value(i), i64::from(RATE));
                assert_eq!(device.value(i), "m1");
                assert_eq!(id.value(i), 11);
                let stream_start = if layout == Measures::SinglePhase {
                    single_start
                } else {
                    MIDNIGHT_NS - 500_000_000
                };
                assert_eq!(start.value(i), stream_start);
                for (c, name) in channel_names.iter().enumerate() {
                    let got = column::<Float32Array>(&batch, name).value(i).to_bits();
                    assert_eq!(got, want_bits[c], "{name} at {key:?}");
                }
                seen += 1;
            }
            raw_bytes += (batch.num_rows() * channel_names.len() * 4) as u64;
        }

        let reader = SerializedFileReader::new(File::open(path).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let meta = reader.metadata();
        let kv: BTreeMap<String, String> = meta
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
            .collect();
        assert!(kv.contains_key("meterflow.measures"));
        assert_eq!(kv.get("meterflow.table").map(String::as_str), Some("raw"));
        assert_eq!(
            kv.get("meterflow.source").map(String::as_str),
            Some("raw test")
        );
        for g in 0..meta.num_row_groups() {
            let group = meta.row_group(g);
            assert!(group.num_rows() <= 3000);
            for chunk in group.columns() {
                let name = chunk.column_path().string();
                let encodings: Vec<Encoding> = chunk.encodings().collect();
                assert!(
                    matches!(chunk.compression(), Compression::ZSTD(_)),
                    "{name}: {:?}",
                    chunk.compression()
                );
                let is_sample = !matches!(
                    name.as_str(),
                    "time"
                        | "device"
                        | "device_id"
                        | "measures"
                        | "rate_hz"
                        | "stream_start"
                        | "sample_index"
                );
                if is_sample {
                    assert!(
                        encodings.contains(&Encoding::BYTE_STREAM_SPLIT),
                        "{name}: {encodings:?}"
                    );
                    assert!(
                        chunk.dictionary_page_offset().is_none(),
                        "{name} has a dictionary"
                    );
                    assert!(
                        !encodings.contains(&Encoding::RLE_DICTIONARY)
                            && !encodings.contains(&Encoding::PLAIN_DICTIONARY),
                        "{name}: {encodings:?}"
                    );
                }
                // Times and indices keep statistics (readers prune by time);
                // one value per file or a waveform's extremes say nothing.
                let with_statistics = matches!(name.as_str(), "time" | "sample_index");
                assert_eq!(
                    chunk.statistics().is_some(),
                    with_statistics,
                    "{name}: {:?}",
                    chunk.statistics()
                );
                if name == "time" || name == "sample_index" {
                    assert!(
                        encodings.contains(&Encoding::DELTA_BINARY_PACKED),
                        "{name}: {encodings:?}"
                    );
                }
            }
        }
    }
    assert_eq!(seen, expected.len(), "every sample exactly once");
    let stored: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    eprintln!("raw archive: {stored} bytes for {raw_bytes} bytes of f32 samples");
}

/// A replay of the record log after a crash writes every sample exactly
/// once: blocks of records whose samples a commit made visible are
/// skipped, and a block across a span edge whose first span's file was
/// committed is written from its first invisible sample on.
#[test]
fn a_replay_after_a_crash_writes_every_sample_once() {
    let config = |out: &Path| ParquetConfig {
        tables: raw_only(),
        raw_row_group_rows: 1000,
        max_file_span_s: 1,
        fsync: false,
        ..ParquetConfig::new(out)
    };
    let device = DeviceInfo::new("m1", 1, Measures::ThreePhase);
    let whole = generate_block(
        &SignalConfig::default(),
        Measures::ThreePhase,
        RATE,
        MIDNIGHT_NS + 250_000_000,
        RATE as usize * 6,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Block lengths that do not divide a second: blocks cross span edges.
    let blocks = split_block(&whole, &mut [700, 1300, 900].into_iter().cycle());
    for crash_at in [blocks.len() / 3, blocks.len() / 2, blocks.len() * 3 / 4] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let out = dir.path();
        let (mut first, _) = DatasetWriter::create(&config(out), &DatasetInfo::default())
            .and_then(|w| w.with_commits("log-r"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut committed_files = 0;
        for (seq, block) in blocks[..crash_at].iter().enumerate() {
            first.at_seq(seq as u64 + 1);
            first
                .write_raw(&device, block)
                .unwrap_or_else(|e| panic!("{e}"));
            first.seal_ended().unwrap_or_else(|e| panic!("{e}"));
            committed_files += first.commit().unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(
            committed_files > 0,
            "crash after {crash_at}: nothing committed"
        );
        // The crash: nothing more is finished, sealed or committed.
        std::mem::forget(first);

        let (mut second, _) = DatasetWriter::create(&config(out), &DatasetInfo::default())
            .and_then(|w| w.with_commits("log-r"))
            .unwrap_or_else(|e| panic!("{e}"));
        for (seq, block) in blocks.iter().enumerate() {
            second.at_seq(seq as u64 + 1);
            second
                .write_raw(&device, block)
                .unwrap_or_else(|e| panic!("{e}"));
            second.seal_ended().unwrap_or_else(|e| panic!("{e}"));
        }
        second.close().unwrap_or_else(|e| panic!("{e}"));

        let mut indices: Vec<u64> = parquet_files(out)
            .iter()
            .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
            .flat_map(|path| read(path))
            .flat_map(|batch| {
                column::<UInt64Array>(&batch, "sample_index")
                    .values()
                    .to_vec()
            })
            .collect();
        indices.sort_unstable();
        let expected: Vec<u64> = (0..whole.len() as u64).collect();
        if indices != expected {
            let twice = indices.windows(2).filter(|p| p[0] == p[1]).count();
            panic!(
                "crash after {crash_at} of {} blocks: {} samples read, {} written, {twice} twice",
                blocks.len(),
                indices.len(),
                expected.len()
            );
        }
    }
}
