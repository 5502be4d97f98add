//! The virtual meter against the firmware's wire behaviour, over
//! `tokio::io::duplex` and loopback TCP. Every test finishes in seconds.

use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use meterflow::meter::dial_in::{run_dial_in, DialInConfig};
use meterflow::meter::firmware::{
    ConnectionEnd, ConnectionReport, MeterSettings, SessionLimit, VirtualMeter,
};
use meterflow::meter::fleet::{run_fleet, FleetConfig, FleetMode};
use meterflow::meter::pacing::Pacing;
use meterflow::meter::signal::{SignalConfig, SignalGenerator};
use meterflow::source::decoder::SessionEnd;
use meterflow::source::meter_session::{run_session, SessionSettings};
use meterflow::wire::message::{InfoMessage, LogLevel, SampleAnswer, StopAnswer};
use meterflow::wire::{Frame, Measures, MeterCodec};

const PATIENCE: Duration = Duration::from_secs(5);

fn settings(pacing: Pacing) -> MeterSettings {
    let mut settings = MeterSettings::new("smartmeter001");
    settings.pacing = pacing;
    settings.signal = SignalConfig {
        current_angle_deg: 25.0,
        voltage_noise_rms_v: 0.5,
        seed: 42,
        ..SignalConfig::default()
    };
    settings.lifeness_interval = Duration::from_millis(100);
    settings.report_interval = Duration::from_millis(200);
    settings
}

/// The sink's end of a duplex connection to a meter task.
struct Client {
    frames: FramedRead<ReadHalf<DuplexStream>, MeterCodec>,
    write: WriteHalf<DuplexStream>,
    cancel: CancellationToken,
    meter: JoinHandle<std::io::Result<ConnectionReport>>,
}

impl Client {
    fn start(settings: MeterSettings) -> Client {
        Self::start_with(settings, 64 * 1024)
    }

    fn start_with(settings: MeterSettings, pipe: usize) -> Client {
        let meter = VirtualMeter::new(settings).unwrap();
        let (client, server) = tokio::io::duplex(pipe);
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let meter = tokio::spawn(async move { meter.serve(server, &token, None).await });
        let (read, write) = tokio::io::split(client);
        Client {
            frames: FramedRead::new(read, MeterCodec::new()),
            write,
            cancel,
            meter,
        }
    }

    async fn send(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn next(&mut self) -> Frame {
        timeout(PATIENCE, self.frames.next())
            .await
            .expect("meter went quiet")
            .expect("meter closed the connection")
            .expect("read error")
    }

    /// The next Info line, skipping data.
    async fn next_info(&mut self) -> String {
        loop {
            if let Frame::Info(text) = self.next().await {
                return text;
            }
        }
    }

    /// The next Info line that is not a log line, skipping data and logs.
    async fn next_answer(&mut self) -> InfoMessage {
        loop {
            let text = self.next_info().await;
            match InfoMessage::parse(&text).unwrap() {
                InfoMessage::Log(_) => continue,
                other => return other,
            }
        }
    }

    async fn start_sampling(&mut self, payload: &str) -> (String, SampleAnswer) {
        assert!(matches!(
            self.next_answer().await,
            InfoMessage::DeviceInfo(_)
        ));
        self.send(&format!(r#"{{"cmd":"sample","payload":{payload}}}"#))
            .await;
        loop {
            let text = self.next_info().await;
            if let InfoMessage::SampleAnswer(answer) = InfoMessage::parse(&text).unwrap() {
                self.frames
                    .decoder_mut()
                    .set_bytes_per_sample(answer.bytes_per_sample());
                return (text, answer);
            }
        }
    }

    /// Collects data until the stop answer.
    async fn until_stop(&mut self, values: &mut Vec<f32>, sizes: &mut Vec<usize>) -> StopAnswer {
        loop {
            match self.next().await {
                Frame::Data { payload, .. } => {
                    sizes.push(payload.len());
                    values.extend(f32s(&payload));
                }
                Frame::Info(text) => {
                    if let InfoMessage::StopAnswer(stop) = InfoMessage::parse(&text).unwrap() {
                        return stop;
                    }
                }
                Frame::Anomaly(a) => panic!("anomaly {a:?}"),
            }
        }
    }

    async fn finish(self) -> ConnectionReport {
        self.cancel.cancel();
        timeout(PATIENCE, self.meter)
            .await
            .expect("meter did not end")
            .unwrap()
            .unwrap()
    }
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn expected(settings: &MeterSettings, measures: Measures, rate: u32, samples: usize) -> Vec<f32> {
    let mut generator = SignalGenerator::new(settings.signal.clone(), measures, rate).unwrap();
    let mut out = vec![0.0; samples * measures.channel_count()];
    generator.fill(&mut out);
    out
}

#[tokio::test]
async fn info_line_first_then_lifeness_lines_while_idle() {
    let mut client = Client::start(settings(Pacing::RealTime));
    let first = client.next().await;
    let Frame::Info(text) = first else {
        panic!("first frame is not an Info line: {first:?}")
    };
    let InfoMessage::DeviceInfo(info) = InfoMessage::parse(&text).unwrap() else {
        panic!("not a device info: {text}")
    };
    assert_eq!(info.name, "smartmeter001");
    assert_eq!(info.device_type, "smartmeter");
    assert!(info.is_idle());
    assert_eq!(info.buffer_size, Some(3_670_016));
    assert!(text.starts_with(r#"{"cmd":"info","type":"smartmeter","version":"2.2""#));
    for _ in 0..2 {
        let line = client.next_info().await;
        assert!(line.ends_with(": "), "{line:?}");
        let InfoMessage::Log(log) = InfoMessage::parse(&line).unwrap() else {
            panic!("not a log line: {line}")
        };
        assert!(log.is_lifeness());
        assert_eq!(log.level, LogLevel::Info);
    }
    // `!` is ignored: nothing but lifeness lines follow it.
    client.send("!").await;
    for _ in 0..2 {
        let line = client.next_info().await;
        assert!(matches!(
            InfoMessage::parse(&line).unwrap(),
            InfoMessage::Log(l) if l.is_lifeness()
        ));
    }
    assert_eq!(client.finish().await.end, ConnectionEnd::Cancelled);
}

#[tokio::test]
async fn sample_answer_and_frames_match_the_generator() {
    let settings = settings(Pacing::Fast);
    let mut client = Client::start(settings.clone());
    let (text, answer) = client.start_sampling(r#"{"type":"TCP","rate":8000}"#).await;
    assert!(
        text.starts_with(r#"{"error":false,"cmd":"sample","measures":"v,i,v,i,v,i","chunksize":1008,"samplingrate":8000,"conn_type":"TCP","measurements":6,"prefix":true,"flowCtr":false,"unit":"V,mA,V,mA,V,mA","startTs":""#),
        "{text}"
    );
    assert_eq!(answer.chunksize, 1008);
    let chunks = 200;
    let mut values = Vec::new();
    let mut seq = 0u32;
    while seq < chunks {
        match client.next().await {
            Frame::Data { seq: got, payload } => {
                assert_eq!(got, seq, "packet numbers from 0 without gaps");
                assert_eq!(payload.len(), 1008);
                values.extend(f32s(&payload));
                seq += 1;
            }
            Frame::Info(_) => {}
            Frame::Anomaly(a) => panic!("anomaly {a:?}"),
        }
    }
    let want = expected(&settings, Measures::ThreePhase, 8000, values.len() / 6);
    assert_eq!(
        values, want,
        "samples are SignalGenerator::fill from index 0"
    );
    assert_eq!(client.frames.decoder().stats().anomalies(), 0);
    client.finish().await;
}

#[tokio::test]
async fn every_layout_streams_generator_samples() {
    for (measures, rate) in [
        (Measures::SinglePhase, 4000),
        (Measures::Phase(meterflow::wire::Phase::L3), 32000),
        (Measures::PowerLatch, 50),
        (Measures::RmsLatch, 10),
    ] {
        let settings = settings(Pacing::Fast);
        let mut client = Client::start(settings.clone());
        let payload = format!(r#"{{"type":"TCP","rate":{rate},"measures":"{measures}"}}"#);
        let (_, answer) = client.start_sampling(&payload).await;
        assert_eq!(answer.measures.channels(), measures.channels());
        let mut values = Vec::new();
        while values.len() < 3000 * measures.channel_count() {
            if let Frame::Data { payload, .. } = client.next().await {
                values.extend(f32s(&payload));
            }
        }
        let want = expected(
            &settings,
            measures,
            rate,
            values.len() / measures.channel_count(),
        );
        assert_eq!(values, want, "{measures} @ {rate}");
        client.finish().await;
    }
}

#[tokio::test]
async fn stop_sends_tail_then_stop_answer_with_consistent_counts() {
    let settings = settings(Pacing::RealTime);
    let mut client = Client::start(settings.clone());
    let (_, answer) = client.start_sampling(r#"{"type":"TCP","rate":8000}"#).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.send(r#"{"cmd":"stop"}"#).await;
    let mut values = Vec::new();
    let mut sizes = Vec::new();
    let stop = client.until_stop(&mut values, &mut sizes).await;
    let received = (values.len() / 6) as u64;
    assert_eq!(stop.sent_samples, received);
    assert_eq!(stop.samples, received, "nothing dropped");
    assert!(received >= 2000, "{received} samples in 300 ms at 8 kHz");
    assert!(sizes[..sizes.len() - 1]
        .iter()
        .all(|&s| s == answer.chunksize));
    assert!(*sizes.last().unwrap() <= answer.chunksize);
    assert_eq!(
        values,
        expected(&settings, Measures::ThreePhase, 8000, received as usize)
    );
    assert_eq!(stop.start_ts, answer.start_ts);
    assert!(stop.sample_duration >= 300);
    // Real-time pacing: the sample count follows the clock.
    let expected_samples = stop.sample_duration * 8;
    assert!(
        received.abs_diff(expected_samples) <= 8 * 20,
        "{received} vs {expected_samples}"
    );
    // Back to idle: lifeness lines again, and `stop` while idle is an error.
    let line = client.next_info().await;
    assert!(matches!(InfoMessage::parse(&line).unwrap(), InfoMessage::Log(l) if l.is_lifeness()));
    client.send(r#"{"cmd":"stop"}"#).await;
    assert!(matches!(client.next_answer().await, InfoMessage::Error(_)));
    client.finish().await;
}

#[tokio::test]
async fn ping_answers_setup_done_and_stops_sampling() {
    let mut client = Client::start(settings(Pacing::RealTime));
    client.start_sampling(r#"{"type":"TCP","rate":8000}"#).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.send("?").await;
    loop {
        if let Frame::Info(text) = client.next().await {
            if InfoMessage::parse(&text).unwrap() == InfoMessage::SetupDone {
                break;
            }
        }
    }
    // No data after it, lifeness lines instead.
    for _ in 0..2 {
        let frame = client.next().await;
        let Frame::Info(text) = frame else {
            panic!("data after `?`: {frame:?}")
        };
        assert!(
            matches!(InfoMessage::parse(&text).unwrap(), InfoMessage::Log(l) if l.is_lifeness())
        );
    }
    client.send(r#"{"cmd":"info"}"#).await;
    let InfoMessage::DeviceInfo(info) = client.next_answer().await else {
        panic!("no info")
    };
    assert!(info.is_idle());
    client.finish().await;
}

/// Data frames seen within `window`.
async fn data_within(client: &mut Client, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut frames = 0;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, client.frames.next()).await {
        if let Frame::Data { .. } = frame {
            frames += 1;
        }
    }
    frames
}

#[tokio::test]
async fn cts_pauses_and_resumes() {
    let mut client = Client::start(settings(Pacing::RealTime));
    client.start_sampling(r#"{"type":"TCP","rate":8000}"#).await;
    assert!(data_within(&mut client, Duration::from_millis(200)).await > 0);
    client.send(r#"{"cmd":"cts","value":false}"#).await;
    // Let in-flight frames and the cts answer pass.
    loop {
        let text = client.next_info().await;
        if text.contains(r#""cmd":"cts""#) {
            assert_eq!(text, r#"{"error":false,"cmd":"cts"}"#);
            break;
        }
    }
    assert_eq!(
        data_within(&mut client, Duration::from_millis(300)).await,
        0
    );
    client.send(r#"{"cmd":"cts","value":true}"#).await;
    assert!(data_within(&mut client, Duration::from_millis(300)).await > 0);
    client.finish().await;
}

#[tokio::test]
async fn flow_control_sends_exactly_the_requested_samples() {
    let settings = settings(Pacing::RealTime);
    let mut client = Client::start(settings.clone());
    let (_, answer) = client
        .start_sampling(r#"{"type":"TCP","rate":8000,"flowCtr":true}"#)
        .await;
    assert!(answer.flow_ctr);
    assert_eq!(
        data_within(&mut client, Duration::from_millis(200)).await,
        0
    );
    client.send(r#"{"cmd":"reqSamples","samples":100}"#).await;
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, client.frames.next()).await {
        if let Frame::Data { payload, .. } = frame {
            values.extend(f32s(&payload));
        }
    }
    assert_eq!(values.len(), 100 * 6, "exactly 100 samples");
    assert_eq!(values, expected(&settings, Measures::ThreePhase, 8000, 100));
    client.finish().await;
}

#[tokio::test]
async fn bad_input_is_answered_and_the_connection_lives_on() {
    let mut client = Client::start(settings(Pacing::RealTime));
    assert!(matches!(
        client.next_answer().await,
        InfoMessage::DeviceInfo(_)
    ));
    // Garbage: an [E] log line, no answer.
    client.send("this is not json {\"").await;
    let line = loop {
        let text = client.next_info().await;
        if let InfoMessage::Log(log) = InfoMessage::parse(&text).unwrap() {
            if !log.is_lifeness() {
                break log;
            }
        }
    };
    assert_eq!(line.level, LogLevel::Error);
    assert!(
        line.message
            .starts_with("deserializeJson() failed: this is not json"),
        "{}",
        line.message
    );
    // Unknown command: warning line and an error answer naming it.
    client.send(r#"{"cmd":"selfDestruct"}"#).await;
    let InfoMessage::Error(error) = client.next_answer().await else {
        panic!("no error answer")
    };
    assert_eq!(error.cmd.as_deref(), Some("selfDestruct"));
    // Invalid field: the firmware's error answer.
    client
        .send(r#"{"cmd":"sample","payload":{"type":"TCP","rate":7000}}"#)
        .await;
    let InfoMessage::Error(error) = client.next_answer().await else {
        panic!("no error answer")
    };
    assert_eq!(error.cmd.as_deref(), Some("sample"));
    assert!(error.msg.is_some());
    // An overlong line and binary junk do not hurt either.
    let long = format!(
        "{{\"cmd\":\"mdns\",\"payload\":{{\"name\":\"{}\"}}}}",
        "x".repeat(100_000)
    );
    client.send(&long).await;
    client
        .write
        .write_all(&[0xff, 0x00, 0xfe, b'\n'])
        .await
        .unwrap();
    client
        .send(r#"{"cmd":"mdns","payload":{"name":"kitchen"}}"#)
        .await;
    let InfoMessage::Answer(answer) = client.next_answer().await else {
        panic!("no mdns answer")
    };
    assert_eq!(
        answer.get("mdns_name").and_then(|v| v.as_str()),
        Some("kitchen")
    );
    client.send(r#"{"cmd":"getPower"}"#).await;
    let InfoMessage::Answer(power) = client.next_answer().await else {
        panic!("no power answer")
    };
    let p = power.get("activePower").and_then(|v| v.as_array()).unwrap();
    let want = 230.0 * 10.0 * 25f64.to_radians().cos();
    assert!((p[0].as_f64().unwrap() - want).abs() < 0.01);
    client.send(r#"{"cmd":"info"}"#).await;
    let InfoMessage::DeviceInfo(info) = client.next_answer().await else {
        panic!("no info")
    };
    assert_eq!(info.name, "kitchen");
    client.finish().await;
}

#[tokio::test]
async fn a_sink_that_stops_reading_costs_samples_not_memory() {
    let mut settings = settings(Pacing::RealTime);
    // 0.1 s of buffer at 32 kHz, 6 channels.
    settings.buffer_size = 3200 * 24;
    let mut client = Client::start_with(settings, 4096);
    client
        .start_sampling(r#"{"type":"TCP","rate":32000}"#)
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.send(r#"{"cmd":"stop"}"#).await;
    let mut missed = 0;
    let stop = loop {
        match client.next().await {
            Frame::Info(text) => match InfoMessage::parse(&text).unwrap() {
                InfoMessage::Log(log) => missed += log.missed_samples().unwrap_or(0),
                InfoMessage::StopAnswer(stop) => break stop,
                _ => {}
            },
            Frame::Data { .. } => {}
            Frame::Anomaly(a) => panic!("anomaly {a:?}"),
        }
    };
    assert!(missed > 0, "MISSED lines were sent");
    assert!(stop.samples > stop.sent_samples + 5000);
    let report = client.finish().await;
    assert_eq!(report.dropped_samples, stop.samples - stop.sent_samples);
}

#[tokio::test]
async fn a_sink_that_disconnects_mid_frame_ends_the_connection() {
    let meter = VirtualMeter::new(settings(Pacing::Fast)).unwrap();
    let (client, server) = tokio::io::duplex(4096);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(async move { meter.serve(server, &cancel, None).await });
    let (mut read, mut write) = tokio::io::split(client);
    write
        .write_all(b"{\"cmd\":\"sample\",\"payload\":{\"type\":\"TCP\",\"rate\":8000}}\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 3000];
    read.read_exact(&mut buf).await.unwrap();
    drop(read);
    drop(write);
    let report = timeout(PATIENCE, task).await.unwrap().unwrap().unwrap();
    assert_eq!(report.end, ConnectionEnd::PeerClosed);
}

#[tokio::test]
async fn raw_mode_sends_bare_f32le() {
    let mut settings = settings(Pacing::Fast);
    settings.raw_rate = 8000;
    let meter = VirtualMeter::new(settings.clone()).unwrap();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move { meter.serve_raw(server, &token, None).await });
    client.write_all(b"{\"cmd\":\"stop\"}\n").await.unwrap();
    let mut buf = vec![0u8; 24 * 5000];
    timeout(PATIENCE, client.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let values: Vec<f32> = f32s(&buf).collect();
    assert_eq!(
        values,
        expected(&settings, Measures::ThreePhase, 8000, 5000)
    );
    cancel.cancel();
    let report = timeout(PATIENCE, task).await.unwrap().unwrap().unwrap();
    assert_eq!(report.end, ConnectionEnd::Cancelled);
}

#[tokio::test]
async fn dial_in_reconnects_after_the_server_drops_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let meter = VirtualMeter::new(settings(Pacing::RealTime)).unwrap();
    let cancel = CancellationToken::new();
    let config = DialInConfig {
        reconnect: Duration::from_millis(100),
        ..DialInConfig::new(server)
    };
    let task = tokio::spawn(run_dial_in(meter, config, None, cancel.clone()));
    for _ in 0..2 {
        let (stream, _) = timeout(PATIENCE, listener.accept()).await.unwrap().unwrap();
        let mut frames = FramedRead::new(stream, MeterCodec::new());
        let Some(Ok(Frame::Info(text))) = timeout(PATIENCE, frames.next()).await.unwrap() else {
            panic!("no info line")
        };
        assert!(matches!(
            InfoMessage::parse(&text).unwrap(),
            InfoMessage::DeviceInfo(_)
        ));
        drop(frames);
    }
    cancel.cancel();
    let report = timeout(PATIENCE, task).await.unwrap().unwrap();
    assert!(report.connections >= 2);
}

#[tokio::test]
async fn fleet_capture_equals_the_bytes_the_sink_received() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let mut config = FleetConfig::new(
        FleetMode::DialIn {
            server,
            reconnect: Duration::from_millis(100),
        },
        2,
    );
    config.template = settings(Pacing::Fast);
    config.template.limit = Some(SessionLimit::Samples(5000));
    config.capture = Some(dir.path().join("{name}.bin"));
    let base_seed = config.template.signal.seed;
    let template = config.template.clone();
    let fleet = tokio::spawn(run_fleet(config, CancellationToken::new()));

    let mut sinks = Vec::new();
    for _ in 0..2 {
        let (mut stream, _) = timeout(PATIENCE, listener.accept()).await.unwrap().unwrap();
        sinks.push(tokio::spawn(async move {
            stream
                .write_all(b"{\"cmd\":\"sample\",\"payload\":{\"type\":\"TCP\",\"rate\":8000,\"measures\":\"v,i\"}}\n")
                .await
                .unwrap();
            let mut all = Vec::new();
            timeout(PATIENCE, stream.read_to_end(&mut all)).await.unwrap().unwrap();
            all
        }));
    }
    let mut received = Vec::new();
    for sink in sinks {
        received.push(sink.await.unwrap());
    }
    let report = timeout(PATIENCE, fleet).await.unwrap().unwrap().unwrap();
    assert_eq!(report.meters.len(), 2);
    for meter in &report.meters {
        assert!(meter.limit_reached);
        assert_eq!(meter.sent_samples, 5000);
    }
    for bytes in received {
        let mut codec = MeterCodec::new();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut name = None;
        let mut values = Vec::new();
        let mut stop = None;
        use tokio_util::codec::Decoder;
        while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            match frame {
                Frame::Info(text) => match InfoMessage::parse(&text).unwrap() {
                    InfoMessage::DeviceInfo(info) => name = Some(info.name),
                    InfoMessage::StopAnswer(answer) => stop = Some(answer),
                    _ => {}
                },
                Frame::Data { payload, .. } => values.extend(f32s(&payload)),
                Frame::Anomaly(a) => panic!("anomaly {a:?}"),
            }
        }
        let name = name.unwrap();
        let stop = stop.unwrap();
        assert_eq!((stop.samples, stop.sent_samples), (5000, 5000));
        let captured = std::fs::read(dir.path().join(format!("{name}.bin"))).unwrap();
        assert_eq!(captured, bytes, "capture of {name}");
        let k: u64 = name.trim_start_matches("smartmeter").parse().unwrap();
        let signal = SignalConfig {
            seed: base_seed + k,
            ..template.signal.clone()
        };
        let mut generator = SignalGenerator::new(signal, Measures::SinglePhase, 8000).unwrap();
        let mut want = vec![0.0; 5000 * 2];
        generator.fill(&mut want);
        assert_eq!(values, want, "{name} uses seed + k");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test]
async fn run_session_completes_a_handshake_against_the_meter() {
    let meter = VirtualMeter::new(settings(Pacing::Fast)).unwrap();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move { meter.serve(server, &token, None).await });
    let session = SessionSettings {
        rate: 4000,
        measures: Measures::ThreePhase,
        stop_after_samples: Some(4000),
        ..SessionSettings::default()
    };
    let mut samples = 0;
    let report = timeout(
        PATIENCE,
        run_session(
            client,
            &session,
            CancellationToken::new(),
            &mut |block: &meterflow::wire::SampleBlock| samples += block.len(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.info.name, "smartmeter001");
    assert_eq!(report.answer.samplingrate, 4000);
    assert_eq!(report.end, SessionEnd::Stopped);
    let stop = report.stop.unwrap();
    assert_eq!(stop.sent_samples, report.samples);
    assert!(report.samples >= 4000);
    assert_eq!(report.lost_samples, 0);
    assert_eq!(report.wire.anomalies(), 0);
    cancel.cancel();
    timeout(PATIENCE, task).await.unwrap().unwrap().unwrap();
}

#[test]
fn a_signal_file_loads_as_json_or_toml() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("signal.toml");
    std::fs::write(
        &toml,
        "voltage_rms_v = 120.0\nfrequency_hz = 60.0\nseed = 9\n",
    )
    .unwrap();
    let config = SignalConfig::load(&toml).unwrap();
    assert_eq!(
        (config.voltage_rms_v, config.frequency_hz, config.seed),
        (120.0, 60.0, 9)
    );
    let json = dir.path().join("signal.json");
    std::fs::write(&json, r#"{"frequency_hz": 50.5}"#).unwrap();
    assert_eq!(SignalConfig::load(&json).unwrap().frequency_hz, 50.5);
    std::fs::write(&json, r#"{"nonsense": 1}"#).unwrap();
    assert!(SignalConfig::load(&json).is_err());
}
