//! The body of a record message: many records of one meter and kind, with
//! their seqs in the publishing node's record log. The origin and seqs let a
//! writer drop a record it already has (a node that crashed between a
//! publish and its ack publishes again, with other batch boundaries).
//! CBOR names every field of every record; zstd over the whole batch takes
//! those repeats out, so the wire carries a few bytes per value.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::model::Record;

use super::subjects;

/// The format of message bodies this meterflow writes and reads.
pub const FORMAT: u32 = 2;
/// Largest decoded batch a writer accepts, bytes (a bound against a
/// compressed body that would expand without end).
pub const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;
/// zstd level of message bodies: level 3 is zstd's default trade.
const ZSTD_LEVEL: i32 = 3;
/// Header naming the format, so a foreign message is told apart cheaply.
pub const FORMAT_HEADER: &str = "Meterflow-Format";
/// Header naming the node that published, so a meter's next node can say
/// whose results it carries on from.
pub const NODE_HEADER: &str = "Meterflow-Node";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordBatch {
    pub format: u32,
    /// The record log the seqs belong to (the publishing node's log id).
    pub origin: String,
    pub seqs: Vec<u64>,
    pub records: Vec<Record>,
}

impl RecordBatch {
    /// The message body: the batch in CBOR, compressed with zstd.
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let mut compressor = Self::compressor()?;
        self.encode_with(&mut compressor)
    }

    /// A compressor to reuse over many [`RecordBatch::encode_with`] calls.
    pub fn compressor() -> anyhow::Result<zstd::bulk::Compressor<'static>> {
        zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .map_err(|e| anyhow::anyhow!("starting a zstd compressor: {e}"))
    }

    pub fn encode_with(
        &self,
        compressor: &mut zstd::bulk::Compressor<'static>,
    ) -> anyhow::Result<Vec<u8>> {
        let mut cbor = Vec::with_capacity(1024 * self.records.len().max(1));
        ciborium::into_writer(self, &mut cbor)
            .map_err(|e| anyhow::anyhow!("encoding a record batch: {e}"))?;
        anyhow::ensure!(
            cbor.len() as u64 <= MAX_DECODED_BYTES,
            "a record batch of {} bytes is over the {MAX_DECODED_BYTES} a writer takes",
            cbor.len()
        );
        compressor
            .compress(&cbor)
            .map_err(|e| anyhow::anyhow!("compressing a record batch: {e}"))
    }

    /// Decodes and checks a message of `subject`: the body must be a batch
    /// of this format whose records are of the subject's kind and meter.
    pub fn decode(prefix: &str, subject: &str, body: &[u8]) -> Result<Self, String> {
        let (_, kind, meter) = subjects::parse(prefix, subject)
            .ok_or_else(|| format!("subject {subject:?} is not a record subject"))?;
        let cbor = decompress(body).map_err(|e| format!("body is not a record batch: {e}"))?;
        let batch: RecordBatch = ciborium::from_reader(cbor.as_slice())
            .map_err(|e| format!("body is not a record batch: {e}"))?;
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

/// The CBOR inside a zstd body, at most [`MAX_DECODED_BYTES`].
fn decompress(body: &[u8]) -> Result<Vec<u8>, String> {
    let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| format!("zstd: {e}"))?;
    let mut cbor = Vec::with_capacity(body.len() * 8);
    decoder
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut cbor)
        .map_err(|e| format!("zstd: {e}"))?;
    if cbor.len() as u64 > MAX_DECODED_BYTES {
        return Err(format!("it expands beyond {MAX_DECODED_BYTES} bytes"));
    }
    Ok(cbor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceInfo, WindowRow};

    fn windows(meter: &str, n: usize) -> RecordBatch {
        let records = (0..n)
            .map(|i| {
                let start = 1_700_000_000_000_000_000 + i as i64 * 200_000_000;
                Record::Window(WindowRow {
                    device: DeviceInfo::new(meter, 7, crate::wire::Measures::ThreePhase),
                    metrics: crate::model::WindowMetrics {
                        start_unix_ns: start,
                        end_unix_ns: start + 200_000_000,
                        ..Default::default()
                    },
                    energy: None,
                })
            })
            .collect();
        RecordBatch {
            format: FORMAT,
            origin: "node-a".to_string(),
            seqs: (1..=n as u64).collect(),
            records,
        }
    }

    fn subject(meter: &str) -> String {
        subjects::record_subject("meterflow", 4, meter, "window")
    }

    #[test]
    fn a_batch_round_trips_and_is_much_smaller_than_its_cbor() {
        let batch = windows("m1", 500);
        let body = batch.encode().unwrap();
        let decoded = RecordBatch::decode("meterflow", &subject("m1"), &body).unwrap();
        assert_eq!(decoded, batch);
        let mut cbor = Vec::new();
        ciborium::into_writer(&batch, &mut cbor).unwrap();
        // Field names repeat in every record: zstd takes most of them out.
        assert!(
            body.len() * 4 < cbor.len(),
            "{} bytes compressed, {} in CBOR",
            body.len(),
            cbor.len()
        );
    }

    #[test]
    fn garbage_a_bomb_and_a_batch_on_another_subject_are_refused_with_a_reason() {
        let garbage = RecordBatch::decode("meterflow", &subject("m1"), b"garbage").unwrap_err();
        assert!(garbage.contains("not a record batch"), "{garbage}");

        let zeros = vec![0u8; MAX_DECODED_BYTES as usize + 1];
        let bomb = zstd::bulk::compress(&zeros, 3).unwrap();
        assert!(bomb.len() < 1 << 20);
        let bomb = RecordBatch::decode("meterflow", &subject("m1"), &bomb).unwrap_err();
        assert!(bomb.contains("expands beyond"), "{bomb}");

        let body = windows("m1", 3).encode().unwrap();
        let moved = RecordBatch::decode("meterflow", &subject("m2"), &body).unwrap_err();
        assert!(moved.contains("on subject"), "{moved}");

        let mut other = windows("m1", 2);
        other.format = 1;
        let old =
            RecordBatch::decode("meterflow", &subject("m1"), &other.encode().unwrap()).unwrap_err();
        assert!(old.contains("batch format 1"), "{old}");
    }
}
