//! The detector on its own, SampleBlocks in: runs the engine's
//! [`ZeroCrossingDetector`] on the reference voltage and handles gaps the
//! way the engine does. Inside the engine (`[dsp.pq]`) this is not needed.

use super::detector::{PqDetector, PqError, PqOutput};
use super::PqConfig;
use crate::dsp::latch::check_block;
use crate::dsp::metrics::ChannelMap;
use crate::dsp::zero_crossing::ZeroCrossingDetector;
use crate::dsp::{EngineConfig, EngineError};
use crate::wire::layout::Measures;
use crate::wire::SampleBlock;

/// One device's PQ detection from its sample blocks.
#[derive(Debug, Clone)]
pub struct PqStream {
    measures: Measures,
    rate: u32,
    reference: usize,
    zero_crossings: ZeroCrossingDetector,
    detector: PqDetector,
    next_index: Option<u64>,
    crossings: Vec<f64>,
}

impl PqStream {
    /// `engine` gives the nominal frequency and the crossing detector's floor.
    pub fn new(
        config: &PqConfig,
        engine: &EngineConfig,
        measures: Measures,
        rate: u32,
        start_unix_ns: i64,
    ) -> Result<Self, PqError> {
        let nominal = engine.nominal_hz();
        let config = PqConfig {
            udin_v: config.udin_v.or(engine.declared_voltage_v),
            ..config.clone()
        };
        let detector = PqDetector::new(&config, measures, rate, nominal, start_unix_ns, 0)?;
        let reference = ChannelMap::of(measures)
            .reference()
            .ok_or(PqError::NoVoltage(measures))?;
        Ok(PqStream {
            measures,
            rate,
            reference,
            zero_crossings: ZeroCrossingDetector::new(rate, nominal, engine.min_reference_peak_v),
            detector,
            next_index: None,
            crossings: Vec::new(),
        })
    }

    pub fn detector(&self) -> &PqDetector {
        &self.detector
    }

    /// The next block, in order; a jump in indices or `gap_before` is a gap.
    pub fn push_block(
        &mut self,
        block: &SampleBlock,
        sink: &mut dyn FnMut(PqOutput<'_>),
    ) -> Result<(), EngineError> {
        check_block(block, self.measures, self.rate)?;
        match self.next_index {
            Some(expected) if block.first_index < expected => {
                return Err(EngineError::OutOfOrder {
                    expected,
                    got: block.first_index,
                });
            }
            Some(expected) if block.first_index > expected || block.gap_before > 0 => {
                self.detector
                    .on_gap(expected as f64 - 0.5, block.first_index, sink);
                self.zero_crossings.reset();
            }
            Some(_) => {}
            // Nothing is open yet: this only moves the start.
            None => self
                .detector
                .on_gap(block.first_index as f64 - 0.5, block.first_index, sink),
        }
        let end = block.first_index + block.len() as u64;
        self.next_index = Some(end);
        self.crossings.clear();
        self.zero_crossings.process(
            block.first_index,
            &block.channels[self.reference],
            &mut self.crossings,
        );
        let horizon = end as f64 - 2.0 - self.zero_crossings.delay_samples();
        let mut slices: [&[f32]; 6] = [&[]; 6];
        for (slot, channel) in slices.iter_mut().zip(&block.channels) {
            *slot = channel;
        }
        self.detector.push(
            &slices[..block.channels.len().min(6)],
            &self.crossings,
            horizon,
            sink,
        );
        Ok(())
    }

    /// End of the stream or disconnect: open events close, flagged.
    pub fn finish(&mut self, sink: &mut dyn FnMut(PqOutput<'_>)) {
        if let Some(end) = self.next_index.take() {
            self.detector.finish(end as f64 - 0.5, sink);
        }
    }
}
