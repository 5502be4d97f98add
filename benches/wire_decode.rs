//! Decode throughput of the meter stream: a 6-channel 8 kHz stream of
//! 1008-byte chunks (the firmware's TCP chunk size) with a rate log line
//! about once a second, as a meter sends it; and the payloads' unpacking
//! into per-channel SI values.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meterflow::wire::frame::{put_data_frame, put_info_line};
use meterflow::wire::samples::append_payload;
use meterflow::wire::{chunk_size, Frame, Measures, MeterCodec, Transport};
use std::hint::black_box;
use tokio_util::codec::Decoder;

/// `seconds` of stream: chunks plus one log line per second.
fn stream(seconds: u32) -> (BytesMut, u64) {
    let measures = Measures::ThreePhase;
    let rate = 8000;
    let chunk = chunk_size(rate, measures.bytes_per_sample(), Transport::Tcp);
    let values_per_chunk = chunk / 4;
    let chunks_per_second = (rate as usize * measures.bytes_per_sample()).div_ceil(chunk);
    let values: Vec<f32> = (0..values_per_chunk)
        .map(|k| (k as f32 * 0.01).sin() * 325.0)
        .collect();
    let mut buf = BytesMut::new();
    let mut frames = 0u64;
    for second in 0..seconds {
        put_info_line(
            &mut buf,
            &format!("[I]03/02 10:42:{:02}: 7999.87Hz, {second}s", second % 60),
        );
        for _ in 0..chunks_per_second {
            put_data_frame(&mut buf, frames as u32, &values);
            frames += 1;
        }
    }
    (buf, frames)
}

fn decode(c: &mut Criterion) {
    let (input, frames) = stream(60);
    let mut group = c.benchmark_group("wire_decode_6ch_8khz");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("bytes", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |buf| {
                let mut codec = MeterCodec::new();
                codec.set_bytes_per_sample(24);
                let mut payload = 0usize;
                while let Ok(Some(frame)) = codec.decode(buf) {
                    if let Frame::Data { payload: p, .. } = frame {
                        payload += p.len();
                    }
                }
                black_box(payload)
            },
            BatchSize::LargeInput,
        )
    });
    group.throughput(Throughput::Elements(frames));
    group.bench_function("frames", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |buf| {
                let mut codec = MeterCodec::new();
                let mut count = 0u64;
                while let Ok(Some(_)) = codec.decode(buf) {
                    count += 1;
                }
                black_box(count)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// One second of 1008-byte chunk payloads unpacked into six channels (the
/// sink's decoder runs this on every chunk it takes).
fn unpack(c: &mut Criterion) {
    let measures = Measures::ThreePhase;
    let chunk = chunk_size(8000, measures.bytes_per_sample(), Transport::Tcp);
    let payload: Vec<u8> = (0..chunk / 4)
        .flat_map(|k| ((k as f32 * 0.01).sin() * 325.0).to_le_bytes())
        .collect();
    let chunks = (8000 * measures.bytes_per_sample()).div_ceil(chunk);
    let mut channels: Vec<Vec<f32>> = (0..6).map(|_| Vec::with_capacity(8100)).collect();
    let mut group = c.benchmark_group("wire_payload_6ch_8khz");
    group.throughput(Throughput::Elements((chunks * chunk / 4) as u64));
    group.bench_function("append_payload", |b| {
        b.iter(|| {
            channels.iter_mut().for_each(Vec::clear);
            for _ in 0..chunks {
                append_payload(measures, black_box(&payload), &mut channels)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            black_box(&channels);
        })
    });
    group.finish();
}

criterion_group!(benches, decode, unpack);
criterion_main!(benches);
