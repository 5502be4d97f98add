//! `--out DIR` of `batch`, `run`, `sink` and `writer`: one folder for
//! everything a run writes, laid out the same way by every command, whatever
//! folders the pipeline file names.

use std::path::{Path, PathBuf};

use crate::pipeline::PipelineConfig;
use crate::sink::packet::{DeliveryConfig, NdjsonConfig, SpoolConfig};
use crate::sink::parquet::ParquetConfig;

/// Points every output at `out`: Parquet tables in `<out>/parquet`, NDJSON
/// packets in `<out>/packets` (packets go there as NDJSON when the file
/// names no target), the packet spool in `<out>/spool`, and the state
/// (record log, meter state) in `<out>/state`. Network targets (HTTP, MQTT)
/// stay where they are; only their spool moves.
pub fn direct_outputs(config: &mut PipelineConfig, out: &Path) {
    let parquet = config
        .sink
        .parquet
        .get_or_insert_with(|| ParquetConfig::new(out.join("parquet")));
    parquet.out = out.join("parquet");
    let packets = config.sink.packets.get_or_insert_with(Default::default);
    let targets = &mut packets.targets;
    if targets.ndjson.is_none()
        && targets.http.is_none()
        && targets.mqtt.is_none()
        && !targets.stdout
    {
        *targets = DeliveryConfig {
            ndjson: Some(NdjsonConfig::new(out.join("packets"))),
            ..DeliveryConfig::default()
        };
    }
    if let Some(ndjson) = &mut targets.ndjson {
        ndjson.dir = out.join("packets");
    }
    targets.spool = SpoolConfig {
        dir: out.join("spool"),
        ..targets.spool.clone()
    };
    config.service.state_dir = out.join("state");
    // An explicit log folder is state too; empty means `<state_dir>/record-log`.
    config.record_log.dir = PathBuf::new();
}

/// `--out` and `--state-dir` of the long-running commands (`sink`,
/// `writer`): everything under `out` as [`direct_outputs`], the state in
/// `state_dir` when that names another folder.
pub fn direct_service(
    config: &mut PipelineConfig,
    out: Option<&Path>,
    state_dir: Option<&PathBuf>,
) {
    if let Some(out) = out {
        direct_outputs(config, out);
    }
    if let Some(dir) = state_dir {
        config.service.state_dir = dir.clone();
    }
}
