//! A local cluster on one machine: ingest and writer nodes as child
//! `meterflow sink` and `meterflow writer` processes reading the same
//! pipeline file, each with its own ports, state folder and log file. A
//! node that dies is started again; stopping drains the cluster in order:
//! the ingest nodes first (they publish what they hold), then the writers
//! once they have taken the rest of the stream. `meterflow cluster` and
//! `meterflow bench cluster` both run their nodes with [`LocalCluster`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::pipeline::config::SourceConfig;
use crate::pipeline::prometheus::metric_sum;
use crate::pipeline::PipelineConfig;

/// The built-in cluster pipeline: NATS on 127.0.0.1:4222, meters on 54322 + k.
pub const CLUSTER_PIPELINE: &str = include_str!("../../../pipelines/cluster.toml");

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ingest,
    Writer,
}

/// One node to run: its name, role, `meterflow` arguments and metrics address.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub name: String,
    pub role: Role,
    pub args: Vec<String>,
    pub metrics: SocketAddr,
    /// Where its meters dial (ingest nodes).
    pub listen: Option<SocketAddr>,
}

struct Node {
    plan: NodePlan,
    log: PathBuf,
    child: Option<Child>,
    started: Instant,
    restarts: u32,
}

/// A node that exited and was started again.
#[derive(Debug)]
pub struct Restart {
    pub node: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Its new process id.
    pub pid: u32,
    pub log: PathBuf,
}

/// Child `meterflow` processes, one per node.
pub struct LocalCluster {
    /// The `meterflow` executable the nodes run.
    program: PathBuf,
    nodes: Vec<Node>,
    http: reqwest::Client,
}

/// A node dying sooner than this after its start counts against it.
const QUICK_EXIT: Duration = Duration::from_secs(5);
/// Quick exits in a row after which a node is not started again.
const MAX_QUICK_EXITS: u32 = 5;

impl LocalCluster {
    /// Starts every node as `program` with its plan's arguments (`program`
    /// is the running `meterflow`, see [`std::env::current_exe`]), its
    /// output into `<log_dir>/<name>.log`.
    pub fn start(program: &Path, plans: Vec<NodePlan>, log_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let mut cluster = LocalCluster {
            program: program.to_path_buf(),
            nodes: plans
                .into_iter()
                .map(|plan| Node {
                    log: log_dir.join(format!("{}.log", plan.name)),
                    plan,
                    child: None,
                    started: Instant::now(),
                    restarts: 0,
                })
                .collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .context("building the HTTP client for the nodes' /metrics")?,
        };
        for node in &mut cluster.nodes {
            spawn(&cluster.program, node)?;
        }
        Ok(cluster)
    }

    pub fn plans(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().map(|n| &n.plan)
    }

    pub fn log_of(&self, name: &str) -> Option<&Path> {
        self.nodes
            .iter()
            .find(|n| n.plan.name == name)
            .map(|n| n.log.as_path())
    }

    /// Process id of node `name` while it runs.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.plan.name == name)
            .and_then(|n| n.child.as_ref().map(Child::id))
    }

    /// Process ids of the running nodes of `role`.
    pub fn pids(&self, role: Role) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| n.plan.role == role)
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .collect()
    }

    /// Starts nodes that exited again, saying which; an error once one
    /// keeps dying at start.
    pub fn supervise(&mut self) -> anyhow::Result<Vec<Restart>> {
        let mut restarts = Vec::new();
        for node in &mut self.nodes {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            let Some(status) = child
                .try_wait()
                .with_context(|| format!("watching node {}", node.plan.name))?
            else {
                continue;
            };
            node.child = None;
            if node.started.elapsed() < QUICK_EXIT {
                node.restarts += 1;
            } else {
                node.restarts = 0;
            }
            anyhow::ensure!(
                node.restarts < MAX_QUICK_EXITS,
                "node {} exited {MAX_QUICK_EXITS} times right after its start ({status}); see {}",
                node.plan.name,
                node.log.display()
            );
            spawn(&self.program, node)?;
            restarts.push(Restart {
                node: node.plan.name.clone(),
                status,
                pid: node.child.as_ref().map_or(0, Child::id),
                log: node.log.clone(),
            });
        }
        Ok(restarts)
    }

    /// Sum of a metric's samples on one node; `None` while it does not answer.
    pub async fn metric(&self, node: &str, name: &str) -> Option<f64> {
        let node = self.nodes.iter().find(|n| n.plan.name == node)?;
        let url = format!("http://{}/metrics", node.plan.metrics);
        let body = self.http.get(url).send().await.ok()?.text().await.ok()?;
        Some(metric_sum(&body, name))
    }

    /// A metric summed over every node of `role` (nodes not answering count 0).
    pub async fn metric_of(&self, role: Role, name: &str) -> f64 {
        let mut sum = 0.0;
        for node in self.nodes.iter().filter(|n| n.plan.role == role) {
            sum += self.metric(&node.plan.name, name).await.unwrap_or(0.0);
        }
        sum
    }

    /// Waits until every node answers on /metrics.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.nodes.len() {
            loop {
                let name = self.nodes[i].plan.name.clone();
                if self.metric(&name, "meterflow_up").await.is_some() {
                    break;
                }
                self.supervise()?;
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "node {name} does not answer on http://{}/metrics after {timeout:?}; see {}",
                    self.nodes[i].plan.metrics,
                    self.nodes[i].log.display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Stops the ingest nodes (they publish what they hold), waits up to
    /// `drain` for the writers to take every pending message, then stops them.
    pub async fn stop(mut self, drain: Duration) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        for node in self
            .nodes
            .iter_mut()
            .filter(|n| n.plan.role == Role::Ingest)
        {
            if let Err(error) = terminate(node) {
                outcome = Err(error);
            }
        }
        let deadline = Instant::now() + drain;
        let mut last = -1.0;
        let mut steady_since = Instant::now();
        while Instant::now() < deadline {
            let pending = self
                .metric_of(Role::Writer, "meterflow_writer_pending_messages")
                .await;
            let taken = self
                .metric_of(Role::Writer, "meterflow_writer_messages_total")
                .await;
            if taken != last {
                (last, steady_since) = (taken, Instant::now());
            }
            if pending == 0.0 && steady_since.elapsed() > Duration::from_secs(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for node in self
            .nodes
            .iter_mut()
            .filter(|n| n.plan.role == Role::Writer)
        {
            if let Err(error) = terminate(node) {
                outcome = Err(error);
            }
        }
        outcome
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn spawn(program: &Path, node: &mut Node) -> anyhow::Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("opening {}", node.log.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("opening {}", node.log.display()))?;
    let child = Command::new(program)
        .args(&node.plan.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting node {}", node.plan.name))?;
    node.child = Some(child);
    node.started = Instant::now();
    Ok(())
}

/// How long a node has to drain after SIGTERM before it is killed.
const NODE_STOP_GRACE: Duration = Duration::from_secs(60);

/// SIGTERM, then waits for the node to drain (kill after [`NODE_STOP_GRACE`]).
fn terminate(node: &mut Node) -> anyhow::Result<()> {
    let Some(mut child) = node.child.take() else {
        return Ok(());
    };
    let status = terminate_child(&mut child, NODE_STOP_GRACE)
        .with_context(|| format!("stopping node {}", node.plan.name))?;
    match status {
        Some(status) => {
            anyhow::ensure!(
                status.success(),
                "node {} stopped with {status}; see {}",
                node.plan.name,
                node.log.display()
            );
            Ok(())
        }
        None => anyhow::bail!(
            "node {} did not stop within {NODE_STOP_GRACE:?} of SIGTERM; killed",
            node.plan.name
        ),
    }
}

/// Asks a child to stop with SIGTERM (so it can drain and close what it
/// holds) and waits up to `grace`; kills it after that. Its exit status, or
/// `None` when it had to be killed.
pub fn terminate_child(child: &mut Child, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
    if child.try_wait()?.is_none() {
        let pid = libc::pid_t::try_from(child.id()).context("a child's process id")?;
        // SAFETY: kill(2) on a child this process spawned and has not reaped
        // (try_wait above saw it running), so the pid is still its own. std
        // can only send SIGKILL; the drain needs SIGTERM.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Node plans for `pipeline`: ingest node k listens on its listen port + k
/// and serves metrics on its metrics port + k; the writers' metrics ports
/// follow. State folders: `<state_dir>/ingest<k>`; writers separate their
/// own under the shared state folder.
pub fn plan_nodes(
    pipeline: &Path,
    config: &PipelineConfig,
    ingest: usize,
    writers: usize,
) -> anyhow::Result<Vec<NodePlan>> {
    anyhow::ensure!(ingest >= 1, "--ingest must be at least 1");
    anyhow::ensure!(writers >= 1, "--writers must be at least 1");
    anyhow::ensure!(
        config.cluster.is_some(),
        "pipeline {}: a cluster needs a [cluster] section",
        pipeline.display()
    );
    if let Some(cluster) = &config.cluster {
        anyhow::ensure!(
            cluster.node.is_empty() || ingest == 1,
            "pipeline {}: cluster.node names one node, and the ingest nodes need a name each; \
             leave it out (each takes its host name and listen port)",
            pipeline.display()
        );
    }
    let SourceConfig::SmartmeterServer(link) = &config.source else {
        anyhow::bail!(
            "pipeline {}: ingest nodes need a smartmeter_server source",
            pipeline.display()
        );
    };
    let offset = |addr: SocketAddr, k: usize| -> anyhow::Result<SocketAddr> {
        if addr.port() == 0 {
            return Ok(addr);
        }
        let port = u16::try_from(usize::from(addr.port()) + k)
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("port {} + {k} is beyond 65535", addr.port()))?;
        Ok(SocketAddr::new(addr.ip(), port))
    };
    let file = pipeline.display().to_string();
    let mut plans = Vec::new();
    for k in 0..ingest {
        let listen = offset(link.listen, k)?;
        let metrics = offset(config.service.metrics_listen, k)?;
        let state = config.service.state_dir.join(format!("ingest{k}"));
        plans.push(NodePlan {
            name: format!("ingest{k}"),
            role: Role::Ingest,
            args: vec![
                "sink".into(),
                "--pipeline".into(),
                file.clone(),
                "--listen".into(),
                listen.to_string(),
                "--metrics-listen".into(),
                metrics.to_string(),
                "--state-dir".into(),
                state.display().to_string(),
            ],
            metrics,
            listen: Some(listen),
        });
    }
    for w in 0..writers {
        let metrics = offset(config.service.metrics_listen, ingest + w)?;
        plans.push(NodePlan {
            name: format!("writer{w}"),
            role: Role::Writer,
            args: vec![
                "writer".into(),
                "--pipeline".into(),
                file.clone(),
                "--index".into(),
                w.to_string(),
                "--of".into(),
                writers.to_string(),
                "--metrics-listen".into(),
                metrics.to_string(),
            ],
            metrics,
            listen: None,
        });
    }
    Ok(plans)
}

/// Writes a pipeline file atomically (a node may read it at any time).
pub fn write_pipeline(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::sink::atomic_file::write_atomically(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Whether something listens at a `nats://host:port` URL.
pub fn nats_answers(url: &str) -> bool {
    let address = url
        .split("://")
        .last()
        .unwrap_or(url)
        .rsplit('@')
        .next()
        .unwrap_or(url);
    use std::net::ToSocketAddrs;
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_pipeline_plans_ports_and_state_per_node() {
        let config = PipelineConfig::parse(CLUSTER_PIPELINE).unwrap();
        config.validate().unwrap();
        let plans = plan_nodes(Path::new("c.toml"), &config, 2, 2).unwrap();
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ingest0", "ingest1", "writer0", "writer1"]);
        let listens: Vec<String> = plans
            .iter()
            .filter_map(|p| p.listen.map(|l| l.to_string()))
            .collect();
        assert_eq!(listens, ["0.0.0.0:54322", "0.0.0.0:54323"]);
        let metrics: Vec<u16> = plans.iter().map(|p| p.metrics.port()).collect();
        assert_eq!(metrics, [9102, 9103, 9104, 9105]);
        assert!(plans[1]
            .args
            .join(" ")
            .contains("--state-dir out/state/ingest1"));
        assert!(plans[3].args.join(" ").contains("--index 1 --of 2"));
    }

    #[test]
    fn a_pipeline_without_cluster_or_server_source_is_refused() {
        let mut config = PipelineConfig::parse(CLUSTER_PIPELINE).unwrap();
        config.cluster = None;
        let error = plan_nodes(Path::new("c.toml"), &config, 1, 1).unwrap_err();
        assert!(error.to_string().contains("[cluster]"), "{error}");
        let config = PipelineConfig::parse(CLUSTER_PIPELINE).unwrap();
        let error = plan_nodes(Path::new("c.toml"), &config, 0, 1).unwrap_err();
        assert!(error.to_string().contains("--ingest"), "{error}");
    }

    /// A node run as `sh -c script` (the supervisor does not care what runs).
    fn shell_node(name: &str, role: Role, script: &str) -> NodePlan {
        NodePlan {
            name: name.to_string(),
            role,
            args: vec!["-c".to_string(), script.to_string()],
            // Nothing listens on port 1: the node never answers /metrics.
            metrics: SocketAddr::from(([127, 0, 0, 1], 1)),
            listen: None,
        }
    }

    #[tokio::test]
    async fn a_node_that_keeps_dying_at_start_is_given_up_after_five_tries() {
        let dir = tempfile::tempdir().unwrap();
        let plan = shell_node("ingest0", Role::Ingest, "echo started; exit 3");
        let mut cluster =
            LocalCluster::start(Path::new("/bin/sh"), vec![plan], dir.path()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let error = loop {
            match cluster.supervise() {
                Ok(_) => {}
                Err(error) => break error.to_string(),
            }
            assert!(Instant::now() < deadline, "never given up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(error.contains("node ingest0 exited 5 times"), "{error}");
        // Started once, then again after each of the first four exits.
        let log = std::fs::read_to_string(dir.path().join("ingest0.log")).unwrap();
        assert_eq!(log.lines().filter(|l| *l == "started").count(), 5, "{log}");
    }

    #[tokio::test]
    async fn stop_terminates_ingest_nodes_before_writers_and_each_drains() {
        let dir = tempfile::tempdir().unwrap();
        let order = dir.path().join("order");
        // Each node appends its name on SIGTERM and exits 0, as a draining node does.
        let script = |name: &str| {
            format!(
                "trap 'echo {name} >> {}; exit 0' TERM; while true; do sleep 0.05; done",
                order.display()
            )
        };
        let plans = vec![
            shell_node("writer0", Role::Writer, &script("writer0")),
            shell_node("ingest0", Role::Ingest, &script("ingest0")),
        ];
        let cluster = LocalCluster::start(Path::new("/bin/sh"), plans, dir.path()).unwrap();
        assert_eq!(cluster.pids(Role::Ingest).len(), 1);
        assert_eq!(cluster.pids(Role::Writer).len(), 1);
        // Let the shells set their traps.
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.stop(Duration::from_secs(2)).await.unwrap();
        let order = std::fs::read_to_string(&order).unwrap();
        assert_eq!(order, "ingest0\nwriter0\n");
    }

    #[tokio::test]
    async fn a_node_exiting_with_an_error_on_stop_fails_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let plan = shell_node(
            "writer0",
            Role::Writer,
            "trap 'exit 7' TERM; while true; do sleep 0.05; done",
        );
        let cluster = LocalCluster::start(Path::new("/bin/sh"), vec![plan], dir.path()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let error = cluster.stop(Duration::ZERO).await.unwrap_err().to_string();
        assert!(
            error.contains("node writer0 stopped with exit status: 7"),
            "{error}"
        );
    }

    #[test]
    fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
        let mut child = Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let status = terminate_child(&mut child, Duration::from_millis(300)).unwrap();
        assert_eq!(status, None);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Reaped: nothing left to wait for.
        assert!(child.try_wait().unwrap().is_some());
    }
}
