//! Record log throughput for 500-byte payloads (about one encoded record):
//! appends alone (memory only), and appends plus the flush that writes and
//! fsyncs them, from one and from two threads. Covered segments are deleted
//! between iterations, outside the timing, so the disk does not fill.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterflow::pipeline::record_log::{RecordLog, RecordLogConfig};

const PAYLOAD: usize = 500;
const BATCH: u64 = 10_000;

fn open(dir: &std::path::Path) -> Arc<RecordLog> {
    let config = RecordLogConfig {
        max_buffer_bytes: 256 << 20,
        ..RecordLogConfig::in_dir(dir)
    };
    match RecordLog::open(config, &[]) {
        Ok((log, _)) => Arc::new(log),
        Err(error) => panic!("opening the bench log: {error:#}"),
    }
}

/// Makes every entry durable and deletes the segments (untimed).
fn drain(log: &RecordLog) {
    let durable = log.flush().unwrap_or_else(|e| panic!("flush: {e:#}"));
    log.write_snapshot(durable, b"")
        .unwrap_or_else(|e| panic!("snapshot: {e:#}"));
}

fn append_batch(log: &RecordLog, payload: &[u8], count: u64) {
    for _ in 0..count {
        black_box(
            log.append(payload)
                .unwrap_or_else(|e| panic!("append: {e}")),
        );
    }
}

fn record_log(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log = open(dir.path());
    let payload: Vec<u8> = (0..PAYLOAD).map(|k| (k * 7) as u8).collect();
    let mut group = c.benchmark_group("record_log_500B");
    group.throughput(Throughput::Bytes(BATCH * PAYLOAD as u64));

    group.bench_function("append_10k", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                append_batch(&log, &payload, BATCH);
                spent += start.elapsed();
                drain(&log);
            }
            spent
        })
    });

    group.bench_function("append_10k_flush", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                append_batch(&log, &payload, BATCH);
                black_box(log.flush().unwrap_or_else(|e| panic!("flush: {e:#}")));
                spent += start.elapsed();
                drain(&log);
            }
            spent
        })
    });

    group.bench_function("append_10k_flush_2_threads", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for _ in 0..2 {
                        scope.spawn(|| append_batch(&log, &payload, BATCH / 2));
                    }
                });
                black_box(log.flush().unwrap_or_else(|e| panic!("flush: {e:#}")));
                spent += start.elapsed();
                drain(&log);
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, record_log);
criterion_main!(benches);
