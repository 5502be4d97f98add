//! A writer node's pipeline: the pipeline file checked for a writer, with
//! this writer's own files, and its source, the JetStream consumer
//! (`source::jetstream`).

use anyhow::Context;

use crate::pipeline::config::PipelineConfig;
use crate::source::component::Source;
use crate::source::jetstream::{writer_name, Writer};

/// Writers sharing one pipeline file (and so one dataset and packet folder)
/// keep apart what is each writer's own: commit journal and temporary
/// Parquet files, NDJSON files, packet spool and record log.
fn separate_writer_files(config: &mut PipelineConfig, name: &str) {
    if let Some(parquet) = config.sink.parquet.as_mut() {
        parquet.commit_owner = Some(name.to_string());
    }
    if let Some(packets) = config.sink.packets.as_mut() {
        let targets = &mut packets.targets;
        if let Some(ndjson) = targets.ndjson.as_mut() {
            ndjson.prefix = format!("{}-{name}", ndjson.prefix);
        }
        targets.spool.dir = targets.spool.dir.join(name);
    }
    config.service.state_dir = config.service.state_dir.join(name);
    if !config.record_log.dir.as_os_str().is_empty() {
        config.record_log.dir = config.record_log.dir.join(name);
    }
}

/// The pipeline of a writer node: checked, with this writer's own files.
pub fn node_config(mut config: PipelineConfig) -> anyhow::Result<PipelineConfig> {
    config.validate_writer()?;
    let cluster = config
        .cluster
        .clone()
        .context("meterflow writer needs a [cluster] section")?;
    if config.sink.parquet.is_none() && config.sink.packets.is_none() {
        anyhow::bail!("meterflow writer needs [sink.parquet] or [sink.packets] to write to");
    }
    separate_writer_files(&mut config, &writer_name(&cluster));
    Ok(config)
}

/// The registry's builder of a writer node's source (see [`node_config`];
/// the pipeline's `[source]` is not used).
pub fn build(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
    let cluster = config
        .cluster
        .clone()
        .context("meterflow writer needs a [cluster] section")?;
    Ok(Box::new(Writer::new(cluster)))
}
