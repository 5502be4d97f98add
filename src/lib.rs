//! meterflow: turns raw SmartMeter power-meter streams into trustworthy energy data.
//!
//! Data flows one way: `wire` (the SmartMeter protocol) → `source` → `dsp` → `sink`,
//! wired by `pipeline`. `meter` is the firmware-faithful virtual meter used for
//! tests, demos and load tests; `bench` holds the benchmark harnesses. The
//! command line is the binary's own (`src/cli/`).

pub mod bench;
pub mod dsp;
pub mod meter;
pub mod model;
pub mod nats;
pub mod pipeline;
pub mod report;
pub mod sink;
pub mod source;
pub mod wire;
