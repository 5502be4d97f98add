//! A waveform engine for a meter whose Udin or nominal frequency the
//! pipeline does not give: it holds the meter's first second of blocks,
//! infers what is missing from them ([`NominalEstimator`]), then builds the
//! engine with it and replays the held blocks, so a dip in that first
//! second is found like any other. Holding costs one second of samples per
//! meter, once.

use super::engine::{EngineError, EngineOutput, WaveformEngine};
use super::latch::check_block;
use super::metrics::ChannelMap;
use super::nominal::NominalEstimator;
use super::EngineConfig;
use crate::model::energy::EnergyCounters;
use crate::wire::layout::Measures;
use crate::wire::SampleBlock;

/// Blocks held until the meter's nominal values are known.
#[derive(Debug)]
pub struct InferringEngine {
    config: EngineConfig,
    measures: Measures,
    rate: u32,
    start_unix_ns: i64,
    estimator: Option<NominalEstimator>,
    held: Vec<SampleBlock>,
    /// Where the next block must start (the engine's order check).
    next_index: Option<u64>,
    energy: EnergyCounters,
}

impl InferringEngine {
    /// Refuses what [`WaveformEngine::new`] would refuse for any outcome.
    pub fn new(
        config: &EngineConfig,
        measures: Measures,
        rate: u32,
        start_unix_ns: i64,
    ) -> Result<Self, EngineError> {
        // Built once to refuse a bad config or rate now, not a second later.
        let probe = WaveformEngine::new(config, measures, rate, start_unix_ns)?;
        let map = ChannelMap::of(measures);
        let present = [0, 1, 2].map(|k| map.voltage[k].is_some() && map.current[k].is_some());
        drop(probe);
        let infer_udin = config.declared_udin_v().is_none();
        let infer_frequency = config.nominal_frequency_hz.is_none();
        Ok(InferringEngine {
            config: config.clone(),
            measures,
            rate,
            start_unix_ns,
            estimator: Some(NominalEstimator::new(
                measures,
                rate,
                start_unix_ns,
                infer_udin,
                infer_frequency,
            )),
            held: Vec::new(),
            next_index: None,
            energy: EnergyCounters::new(present),
        })
    }

    pub fn energy(&self) -> &EnergyCounters {
        &self.energy
    }

    /// Continues from saved counters; handed to the engine once built.
    pub fn restore_energy(&mut self, counters: EnergyCounters) {
        self.energy = counters;
    }

    /// Holds `block`; true once the inference span is covered.
    pub fn hold(&mut self, block: &SampleBlock) -> Result<bool, EngineError> {
        check_block(block, self.measures, self.rate)?;
        if let Some(expected) = self.next_index {
            if block.first_index < expected {
                return Err(EngineError::OutOfOrder {
                    expected,
                    got: block.first_index,
                });
            }
        }
        self.next_index = Some(block.first_index + block.len() as u64);
        let Some(estimator) = &mut self.estimator else {
            return Ok(true);
        };
        estimator.push(block);
        self.held.push(block.clone());
        Ok(estimator.enough())
    }

    /// Infers from what is held, builds the engine, tells `sink` what was
    /// inferred ([`EngineOutput::Nominal`]) and replays the held blocks;
    /// with the engine comes the first error of a held block it refused
    /// (the rest still went in).
    pub fn start(
        &mut self,
        sink: &mut dyn FnMut(EngineOutput<'_>),
    ) -> Result<(Box<WaveformEngine>, Option<EngineError>), EngineError> {
        let estimator = self.estimator.take().unwrap_or_else(|| {
            NominalEstimator::new(self.measures, self.rate, self.start_unix_ns, false, false)
        });
        let inference = estimator.conclude();
        let held = std::mem::take(&mut self.held);
        let config = self.config.with_inferred(&inference);
        let mut engine = Box::new(WaveformEngine::new(
            &config,
            self.measures,
            self.rate,
            self.start_unix_ns,
        )?);
        engine.restore_energy(self.energy.clone());
        sink(EngineOutput::Nominal {
            inference: &inference,
            config: &config,
        });
        let mut first_error = None;
        for block in &held {
            if let Err(error) = engine.push_block(block, sink) {
                first_error.get_or_insert(error);
            }
        }
        Ok((engine, first_error))
    }
}
