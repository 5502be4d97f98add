//! `[cluster]`: the NATS JetStream a cluster of meterflow nodes shares.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Bounds that catch typos (a missing unit), not real limits.
const MAX_PARTITIONS: u32 = 1024;
const LEASE_TTL_S: (f64, f64) = (1.0, 600.0);
const PUBLISH_INTERVAL_S: (f64, f64) = (0.01, 10.0);

/// `[cluster]`: with it, `meterflow sink` is an ingest node publishing its
/// records to JetStream, and `meterflow writer` reads them into the outputs.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server, `nats://host:port`.
    pub url: String,
    /// Several servers of one NATS cluster (instead of `url`).
    pub urls: Vec<String>,
    /// A file holding the token the servers expect.
    pub token_file: Option<PathBuf>,
    /// A NATS `.creds` file (JWT and nkey seed).
    pub credentials_file: Option<PathBuf>,
    /// This node's name in leases and message ids; empty: host name and listen port.
    pub node: String,
    /// The records stream.
    pub stream: String,
    /// First token of every record subject.
    pub subject_prefix: String,
    /// Replicas of the stream and the buckets (3 on a three-server cluster).
    pub replicas: usize,
    /// Meters are hashed into this many partitions; writers share them out.
    pub partitions: u32,
    /// How long records stay in the stream, s.
    pub max_age_s: u64,
    /// Cap on the stream's bytes (0: none; the oldest go first past it).
    pub max_bytes: i64,
    /// Bucket of the meter leases.
    pub lease_bucket: String,
    /// A lease not renewed for this long is free again (a dead node's meters move on).
    pub lease_ttl_s: f64,
    /// Bucket of each meter's energy registers and coverage.
    pub state_bucket: String,
    /// Seconds between publishes of an ingest node (records are batched meanwhile).
    pub publish_interval_s: f64,
    /// Records per message at most.
    pub max_batch_records: usize,
    /// Publish raw sample blocks too (the raw archive; `sink.parquet.tables.raw` on the writer).
    pub raw_archive: bool,
    /// This writer's number, 0-based (`meterflow writer --index`).
    pub writer_index: u32,
    /// How many writers share the partitions (`meterflow writer --of`).
    pub writers: u32,
    /// Seconds a request to NATS may take before it counts as failed.
    pub request_timeout_s: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            url: "nats://127.0.0.1:4222".to_string(),
            urls: Vec::new(),
            token_file: None,
            credentials_file: None,
            node: String::new(),
            stream: "METERFLOW_RECORDS".to_string(),
            subject_prefix: "meterflow".to_string(),
            replicas: 1,
            partitions: 16,
            max_age_s: 7 * 24 * 3600,
            max_bytes: 0,
            lease_bucket: "meterflow_leases".to_string(),
            lease_ttl_s: 10.0,
            state_bucket: "meterflow_meters".to_string(),
            publish_interval_s: 0.5,
            max_batch_records: 2000,
            raw_archive: false,
            writer_index: 0,
            writers: 1,
            request_timeout_s: 5.0,
        }
    }
}

impl ClusterConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let urls = self.server_urls();
        if urls.is_empty() {
            anyhow::bail!("cluster: set url or urls");
        }
        for url in &urls {
            if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                anyhow::bail!("cluster.url {url:?}: expected nats://host:port or tls://host:port");
            }
        }
        for (key, name) in [
            ("stream", &self.stream),
            ("lease_bucket", &self.lease_bucket),
            ("state_bucket", &self.state_bucket),
        ] {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                anyhow::bail!("cluster.{key} {name:?}: letters, digits, _ and - only");
            }
        }
        if self.subject_prefix.is_empty()
            || !self.subject_prefix.split('.').all(|t| {
                !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
        {
            anyhow::bail!(
                "cluster.subject_prefix {:?}: dot-separated tokens of letters, digits, _ and -",
                self.subject_prefix
            );
        }
        if !(1..=5).contains(&self.replicas) {
            anyhow::bail!("cluster.replicas {}: expected 1 to 5", self.replicas);
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            anyhow::bail!(
                "cluster.partitions {}: expected 1 to {MAX_PARTITIONS}",
                self.partitions
            );
        }
        if self.writers == 0 || self.writers > self.partitions {
            anyhow::bail!(
                "cluster.writers {}: expected 1 to cluster.partitions ({})",
                self.writers,
                self.partitions
            );
        }
        if self.writer_index >= self.writers {
            anyhow::bail!(
                "cluster.writer_index {}: expected 0 to writers - 1 ({})",
                self.writer_index,
                self.writers - 1
            );
        }
        in_range("lease_ttl_s", self.lease_ttl_s, LEASE_TTL_S)?;
        in_range(
            "publish_interval_s",
            self.publish_interval_s,
            PUBLISH_INTERVAL_S,
        )?;
        in_range("request_timeout_s", self.request_timeout_s, (0.1, 120.0))?;
        if !(1..=100_000).contains(&self.max_batch_records) {
            anyhow::bail!(
                "cluster.max_batch_records {}: expected 1 to 100000",
                self.max_batch_records
            );
        }
        if self.max_age_s == 0 {
            anyhow::bail!("cluster.max_age_s must be at least 1");
        }
        Ok(())
    }

    /// `urls`, or `url` alone.
    pub fn server_urls(&self) -> Vec<String> {
        if self.urls.is_empty() {
            if self.url.is_empty() {
                Vec::new()
            } else {
                vec![self.url.clone()]
            }
        } else {
            self.urls.clone()
        }
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs_f64(self.lease_ttl_s)
    }

    pub fn publish_interval(&self) -> Duration {
        Duration::from_secs_f64(self.publish_interval_s)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_s)
    }

    /// The node name, or `fallback` when none is set.
    pub fn node_name(&self, fallback: &str) -> String {
        if self.node.is_empty() {
            fallback.to_string()
        } else {
            self.node.clone()
        }
    }

    /// The partitions writer `writer_index` of `writers` reads.
    pub fn writer_partitions(&self) -> Vec<u32> {
        (0..self.partitions)
            .filter(|p| p % self.writers == self.writer_index)
            .collect()
    }

    /// The token, read from `token_file`.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        match &self.token_file {
            None => Ok(None),
            Some(path) => {
                let token = std::fs::read_to_string(path)
                    .with_context(|| format!("reading cluster.token_file {}", path.display()))?;
                Ok(Some(token.trim().to_string()))
            }
        }
    }
}

fn in_range(key: &str, value: f64, (min, max): (f64, f64)) -> anyhow::Result<()> {
    if !(value.is_finite() && (min..=max).contains(&value)) {
        anyhow::bail!(
            "cluster.{key} {}: expected {min} to {max}",
            crate::model::number::compact_number(value)
        );
    }
    Ok(())
}
