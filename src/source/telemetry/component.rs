//! The telemetry source (`[source] kind = "telemetry"`): rtl_433 JSON
//! lines (file, stdin, MQTT), the MPPT dataset endpoint and replayed
//! bodies, AirLink Thingsboard posts and files. Every adapter sends
//! [`TelemetryBatch`]es to one consumer that hands the `readings`/`tel_mppt`
//! records and the packets' interval readings to the runner.
//!
//! What each input takes is [`super::config`]; the loops are
//! [`super::inputs`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::model::run_report::{AdapterCounts, RunReport};
use crate::model::{IntervalReadings, KeyedValue, Reading, Record, SensorReadings, TelemetryBatch};
use crate::source::component::{Durability, RecordHandle, Source, SourceContext, SourceEnd};

use super::airlink::{self, thingsboard};
use super::config::TelemetryConfig;
use super::inputs::{replay_airlink, replay_mppt, rtl433_lines, rtl433_mqtt};
use super::lines::AnyLineReader;
use super::mppt::{self, server::MpptServer};
use super::{http, rtl433, IngestCounts, Submission};

impl From<&IngestCounts> for AdapterCounts {
    fn from(c: &IngestCounts) -> Self {
        AdapterCounts {
            accepted: c.accepted(),
            rejected: c.rejected(),
            readings: c.readings(),
        }
    }
}

/// What each adapter has taken and refused, shared with whoever watches.
#[derive(Clone, Default)]
pub struct TelemetryCounts {
    rtl433: Arc<IngestCounts>,
    mppt: Arc<IngestCounts>,
    airlink: Arc<IngestCounts>,
}

impl TelemetryCounts {
    pub fn snapshot(&self) -> BTreeMap<&'static str, AdapterCounts> {
        BTreeMap::from([
            (rtl433::SOURCE, AdapterCounts::from(&*self.rtl433)),
            (mppt::SOURCE, AdapterCounts::from(&*self.mppt)),
            (airlink::SOURCE, AdapterCounts::from(&*self.airlink)),
        ])
    }
}

/// The telemetry source: its endpoints are bound, its inputs start with the run.
pub struct Telemetry {
    /// The pipeline's name, for the line it starts with.
    pipeline: String,
    telemetry: TelemetryConfig,
    /// Readings are grouped into packets of this interval.
    packet_interval_ns: i64,
    /// Live inputs run this long at most (`seconds`, range-checked).
    run_for: Option<Duration>,
    mppt: Option<(TcpListener, SocketAddr)>,
    airlink: Option<(TcpListener, SocketAddr)>,
    counts: TelemetryCounts,
}

impl Telemetry {
    /// Binds the HTTP endpoints `telemetry` names.
    pub async fn bind(
        pipeline: &str,
        telemetry: TelemetryConfig,
        packet_interval_ns: i64,
        run_for: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let mppt = match telemetry.mppt.as_ref().and_then(|m| m.listen.as_ref()) {
            Some(listen) => Some(http::bind(listen, "MPPT endpoint").await?),
            None => None,
        };
        let airlink = match telemetry.airlink.as_ref().and_then(|a| a.listen.as_ref()) {
            Some(listen) => Some(http::bind(listen, "AirLink endpoint").await?),
            None => None,
        };
        Ok(Telemetry {
            pipeline: pipeline.to_string(),
            telemetry,
            packet_interval_ns,
            run_for,
            mppt,
            airlink,
            counts: TelemetryCounts::default(),
        })
    }

    /// Where the MPPT endpoint listens (when configured).
    pub fn mppt_address(&self) -> Option<SocketAddr> {
        self.mppt.as_ref().map(|(_, a)| *a)
    }

    /// Where the AirLink Thingsboard endpoint listens (when configured).
    pub fn airlink_address(&self) -> Option<SocketAddr> {
        self.airlink.as_ref().map(|(_, a)| *a)
    }

    /// What each adapter takes and refuses, while it runs.
    pub fn counts(&self) -> TelemetryCounts {
        self.counts.clone()
    }
}

impl Source for Telemetry {
    fn origin(&self) -> String {
        "telemetry".to_string()
    }

    /// A pipeline that runs until stopped keeps what it took in the record
    /// log (an endpoint answers 200 only then); one that reads files and
    /// ends is a batch, and its files are still there to read again.
    fn durability(&self) -> Durability {
        match self.telemetry.has_live_inputs() {
            true => Durability::Log,
            false => Durability::Rereadable,
        }
    }

    fn started(&self) -> Vec<String> {
        vec![format!(
            "meterflow: pipeline {:?}: telemetry ({} rtl_433 input(s){}{})",
            self.pipeline,
            self.telemetry.rtl433.len(),
            self.mppt.as_ref().map_or(String::new(), |(_, a)| format!(
                ", MPPT endpoint http://{a}"
            )),
            self.airlink
                .as_ref()
                .map_or(String::new(), |(_, a)| format!(
                    ", AirLink endpoint http://{a}"
                )),
        )]
    }

    fn stopping(&self) -> Option<&'static str> {
        Some("stopping: closing the inputs, then flushing the outputs")
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<'static, anyhow::Result<SourceEnd>> {
        run_telemetry(*self, cx).boxed()
    }
}

/// Starts every configured input and the consumer, runs until the inputs
/// end (or, with live inputs, `seconds` pass or the run is cancelled).
async fn run_telemetry(source: Telemetry, cx: SourceContext) -> anyhow::Result<SourceEnd> {
    let Telemetry {
        telemetry,
        packet_interval_ns,
        run_for,
        mppt: mppt_endpoint,
        airlink: airlink_endpoint,
        counts,
        ..
    } = source;
    let (tx, rx) = mpsc::channel::<Submission>(1024);
    let live = cx.cancel.child_token();
    let mut inputs: JoinSet<anyhow::Result<()>> = JoinSet::new();

    for input in &telemetry.rtl433 {
        let ctx = input.time_context()?;
        let (tx, counts, input) = (tx.clone(), Arc::clone(&counts.rtl433), input.clone());
        let live = live.clone();
        inputs.spawn(async move {
            let name = input.name();
            let result = match (&input.file, &input.mqtt) {
                (Some(path), _) => match AnyLineReader::open(path).await {
                    Ok(reader) => rtl433_lines(reader, &name, &ctx, &counts, &tx, &live).await,
                    Err(error) => Err(error),
                },
                (None, Some(mqtt)) => rtl433_mqtt(mqtt, &ctx, &counts, &tx, live).await,
                (None, None) => {
                    let reader = AnyLineReader::stdin();
                    rtl433_lines(reader, &name, &ctx, &counts, &tx, &live).await
                }
            };
            result.with_context(|| format!("rtl_433 input {name}"))
        });
    }

    if let Some(m) = &telemetry.mppt {
        if let Some((listener, _)) = mppt_endpoint {
            let router = mppt::server::router(MpptServer {
                api_keys: m.api_keys.clone(),
                api_key_header: m.api_key_header.clone(),
                batches: tx.clone(),
                counts: Arc::clone(&counts.mppt),
            });
            inputs.spawn(http::serve(listener, router, live.clone(), "MPPT endpoint"));
        }
        let (files, sender) = (m.files.clone(), m.replay_sender.clone());
        let (tx, counts, live) = (tx.clone(), Arc::clone(&counts.mppt), live.clone());
        inputs.spawn(async move {
            for path in files.iter().take_while(|_| !live.is_cancelled()) {
                replay_mppt(path, &sender, &counts, &tx).await?;
            }
            Ok(())
        });
    }

    if let Some(a) = &telemetry.airlink {
        if let Some((listener, _)) = airlink_endpoint {
            let router = thingsboard::server::router(thingsboard::server::ThingsboardServer {
                access_tokens: a.access_tokens.clone(),
                batches: tx.clone(),
                counts: Arc::clone(&counts.airlink),
            });
            inputs.spawn(http::serve(
                listener,
                router,
                live.clone(),
                "AirLink endpoint",
            ));
        }
        let files = a.files.clone();
        let (tx, counts, live) = (tx.clone(), Arc::clone(&counts.airlink), live.clone());
        inputs.spawn(async move {
            for file in files.iter().take_while(|_| !live.is_cancelled()) {
                replay_airlink(file, &counts, &tx).await?;
            }
            Ok(())
        });
    }
    drop(tx);

    let consumer = tokio::spawn(consume(rx, Arc::clone(&cx.records), packet_interval_ns));
    let mut failures = Vec::new();
    if telemetry.has_live_inputs() {
        let limit = run_for.unwrap_or(Duration::MAX);
        tokio::select! {
            _ = cx.cancel.cancelled() => {}
            _ = tokio::time::sleep(limit) => {}
        }
        live.cancel();
    }
    drop(cx);
    while let Some(done) = inputs.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(format!("{error:#}")),
            Err(error) => failures.push(format!("input task: {error}")),
        }
    }
    // Every sender is gone now: the consumer drains the queue and ends.
    let consumed = consumer.await.context("telemetry consumer task");
    if let Err(error) = consumed.and_then(|r| r) {
        failures.push(format!("{error:#}"));
    }
    Ok(RunReport {
        adapters: counts.snapshot(),
        failures,
        ..RunReport::default()
    }
    .into())
}

/// Submissions taken from the queue at once: their records are made
/// durable with one flush of the record log.
const CONSUME_AT_ONCE: usize = 64;

/// Hands every batch to the topology (table rows, and per packet interval
/// the readings its packets are built from), until every input has ended.
/// A submission waiting to be kept is answered once its records are in the
/// record log and flushed (or handed to the outputs, without a log).
async fn consume(
    mut rx: mpsc::Receiver<Submission>,
    records: Arc<dyn RecordHandle>,
    packet_interval_ns: i64,
) -> anyhow::Result<()> {
    let mut taken = Vec::with_capacity(CONSUME_AT_ONCE);
    while rx.recv_many(&mut taken, CONSUME_AT_ONCE).await > 0 {
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        for Submission { batch, kept } in taken.drain(..) {
            out.extend(batch_records(batch, packet_interval_ns));
            waiting.extend(kept);
        }
        // The bus may block (a full queue without a log) and the flush
        // writes to disk: off the runtime.
        let bus = Arc::clone(&records);
        let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut last_seq = 0;
            for record in out {
                last_seq = bus.emit(record)?;
            }
            if waiting.is_empty() {
                return Ok(());
            }
            // Unanswered, a sender hears 503 and sends again.
            match bus.make_durable(last_seq) {
                Ok(()) => waiting.into_iter().for_each(|kept| {
                    let _ = kept.send(());
                }),
                Err(error) => tracing::warn!(
                    "{} telemetry submission(s) not acknowledged: {error:#}",
                    waiting.len()
                ),
            }
            Ok(())
        })
        .await
        .context("handing telemetry to the outputs")?;
        stored.context("keeping telemetry")?;
    }
    Ok(())
}

/// The records of one batch: `tel_mppt` rows, the packets' interval readings, the readings.
fn batch_records(batch: TelemetryBatch, packet_interval_ns: i64) -> Vec<Record> {
    let readings = batch.readings();
    let mut out = Vec::new();
    if let TelemetryBatch::Mppt(_) = &batch {
        out.push(Record::Telemetry(batch));
    }
    for (interval_end_ms, sensor) in sensor_readings(&readings, packet_interval_ns) {
        out.push(Record::Readings(IntervalReadings {
            interval_end_ms,
            readings: sensor,
        }));
    }
    out.push(Record::Telemetry(TelemetryBatch::Readings(readings)));
    out
}

/// Groups readings by packet interval (aligned to the clock) and device.
pub fn sensor_readings(
    readings: &[Reading],
    packet_interval_ns: i64,
) -> Vec<(i64, SensorReadings)> {
    let interval = packet_interval_ns.max(1);
    let mut groups: BTreeMap<(i64, &str), SensorReadings> = BTreeMap::new();
    for r in readings {
        let end_ns = (r.time_ns.div_euclid(interval) + 1).saturating_mul(interval);
        let group = groups
            .entry((end_ns.div_euclid(1_000_000), &r.device))
            .or_insert_with(|| SensorReadings {
                name: r.device.clone(),
                model: r.model.clone(),
                ..SensorReadings::default()
            });
        group.values.push(KeyedValue {
            key: r.key.clone(),
            standard: r.standard,
            value: r.value.to_measurand(),
            timestamp_ms: r.time_ns.div_euclid(1_000_000),
        });
    }
    groups
        .into_iter()
        .map(|((end_ms, _), sensor)| (end_ms, sensor))
        .collect()
}
