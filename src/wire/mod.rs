//! The SmartMeter wire protocol: framing, JSON messages, commands, channel layouts.

pub mod layout;

pub use layout::{chunk_size, Channel, Measures, Phase, Quantity, Transport};
