//! The SmartMeter wire protocol: framing, JSON messages, commands, channel layouts.

pub mod command;
pub mod frame;
pub mod layout;
pub mod message;
pub mod samples;

pub use frame::{Anomaly, Frame, MeterCodec, RawCodec, WireStats};
pub use layout::{chunk_size, Channel, Measures, Phase, Quantity, Transport};
pub use samples::SampleBlock;
