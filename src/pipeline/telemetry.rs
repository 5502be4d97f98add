//! Telemetry sources in a pipeline: rtl_433 JSON lines (file, stdin, MQTT),
//! the MPPT dataset endpoint and replayed bodies, AirLink Thingsboard posts
//! and files. Every adapter sends [`TelemetryBatch`]es to one consumer that writes
//! the `readings`/`tel_mppt` tables and queues packets per interval.
//!
//! ```toml
//! [source]
//! kind = "telemetry"
//! flush_interval_s = 60              # Parquet flush of the low-rate tables
//! [[source.rtl433]]
//! file = "testdata/telemetry/rtl433.jsonl"   # or stdin = true, or [source.rtl433.mqtt]
//! [source.mppt]
//! listen = "127.0.0.1:8080"
//! api_keys = { "secret-key" = "S000" }       # key → sender
//! [source.airlink]
//! listen = "127.0.0.1:8081"
//! access_tokens = { "token" = "lamp-1" }     # token → device
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::{IntervalReadings, KeyedValue, Reading, Record, SensorReadings, TelemetryBatch};
use crate::source::telemetry::airlink::{self, cbor, thingsboard};
use crate::source::telemetry::lines::AnyLineReader;
use crate::source::telemetry::mppt::{self, server::MpptServer};
use crate::source::telemetry::time::{TimeContext, Zone};
use crate::source::telemetry::{http, rtl433, BatchSender, IngestCounts, Submission};

use super::config::{parse_start, PipelineConfig};
use super::run_report::{AdapterCounts, RunReport};
use super::server::state::StateStore;
use super::topology::{Durable, RecordBus, Topology};

fn default_flush_interval_s() -> f64 {
    60.0
}
fn default_api_key_header() -> String {
    "X-API-Key".to_owned()
}
fn default_replay_sender() -> String {
    "replay".to_owned()
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_rtl433_topic() -> String {
    "rtl_433/+/events".to_owned()
}

/// `[source]` with `kind = "telemetry"`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Parquet rows of low-rate data are written this often (and at the end), s.
    #[serde(default = "default_flush_interval_s")]
    pub flush_interval_s: f64,
    /// Live inputs (servers, MQTT) stop after this long; absent: on Ctrl-C.
    /// Without live inputs the run ends when the files and stdin are read.
    #[serde(default)]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub rtl433: Vec<Rtl433Input>,
    #[serde(default)]
    pub mppt: Option<MpptInput>,
    #[serde(default)]
    pub airlink: Option<AirlinkInput>,
}

impl TelemetryConfig {
    pub fn flush_interval(&self) -> Duration {
        super::limits::FLUSH_INTERVAL.duration_s(self.flush_interval_s)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rtl433.is_empty() && self.mppt.is_none() && self.airlink.is_none() {
            bail!("source: name at least one input ([[source.rtl433]], [source.mppt], [source.airlink])");
        }
        for (k, input) in self.rtl433.iter().enumerate() {
            input
                .time_context()
                .with_context(|| format!("source.rtl433[{k}]"))?;
            let inputs = usize::from(input.file.is_some())
                + usize::from(input.stdin)
                + usize::from(input.mqtt.is_some());
            if inputs != 1 {
                bail!("source.rtl433[{k}]: give exactly one of file, stdin = true, [mqtt]");
            }
        }
        if let Some(m) = &self.mppt {
            if m.listen.is_none() && m.files.is_empty() {
                bail!("source.mppt: give listen or files");
            }
            if m.listen.is_some() && m.api_keys.is_empty() {
                bail!("source.mppt: listen needs api_keys (key → sender), or every request is refused");
            }
        }
        if let Some(a) = &self.airlink {
            if a.listen.is_none() && a.files.is_empty() {
                bail!("source.airlink: give listen or files");
            }
            for (k, file) in a.files.iter().enumerate() {
                if let Some(resource) = &file.resource {
                    let resource = resource.trim_start_matches('/');
                    if !airlink::fields::RESOURCES.contains(&resource) {
                        bail!(
                            "source.airlink.files[{k}]: resource {resource:?} is none of {:?}",
                            airlink::fields::RESOURCES
                        );
                    }
                }
                if file.resource.is_some() && file.device.is_none() {
                    bail!("source.airlink.files[{k}]: a CBOR resource needs device (the advertisement's MAC)");
                }
            }
        }
        Ok(())
    }

    /// Whether any input runs until stopped (stdin ends at its end, like
    /// a file; all inputs also stop on Ctrl-C).
    pub fn has_live_inputs(&self) -> bool {
        self.rtl433.iter().any(|i| i.mqtt.is_some())
            || self.mppt.as_ref().is_some_and(|m| m.listen.is_some())
            || self.airlink.as_ref().is_some_and(|a| a.listen.is_some())
    }
}

/// One rtl_433 input: exactly one of `file`, `stdin`, `mqtt`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rtl433Input {
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub stdin: bool,
    pub mqtt: Option<Rtl433Mqtt>,
    /// Zone of times without one: `local` (default), `UTC`, `+07:00`.
    pub time_zone: Option<String>,
    /// What `@<seconds>s` times count from (RFC 3339 or Unix seconds);
    /// default: when the input was opened.
    pub relative_start: Option<String>,
}

impl Rtl433Input {
    fn time_context(&self) -> anyhow::Result<TimeContext> {
        let zone = match &self.time_zone {
            Some(z) => Zone::parse(z).map_err(anyhow::Error::msg)?,
            None => Zone::Local,
        };
        let relative_base_ns = match &self.relative_start {
            Some(start) => parse_start(start)?,
            None => chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        };
        Ok(TimeContext {
            zone,
            relative_base_ns,
        })
    }

    fn name(&self) -> String {
        match (&self.file, &self.mqtt) {
            (Some(file), _) => file.display().to_string(),
            (None, Some(mqtt)) => format!("mqtt {}:{} {}", mqtt.host, mqtt.port, mqtt.topic),
            (None, None) => "stdin".to_owned(),
        }
    }
}

/// rtl_433's MQTT output, subscribed to.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rtl433Mqtt {
    pub host: String,
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    #[serde(default = "default_rtl433_topic")]
    pub topic: String,
    /// Default `meterflow-rtl433-<pid>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The MPPT endpoint and/or replayed bodies.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MpptInput {
    /// Address of `POST /devices/dataset/mppt`, e.g. `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// API key → sender id (the `sender` column).
    #[serde(default)]
    pub api_keys: BTreeMap<String, String>,
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
    /// Files each holding one request body, replayed in order.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// `sender` of replayed bodies.
    #[serde(default = "default_replay_sender")]
    pub replay_sender: String,
}

/// AirLink: the Thingsboard endpoint and/or files.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AirlinkInput {
    /// Address of `POST /api/v1/{token}/telemetry`.
    pub listen: Option<String>,
    /// Access token → device name.
    #[serde(default)]
    pub access_tokens: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<AirlinkFile>,
}

/// A file of Thingsboard JSON lines, or (with `resource`) one raw CBOR item.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AirlinkFile {
    pub path: PathBuf,
    /// Device of values without `advt_mac`; the MAC for CBOR items.
    pub device: Option<String>,
    /// `eout`, `ein`, `batt`, `temp`, `pu` or `advt`: the file is raw CBOR.
    pub resource: Option<String>,
}

impl From<&IngestCounts> for AdapterCounts {
    fn from(c: &IngestCounts) -> Self {
        AdapterCounts {
            accepted: c.accepted(),
            rejected: c.rejected(),
            readings: c.readings(),
        }
    }
}

/// A running telemetry pipeline.
pub struct TelemetryRun {
    /// Where the MPPT endpoint listens (when configured).
    pub mppt_address: Option<SocketAddr>,
    /// Where the AirLink Thingsboard endpoint listens (when configured).
    pub airlink_address: Option<SocketAddr>,
    cancel: CancellationToken,
    counts: Counts,
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

    /// What [`stop`](Self::stop) cancels, to hand to whoever decides.
    pub fn stopper(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the run to end (files read, `seconds` over, or `stop`).
    pub async fn finish(self) -> anyhow::Result<RunReport> {
        self.task.await.context("telemetry run task")?
    }
}

#[derive(Clone, Default)]
struct Counts {
    rtl433: Arc<IngestCounts>,
    mppt: Arc<IngestCounts>,
    airlink: Arc<IngestCounts>,
}

impl Counts {
    fn snapshot(&self) -> BTreeMap<&'static str, AdapterCounts> {
        BTreeMap::from([
            (rtl433::SOURCE, AdapterCounts::from(&*self.rtl433)),
            (mppt::SOURCE, AdapterCounts::from(&*self.mppt)),
            (airlink::SOURCE, AdapterCounts::from(&*self.airlink)),
        ])
    }
}

/// Starts every configured input, the consumer and the packet flusher.
pub async fn start_telemetry(
    config: &PipelineConfig,
    telemetry: &TelemetryConfig,
    cancel: CancellationToken,
) -> anyhow::Result<TelemetryRun> {
    let started = Instant::now();
    // A pipeline that runs until stopped keeps what it took in the record
    // log (an endpoint answers 200 only then); one that reads files and
    // ends is a batch, and its files are still there to read again.
    let durable = match telemetry.has_live_inputs() {
        true => Some(Durable {
            log: config.record_log(),
            state: Arc::new(StateStore::open(&config.service.state_dir)?),
            publish: None,
            crash_loses_results: true,
        }),
        false => None,
    };
    let topology = Topology::start(config, "telemetry", durable)?;
    let records = topology.bus();
    let counts = Counts::default();
    let (tx, rx) = mpsc::channel::<Submission>(1024);
    let live = cancel.child_token();
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

    let mut mppt_address = None;
    if let Some(m) = &telemetry.mppt {
        if let Some(listen) = &m.listen {
            let (listener, address) = http::bind(listen, "MPPT endpoint").await?;
            mppt_address = Some(address);
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

    let mut airlink_address = None;
    if let Some(a) = &telemetry.airlink {
        if let Some(listen) = &a.listen {
            let (listener, address) = http::bind(listen, "AirLink endpoint").await?;
            airlink_address = Some(address);
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

    let consumer = tokio::spawn(consume(
        rx,
        records,
        config.aggregation.packet_interval_ns(),
    ));
    let has_live = telemetry.has_live_inputs();
    let seconds = telemetry.seconds;
    let run_cancel = cancel.clone();
    let run_counts = counts.clone();
    let task = tokio::spawn(async move {
        let mut failures = Vec::new();
        if has_live {
            let limit = seconds
                .map(|s| super::limits::RUN_SECONDS.duration_s(s))
                .unwrap_or(Duration::MAX);
            tokio::select! {
                _ = run_cancel.cancelled() => {}
                _ = tokio::time::sleep(limit) => {}
            }
            live.cancel();
        }
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
        let outputs = tokio::task::spawn_blocking(move || topology.close())
            .await
            .context("output threads")??;
        Ok(RunReport {
            adapters: counts.snapshot(),
            failures,
            outputs,
            elapsed_s: started.elapsed().as_secs_f64(),
            ..RunReport::default()
        })
    });
    Ok(TelemetryRun {
        mppt_address,
        airlink_address,
        cancel,
        counts: run_counts,
        task,
    })
}

/// rtl_433 JSON lines until the end of the input or `cancel`.
async fn rtl433_lines(
    mut reader: AnyLineReader,
    input: &str,
    ctx: &TimeContext,
    counts: &IngestCounts,
    tx: &BatchSender,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let next = tokio::select! {
            next = reader.next_line() => next?,
            _ = cancel.cancelled() => return Ok(()),
        };
        let Some((line_no, line)) = next else {
            return Ok(());
        };
        let at = format!("{input}:{line_no}");
        let parsed = line.and_then(|l| rtl433::parse_line(l, ctx));
        submit(parsed, counts, tx, rtl433::SOURCE, &at).await?;
    }
}

/// Sends accepted readings on, or counts the rejection; `Err` only when
/// the pipeline has stopped taking batches.
async fn submit(
    parsed: Result<Vec<Reading>, String>,
    counts: &IngestCounts,
    tx: &BatchSender,
    source: &str,
    at: &str,
) -> anyhow::Result<()> {
    match parsed {
        Ok(readings) => {
            let n = readings.len();
            tx.send(Submission::new(TelemetryBatch::Readings(readings)))
                .await
                .map_err(|_| anyhow::anyhow!("the pipeline has stopped"))?;
            counts.accept(n);
        }
        Err(reason) => counts.reject(source, at, &reason),
    }
    Ok(())
}

/// Subscribes to rtl_433's MQTT events until `cancel`; reconnects (and
/// subscribes again) after a broker outage.
async fn rtl433_mqtt(
    config: &Rtl433Mqtt,
    ctx: &TimeContext,
    counts: &IngestCounts,
    tx: &BatchSender,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
    let client_id = config
        .client_id
        .clone()
        .unwrap_or_else(|| format!("meterflow-rtl433-{}", std::process::id()));
    let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true);
    if let Some(user) = &config.username {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let topic = format!("mqtt {}", config.topic);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                client
                    .subscribe(config.topic.clone(), QoS::AtLeastOnce)
                    .await
                    .with_context(|| format!("subscribing to {}", config.topic))?;
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                let at = format!("{topic} ({})", publish.topic);
                let line =
                    std::str::from_utf8(&publish.payload).map_err(|e| format!("not UTF-8: {e}"));
                let parsed = line.and_then(|l| rtl433::parse_line(l, ctx));
                if submit(parsed, counts, tx, rtl433::SOURCE, &at)
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(
                    "rtl_433 MQTT {}:{}: {error}; retrying",
                    config.host,
                    config.port
                );
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// One file holding one MPPT request body.
async fn replay_mppt(
    path: &std::path::Path,
    sender: &str,
    counts: &IngestCounts,
    tx: &BatchSender,
) -> anyhow::Result<()> {
    let at = path.display().to_string();
    let body = match tokio::fs::read(path).await {
        Ok(body) => body,
        Err(e) => {
            counts.reject(mppt::SOURCE, &at, &e);
            return Ok(());
        }
    };
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    match mppt::parse_body(&body, sender, now) {
        Ok(records) => {
            let n = records.iter().map(|r| mppt::readings(r).len()).sum();
            tx.send(Submission::new(TelemetryBatch::Mppt(records)))
                .await
                .map_err(|_| anyhow::anyhow!("the pipeline has stopped"))?;
            counts.accept(n);
        }
        Err(reason) => counts.reject(mppt::SOURCE, &at, &reason),
    }
    Ok(())
}

/// One AirLink file: Thingsboard JSON lines, or one raw CBOR item.
async fn replay_airlink(
    file: &AirlinkFile,
    counts: &IngestCounts,
    tx: &BatchSender,
) -> anyhow::Result<()> {
    let at = file.path.display().to_string();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    if let Some(resource) = &file.resource {
        let decoded = match tokio::fs::read(&file.path).await {
            Err(e) => Err(e.to_string()),
            Ok(bytes) => {
                let device = file.device.as_deref().unwrap_or_default();
                if resource.trim_start_matches('/') == "advt" {
                    cbor::decode_advertisement(&bytes, device, now)
                } else {
                    cbor::decode_resource(resource, &bytes, device, now)
                }
            }
        };
        return submit(decoded, counts, tx, airlink::SOURCE, &at).await;
    }
    let mut reader = match AnyLineReader::open(&file.path).await {
        Ok(reader) => reader,
        Err(error) => {
            counts.reject(airlink::SOURCE, &at, &format!("{error:#}"));
            return Ok(());
        }
    };
    loop {
        let (line_no, line) = match reader.next_line().await {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(()),
            Err(error) => {
                counts.reject(airlink::SOURCE, &at, &format!("{error:#}"));
                return Ok(());
            }
        };
        let parsed =
            line.and_then(|l| thingsboard::parse(l.as_bytes(), file.device.as_deref(), now));
        submit(
            parsed,
            counts,
            tx,
            airlink::SOURCE,
            &format!("{at}:{line_no}"),
        )
        .await?;
    }
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
    records: Arc<RecordBus>,
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
