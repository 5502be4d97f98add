//! A batch as `meterflow batch` asks for it: capture files, one output
//! folder, an optional pipeline file for the engine and sink settings, and
//! what bare f32le files need. Tests build the same request, so they run
//! the pipeline the command runs.

use std::path::PathBuf;

use anyhow::Context;

use crate::pipeline::config::{PipelineConfig, SinkConfig, SourceConfig};
use crate::source::capture::RawParams;
use crate::source::files::{expand_inputs, FilesConfig, RawFileConfig};

#[derive(Debug, Clone, Default)]
pub struct BatchRequest {
    /// Capture files or folders.
    pub inputs: Vec<PathBuf>,
    /// Parquet tables under `<out>/parquet`, packets under `<out>/packets`.
    pub out: PathBuf,
    /// Pipeline file for the engine and sink settings (its source is ignored).
    pub pipeline: Option<PathBuf>,
    /// Bare f32le and WAV: rate, layout, start and device name.
    pub raw: RawFileConfig,
}

impl BatchRequest {
    /// The pipeline the batch runs: the file's settings, sinks pointed at `out`.
    pub fn config(&self) -> anyhow::Result<PipelineConfig> {
        let mut config = match &self.pipeline {
            // Its source, if any, gives way to the inputs named here.
            Some(path) => PipelineConfig::load_unvalidated(path)?,
            None => PipelineConfig {
                name: "batch".to_string(),
                source: SourceConfig::Files(FilesConfig {
                    paths: self.inputs.clone(),
                    raw: Default::default(),
                }),
                dsp: Default::default(),
                aggregation: Default::default(),
                sink: SinkConfig::default(),
                service: Default::default(),
                record_log: Default::default(),
                cluster: None,
            },
        };
        config.source = SourceConfig::Files(FilesConfig {
            paths: self.inputs.clone(),
            raw: self.raw.clone(),
        });
        super::out_dir::direct_outputs(&mut config, &self.out);
        match &self.pipeline {
            Some(path) => config
                .validate()
                .with_context(|| format!("pipeline {}", path.display()))?,
            None => config.validate()?,
        }
        Ok(config)
    }

    /// Bare f32le and WAV files: the device name, layout, rate and start
    /// time (RFC 3339 or Unix seconds) their content does not say.
    pub fn with_raw(
        mut self,
        name: Option<String>,
        measures: Option<crate::wire::Measures>,
        rate: Option<u32>,
        start: Option<String>,
    ) -> Self {
        self.raw = RawFileConfig {
            name,
            measures,
            rate,
            start,
        };
        self
    }

    /// What the capture readers are told about bare f32le and WAV files.
    pub fn raw_params(&self) -> anyhow::Result<RawParams> {
        self.raw.params()
    }

    /// The capture files the inputs name (folders searched).
    pub fn files(&self) -> anyhow::Result<Vec<PathBuf>> {
        expand_inputs(&self.inputs, &self.raw_params()?)
    }
}
