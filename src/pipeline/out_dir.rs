//! `--out DIR` of `batch`, `run` and `sink`: one folder for everything a run
//! writes, laid out the same way by every command.

use std::path::{Path, PathBuf};

use crate::pipeline::PipelineConfig;
use crate::sink::packet::{DeliveryConfig, NdjsonConfig, SpoolConfig};
use crate::sink::parquet::ParquetConfig;

/// Points the outputs at `out`: Parquet tables in `<out>/parquet`, and,
/// unless the file names packet targets, packets as NDJSON in
/// `<out>/packets` with their spool in `<out>/spool`.
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
            spool: SpoolConfig {
                dir: out.join("spool"),
                ..SpoolConfig::default()
            },
            ..DeliveryConfig::default()
        };
    }
}

/// `--out` and `--state-dir` of the long-running commands (`sink`,
/// `writer`): outputs under `out` as [`direct_outputs`], state in
/// `<out>/state` unless `state_dir` names another folder.
pub fn direct_service(
    config: &mut PipelineConfig,
    out: Option<&Path>,
    state_dir: Option<&PathBuf>,
) {
    if let Some(out) = out {
        direct_outputs(config, out);
        config.service.state_dir = out.join("state");
    }
    if let Some(dir) = state_dir {
        config.service.state_dir = dir.clone();
    }
}
