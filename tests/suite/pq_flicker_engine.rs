//! The flickermeter inside the engine (`[dsp.pq.flicker]`): per voltage
//! channel, and independent of how the stream is cut. (Pst values against
//! truth are in `pq_flicker.rs`, on the meter alone.)

use meterflow::dsp::flicker::{FlickerOutput, FlickerSettings, FlickerValue};
use meterflow::dsp::pq::PqConfig;
use meterflow::dsp::{DeviceEngine, EngineConfig, OwnedOutput};
use meterflow::meter::signal::SignalConfig;
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::FlickerFlags;
use meterflow::wire::Measures;

const START_NS: i64 = 1_700_000_000_000_000_000;

fn flicker_outputs(chunk: usize, seconds: f64) -> Vec<FlickerValue> {
    let config = EngineConfig {
        pq: Some(PqConfig {
            flicker: FlickerSettings {
                enabled: true,
                settling_s: 10.0,
                ..FlickerSettings::default()
            },
            ..PqConfig::default()
        }),
        ..EngineConfig::default()
    };
    let rate = 8_000;
    let samples = (seconds * f64::from(rate)) as usize;
    let signal = SignalConfig::default();
    let whole = generate_block(&signal, Measures::ThreePhase, rate, START_NS, samples)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut engine = DeviceEngine::for_block(&config, &whole).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for block in split_block(&whole, &mut std::iter::repeat(chunk)) {
        let outputs = engine.process(&block).unwrap_or_else(|e| panic!("{e}"));
        out.extend(outputs.into_iter().filter_map(|o| match o {
            OwnedOutput::Flicker(f) => Some(f),
            _ => None,
        }));
    }
    engine.finish(&mut |o| {
        if let meterflow::dsp::EngineOutput::Flicker(f) = o {
            out.push(f);
        }
    });
    out
}

#[test]
fn every_phase_gets_a_flagged_pst_whatever_the_chunking() {
    let a = flicker_outputs(1_000, 40.0);
    let b = flicker_outputs(777, 40.0);
    // Bit-identical: the meter's time comes from sample counts, not chunks.
    assert_eq!(a, b);
    let psts: Vec<_> = a
        .iter()
        .filter_map(|v| match v.output {
            FlickerOutput::Pst(p) => Some((v.phase, p)),
            _ => None,
        })
        .collect();
    let phases: Vec<u8> = psts.iter().map(|(k, _)| *k).collect();
    assert_eq!(phases, vec![0, 1, 2]);
    for (_, pst) in psts {
        // A steady 230 V sine: no flicker once the filters settled (the
        // settling values are flagged, not counted), as the meter-only
        // truth test asks of a whole interval.
        assert!(
            pst.value.is_finite() && pst.value < 0.05,
            "Pst {}",
            pst.value
        );
        // 40 s of a 10-min interval, starting with the settling time.
        assert!(pst.flags.contains(FlickerFlags::INCOMPLETE));
        assert!(pst.flags.contains(FlickerFlags::SETTLING));
    }
}
