//! The MQTT target against a real mosquitto that this test starts on a free
//! loopback port (scripts/test installs mosquitto; it is looked for in PATH,
//! /usr/sbin and /usr/local/sbin). A subscriber checks that every packet
//! arrives once, in order, on `betterfleet/<device_id>`, also when the
//! broker is down at first and the packets come from the spool.

use crate::common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mosquitto::{free_port, Broker};

use bytes::Bytes;
use meterflow::model::SensorInterval;
use meterflow::sink::packet::{
    Deliverer, DeliveryConfig, GatewayIdentity, MqttConfig, Packet, PacketBuilder, PacketConfig,
    RetryConfig, SpoolConfig,
};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A QoS 1 subscriber to `betterfleet/#` collecting (topic, payload).
struct Subscriber {
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Connects (persistent session when `clean` is false); subscribes
    /// when `subscribe`; returns once the broker confirmed.
    async fn connect(port: u16, clean: bool, subscribe: bool) -> Subscriber {
        let mut options = MqttOptions::new("packet-test-subscriber", "127.0.0.1", port);
        options
            .set_clean_session(clean)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 22, 1 << 22);
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        if subscribe {
            client
                .subscribe("betterfleet/#", QoS::AtLeastOnce)
                .await
                .unwrap();
        }
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let task = tokio::spawn(async move {
            let _client = client; // keeps the request channel open
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        sink.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.clone()));
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) if subscribe => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::ConnAck(_))) if !subscribe => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), ready_rx)
            .await
            .expect("subscriber not confirmed by the broker")
            .unwrap();
        Subscriber { received, task }
    }

    fn payload_timestamps(&self, topic: &str) -> Vec<i64> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(t, payload)| {
                assert_eq!(t, topic);
                let p: Packet = serde_json::from_slice(payload).unwrap();
                p.timestamp
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn gateway() -> GatewayIdentity {
    GatewayIdentity::for_host(Some(Uuid::from_u128(0x42)), "test-gateway")
}

fn packets(range: std::ops::Range<i64>) -> Vec<Packet> {
    let b = PacketBuilder::with_gateway(&PacketConfig::default(), gateway()).unwrap();
    range
        .map(|n| {
            // Three sensors per packet, so the payloads are of a real size.
            let inputs: Vec<_> = (0..3)
                .map(|s| SensorInterval {
                    meter_name: format!("meter-{s}"),
                    interval_end_ms: n * 5000,
                    ..SensorInterval::default()
                })
                .collect();
            b.build(&inputs, n).remove(0)
        })
        .collect()
}

fn config(port: u16, spool: &Path) -> DeliveryConfig {
    let mut mqtt = MqttConfig::new("127.0.0.1", port);
    mqtt.timeout_ms = 2000;
    DeliveryConfig {
        mqtt: Some(mqtt),
        spool: SpoolConfig {
            dir: spool.to_path_buf(),
            fsync_interval_ms: 50,
            ..SpoolConfig::default()
        },
        retry: RetryConfig {
            initial_backoff_ms: 20,
            max_backoff_ms: 200,
        },
        ..DeliveryConfig::default()
    }
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const TOPIC: &str = "betterfleet/00000000-0000-0000-0000-000000000042";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_arrives_once_and_in_order() {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    let _broker = Broker::start(port, dir.path());
    let subscriber = Subscriber::connect(port, true, true).await;

    let spool = TempDir::new().unwrap();
    let d = Deliverer::start(&config(port, spool.path()), gateway().device_id).unwrap();
    for p in packets(0..50) {
        d.send(&p).unwrap();
    }
    wait_until(
        "50 packets at the subscriber",
        Duration::from_secs(10),
        || subscriber.count() >= 50,
    )
    .await;
    let stats = d.shutdown(Duration::from_secs(5)).await.unwrap();
    // Give a duplicate the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        subscriber.payload_timestamps(TOPIC),
        (0..50).collect::<Vec<_>>()
    );
    assert_eq!((stats[0].delivered, stats[0].spooled), (50, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_start_then_spool_delivered_in_order() {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    // Register a persistent subscription, then take the broker down: the
    // broker keeps the session, so nothing published later can slip past
    // the subscriber however fast the deliverer reconnects.
    {
        let mut broker = Broker::start(port, dir.path());
        let subscriber = Subscriber::connect(port, false, true).await;
        drop(subscriber);
        broker.stop();
    }

    let spool = TempDir::new().unwrap();
    let d = Deliverer::start(&config(port, spool.path()), gateway().device_id).unwrap();
    for p in packets(0..20) {
        d.send(&p).unwrap();
    }
    wait_until("20 packets spooled", Duration::from_secs(10), || {
        d.spooled() == 20
    })
    .await;
    assert_eq!(d.stats()[0].delivered, 0);

    let _broker = Broker::start(port, dir.path());
    let subscriber = Subscriber::connect(port, false, false).await;
    for p in packets(20..25) {
        d.send(&p).unwrap();
    }
    wait_until(
        "25 packets at the subscriber",
        Duration::from_secs(10),
        || subscriber.count() >= 25,
    )
    .await;
    let stats = d.shutdown(Duration::from_secs(5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        subscriber.payload_timestamps(TOPIC),
        (0..25).collect::<Vec<_>>()
    );
    assert_eq!((stats[0].delivered, stats[0].spooled), (25, 0));
}
