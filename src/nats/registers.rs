//! A meter's registers in the state bucket: what the records published so
//! far leave them at, so a meter that reconnects to another node carries on
//! exactly there. The bucket is written after the records' acks, so a node
//! killed in between leaves it one publish behind; the meter's last window
//! and latch messages in the stream close that gap ([`last_published`]).

use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};

use crate::model::meter_registers::MeterRegisters;

use super::batch::{RecordBatch, NODE_HEADER};
use super::config::ClusterConfig;
use super::subjects;

/// The registers `meter`'s last published window or latch message leaves,
/// or `stored` (the state bucket's copy) when that is as late; `None` when
/// neither exists. A message that does not decode is skipped with a
/// warning: the bucket's copy still stands.
pub async fn last_published(
    config: &ClusterConfig,
    stream: &Stream,
    meter: &str,
    stored: Option<MeterRegisters>,
) -> anyhow::Result<Option<MeterRegisters>> {
    let mut latest = stored;
    for kind in ["window", "latch"] {
        let subject =
            subjects::record_subject(&config.subject_prefix, config.partitions, meter, kind);
        let message = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message,
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
            Err(error) => {
                return Err(anyhow::anyhow!("{error}"))
                    .map_err(|e| e.context(format!("reading the last message of {subject}")));
            }
        };
        let batch = match RecordBatch::decode(&config.subject_prefix, &subject, &message.payload) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(
                    meter,
                    "the last message of {subject} is unreadable: {error}"
                );
                continue;
            }
        };
        let node = match message.headers.get(NODE_HEADER) {
            Some(value) => value.as_str().to_string(),
            None => latest.as_ref().map(|r| r.node.clone()).unwrap_or_default(),
        };
        let found = batch
            .records
            .iter()
            .rev()
            .find_map(|record| MeterRegisters::after(record, &node));
        if let Some(found) = found {
            if latest
                .as_ref()
                .is_none_or(|l| l.covered_until_ns < found.covered_until_ns)
            {
                latest = Some(found);
            }
        }
    }
    Ok(latest)
}
