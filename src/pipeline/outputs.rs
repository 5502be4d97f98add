//! The sinks of a running pipeline, shared by all its devices: the Parquet
//! dataset and the BetterFleet packets. Built from the pipeline config,
//! closed once at the end so every file is finished and every packet handed
//! to its targets (or spooled).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use crate::sink::output::OutputSummary as OutputsSummary;
pub use crate::sink::packet::PacketCollector;
use crate::sink::parquet::{DatasetInfo, ParquetSink, TelemetrySink};

use super::config::{PipelineConfig, SourceConfig};

/// How long closing waits for targets that are down before leaving their
/// packets in the spool for the next run.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The sinks of one pipeline run.
pub struct Outputs {
    pub parquet: Option<ParquetSink>,
    /// The telemetry tables, for a telemetry source (instead of `parquet`).
    pub telemetry: Option<TelemetrySink>,
    /// Whether the raw waveform archive is on (blocks are cloned for it).
    pub raw: bool,
    pub packets: Option<PacketCollector>,
}


impl Outputs {
    /// Starts the configured sinks; `source` is recorded in file metadata.
    /// Packet delivery runs on the current tokio runtime.
    pub fn start(config: &PipelineConfig, source: &str) -> anyhow::Result<Self> {
        let telemetry_source = match &config.source {
            SourceConfig::Telemetry(telemetry) => Some(telemetry),
            _ => None,
        };
        let telemetry = match (&config.sink.parquet, telemetry_source) {
            (Some(parquet), Some(telemetry)) => {
                let info = DatasetInfo {
                    source: source.to_owned(),
                    pipeline: config.name.clone(),
                    ..DatasetInfo::default()
                };
                Some(
                    TelemetrySink::start(parquet, &info, telemetry.flush_interval())
                        .with_context(|| format!("Parquet output {}", parquet.out.display()))?,
                )
            }
            _ => None,
        };
        let parquet = match &config.sink.parquet {
            Some(_) if telemetry_source.is_some() => None,
            Some(parquet) => {
                let info = DatasetInfo::from_engine(source, config.name.as_str(), &config.dsp);
                Some(
                    ParquetSink::start(parquet, &info)
                        .with_context(|| format!("Parquet output {}", parquet.out.display()))?,
                )
            }
            None => None,
        };
        let raw = config.sink.parquet.as_ref().is_some_and(|p| p.tables.raw);
        let packets = match &config.sink.packets {
            Some(packets) => Some(PacketCollector::start(&packets.build, &packets.targets)?),
            None => None,
        };
        Ok(Outputs {
            parquet,
            telemetry,
            raw,
            packets,
        })
    }

    /// Finishes every file and hands every remaining packet to its targets.
    pub async fn close(self) -> anyhow::Result<OutputsSummary> {
        let mut summary = OutputsSummary::default();
        if let Some(parquet) = self.parquet {
            summary.dataset = Some(
                tokio::task::spawn_blocking(move || parquet.close())
                    .await
                    .context("Parquet writer thread")??,
            );
        }
        if let Some(telemetry) = self.telemetry {
            summary.dataset = Some(
                tokio::task::spawn_blocking(move || telemetry.close())
                    .await
                    .context("telemetry writer thread")??,
            );
        }
        if let Some(packets) = self.packets {
            let (built, spooled, targets) = packets.close(DRAIN_TIMEOUT).await?;
            summary.packets_built = built;
            summary.spooled = spooled;
            summary.targets = targets;
        }
        Ok(summary)
    }
}

/// Sends, every `tick`, the packets of intervals that ended more than `lag`
/// ago on the wall clock (which the meters' time base follows); late
/// windows of a flushed interval still leave, in a packet of their own.
pub fn spawn_packet_flusher(
    outputs: &Arc<Outputs>,
    tick: Duration,
    lag: Duration,
) -> tokio::task::JoinHandle<()> {
    let outputs = Arc::clone(outputs);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(packets) = &outputs.packets else {
                return;
            };
            let now_ms = chrono::Utc::now().timestamp_millis();
            if let Err(error) = packets.flush_before(now_ms - lag.as_millis() as i64) {
                tracing::warn!("packet delivery: {error:#}");
            }
        }
    })
}
