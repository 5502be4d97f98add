//! Turns one meter's decoded chunks into `SampleBlock`s with sample indices,
//! so lost chunks become marked gaps in the sample count instead of silently
//! shifting every later timestamp.

use crate::wire::message::SampleAnswer;
use crate::wire::samples::{SampleBlock, SampleError};
use crate::wire::{Anomaly, Measures};

/// Sample-index bookkeeping of one sampling session.
#[derive(Debug)]
pub struct BlockAssembler {
    block: SampleBlock,
    samples_per_chunk: u64,
    next_index: u64,
    pending_gap: u64,
    lost_samples: u64,
}

impl BlockAssembler {
    /// Starts at sample 0 of the session the sample answer describes.
    pub fn new(answer: &SampleAnswer) -> Self {
        Self::with_layout(
            answer.measures,
            answer.samplingrate,
            answer.start_ts.to_unix_nanos(),
            answer.chunksize,
        )
    }

    pub fn with_layout(
        measures: Measures,
        rate: u32,
        start_unix_ns: i64,
        chunk_bytes: usize,
    ) -> Self {
        let samples_per_chunk = (chunk_bytes / measures.bytes_per_sample()).max(1) as u64;
        BlockAssembler {
            block: SampleBlock::new(measures, rate, start_unix_ns),
            samples_per_chunk,
            next_index: 0,
            pending_gap: 0,
            lost_samples: 0,
        }
    }

    /// Decodes one chunk into the reused block; the block is valid until the next call.
    pub fn push_payload(&mut self, payload: &[u8]) -> Result<&SampleBlock, SampleError> {
        self.block.fill_from_payload(payload)?;
        self.block.first_index = self.next_index;
        self.block.gap_before = std::mem::take(&mut self.pending_gap);
        self.next_index += self.block.len() as u64;
        Ok(&self.block)
    }

    /// Accounts for chunks the wire reported lost; returns the samples lost.
    pub fn note_anomaly(&mut self, anomaly: &Anomaly) -> u64 {
        let lost = match *anomaly {
            Anomaly::Gap { lost_chunks, .. } => u64::from(lost_chunks) * self.samples_per_chunk,
            Anomaly::BadDataLength { .. } => self.samples_per_chunk,
            _ => 0,
        };
        self.pending_gap += lost;
        self.next_index += lost;
        self.lost_samples += lost;
        lost
    }

    /// Continues a session at sample `next_index`, the `gap` samples right
    /// before it lost (the next file of a recording).
    pub fn resume_at(&mut self, next_index: u64, gap: u64) {
        self.next_index = next_index;
        self.pending_gap += gap;
        self.lost_samples += gap;
    }

    /// Index the next sample will have.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Samples counted as lost so far.
    pub fn lost_samples(&self) -> u64 {
        self.lost_samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(samples: usize) -> Vec<u8> {
        (0..samples * 6)
            .flat_map(|k| (k as f32).to_le_bytes())
            .collect()
    }

    #[test]
    fn indices_advance_and_gaps_are_marked() {
        let mut asm = BlockAssembler::with_layout(Measures::ThreePhase, 8000, 0, 1008);
        let block = asm.push_payload(&payload(42)).unwrap();
        assert_eq!(
            (block.first_index, block.gap_before, block.len()),
            (0, 0, 42)
        );
        let lost = asm.note_anomaly(&Anomaly::Gap {
            expected: 1,
            received: 3,
            lost_chunks: 2,
        });
        assert_eq!(lost, 84);
        let block = asm.push_payload(&payload(42)).unwrap();
        assert_eq!((block.first_index, block.gap_before), (126, 84));
        let block = asm.push_payload(&payload(5)).unwrap();
        assert_eq!(
            (block.first_index, block.gap_before, block.len()),
            (168, 0, 5)
        );
        assert_eq!(asm.lost_samples(), 84);
        assert_eq!(asm.next_index(), 173);
    }

    #[test]
    fn other_anomalies_lose_no_samples() {
        let mut asm = BlockAssembler::with_layout(Measures::SinglePhase, 8000, 0, 1024);
        assert_eq!(asm.note_anomaly(&Anomaly::Resync { skipped: 10 }), 0);
        assert_eq!(
            asm.note_anomaly(&Anomaly::BadDataLength {
                seq: 1,
                len: 3,
                bytes_per_sample: 8
            }),
            128
        );
    }
}
