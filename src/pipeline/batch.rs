//! Batch jobs through the one runner: the registry's builder of the files
//! source (`source::files`) from a pipeline file, and a batch of files
//! named on the command line whatever the pipeline's `[source]` says.

use std::path::PathBuf;

use super::config::{PipelineConfig, SourceConfig};
use crate::model::run_report::RunReport;
use crate::source::capture::RawParams;
use crate::source::component::Source;
use crate::source::files::{expand_inputs, FilesConfig, FilesSource};

/// The registry's builder: the files of the pipeline's inputs (folders expanded).
pub async fn build(config: PipelineConfig, progress: bool) -> anyhow::Result<Box<dyn Source>> {
    let SourceConfig::Files(FilesConfig { paths, raw }) = &config.source else {
        anyhow::bail!("not a files source");
    };
    let raw = raw.params()?;
    let paths = expand_inputs(paths, &raw)?;
    Ok(Box::new(FilesSource::new(paths, raw, progress)?))
}

/// Runs `files` (already expanded) through the pipeline's engine and
/// outputs, whatever its `[source]` says: a batch through the one runner.
/// Call inside a tokio runtime.
pub async fn run_batch(
    config: &PipelineConfig,
    files: &[PathBuf],
    raw: &RawParams,
    progress: bool,
) -> anyhow::Result<RunReport> {
    let source = FilesSource::new(files.to_vec(), raw.clone(), progress)?;
    super::runner::start_source(config.clone(), Box::new(source))
        .await?
        .run(tokio_util::sync::CancellationToken::new())
        .await
}
