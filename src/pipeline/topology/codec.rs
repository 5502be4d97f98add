//! Records as record-log entries: CBOR through serde, so an entry names its
//! fields and a newer meterflow still reads an older log.

use crate::model::Record;

pub fn encode(record: &Record) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(1024);
    ciborium::into_writer(record, &mut bytes)
        .map_err(|e| anyhow::anyhow!("encoding a record for the record log: {e}"))?;
    Ok(bytes)
}

pub fn decode(seq: u64, bytes: &[u8]) -> anyhow::Result<Record> {
    ciborium::from_reader(bytes)
        .map_err(|e| anyhow::anyhow!("record log entry {seq} is not a record: {e}"))
}
