//! Where data comes from: meter connections, capture files, and other telemetry.

pub mod capture;
pub mod component;
pub mod decoder;
pub mod event;
pub mod files;
pub mod input_claims;
pub mod jetstream;
pub mod meter_server;
pub mod meter_session;
pub mod read_ahead;
pub mod recording;
pub mod recording_chain;
pub mod recording_layout;
pub mod start_time;
pub mod telemetry;
pub mod wav;
