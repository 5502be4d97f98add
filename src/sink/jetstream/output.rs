//! The `jetstream` output of an ingest node: records of each meter and kind
//! are batched for one publish interval, published with a message id, and
//! count as durable only once JetStream has acked them. Then the meters'
//! registers go to the state bucket. While NATS is unreachable the flush
//! fails, the runner rebuilds this output with backoff, and the node's own
//! record log holds what waits; it is published in order when NATS is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;

use crate::model::metric::Metric;
use crate::model::run_report::OutputSummary;
use crate::model::Record;
use crate::sink::output::{Output, OutputMetrics};

use crate::model::meter_registers::MeterRegisters;
use crate::nats::batch::{RecordBatch, FORMAT, FORMAT_HEADER, NODE_HEADER};
use crate::nats::config::ClusterConfig;
use crate::nats::{connect, subjects};

/// Counters of the publisher, for `/metrics` (they outlive rebuilds).
#[derive(Debug, Default)]
pub struct PublishCounters {
    /// The publishing node (the metrics' `node` label).
    pub node: String,
    pub messages: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Messages the server already had (a republish after a failure).
    pub duplicates: AtomicU64,
    pub failed_flushes: AtomicU64,
}

/// A message ready to publish: subject, message id, body, records in it.
type Message = (String, String, Vec<u8>, usize);

#[derive(Default)]
struct Pending {
    seqs: Vec<u64>,
    records: Vec<Record>,
}

/// Publishes records to the cluster's stream.
pub struct JetStreamOutput {
    config: ClusterConfig,
    origin: String,
    node: String,
    runtime: tokio::runtime::Handle,
    js: jetstream::Context,
    state: kv::Store,
    max_payload: usize,
    /// Per meter and kind (the subject is made once per flush, not per record).
    pending: HashMap<String, HashMap<&'static str, Pending>>,
    registers: HashMap<String, MeterRegisters>,
    last_seq: u64,
    counters: Arc<PublishCounters>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl JetStreamOutput {
    pub const NAME: &'static str = "jetstream";

    /// Connects and opens the stream and state bucket. `origin`: the node's
    /// record log id; `runtime`: where the client runs (this is called on the
    /// output's own thread).
    pub fn open(
        config: &ClusterConfig,
        origin: &str,
        node: &str,
        runtime: tokio::runtime::Handle,
        counters: Arc<PublishCounters>,
    ) -> anyhow::Result<Self> {
        let (js, state, max_payload) = runtime.block_on(async {
            let client =
                connect::connect(config, &format!("meterflow ingest {node}"), false).await?;
            let max_payload = client.server_info().max_payload;
            let js = connect::context(config, client);
            connect::records_stream(config, &js).await?;
            let state = connect::state_bucket(config, &js).await?;
            anyhow::Ok((js, state, max_payload))
        })?;
        Ok(JetStreamOutput {
            config: config.clone(),
            origin: origin.to_string(),
            node: node.to_string(),
            runtime,
            js,
            state,
            max_payload: max_payload.max(64 * 1024),
            pending: HashMap::new(),
            registers: HashMap::new(),
            last_seq: 0,
            counters,
            compressor: RecordBatch::compressor()?,
        })
    }

    /// Batches of at most `max_batch_records` and about half the server's
    /// payload limit, each with its message id.
    fn messages(&mut self) -> anyhow::Result<Vec<Message>> {
        let mut out = Vec::new();
        let (prefix, partitions) = (&self.config.subject_prefix, self.config.partitions);
        let mut pending: Vec<(String, Pending)> = std::mem::take(&mut self.pending)
            .into_iter()
            .flat_map(|(meter, kinds)| {
                kinds.into_iter().map(move |(kind, batch)| {
                    (
                        subjects::record_subject(prefix, partitions, &meter, kind),
                        batch,
                    )
                })
            })
            .collect();
        // In the order of their first record.
        pending.sort_by_key(|(_, p)| p.seqs.first().copied().unwrap_or(0));
        for (subject, batch) in pending {
            let mut seqs = batch.seqs.as_slice();
            let mut records = batch.records.as_slice();
            while !seqs.is_empty() {
                let mut take = seqs.len().min(self.config.max_batch_records);
                loop {
                    let body = RecordBatch {
                        format: FORMAT,
                        origin: self.origin.clone(),
                        seqs: seqs[..take].to_vec(),
                        records: records[..take].to_vec(),
                    }
                    .encode_with(&mut self.compressor)?;
                    if body.len() <= self.max_payload / 2 || take == 1 {
                        let id =
                            format!("{}:{subject}:{}-{}", self.origin, seqs[0], seqs[take - 1]);
                        out.push((subject.clone(), id, body, take));
                        break;
                    }
                    take = take.div_ceil(2);
                }
                seqs = &seqs[take..];
                records = &records[take..];
            }
        }
        Ok(out)
    }

    async fn publish(
        js: &jetstream::Context,
        state: &kv::Store,
        node: &str,
        messages: Vec<Message>,
        registers: Vec<(String, Vec<u8>)>,
        counters: &PublishCounters,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(messages.len());
        for (subject, id, body, records) in messages {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            headers.insert(FORMAT_HEADER, FORMAT.to_string().as_str());
            headers.insert(NODE_HEADER, node);
            let bytes = body.len() as u64;
            let ack = js
                .publish_with_headers(subject.clone(), headers, body.into())
                .await
                .with_context(|| format!("publishing to {subject}"))?;
            acks.push((subject, ack, records, bytes));
        }
        for (subject, ack, records, bytes) in acks {
            let ack = tokio::time::timeout(timeout, ack)
                .await
                .map_err(|_| {
                    anyhow::anyhow!("no ack from JetStream for {subject} within {timeout:?}")
                })?
                .with_context(|| format!("JetStream did not ack {subject}"))?;
            counters.messages.fetch_add(1, Relaxed);
            counters.records.fetch_add(records as u64, Relaxed);
            counters.bytes.fetch_add(bytes, Relaxed);
            if ack.duplicate {
                counters.duplicates.fetch_add(1, Relaxed);
            }
        }
        let puts = registers.into_iter().map(|(key, value)| async move {
            state
                .put(key.as_str(), value.into())
                .await
                .with_context(|| format!("storing the registers of {key}"))
        });
        for result in futures::future::join_all(puts).await {
            result?;
        }
        Ok(())
    }
}

impl Output for JetStreamOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        self.last_seq = seq;
        let Some(meter) = record.device() else {
            return Ok(());
        };
        if matches!(record, Record::Raw(_)) && !self.config.raw_archive {
            return Ok(());
        }
        if let Some(registers) = MeterRegisters::after(record, &self.node) {
            match self.registers.get_mut(meter) {
                Some(last) => *last = registers,
                None => {
                    self.registers.insert(meter.to_string(), registers);
                }
            }
        }
        let kinds = match self.pending.get_mut(meter) {
            Some(kinds) => kinds,
            None => self.pending.entry(meter.to_string()).or_default(),
        };
        let pending = kinds.entry(subjects::kind_of(record)).or_default();
        pending.seqs.push(seq);
        pending.records.push(record.clone());
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<u64> {
        if self.pending.is_empty() && self.registers.is_empty() {
            return Ok(self.last_seq);
        }
        let messages = self.messages()?;
        let registers = std::mem::take(&mut self.registers)
            .into_iter()
            .map(|(name, registers)| Ok((subjects::meter_token(&name), registers.encode()?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let result = self.runtime.block_on(Self::publish(
            &self.js,
            &self.state,
            &self.node,
            messages,
            registers,
            &self.counters,
            self.config.request_timeout(),
        ));
        if result.is_err() {
            self.counters.failed_flushes.fetch_add(1, Relaxed);
        }
        result?;
        Ok(self.last_seq)
    }

    fn flush_interval(&self) -> Duration {
        self.config.publish_interval()
    }

    fn metrics(&self) -> Option<Arc<dyn OutputMetrics>> {
        Some(Arc::clone(&self.counters) as Arc<dyn OutputMetrics>)
    }

    fn close(mut self: Box<Self>) -> anyhow::Result<OutputSummary> {
        self.flush()?;
        let mut summary = OutputSummary::new(Self::NAME);
        let messages = self.counters.messages.load(Relaxed);
        let records = self.counters.records.load(Relaxed);
        summary.totals.insert("messages".into(), messages);
        summary.totals.insert("records".into(), records);
        Ok(summary)
    }
}

impl OutputMetrics for PublishCounters {
    fn metrics(&self) -> Vec<Metric> {
        let counters: [(&'static str, &'static str, &AtomicU64); 5] = [
            (
                "meterflow_cluster_published_messages_total",
                "record messages JetStream acked",
                &self.messages,
            ),
            (
                "meterflow_cluster_published_records_total",
                "records in those messages",
                &self.records,
            ),
            (
                "meterflow_cluster_published_bytes_total",
                "bytes of those messages' bodies",
                &self.bytes,
            ),
            (
                "meterflow_cluster_duplicate_messages_total",
                "messages JetStream already had (republished after a failure)",
                &self.duplicates,
            ),
            (
                "meterflow_cluster_failed_publishes_total",
                "publish rounds that failed (retried from the record log)",
                &self.failed_flushes,
            ),
        ];
        counters
            .into_iter()
            .map(|(name, help, value)| {
                Metric::counter(name, help, value.load(Relaxed)).with("node", &self.node)
            })
            .collect()
    }
}
