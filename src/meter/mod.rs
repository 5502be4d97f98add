//! The virtual meter: waveform synthesis and the firmware's behaviour on the wire.

pub mod capture;
pub mod command_port;
pub mod dial_in;
pub mod disturbance;
pub mod firmware;
pub mod fleet;
pub mod modulation;
pub mod offline_capture;
pub mod out_queue;
pub mod pacing;
pub mod raw_port;
mod replay;
pub mod signal;
pub mod synthetic;
pub mod wiring;
