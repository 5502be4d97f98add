//! `meterflow cluster [--pipeline FILE] [--ingest N] [--writers M]`: a
//! local cluster in one command, against a running nats-server. The
//! supervisor is the library's [`LocalCluster`]; Ctrl-C or SIGTERM stops
//! the ingest nodes first, lets the writers take the rest of the stream,
//! then stops the writers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use meterflow::pipeline::cluster::local::{
    nats_answers, plan_nodes, write_pipeline, LocalCluster, CLUSTER_PIPELINE,
};
use meterflow::pipeline::PipelineConfig;

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

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    meterflow::pipeline::limits::NODES.check_usize("--ingest", args.ingest)?;
    meterflow::pipeline::limits::NODES.check_usize("--writers", args.writers)?;
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
    let program = std::env::current_exe().context("finding the meterflow executable")?;
    let mut cluster = LocalCluster::start(&program, plans, &log_dir)?;
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
        match cluster.supervise() {
            Ok(restarts) => {
                for restart in restarts {
                    println!(
                        "meterflow cluster: node {} exited ({}); started again, pid {} (log {})",
                        restart.node,
                        restart.status,
                        restart.pid,
                        restart.log.display()
                    );
                }
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
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
