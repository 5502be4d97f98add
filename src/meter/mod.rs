//! The virtual meter: waveform synthesis and the firmware's behaviour on the wire.

pub mod signal;
