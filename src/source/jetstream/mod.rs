//! A writer node's source (`meterflow writer`): a durable pull consumer on
//! the records stream, for this writer's share of the meter partitions,
//! feeding the outputs of the pipeline file (Parquet dataset, packet
//! delivery) through the writer's own record log.
//!
//! A message is acked once its records are durable in that log. Each
//! message leaves a [`ConsumedMark`] in the log, so after kill -9 the
//! writer knows exactly which redelivered messages (and, per publishing
//! node and subject, which records) it already has: every record lands in
//! the dataset once. Messages that are not meterflow record batches are
//! refused (terminated, counted, logged) and never stop the writer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer, AckKind};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::model::backoff::Backoff;
use crate::model::latency::LatencyRecorder;
use crate::model::run_report::{ConsumedCounts, RunReport};
use crate::model::stream_positions::StreamPositions;
use crate::model::{ConsumedMark, Record};
use crate::nats::batch::RecordBatch;
use crate::nats::config::ClusterConfig;
use crate::nats::{connect, subjects};
use crate::source::component::{Durability, Source, SourceContext, SourceEnd, SourceMetrics};
use crate::source::component::{RecordHandle, SourceHealth};

pub mod metrics;

use metrics::WriterMetrics;

/// Messages asked for per fetch.
const FETCH_MESSAGES: usize = 512;
/// How long a fetch waits for messages.
const FETCH_WAIT: Duration = Duration::from_millis(500);
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The writer's source in `/healthz` and the logs.
pub const SOURCE_NAME: &str = "jetstream_source";

/// Counters of a writer.
#[derive(Debug, Default)]
pub struct WriterCounters {
    pub messages: AtomicU64,
    pub records: AtomicU64,
    /// Messages delivered again that the log already had.
    pub duplicate_messages: AtomicU64,
    /// Records a node published twice (a republish after its crash).
    pub duplicate_records: AtomicU64,
    /// Messages that were not meterflow record batches.
    pub rejected: AtomicU64,
    /// Messages of this writer's share not yet delivered to it.
    pub pending: AtomicU64,
    pub stream_seq: AtomicU64,
    /// Window end (data time) to the window taken by this writer: how far
    /// the cluster's record path runs behind the meters (`bench cluster`).
    pub window_age: LatencyRecorder,
}

/// A writer node's JetStream consumer, ready to run.
pub struct Writer {
    cluster: ClusterConfig,
    name: String,
    counters: Arc<WriterCounters>,
}

/// What a running writer holds.
struct Consuming {
    cluster: ClusterConfig,
    name: String,
    bus: Arc<dyn RecordHandle>,
    positions: StreamPositions,
    counters: Arc<WriterCounters>,
    health: Arc<dyn SourceHealth>,
}

/// A writer's name in its files, logs and consumer: `writer<index>`.
pub fn writer_name(cluster: &ClusterConfig) -> String {
    format!("writer{}", cluster.writer_index)
}

impl Writer {
    /// The consumer of this writer's share of the cluster's records.
    pub fn new(cluster: ClusterConfig) -> Self {
        Writer {
            name: writer_name(&cluster),
            cluster,
            counters: Arc::new(WriterCounters::default()),
        }
    }
}

impl Source for Writer {
    fn origin(&self) -> String {
        format!("JetStream stream {}", self.cluster.stream)
    }

    fn durability(&self) -> Durability {
        Durability::LogRedelivered
    }

    fn metrics(&self) -> Option<Arc<dyn SourceMetrics>> {
        Some(Arc::new(WriterMetrics {
            name: self.name.clone(),
            counters: Arc::clone(&self.counters),
        }))
    }

    fn started(&self) -> Vec<String> {
        vec![format!(
            "meterflow writer: {} of {} on stream {}",
            self.cluster.writer_index, self.cluster.writers, self.cluster.stream
        )]
    }

    fn stopping(&self) -> Option<&'static str> {
        Some("stopping: writing what was taken, then closing the outputs")
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<'static, anyhow::Result<SourceEnd>> {
        let Writer {
            cluster,
            name,
            counters,
        } = *self;
        let positions = cx.meters.positions();
        tracing::info!(
            writer = %name,
            partitions = ?cluster.writer_partitions(),
            after_stream_seq = positions.stream_seq,
            "writer open"
        );
        let consuming = Consuming {
            cluster,
            name,
            bus: Arc::clone(&cx.records),
            positions,
            counters,
            health: Arc::clone(&cx.health),
        };
        consuming.run(cx.cancel).boxed()
    }
}

impl Consuming {
    /// Consumes until `cancel`; the runner then closes the outputs.
    async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<SourceEnd> {
        self.health.register(SOURCE_NAME);
        let client =
            connect::connect(&self.cluster, &format!("meterflow {}", self.name), true).await?;
        let js = connect::context(&self.cluster, client);
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        while !cancel.is_cancelled() {
            let result = self.consume(&js, &cancel).await;
            if let Err(error) = result {
                self.health.fail(SOURCE_NAME, &error);
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = cancel.cancelled() => {}
                }
            }
        }
        let counters = &self.counters;
        Ok(RunReport {
            consumed: Some(ConsumedCounts {
                messages: counters.messages.load(Relaxed),
                records: counters.records.load(Relaxed),
                duplicate_messages: counters.duplicate_messages.load(Relaxed),
                duplicate_records: counters.duplicate_records.load(Relaxed),
                rejected: counters.rejected.load(Relaxed),
            }),
            ..RunReport::default()
        }
        .into())
    }

    /// Opens the consumer and takes messages until cancelled or NATS fails.
    async fn consume(
        &mut self,
        js: &jetstream::Context,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let stream = connect::records_stream(&self.cluster, js).await?;
        let durable = format!(
            "meterflow-writer-{}-of-{}",
            self.cluster.writer_index, self.cluster.writers
        );
        let mut consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    description: Some(format!("meterflow {}", self.name)),
                    filter_subjects: self
                        .cluster
                        .writer_partitions()
                        .into_iter()
                        .map(|p| subjects::partition_filter(&self.cluster.subject_prefix, p))
                        .collect(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("opening the consumer {durable}"))?;
        loop {
            let fetch = consumer
                .fetch()
                .max_messages(FETCH_MESSAGES)
                .expires(FETCH_WAIT)
                .messages();
            let mut batch = tokio::select! {
                batch = fetch => batch.map_err(|e| anyhow::anyhow!("fetching from {durable}: {e}"))?,
                _ = cancel.cancelled() => return Ok(()),
            };
            let mut taken = Vec::new();
            let mut failure = None;
            while let Some(message) = batch.next().await {
                match message {
                    Ok(message) => {
                        self.take(&message)?;
                        taken.push(message);
                    }
                    Err(error) => {
                        failure = Some(anyhow::anyhow!("receiving from {durable}: {error}"));
                        break;
                    }
                }
            }
            if !taken.is_empty() {
                // Durable in the writer's log before JetStream may forget them.
                let bus = &self.bus;
                tokio::task::block_in_place(|| bus.make_durable(bus.last_seq()))
                    .context("making the writer's record log durable")?;
                for message in &taken {
                    // A lost ack means a redelivery, which the marks drop.
                    let _ = message.ack().await;
                }
            }
            if let Some(error) = failure {
                return Err(error);
            }
            if taken.len() < FETCH_MESSAGES {
                if let Ok(info) = consumer.info().await {
                    self.counters.pending.store(info.num_pending, Relaxed);
                }
            }
            self.counters
                .stream_seq
                .store(self.positions.stream_seq, Relaxed);
            self.health.ok(SOURCE_NAME, self.positions.stream_seq, None);
        }
    }

    /// Takes one message into the log (or refuses it, or skips what the log
    /// already holds). An error is the log refusing records.
    fn take(&mut self, message: &jetstream::Message) -> anyhow::Result<()> {
        let stream_seq = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(error) => {
                self.reject(message, &format!("no JetStream metadata: {error}"));
                return Ok(());
            }
        };
        if stream_seq <= self.positions.stream_seq {
            self.counters.duplicate_messages.fetch_add(1, Relaxed);
            return Ok(());
        }
        let subject = message.subject.as_str();
        let batch =
            match RecordBatch::decode(&self.cluster.subject_prefix, subject, &message.payload) {
                Ok(batch) => batch,
                Err(reason) => {
                    self.reject(message, &reason);
                    return Ok(());
                }
            };
        let already = self.positions.taken(&batch.origin, subject);
        let mut highest = already;
        let bus = Arc::clone(&self.bus);
        let now_unix_ns = crate::model::clock::unix_now_ns();
        tokio::task::block_in_place(|| {
            for (seq, record) in batch.seqs.iter().zip(batch.records) {
                if *seq <= already {
                    self.counters.duplicate_records.fetch_add(1, Relaxed);
                    continue;
                }
                if let Record::Window(row) = &record {
                    let age_ns = now_unix_ns.saturating_sub(row.metrics.end_unix_ns).max(0);
                    self.counters
                        .window_age
                        .record(Duration::from_nanos(age_ns as u64));
                }
                bus.emit(record)?;
                self.counters.records.fetch_add(1, Relaxed);
                highest = *seq;
            }
            let mark = ConsumedMark {
                stream_seq,
                origin: batch.origin.clone(),
                subject: subject.to_string(),
                origin_seq: highest,
            };
            bus.emit(Record::Consumed(mark))?;
            anyhow::Ok(())
        })?;
        self.positions.stream_seq = stream_seq;
        let taken = self
            .positions
            .taken
            .entry(batch.origin)
            .or_default()
            .entry(subject.to_string())
            .or_default();
        *taken = (*taken).max(highest);
        self.counters.messages.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Refuses a message that is not a record batch of ours: counted, logged
    /// (the first few and then every thousandth), never redelivered.
    fn reject(&self, message: &jetstream::Message, reason: &str) {
        let count = self.counters.rejected.fetch_add(1, Relaxed) + 1;
        if count <= 10 || count.is_multiple_of(1000) {
            tracing::warn!(
                subject = %message.subject,
                rejected = count,
                "refused a message on the records stream: {reason}"
            );
        }
        let message = message.clone();
        tokio::spawn(async move {
            let _ = message.ack_with(AckKind::Term).await;
        });
    }
}
