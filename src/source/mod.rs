//! Where samples come from: meter connections (and later files and other telemetry).

pub mod assembler;
pub mod capture;
pub mod event;
pub mod meter_session;
pub mod stream_server;
pub mod wav;
