//! The integration tests, built as one test binary.
//!
//! Each file was its own binary before; every one of them linked the whole
//! dependency tree (about 180 MB each in a debug build), and 57 of them filled
//! a CI disk. Kept apart in `tests/`: `dsp_alloc` (it installs its own global
//! allocator), `cluster` (real nats-server clusters, run one at a time) and
//! `sink_faults` (kills and disk faults, timing sensitive under other load).

#[path = "../common/mod.rs"]
mod common;

mod batch_duplicates;
mod capture_files;
mod cli_output;
mod config_limits;
mod decoder_property;
mod dial_in_loopback;
mod dsp_accuracy;
mod dsp_blocks;
mod dsp_energy;
mod dsp_frequency;
mod dsp_hostile;
mod dsp_interharmonics;
mod dsp_latch_pool;
mod dsp_testdata;
mod dsp_window_start;
mod live_page;
mod live_view;
mod meter_protocol;
mod module_layers;
mod out_dir;
mod packet_build;
mod packet_deliver;
mod packet_http;
mod packet_mqtt;
mod packet_ndjson;
mod parquet_latch;
mod parquet_layout;
mod parquet_parallel_writer;
mod parquet_raw;
mod parquet_shared;
mod parquet_tables;
mod pipeline_batch;
mod pipeline_limits;
mod pipeline_live;
mod pipeline_reference;
mod pq_default;
mod pq_events;
mod pq_flicker;
mod pq_flicker_engine;
mod pq_pipeline;
mod record_log;
mod record_log_frames;
mod recordings;
mod report_html;
mod report_view;
mod sink_peers;
mod sink_server;
mod stream_equivalence;
mod telemetry_adapters;
mod telemetry_durable;
mod telemetry_outputs;
mod testdata_captures;
mod wire_faults;
mod wire_frame;
mod wire_sample_times;
mod wiring_checks;
