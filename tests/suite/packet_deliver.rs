//! The fan-out: a stuck target holds up neither the caller nor the other
//! targets, and what it has not taken is kept in its spool for next time.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use meterflow::sink::packet::{
    Deliverer, DeliveryConfig, DeliveryError, NdjsonConfig, PacketTarget, SpoolConfig,
};

/// A target that never answers (think: a server that accepts and hangs).
struct Stuck;

impl PacketTarget for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }

    async fn deliver(&mut self, _packet: &Bytes) -> Result<(), DeliveryError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

/// A target that takes everything and remembers it.
struct Collect(std::sync::Arc<std::sync::Mutex<Vec<Bytes>>>);

impl PacketTarget for Collect {
    fn name(&self) -> &str {
        "stuck" // same spool folder as `Stuck`: it inherits its backlog
    }

    async fn deliver(&mut self, packet: &Bytes) -> Result<(), DeliveryError> {
        self.0.lock().unwrap().push(packet.clone());
        Ok(())
    }
}

fn config(out: &Path, spool: &Path) -> DeliveryConfig {
    DeliveryConfig {
        ndjson: Some(NdjsonConfig::new(out)),
        spool: SpoolConfig {
            dir: spool.to_path_buf(),
            memory_queue: 4,
            ..SpoolConfig::default()
        },
        ..DeliveryConfig::default()
    }
}

fn ndjson_lines(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|text| text.lines().count())
        .sum()
}

fn packet(n: usize) -> Bytes {
    Bytes::from(format!("{{\"timestamp\":{n}}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_target_holds_up_nobody_and_keeps_its_backlog() {
    let out = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut d = Deliverer::start(&config(out.path(), spool.path()), uuid::Uuid::nil()).unwrap();
    d.add_target(Stuck).unwrap();
    assert_eq!(d.targets(), ["ndjson", "stuck"]);

    let start = Instant::now();
    for n in 0..20 {
        d.send_serialized(packet(n)).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(1), "send never waits");
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.stats()[0].delivered < 20 {
        assert!(Instant::now() < deadline, "ndjson held up: {:?}", d.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The stuck target's packets beyond its memory queue are on disk.
    assert!(d.stats()[1].spooled >= 15, "{:?}", d.stats());

    let stats = d.shutdown(Duration::from_millis(200)).await.unwrap();
    assert_eq!(stats[0].delivered, 20);
    assert_eq!(stats[1].delivered, 0);
    assert_eq!(
        stats[1].spooled, 20,
        "all of the stuck target's packets kept"
    );

    // Next run: the backlog goes out first, in order, then new packets.
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut d = Deliverer::without_targets(&config(out.path(), spool.path())).unwrap();
    d.add_target(Collect(std::sync::Arc::clone(&got))).unwrap();
    d.send_serialized(packet(20)).unwrap();
    let stats = d.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(stats[0].spooled, 0);
    let want: Vec<Bytes> = (0..21).map(packet).collect();
    assert_eq!(*got.lock().unwrap(), want);
    assert_eq!(ndjson_lines(out.path()), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_shutdown_keeps_packets() {
    let out = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let cfg = config(out.path(), spool.path());
    {
        let mut d = Deliverer::without_targets(&cfg).unwrap();
        d.add_target(Stuck).unwrap();
        for n in 0..3 {
            d.send_serialized(packet(n)).unwrap();
        }
    }
    // The lane notices the drop and writes its memory queue to the spool.
    let segments = spool.path().join("stuck");
    let spooled_lines = || -> usize {
        std::fs::read_dir(&segments)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while spooled_lines() < 3 {
        assert!(
            Instant::now() < deadline,
            "memory queue not spooled after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut d = Deliverer::without_targets(&cfg).unwrap();
    d.add_target(Collect(std::sync::Arc::clone(&got))).unwrap();
    let stats = d.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!((stats[0].delivered, stats[0].spooled), (3, 0));
    let want: Vec<Bytes> = (0..3).map(packet).collect();
    assert_eq!(*got.lock().unwrap(), want);
}
