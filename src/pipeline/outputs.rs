//! The sinks of a running pipeline, shared by all its devices: the Parquet
//! dataset and the BetterFleet packets. Built from the pipeline config,
//! closed once at the end so every file is finished and every packet handed
//! to its targets (or spooled).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::sink::packet::{
    Deliverer, PacketBuilder, Sensor, SensorInterval, SensorReadings, TargetStats,
};
use crate::sink::parquet::{DatasetInfo, DatasetSummary, ParquetSink, TelemetrySink};

use super::config::{PacketSinkConfig, PipelineConfig, SourceConfig};
use super::latency::LatencyRecorder;

/// How long closing waits for targets that are down before leaving their
/// packets in the spool for the next run.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One sensor's share of an interval.
enum Pending {
    /// A meter's interval: one object per interval and meter.
    Meter(Sensor),
    /// A telemetry device's values, merged over the interval's batches.
    Readings(SensorReadings),
}

/// An interval's sensors by name, and when the last one reported.
type PendingInterval = (BTreeMap<String, Pending>, Instant);

/// Per-interval readings waiting to become packets.
pub struct PacketCollector {
    builder: PacketBuilder,
    deliverer: Deliverer,
    /// Interval end (ms) → the sensors (by name) that reported in it, and
    /// when the last did.
    pending: Mutex<BTreeMap<i64, PendingInterval>>,
    built: Mutex<u64>,
    /// From an interval's last reading to its packets being handed to delivery.
    pub latency: LatencyRecorder,
}

impl PacketCollector {
    fn start(config: &PacketSinkConfig) -> anyhow::Result<Self> {
        let builder = PacketBuilder::new(&config.build).context("packet identities")?;
        let deliverer = Deliverer::start(&config.targets, builder.gateway().device_id)
            .context("starting packet delivery")?;
        Ok(PacketCollector {
            builder,
            deliverer,
            pending: Mutex::new(BTreeMap::new()),
            built: Mutex::new(0),
            latency: LatencyRecorder::default(),
        })
    }

    /// Queues one sensor's reading for its interval.
    pub fn add(&self, reading: SensorInterval) {
        let sensor = self.builder.sensor(&reading);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (sensors, last_added) = pending
            .entry(reading.interval_end_ms)
            .or_insert_with(|| (BTreeMap::new(), Instant::now()));
        sensors.insert(reading.meter_name, Pending::Meter(sensor));
        *last_added = Instant::now();
    }

    /// Queues what a non-meter device reported in the interval ending at
    /// `interval_end_ms`; several batches of one device in one interval
    /// become one sensor object.
    pub fn add_readings(&self, interval_end_ms: i64, readings: SensorReadings) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (interval, last_added) = pending
            .entry(interval_end_ms)
            .or_insert_with(|| (BTreeMap::new(), Instant::now()));
        *last_added = Instant::now();
        match interval.get_mut(&readings.name) {
            Some(Pending::Readings(known)) => {
                known.values.extend(readings.values);
                known.model = known.model.take().or(readings.model);
            }
            _ => {
                interval.insert(readings.name.clone(), Pending::Readings(readings));
            }
        }
    }

    /// Builds and sends the packets of every interval that ended before `end_ms`.
    pub fn flush_before(&self, end_ms: i64) -> anyhow::Result<u64> {
        let ready: Vec<(i64, PendingInterval)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let later = pending.split_off(&end_ms);
            std::mem::replace(&mut *pending, later)
                .into_iter()
                .collect()
        };
        let mut sent = 0u64;
        for (_, (sensors, last_added)) in ready {
            let sensors = sensors
                .into_values()
                .map(|pending| match pending {
                    Pending::Meter(sensor) => sensor,
                    Pending::Readings(readings) => self.builder.sensor_from_readings(&readings),
                })
                .collect();
            let now_ms = chrono::Utc::now().timestamp_millis();
            for packet in self.builder.packets(sensors, now_ms) {
                self.deliverer.send(&packet)?;
                self.latency.record(last_added.elapsed());
                sent += 1;
            }
        }
        *self.built.lock().unwrap_or_else(|e| e.into_inner()) += sent;
        Ok(sent)
    }

    pub fn spooled(&self) -> u64 {
        self.deliverer.spooled()
    }

    pub fn built(&self) -> u64 {
        *self.built.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn targets(&self) -> Vec<TargetStats> {
        self.deliverer.stats()
    }
}

/// The sinks of one pipeline run.
pub struct Outputs {
    pub parquet: Option<ParquetSink>,
    /// The telemetry tables, for a telemetry source (instead of `parquet`).
    pub telemetry: Option<TelemetrySink>,
    /// Whether the raw waveform archive is on (blocks are cloned for it).
    pub raw: bool,
    pub packets: Option<PacketCollector>,
}

/// What the outputs wrote.
#[derive(Debug, Default)]
pub struct OutputsSummary {
    pub dataset: Option<DatasetSummary>,
    pub packets_built: u64,
    pub targets: Vec<TargetStats>,
    pub spooled: u64,
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
            Some(packets) => Some(PacketCollector::start(packets)?),
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
            packets.flush_before(i64::MAX)?;
            summary.packets_built = packets.built();
            summary.spooled = packets.spooled();
            summary.targets = packets.deliverer.shutdown(DRAIN_TIMEOUT).await?;
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
