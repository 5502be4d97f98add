pub mod chromium;
pub mod mosquitto;
pub mod ndjson;
pub mod parquet_read;
