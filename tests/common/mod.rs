pub mod chromium;
pub mod http;
pub mod mosquitto;
pub mod nats;
pub mod ndjson;
pub mod parquet_read;
pub mod pipeline_doc;
pub mod rows;
