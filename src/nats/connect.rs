//! Connecting to NATS and making sure the stream and buckets exist with the
//! configured replicas and limits (every node does it; the first creates).

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, kv, stream};

use super::config::ClusterConfig;
use super::subjects;

/// Connects with the configured credentials. `background`: return at once
/// and keep trying (a node that must start while NATS is down).
pub async fn connect(
    config: &ClusterConfig,
    client_name: &str,
    background: bool,
) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(client_name)
        .connection_timeout(config.request_timeout())
        .request_timeout(Some(config.request_timeout()));
    if let Some(token) = config.token()? {
        options = options.token(token);
    }
    if let Some(path) = &config.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("reading cluster.credentials_file {}", path.display()))?;
    }
    if background {
        options = options.retry_on_initial_connect();
    }
    let urls = config.server_urls();
    options
        .connect(urls.clone())
        .await
        .with_context(|| format!("connecting to NATS at {}", urls.join(", ")))
}

/// A JetStream context whose requests time out as configured.
pub fn context(config: &ClusterConfig, client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(config.request_timeout())
        .build(client)
}

/// The records stream, created when missing.
pub async fn records_stream(
    config: &ClusterConfig,
    js: &jetstream::Context,
) -> anyhow::Result<stream::Stream> {
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![subjects::all_records(&config.subject_prefix)],
        num_replicas: config.replicas,
        max_age: Duration::from_secs(config.max_age_s),
        max_bytes: if config.max_bytes > 0 {
            config.max_bytes
        } else {
            -1
        },
        storage: stream::StorageType::File,
        // Message ids are remembered this long: a node republishing after a
        // crash within it is deduplicated by the server itself.
        duplicate_window: Duration::from_secs(120),
        description: Some("meterflow records (windows, aggregates, events, ...)".to_string()),
        ..Default::default()
    };
    js.get_or_create_stream(wanted)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("opening the JetStream stream {}", config.stream))
}

/// The lease bucket: a key not renewed within the TTL expires.
pub async fn lease_bucket(
    config: &ClusterConfig,
    js: &jetstream::Context,
) -> anyhow::Result<kv::Store> {
    let description = "meterflow meter leases: which node a meter streams to";
    bucket(
        js,
        bucket_config(
            config,
            &config.lease_bucket,
            description,
            config.lease_ttl(),
        ),
    )
    .await
}

/// The meter-state bucket (energy registers and coverage per meter).
pub async fn state_bucket(
    config: &ClusterConfig,
    js: &jetstream::Context,
) -> anyhow::Result<kv::Store> {
    let description = "meterflow meter state: energy registers and coverage";
    bucket(
        js,
        bucket_config(config, &config.state_bucket, description, Duration::ZERO),
    )
    .await
}

/// A bucket of the last value per key, replicated as the stream; `max_age`
/// zero keeps values until they are replaced.
fn bucket_config(
    config: &ClusterConfig,
    name: &str,
    description: &str,
    max_age: Duration,
) -> kv::Config {
    kv::Config {
        bucket: name.to_string(),
        description: description.to_string(),
        history: 1,
        max_age,
        num_replicas: config.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

async fn bucket(js: &jetstream::Context, wanted: kv::Config) -> anyhow::Result<kv::Store> {
    let name = wanted.bucket.clone();
    match js.get_key_value(name.clone()).await {
        Ok(store) => Ok(store),
        Err(_) => match js.create_key_value(wanted).await {
            Ok(store) => Ok(store),
            // Another node may have created it meanwhile.
            Err(error) => js
                .get_key_value(name.clone())
                .await
                .map_err(|_| anyhow::anyhow!("{error}"))
                .with_context(|| format!("creating the JetStream bucket {name}")),
        },
    }
}
