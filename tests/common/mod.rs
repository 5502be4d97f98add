pub mod parquet_read;
