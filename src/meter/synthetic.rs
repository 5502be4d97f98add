//! Sample blocks from the virtual meter's generator, in SI units as the
//! decoder delivers them: for tests, benches and demos of the engine.

use super::signal::{SignalConfig, SignalError, SignalGenerator};
use crate::wire::layout::Measures;
use crate::wire::SampleBlock;

/// `samples` samples of `config`, cut into blocks of `block_len` (the last may be shorter).
pub fn generate_blocks(
    config: &SignalConfig,
    measures: Measures,
    rate: u32,
    start_unix_ns: i64,
    samples: usize,
    block_len: usize,
) -> Result<Vec<SampleBlock>, SignalError> {
    let whole = generate_block(config, measures, rate, start_unix_ns, samples)?;
    Ok(split_block(
        &whole,
        &mut std::iter::repeat(block_len.max(1)),
    ))
}

/// One block of `samples` samples of `config`, currents converted mA → A.
pub fn generate_block(
    config: &SignalConfig,
    measures: Measures,
    rate: u32,
    start_unix_ns: i64,
    samples: usize,
) -> Result<SampleBlock, SignalError> {
    let mut generator = SignalGenerator::new(config.clone(), measures, rate)?;
    let layout = measures.channels();
    let mut interleaved = vec![0.0f32; samples * layout.len()];
    generator.fill(&mut interleaved);
    let mut block = SampleBlock::new(measures, rate, start_unix_ns);
    for (c, (channel, info)) in block.channels.iter_mut().zip(layout).enumerate() {
        let divisor = info.si_divisor();
        channel.extend(
            interleaved
                .iter()
                .skip(c)
                .step_by(layout.len())
                .map(|v| v / divisor),
        );
    }
    Ok(block)
}

/// Cuts `block` into consecutive blocks whose lengths come from `sizes`.
pub fn split_block(
    block: &SampleBlock,
    sizes: &mut dyn Iterator<Item = usize>,
) -> Vec<SampleBlock> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < block.len() {
        let len = sizes
            .next()
            .unwrap_or(block.len())
            .max(1)
            .min(block.len() - at);
        let mut part = SampleBlock::new(block.measures, block.rate, block.start_unix_ns);
        part.first_index = block.first_index + at as u64;
        part.gap_before = if at == 0 { block.gap_before } else { 0 };
        for (dst, src) in part.channels.iter_mut().zip(&block.channels) {
            dst.extend_from_slice(&src[at..at + len]);
        }
        out.push(part);
        at += len;
    }
    out
}
