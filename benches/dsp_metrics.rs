//! Per-window power metrics (H = 40) on a 6-channel three-phase stream, in
//! samples/s (one sample = one channel value): the whole engine fed
//! wire-sized chunks at 8 and 32 kHz (and at 8 kHz with the harmonic and
//! interharmonic subgroups kept), and at 8 kHz one window's full
//! metrics and its time-domain sums and FFT part separately.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterflow::dsp::metrics::{SampleRange, WindowCalculator};
use meterflow::dsp::window::WindowSpan;
use meterflow::dsp::{DeviceEngine, EngineConfig};
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::{WindowFlags, WindowMetrics};
use meterflow::wire::Measures;
use std::hint::black_box;

const RATE: u32 = 8000;
const CHUNK: usize = 42;

fn config() -> SignalConfig {
    let harmonics = |base: f64| {
        [(3, 1.0), (5, 0.5), (7, 0.25), (11, 0.1)]
            .map(|(order, scale)| Harmonic {
                order,
                magnitude: base * scale,
                phase_deg: 10.0 * f64::from(order),
            })
            .to_vec()
    };
    SignalConfig {
        frequency_hz: 50.03,
        current_angle_deg: 25.0,
        voltage_harmonics: harmonics(0.03),
        current_harmonics: harmonics(0.2),
        voltage_noise_rms_v: 0.2,
        current_noise_rms_a: 0.01,
        seed: 7,
        ..SignalConfig::default()
    }
}

/// The whole engine (crossings, windows, metrics, energy) on 1 s of stream
/// in 42-sample chunks, replayed with advancing indices; `keep_subgroups`
/// also keeps the harmonic and interharmonic subgroups of every channel.
fn engine_stream(c: &mut Criterion, rate: u32, keep_subgroups: bool) {
    let measures = Measures::ThreePhase;
    let block = match generate_block(&config(), measures, rate, 0, rate as usize) {
        Ok(block) => block,
        Err(error) => panic!("bench signal config invalid: {error}"),
    };
    let per_second = split_block(&block, &mut std::iter::repeat(CHUNK));
    let samples: usize = per_second.iter().map(|b| b.len()).sum();
    let suffix = if keep_subgroups { "_subgroups" } else { "" };
    let mut group = c.benchmark_group(format!("dsp_metrics_6ch_{}khz{suffix}", rate / 1000));
    group.throughput(Throughput::Elements(
        (samples * measures.channel_count()) as u64,
    ));
    let engine_config = EngineConfig {
        keep_harmonic_subgroups: keep_subgroups,
        ..EngineConfig::default()
    };
    let mut engine = match DeviceEngine::for_block(&engine_config, &block) {
        Ok(engine) => engine,
        Err(error) => panic!("{error}"),
    };
    let mut offset = 0u64;
    let mut replay = per_second.clone();
    group.bench_function("engine_stream", |b| {
        b.iter(|| {
            for (chunk, original) in replay.iter_mut().zip(&per_second) {
                chunk.first_index = original.first_index + offset;
                if let Err(error) = engine.push_block(chunk, &mut |o| {
                    black_box(o);
                }) {
                    panic!("{error}");
                }
            }
            offset += samples as u64;
        })
    });
    group.finish();
}

fn metrics(c: &mut Criterion) {
    engine_stream(c, RATE, false);
    engine_stream(c, 32_000, false);
    engine_stream(c, RATE, true);
    let measures = Measures::ThreePhase;
    let channels = measures.channel_count();
    let block = match generate_block(&config(), measures, RATE, 0, 10 * RATE as usize) {
        Ok(block) => block,
        Err(error) => panic!("bench signal config invalid: {error}"),
    };
    let mut group = c.benchmark_group("dsp_metrics_6ch_8khz");
    // One clean 10-cycle window (~1599 samples × 6 channels).
    let window_samples = 10.0 * f64::from(RATE) / 50.03;
    let span = WindowSpan {
        start: 100.0,
        end: 100.0 + window_samples,
        cycles: 10,
        cycle_samples: window_samples,
        flags: WindowFlags::NONE,
    };
    let slices: Vec<&[f32]> = block.channels.iter().map(|c| &c[..4000]).collect();
    let range = match SampleRange::new(span.start, span.end, 4000) {
        Some(range) => range,
        None => panic!("window does not fit"),
    };
    let mut calculator = WindowCalculator::new(measures, RATE, 50.0, 40, false);
    let mut out = WindowMetrics::default();
    group.throughput(Throughput::Elements(
        (window_samples * channels as f64) as u64,
    ));
    group.bench_function("window_full", |b| {
        b.iter(|| {
            calculator.compute(black_box(&slices), 0.0, &span, &mut out);
            black_box(&out);
        })
    });
    group.bench_function("window_time_domain", |b| {
        b.iter(|| black_box(calculator.time_domain(black_box(&slices), range)))
    });
    group.bench_function("window_fft_h40", |b| {
        b.iter(|| black_box(calculator.spectra(black_box(&slices), range, 10, true)))
    });
    // The same at exactly 50 Hz: a 1600-point DFT (2^6·5^2) instead of
    // 1599 (3·13·41), which rustfft does several times faster.
    let smooth = match SampleRange::new(100.0, 1700.0, 4000) {
        Some(range) => range,
        None => panic!("window does not fit"),
    };
    group.bench_function("window_fft_h40_len1600", |b| {
        b.iter(|| black_box(calculator.spectra(black_box(&slices), smooth, 10, true)))
    });
    group.bench_function("window_time_domain_len1600", |b| {
        b.iter(|| black_box(calculator.time_domain(black_box(&slices), smooth)))
    });
    group.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
