//! BetterFleet Generic Sensor packets: building them from per-interval
//! meter readings and delivering them (NDJSON files, stdout, HTTP, MQTT),
//! with an on-disk spool per target so an unreachable target loses nothing.
//!
//! - [`model`]: the packet's serde types, as the contract has them;
//! - [`build`]: readings → packets, as the mapping page decides;
//! - [`deliver`]: the fan-out to targets, each with its own task and spool;
//! - [`ndjson`], [`stdout`], [`http`], [`mqtt`]: the targets;
//! - [`spool`]: the ordered on-disk queue.

pub mod build;
pub mod collector;
pub mod deliver;
pub mod http;
pub mod model;
pub mod mqtt;
pub mod ndjson;
pub mod output;
pub mod spool;
pub mod stdout;
pub mod target;

pub use build::{title_case_key, GatewayIdentity, PacketBuilder, PacketConfig};
pub use collector::PacketCollector;
pub use deliver::{Deliverer, DeliveryConfig, RetryConfig, SpoolConfig, TargetStats};
pub use http::{HttpConfig, HttpTarget};
pub use model::{Measurand, Packet, Sensor};
pub use mqtt::{MqttConfig, MqttTarget};
pub use ndjson::{NdjsonConfig, NdjsonTarget, NdjsonWriter};
pub use output::PacketOutput;
pub use spool::{Spool, SpoolOptions};
pub use stdout::StdoutTarget;
pub use target::{DeliveryError, PacketTarget};
