pub mod mosquitto;
pub mod parquet_read;
