//! Power-quality detection on a 6-channel three-phase stream at 8 kHz, in
//! samples/s (one sample = one channel value): the whole engine with and
//! without `[dsp.pq]` (the target is >= 150 M/s with it), and the detector
//! alone (its own zero-crossing detector, half-cycle RMS, events), fed
//! wire-sized 42-sample chunks of a signal with a dip, a swell and an RVC.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterflow::dsp::flicker::FlickerSettings;
use meterflow::dsp::pq::{PqConfig, PqStream};
use meterflow::dsp::{DeviceEngine, EngineConfig};
use meterflow::meter::disturbance::Disturbance;
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::wire::{Measures, SampleBlock};
use std::hint::black_box;

const RATE: u32 = 8000;
const CHUNK: usize = 42;

fn disturbance(at_s: f64, duration_s: f64, phases: &[u8], level_pct: f64) -> Disturbance {
    Disturbance {
        at_s,
        duration_s: Some(duration_s),
        phases: phases.to_vec(),
        level_pct: Some(level_pct),
        level_v: None,
    }
}

/// Two seconds of stream in 42-sample chunks.
fn chunks() -> Vec<SampleBlock> {
    let config = SignalConfig {
        frequency_hz: 50.03,
        current_angle_deg: 25.0,
        voltage_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.03,
            phase_deg: 30.0,
        }],
        voltage_noise_rms_v: 0.2,
        current_noise_rms_a: 0.01,
        disturbances: vec![
            disturbance(0.3, 0.1, &[1], 50.0),
            disturbance(0.7, 0.1, &[2], 115.0),
            disturbance(1.2, 0.5, &[], 95.0),
        ],
        seed: 7,
        ..SignalConfig::default()
    };
    let block = match generate_block(&config, Measures::ThreePhase, RATE, 0, 2 * RATE as usize) {
        Ok(block) => block,
        Err(error) => panic!("bench signal config invalid: {error}"),
    };
    split_block(&block, &mut std::iter::repeat(CHUNK))
}

/// Replays `chunks` with advancing indices so the stream never repeats.
fn replay(
    chunks: &[SampleBlock],
    replayed: &mut [SampleBlock],
    offset: &mut u64,
    push: &mut dyn FnMut(&SampleBlock),
) {
    for (chunk, original) in replayed.iter_mut().zip(chunks) {
        chunk.first_index = original.first_index + *offset;
        push(chunk);
    }
    *offset += chunks.iter().map(|c| c.len() as u64).sum::<u64>();
}

fn pq_events(c: &mut Criterion) {
    let chunks = chunks();
    let samples: usize = chunks.iter().map(|b| b.len()).sum();
    let mut group = c.benchmark_group("pq_events_6ch_8khz");
    group.throughput(Throughput::Elements(
        (samples * Measures::ThreePhase.channel_count()) as u64,
    ));
    let with_pq = EngineConfig {
        pq: Some(PqConfig::default()),
        ..EngineConfig::default()
    };
    // The target: PQ with the flickermeter on every voltage channel.
    let with_flicker = EngineConfig {
        pq: Some(PqConfig {
            flicker: FlickerSettings {
                enabled: true,
                ..FlickerSettings::default()
            },
            ..PqConfig::default()
        }),
        ..EngineConfig::default()
    };
    for (name, config) in [
        ("engine_without_pq", EngineConfig::default()),
        ("engine_with_pq", with_pq),
        ("engine_with_pq_and_flicker", with_flicker),
    ] {
        let mut engine = match DeviceEngine::for_block(&config, &chunks[0]) {
            Ok(engine) => engine,
            Err(error) => panic!("{error}"),
        };
        let (mut replayed, mut offset) = (chunks.clone(), 0);
        group.bench_function(name, |b| {
            b.iter(|| {
                replay(&chunks, &mut replayed, &mut offset, &mut |chunk| {
                    if let Err(error) = engine.push_block(chunk, &mut |o| {
                        black_box(o);
                    }) {
                        panic!("{error}");
                    }
                })
            })
        });
    }
    let mut stream = match PqStream::new(
        &PqConfig::default(),
        &EngineConfig::default(),
        Measures::ThreePhase,
        RATE,
        0,
    ) {
        Ok(stream) => stream,
        Err(error) => panic!("{error}"),
    };
    let (mut replayed, mut offset) = (chunks.clone(), 0);
    group.bench_function("detector_alone", |b| {
        b.iter(|| {
            replay(&chunks, &mut replayed, &mut offset, &mut |chunk| {
                if let Err(error) = stream.push_block(chunk, &mut |o| {
                    black_box(o);
                }) {
                    panic!("{error}");
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, pq_events);
criterion_main!(benches);
