//! meterflow: turns raw SmartMeter power-meter streams into trustworthy energy data.
//!
//! Data flows one way: `wire` (the SmartMeter protocol) → `source` → `dsp` → `sink`,
//! wired by `pipeline`. `meter` is the firmware-faithful virtual meter used for
//! tests, demos and load tests.

pub mod cli;
pub mod dsp;
pub mod meter;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod sink;
pub mod source;
pub mod wire;
