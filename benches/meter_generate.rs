//! The virtual meter's generation rate: synthesising a 6-channel 8 kHz
//! three-phase stream with harmonics, in 42-sample chunks as the firmware
//! frames them, plus framing those chunks as `Data:` frames.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterflow::meter::signal::{Harmonic, SignalConfig, SignalGenerator};
use meterflow::wire::frame::put_data_frame;
use meterflow::wire::Measures;
use std::hint::black_box;

const SAMPLES: usize = 8000; // one second of stream
const CHUNK: usize = 42;

fn config(noise: bool) -> SignalConfig {
    let harmonics = |base: f64| {
        vec![
            Harmonic {
                order: 3,
                magnitude: base,
                phase_deg: 10.0,
            },
            Harmonic {
                order: 5,
                magnitude: base / 2.0,
                phase_deg: -30.0,
            },
            Harmonic {
                order: 7,
                magnitude: base / 4.0,
                phase_deg: 45.0,
            },
        ]
    };
    SignalConfig {
        current_angle_deg: 25.0,
        voltage_harmonics: harmonics(0.03),
        current_harmonics: harmonics(0.2),
        voltage_noise_rms_v: if noise { 0.2 } else { 0.0 },
        current_noise_rms_a: if noise { 0.01 } else { 0.0 },
        seed: 7,
        ..SignalConfig::default()
    }
}

fn generate(c: &mut Criterion) {
    let measures = Measures::ThreePhase;
    let channels = measures.channel_count();
    let mut group = c.benchmark_group("meter_generate_6ch_8khz");
    // One element = one channel value, as the DSP benches count samples.
    group.throughput(Throughput::Elements((SAMPLES * channels) as u64));
    for (name, noise) in [("3_harmonics", false), ("3_harmonics_noise", true)] {
        let mut generator = match SignalGenerator::new(config(noise), measures, 8000) {
            Ok(generator) => generator,
            Err(error) => panic!("bench signal config invalid: {error}"),
        };
        let mut chunk = vec![0f32; CHUNK * channels];
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..SAMPLES / CHUNK {
                    generator.fill(&mut chunk);
                    black_box(&chunk);
                }
            })
        });
    }
    let mut generator = match SignalGenerator::new(config(false), measures, 8000) {
        Ok(generator) => generator,
        Err(error) => panic!("bench signal config invalid: {error}"),
    };
    let mut chunk = vec![0f32; CHUNK * channels];
    let mut wire = BytesMut::with_capacity(1 << 20);
    group.bench_function("3_harmonics_framed", |b| {
        b.iter(|| {
            wire.clear();
            for seq in 0..(SAMPLES / CHUNK) as u32 {
                generator.fill(&mut chunk);
                put_data_frame(&mut wire, seq, &chunk);
            }
            black_box(wire.len())
        })
    });
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
