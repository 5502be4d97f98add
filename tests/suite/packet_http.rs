//! The HTTP target against a real HTTP server on 127.0.0.1: headers and body
//! arrive, a server failing the first attempts with 503 still gets every
//! packet once, a server that is down gets everything later from the
//! spool, in order, also across a restart, and a 400 is set aside.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use meterflow::model::SensorInterval;
use meterflow::sink::packet::{
    Deliverer, DeliveryConfig, GatewayIdentity, HttpConfig, Packet, PacketBuilder, PacketConfig,
    RetryConfig, SpoolConfig,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

#[derive(Default)]
struct Server {
    /// Answer 503 to this many requests first.
    fail_first: usize,
    /// Answer 400 to packets with this timestamp.
    reject_timestamp: Option<i64>,
    attempts: AtomicUsize,
    received: Mutex<Vec<Value>>,
    headers: Mutex<Vec<HeaderMap>>,
}

async fn ingest(State(s): State<Arc<Server>>, headers: HeaderMap, body: String) -> StatusCode {
    let attempt = s.attempts.fetch_add(1, Ordering::SeqCst);
    if attempt < s.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(json) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if s.reject_timestamp.is_some() && json["timestamp"].as_i64() == s.reject_timestamp {
        return StatusCode::BAD_REQUEST;
    }
    s.received.lock().unwrap().push(json);
    s.headers.lock().unwrap().push(headers);
    StatusCode::OK
}

async fn serve(listener: TcpListener, state: Arc<Server>) -> JoinHandle<()> {
    let app = Router::new()
        .route("/ingest", post(ingest))
        .with_state(state);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

/// A loopback port nobody listens on (yet).
async fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn packets(range: std::ops::Range<i64>) -> Vec<Packet> {
    let gateway = GatewayIdentity::for_host(None, "test-gateway");
    let b = PacketBuilder::with_gateway(&PacketConfig::default(), gateway).unwrap();
    range
        .map(|n| {
            let input = SensorInterval {
                meter_name: "meter-01".into(),
                interval_end_ms: n * 5000,
                ..SensorInterval::default()
            };
            b.build(&[input], n).remove(0)
        })
        .collect()
}

fn config(addr: SocketAddr, spool: &Path) -> DeliveryConfig {
    let mut http = HttpConfig::new(format!("http://{addr}/ingest"));
    http.headers
        .insert("Authorization".into(), "Bearer t0ken".into());
    http.timeout_ms = 1000;
    http.max_attempts = 3;
    http.backoff_initial_ms = 10;
    http.backoff_max_ms = 50;
    DeliveryConfig {
        http: Some(http),
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

fn timestamps(server: &Server) -> Vec<i64> {
    server
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|p| p["timestamp"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_then_ok_server_gets_every_packet_once_with_headers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server {
        fail_first: 2,
        ..Server::default()
    });
    serve(listener, Arc::clone(&server)).await;
    let spool = tempfile::tempdir().unwrap();
    let d = Deliverer::start(&config(addr, spool.path()), Uuid::nil()).unwrap();

    let sent = packets(0..5);
    for p in &sent {
        d.send(p).unwrap();
    }
    let stats = d.shutdown(Duration::from_secs(10)).await.unwrap();

    // Two 503s, then five 200s: the target's own retries absorbed the blip.
    assert_eq!(server.attempts.load(Ordering::SeqCst), 7);
    assert_eq!(timestamps(&server), [0, 1, 2, 3, 4]);
    assert_eq!(stats[0].delivered, 5);
    assert_eq!(stats[0].spooled, 0);
    let got: Vec<Packet> = server
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    assert_eq!(got, sent, "bodies are the packets, unchanged");
    let headers = server.headers.lock().unwrap();
    assert_eq!(headers[0]["authorization"], "Bearer t0ken");
    assert_eq!(headers[0]["content-type"], "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_spools_then_delivers_in_order_when_back() {
    let addr = free_port().await;
    let spool = tempfile::tempdir().unwrap();
    let d = Deliverer::start(&config(addr, spool.path()), Uuid::nil()).unwrap();

    for p in packets(0..30) {
        d.send(&p).unwrap();
    }
    wait_until("30 packets spooled", Duration::from_secs(10), || {
        d.spooled() == 30
    })
    .await;
    assert_eq!(d.stats()[0].spooled, 30);
    assert_eq!(d.stats()[0].delivered, 0);
    assert!(d.stats()[0].failed_attempts >= 1);

    // The server comes up; meanwhile more packets keep coming.
    let listener = TcpListener::bind(addr).await.unwrap();
    let server = Arc::new(Server::default());
    serve(listener, Arc::clone(&server)).await;
    for p in packets(30..40) {
        d.send(&p).unwrap();
    }
    wait_until("40 packets delivered", Duration::from_secs(10), || {
        server.received.lock().unwrap().len() >= 40
    })
    .await;
    let stats = d.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(timestamps(&server), (0..40).collect::<Vec<_>>());
    assert_eq!(stats[0].spooled, 0);
    assert_eq!(stats[0].delivered, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_survives_a_restart() {
    let addr = free_port().await;
    let spool = tempfile::tempdir().unwrap();
    {
        let d = Deliverer::start(&config(addr, spool.path()), Uuid::nil()).unwrap();
        for p in packets(0..10) {
            d.send(&p).unwrap();
        }
        let stats = d.shutdown(Duration::from_millis(300)).await.unwrap();
        assert_eq!(stats[0].spooled, 10, "undelivered packets stay on disk");
        assert_eq!(stats[0].delivered, 0);
    }

    // Restarted while the server is still down: the backlog is seen.
    let d = Deliverer::start(&config(addr, spool.path()), Uuid::nil()).unwrap();
    assert_eq!(d.spooled(), 10, "the restart sees the spool");
    let listener = TcpListener::bind(addr).await.unwrap();
    let server = Arc::new(Server::default());
    serve(listener, Arc::clone(&server)).await;
    for p in packets(10..15) {
        d.send(&p).unwrap();
    }
    let stats = d.shutdown(Duration::from_secs(10)).await.unwrap();
    assert_eq!(timestamps(&server), (0..15).collect::<Vec<_>>());
    assert_eq!(stats[0].spooled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_packet_is_set_aside_and_the_rest_flows() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server {
        reject_timestamp: Some(1),
        ..Server::default()
    });
    serve(listener, Arc::clone(&server)).await;
    let spool = tempfile::tempdir().unwrap();
    let d = Deliverer::start(&config(addr, spool.path()), Uuid::nil()).unwrap();
    for p in packets(0..3) {
        d.send(&p).unwrap();
    }
    let stats = d.shutdown(Duration::from_secs(10)).await.unwrap();
    assert_eq!(timestamps(&server), [0, 2]);
    assert_eq!((stats[0].delivered, stats[0].rejected), (2, 1));
    let kept = std::fs::read_to_string(spool.path().join("http/rejected.ndjson")).unwrap();
    let kept: Value = serde_json::from_str(kept.trim()).unwrap();
    assert_eq!(kept["timestamp"], 1);
}
