//! Flickermeter throughput: three voltage channels at 8 kHz (one meter
//! each, as a three-phase stream has them), fed in 42-sample chunks, in
//! voltage samples/s. Add this cost per voltage sample to the engine's
//! (`dsp_metrics`) to get the whole engine's rate with flicker on.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterflow::dsp::flicker::{FlickerConfig, FlickerMeter, Lamp};
use meterflow::meter::modulation::{ModulationShape, VoltageModulation};
use meterflow::meter::signal::{SignalConfig, SignalGenerator};
use meterflow::wire::Measures;
use std::hint::black_box;

const RATE: u32 = 8000;
const CHUNK: usize = 42;

fn flicker(c: &mut Criterion) {
    let signal = SignalConfig {
        frequency_hz: 50.03,
        voltage_noise_rms_v: 0.2,
        voltage_modulations: vec![VoltageModulation {
            shape: ModulationShape::Rectangular,
            frequency_hz: 39.0 / 120.0,
            delta_v_pct: 0.894,
            phases: [true; 3],
            start_s: 0.0,
            end_s: None,
        }],
        ..SignalConfig::default()
    };
    let mut generator = match SignalGenerator::new(signal, Measures::ThreePhase, RATE) {
        Ok(g) => g,
        Err(error) => panic!("bench signal config invalid: {error}"),
    };
    let seconds = 10usize;
    let frames = RATE as usize * seconds;
    let mut interleaved = vec![0.0f32; frames * 6];
    generator.fill(&mut interleaved);
    let voltages: Vec<Vec<f32>> = (0..3)
        .map(|k| interleaved.iter().skip(2 * k).step_by(6).copied().collect())
        .collect();
    let config = FlickerConfig {
        keep_pinst: false,
        ..FlickerConfig::new(RATE, 50.0, Lamp::V230, 230.0)
    };
    let mut meters: Vec<FlickerMeter> = (0..3)
        .map(|_| match FlickerMeter::new(config.clone()) {
            Ok(m) => m,
            Err(error) => panic!("{error}"),
        })
        .collect();
    let mut group = c.benchmark_group("flicker_3ch_8khz");
    group.throughput(Throughput::Elements((frames * 3) as u64));
    let chunk_ns = CHUNK as i64 * 1_000_000_000 / i64::from(RATE);
    let mut t = 1_764_000_000_000_000_000i64;
    group.bench_function("push", |b| {
        b.iter(|| {
            for chunk in 0..frames.div_ceil(CHUNK) {
                let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(frames);
                for (meter, v) in meters.iter_mut().zip(&voltages) {
                    meter.push(&v[range.clone()], t, &mut |o| {
                        black_box(o);
                    });
                }
                t += chunk_ns;
            }
        })
    });
    group.finish();
}

criterion_group!(benches, flicker);
criterion_main!(benches);
