pub mod chromium;
pub mod http;
pub mod mosquitto;
pub mod nats;
pub mod ndjson;
pub mod parquet_read;
pub mod rows;
pub mod three_phase;
