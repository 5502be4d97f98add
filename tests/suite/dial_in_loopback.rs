//! Acceptance: virtual meters dial into a stream server over loopback; the
//! sink side's session parses the sample answer, every chunk arrives in order,
//! and the decoded samples equal what the signal generator produces for the
//! meter's seed, bit for bit (after the one mA → A conversion).

use std::time::Duration;

use meterflow::meter::firmware::{MeterSettings, DEFAULT_SEND_INTERVAL};
use meterflow::meter::fleet::{start_fleet, FleetConfig, FleetMode};
use meterflow::meter::pacing::Pacing;
use meterflow::meter::signal::{Harmonic, SignalConfig, SignalGenerator};
use meterflow::source::decoder::SessionEnd;
use meterflow::source::meter_session::{run_session, SessionSettings};
use meterflow::wire::{chunk_size, Measures, Transport};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn signal() -> SignalConfig {
    SignalConfig {
        current_rms_a: 7.5,
        current_angle_deg: 30.0,
        voltage_harmonics: vec![Harmonic {
            order: 5,
            magnitude: 0.04,
            phase_deg: 10.0,
        }],
        current_harmonics: vec![Harmonic {
            order: 3,
            magnitude: 0.3,
            phase_deg: -40.0,
        }],
        voltage_noise_rms_v: 0.5,
        seed: 100,
        ..SignalConfig::default()
    }
}

/// What the decoder must produce: the generator's wire values in SI units.
fn expected_samples(seed: u64, measures: Measures, rate: u32, samples: usize) -> Vec<Vec<f32>> {
    let config = SignalConfig { seed, ..signal() };
    let mut generator = SignalGenerator::new(config, measures, rate).unwrap();
    let channels = measures.channels();
    let mut wire = vec![0f32; samples * channels.len()];
    generator.fill(&mut wire);
    channels
        .iter()
        .enumerate()
        .map(|(c, channel)| {
            wire.iter()
                .skip(c)
                .step_by(channels.len())
                .map(|v| v / channel.si_divisor())
                .collect()
        })
        .collect()
}

async fn dial_in_session(measures: Measures, rate: u32, samples: u64, pacing: Pacing) {
    dial_in_session_sending_every(measures, rate, samples, pacing, DEFAULT_SEND_INTERVAL).await;
}

async fn dial_in_session_sending_every(
    measures: Measures,
    rate: u32,
    samples: u64,
    pacing: Pacing,
    send_interval: Duration,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fleet_cancel = CancellationToken::new();
    let mut fleet = FleetConfig::new(
        FleetMode::DialIn {
            server: addr.to_string(),
            reconnect: Duration::from_millis(200),
        },
        1,
    );
    fleet.template = MeterSettings {
        signal: signal(),
        pacing,
        send_interval,
        ..MeterSettings::new("smartmeter")
    };
    let running = start_fleet(fleet, fleet_cancel.clone()).await.unwrap();

    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the meter dials in")
        .unwrap();
    let settings = SessionSettings {
        rate,
        measures,
        stop_after_samples: Some(samples),
        ..SessionSettings::default()
    };
    let mut received: Vec<Vec<f32>> = vec![Vec::new(); measures.channel_count()];
    let mut next_index = 0u64;
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        run_session(
            socket,
            &settings,
            CancellationToken::new(),
            &mut |block: &meterflow::wire::SampleBlock| {
                assert_eq!(block.first_index, next_index, "blocks arrive in order");
                assert_eq!(block.gap_before, 0);
                assert_eq!(block.rate, rate);
                next_index += block.len() as u64;
                for (out, channel) in received.iter_mut().zip(&block.channels) {
                    out.extend_from_slice(channel);
                }
            },
        ),
    )
    .await
    .expect("session finishes")
    .unwrap();
    fleet_cancel.cancel();
    running.wait().await;

    // The sample answer parsed and describes what was asked.
    assert_eq!(report.info.name, "smartmeter001");
    // The firmware echoes `v,i` as `v,i_L1`: the same channels.
    assert_eq!(report.answer.measures.channels(), measures.channels());
    assert_eq!(report.answer.samplingrate, rate);
    assert_eq!(report.answer.unit, measures.unit_string());
    assert_eq!(
        report.answer.chunksize,
        chunk_size(rate, measures.bytes_per_sample(), Transport::Tcp)
    );
    // Every frame arrived, in order, nothing lost, nothing malformed.
    assert_eq!(report.end, SessionEnd::Stopped);
    assert_eq!(report.wire.anomalies(), 0, "{:?}", report.wire);
    assert_eq!(report.lost_samples, 0);
    assert!(report.samples >= samples);
    let stop = report.stop.expect("stop answer");
    assert_eq!(stop.sent_samples, report.samples, "meter and sink agree");
    // Bit-identical samples: meter 001 uses seed 100 + 1.
    let expected = expected_samples(101, measures, rate, report.samples as usize);
    for (c, channel) in measures.channels().iter().enumerate() {
        assert_eq!(received[c].len(), expected[c].len(), "{}", channel.name);
        let first_difference = received[c]
            .iter()
            .zip(&expected[c])
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(first_difference, None, "channel {}", channel.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phase_8khz_real_time() {
    // 0.5 s in real time: pacing, chunking and the tail as a meter does them.
    dial_in_session(Measures::ThreePhase, 8000, 4000, Pacing::RealTime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phase_8khz_real_time_writing_every_120_ms() {
    // A load generator's longer write period: ~23 chunks per write, the
    // same frames and samples, the tail and stop answer as before.
    dial_in_session_sending_every(
        Measures::ThreePhase,
        8000,
        4000,
        Pacing::RealTime,
        Duration::from_millis(120),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phase_32khz_fast() {
    dial_in_session(Measures::ThreePhase, 32000, 64_000, Pacing::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_phase_and_latch_layouts() {
    dial_in_session(Measures::SinglePhase, 4000, 8000, Pacing::Fast).await;
    dial_in_session(
        Measures::Phase(meterflow::wire::Phase::L2),
        16000,
        8000,
        Pacing::Fast,
    )
    .await;
    dial_in_session(Measures::PowerLatch, 50, 100, Pacing::Fast).await;
    dial_in_session(Measures::RmsLatch, 10, 30, Pacing::Fast).await;
}
