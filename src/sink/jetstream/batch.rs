//! The body of a record message: many records of one meter and kind, with
//! their seqs in the publishing node's record log. The origin and seqs let a
//! writer drop a record it already has (a node that crashed between a
//! publish and its ack publishes again, with other batch boundaries).

use serde::{Deserialize, Serialize};

use crate::model::Record;

use super::subjects;

/// The format of message bodies this meterflow writes and reads.
pub const FORMAT: u32 = 1;
/// Header naming the format, so a foreign message is told apart cheaply.
pub const FORMAT_HEADER: &str = "Meterflow-Format";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordBatch {
    pub format: u32,
    /// The record log the seqs belong to (the publishing node's log id).
    pub origin: String,
    pub seqs: Vec<u64>,
    pub records: Vec<Record>,
}

impl RecordBatch {
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(256 * self.records.len().max(1));
        ciborium::into_writer(self, &mut bytes)
            .map_err(|e| anyhow::anyhow!("encoding a record batch: {e}"))?;
        Ok(bytes)
    }

    /// Decodes and checks a message of `subject`: the body must be a batch
    /// of this format whose records are of the subject's kind and meter.
    pub fn decode(prefix: &str, subject: &str, body: &[u8]) -> Result<Self, String> {
        let (_, kind, meter) = subjects::parse(prefix, subject)
            .ok_or_else(|| format!("subject {subject:?} is not a record subject"))?;
        let batch: RecordBatch =
            ciborium::from_reader(body).map_err(|e| format!("body is not a record batch: {e}"))?;
        if batch.format != FORMAT {
            return Err(format!(
                "batch format {}, this meterflow reads {FORMAT}",
                batch.format
            ));
        }
        if batch.seqs.len() != batch.records.len() || batch.records.is_empty() {
            return Err(format!(
                "{} seqs for {} records",
                batch.seqs.len(),
                batch.records.len()
            ));
        }
        if batch.seqs.windows(2).any(|w| w[0] >= w[1]) {
            return Err("seqs are not increasing".to_string());
        }
        for record in &batch.records {
            let record_kind = subjects::kind_of(record);
            let record_meter = record.device().map(subjects::meter_token);
            if record_kind != kind || record_meter.as_deref() != Some(meter) {
                return Err(format!(
                    "a {record_kind} record of {:?} on subject {subject:?}",
                    record.device().unwrap_or("no device")
                ));
            }
        }
        Ok(batch)
    }
}
