//! A telemetry pipeline through the runner: the registry's builder of the
//! telemetry source (`source::telemetry::component`) from a pipeline file,
//! and a run of it on its own task for tests and embedding.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::config::{PipelineConfig, SourceConfig};
use crate::model::run_report::{AdapterCounts, RunReport};
use crate::source::component::Source;
use crate::source::telemetry::component::{Telemetry, TelemetryCounts};
use crate::source::telemetry::config::TelemetryConfig;

/// How often the low-rate tables' files are finished (range-checked).
pub fn flush_interval(telemetry: &TelemetryConfig) -> Duration {
    super::limits::FLUSH_INTERVAL.duration_s(telemetry.flush_interval_s)
}

/// The telemetry source of `config`, its endpoints bound.
pub async fn bind(config: &PipelineConfig) -> anyhow::Result<Telemetry> {
    let SourceConfig::Telemetry(telemetry) = &config.source else {
        anyhow::bail!("not a telemetry source");
    };
    let run_for = telemetry
        .seconds
        .map(|s| super::limits::RUN_SECONDS.duration_s(s));
    Telemetry::bind(
        &config.name,
        telemetry.clone(),
        config.aggregation.packet_interval_ns(),
        run_for,
    )
    .await
}

/// The registry's builder.
pub async fn build(config: PipelineConfig) -> anyhow::Result<Box<dyn Source>> {
    Ok(Box::new(bind(&config).await?))
}

/// A telemetry pipeline running on its own task (tests, embedding).
pub struct TelemetryRun {
    /// Where the MPPT endpoint listens (when configured).
    pub mppt_address: Option<SocketAddr>,
    /// Where the AirLink Thingsboard endpoint listens (when configured).
    pub airlink_address: Option<SocketAddr>,
    cancel: CancellationToken,
    counts: TelemetryCounts,
    task: tokio::task::JoinHandle<anyhow::Result<RunReport>>,
}

impl TelemetryRun {
    /// What each adapter has taken and refused so far.
    pub fn counts(&self) -> BTreeMap<&'static str, AdapterCounts> {
        self.counts.snapshot()
    }

    /// Asks every live input to stop; the outputs are then flushed.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Waits for the run to end (files read, `seconds` over, or `stop`).
    pub async fn finish(self) -> anyhow::Result<RunReport> {
        self.task.await.context("telemetry run task")?
    }
}

/// Starts the telemetry pipeline of `config` through the runner, on its own task.
pub async fn start_telemetry(
    config: &PipelineConfig,
    cancel: CancellationToken,
) -> anyhow::Result<TelemetryRun> {
    let source = bind(config).await?;
    let mppt_address = source.mppt_address();
    let airlink_address = source.airlink_address();
    let counts = source.counts();
    let run = super::runner::start_source(config.clone(), Box::new(source)).await?;
    let task = tokio::spawn(run.run(cancel.clone()));
    Ok(TelemetryRun {
        mppt_address,
        airlink_address,
        cancel,
        counts,
        task,
    })
}
