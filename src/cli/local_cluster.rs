//! `meterflow cluster [--pipeline FILE] [--ingest N] [--writers M]`: a
//! local cluster in one command, against a running nats-server. Each node
//! is a child `meterflow sink` or `meterflow writer` reading the same
//! pipeline file, with its own ports, state folder and log file; a node
//! that dies is started again. Ctrl-C or SIGTERM stops the ingest nodes
//! first (they publish what they hold), lets the writers take the rest of
//! the stream, then stops the writers. `bench cluster` runs its nodes with
//! the same [`LocalCluster`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::pipeline::config::SourceConfig;
use crate::pipeline::PipelineConfig;

/// The built-in cluster pipeline: NATS on 127.0.0.1:4222, meters on 54322 + k.
pub const CLUSTER_PIPELINE: &str = include_str!("../../pipelines/cluster.toml");

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Pipeline file with a smartmeter_server source and a [cluster] section
    /// (default: the built-in pipelines/cluster.toml).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Ingest nodes: node k takes meters on the file's listen port + k.
    #[arg(long, default_value_t = 2)]
    pub ingest: usize,
    /// Writer nodes sharing the meters' partitions.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
}

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

/// Child `meterflow` processes, one per node.
pub struct LocalCluster {
    nodes: Vec<Node>,
    http: reqwest::Client,
}

/// A node dying sooner than this after its start counts against it.
const QUICK_EXIT: Duration = Duration::from_secs(5);
/// Quick exits in a row after which a node is not started again.
const MAX_QUICK_EXITS: u32 = 5;

impl LocalCluster {
    /// Starts every node, its output into `<log_dir>/<name>.log`.
    pub fn start(plans: Vec<NodePlan>, log_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let mut cluster = LocalCluster {
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
            spawn(node)?;
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

    /// Starts nodes that exited again; an error once one keeps dying at start.
    pub fn supervise(&mut self) -> anyhow::Result<()> {
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
            spawn(node)?;
            println!(
                "meterflow cluster: node {} exited ({status}); started again, pid {} (log {})",
                node.plan.name,
                node.child.as_ref().map_or(0, Child::id),
                node.log.display()
            );
        }
        Ok(())
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

fn spawn(node: &mut Node) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the meterflow executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("opening {}", node.log.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("opening {}", node.log.display()))?;
    let child = Command::new(exe)
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

/// SIGTERM, then waits up to a minute (kill after that).
fn terminate(node: &mut Node) -> anyhow::Result<()> {
    let Some(mut child) = node.child.take() else {
        return Ok(());
    };
    // SAFETY: kill(2) on a child this process spawned and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("stopping node {}", node.plan.name))?
        {
            anyhow::ensure!(
                status.success(),
                "node {} stopped with {status}; see {}",
                node.plan.name,
                node.log.display()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "node {} did not stop within a minute of SIGTERM; killed",
                node.plan.name
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sum of the samples of metric `name` in a Prometheus text body.
pub fn metric_sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let (pipeline, config) = match &args.pipeline {
        Some(path) => (path.clone(), PipelineConfig::load(path)?),
        None => {
            let config =
                PipelineConfig::parse(CLUSTER_PIPELINE).context("the built-in cluster pipeline")?;
            // The children read a file: the built-in one goes next to the state.
            let path = config.service.state_dir.join("cluster.toml");
            write_pipeline(&path, CLUSTER_PIPELINE)?;
            (path, config)
        }
    };
    config.validate()?;
    let plans = plan_nodes(&pipeline, &config, args.ingest, args.writers)?;
    let cluster_config = config
        .cluster
        .as_ref()
        .context("a cluster needs a [cluster] section")?;
    let urls = cluster_config.server_urls();
    if !urls.iter().any(|url| nats_answers(url)) {
        eprintln!(
            "meterflow cluster: no NATS server answers at {}; the nodes keep retrying \
             (start one with `nats-server -js`)",
            urls.join(", ")
        );
    }
    let log_dir = config.service.state_dir.join("logs");
    let mut cluster = LocalCluster::start(plans, &log_dir)?;
    println!(
        "meterflow cluster: {} ingest and {} writer nodes on {} (stream {})",
        args.ingest,
        args.writers,
        urls.join(", "),
        cluster_config.stream
    );
    for plan in cluster.plans() {
        let listen = plan
            .listen
            .map_or(String::new(), |l| format!("meters dial {l}, "));
        println!(
            "  {:<8} pid {}, {listen}metrics http://{}/metrics, log {}",
            plan.name,
            cluster.pid_of(&plan.name).unwrap_or(0),
            plan.metrics,
            cluster.log_of(&plan.name).unwrap_or(&log_dir).display()
        );
    }
    println!("Ctrl-C stops the ingest nodes, lets the writers finish, then stops them.");
    let cancel = CancellationToken::new();
    super::cancel_on_signal(&cancel, "stopping the cluster: ingest nodes first");
    let mut failure = None;
    while !cancel.is_cancelled() {
        if let Err(error) = cluster.supervise() {
            failure = Some(error);
            break;
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    let stopped = cluster.stop(Duration::from_secs(60)).await;
    if let Some(error) = failure {
        return Err(error);
    }
    stopped?;
    println!("meterflow cluster: stopped; the dataset is under the pipeline's outputs");
    Ok(())
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
fn nats_answers(url: &str) -> bool {
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

    #[test]
    fn metric_sums_match_the_name_exactly() {
        let body = "# HELP x\nmeterflow_up 1\nmeterflow_up_total 5\nm{a=\"1\"} 2\nm{a=\"2\"} 3.5\n";
        assert_eq!(metric_sum(body, "meterflow_up"), 1.0);
        assert_eq!(metric_sum(body, "m"), 5.5);
        assert_eq!(metric_sum(body, "absent"), 0.0);
    }
}
