//! The range of every duration, size and count a pipeline file sets, and
//! the check that holds a whole [`PipelineConfig`] to them. Errors name the
//! key as it is written in the file (`sink.parquet.row_group_rows`).

use anyhow::bail;

use super::config::{PipelineConfig, SourceConfig};
use crate::dsp::{EngineConfig, MAX_HARMONIC_ORDER};
use crate::model::bounds::{Count, Level, Span, DAY, GIB, HOUR, KIB, MIB, TIB, YEAR};
use crate::sink::packet::DeliveryConfig;
use crate::sink::parquet::ParquetConfig;
use crate::source::meter_server::config::{
    IDLE_TIMEOUT, INFO_TIMEOUT, KEEPALIVE, READ_PAUSE, RECONNECT_BACKOFF,
};

pub const PACKET_INTERVAL: Span = Span::new(0.1, DAY);
pub const PACKET_GRACE: Span = Span::new(0.0, HOUR);
/// How long a meter may be gone before the sink forgets it.
pub const METER_IDLE: Span = Span::new(1.0, 10.0 * YEAR);
/// How long virtual meters stream, or telemetry's live inputs run.
pub const RUN_SECONDS: Span = Span::new(0.001, YEAR);
pub const FLUSH_INTERVAL: Span = Span::new(0.01, DAY);
/// Parquet files are cut at date partitions anyway.
pub const FILE_SPAN: Span = Span::new(1.0, DAY);
pub const FILE_AGE: Span = Span::new(1.0, YEAR);
pub const REQUEST_TIMEOUT: Span = Span::new(0.001, HOUR);
pub const RETRY_BACKOFF: Span = Span::new(0.001, DAY);
/// 0: every spooled packet is synced at once.
pub const FSYNC_INTERVAL: Span = Span::new(0.0, HOUR);
/// MQTT carries keep-alive as 16-bit seconds.
pub const MQTT_KEEP_ALIVE: Span = Span::new(5.0, 65_535.0);

pub const CONNECTIONS: Count = Count::new(1, 1_000_000, "connections");
pub const WORKERS: Count = Count::new(0, 1024, "threads");
pub const QUEUE_DEPTH: Count = Count::new(1, 65_536, "batches");
pub const ROWS: Count = Count::new(1, 1 << 24, "rows");
pub const RAW_ROWS: Count = Count::new(1, 1 << 26, "rows");
pub const WRITER_QUEUE: Count = Count::new(1, 1 << 20, "messages");
pub const FILE_BYTES: Count = Count::new(KIB, TIB, "bytes");
pub const SEGMENT_BYTES: Count = Count::new(KIB, 16 * GIB, "bytes");
/// 0 would drop every packet of a target that is down even for a moment.
pub const SPOOL_BYTES: Count = Count::new(KIB, 1024 * TIB, "bytes");
pub const MQTT_PACKET_BYTES: Count = Count::new(KIB, 128 * MIB, "bytes");
pub const MEMORY_QUEUE: Count = Count::new(0, 1_000_000, "packets");
pub const SENSORS_PER_PACKET: Count = Count::new(0, 100_000, "sensors");
pub const ATTEMPTS: Count = Count::new(1, 1000, "attempts");
pub const PORT: Count = Count::new(1, 65_535, "");
pub const RATE_HZ: Count = Count::new(
    crate::wire::samples::RATE_HZ.0 as u64,
    crate::wire::samples::RATE_HZ.1 as u64,
    "Hz",
);
pub const NOMINAL_FREQUENCY: Level = Level::new(
    crate::dsp::NOMINAL_FREQUENCY_HZ.0,
    crate::dsp::NOMINAL_FREQUENCY_HZ.1,
    "Hz",
);
pub const DECLARED_VOLTAGE: Level = Level::new(
    crate::dsp::DECLARED_VOLTAGE_V.0,
    crate::dsp::DECLARED_VOLTAGE_V.1,
    "V",
);
pub const SAMPLE_VOLTAGE: Level =
    Level::new(crate::dsp::SAMPLE_LIMIT.0, crate::dsp::SAMPLE_LIMIT.1, "V");
pub const SAMPLE_CURRENT: Level =
    Level::new(crate::dsp::SAMPLE_LIMIT.0, crate::dsp::SAMPLE_LIMIT.1, "A");
/// Command-line only: `bench batch --minutes`.
pub const BENCH_MINUTES: Level = Level::new(0.001, 24.0 * 60.0, "min");
/// Command-line only: virtual meters of `simulate` and the benches.
pub const METERS: Count = Count::new(1, 100_000, "meters");
/// Command-line only: the first meter number of `simulate`; names are
/// the prefix and the number, so numbers stay well inside `usize`.
pub const METER_NUMBER: Count = Count::new(0, 999_999_999, "");
/// Command-line only: ingest or writer nodes of `cluster` and `bench cluster`.
pub const NODES: Count = Count::new(1, 64, "nodes");
/// Command-line only: how long the benches wait for every meter to dial in.
pub const CONNECT_TIMEOUT: Span = Span::new(0.1, DAY);
/// Command-line only: `simulate --reconnect-secs`, a virtual meter's wait before it dials again.
pub const METER_RECONNECT: Span = Span::new(0.01, DAY);
/// Command-line only: `simulate --send-interval-ms`, a virtual meter's wake
/// and write period (the firmware's ring buffer holds about 20 s at 32 kHz).
pub const METER_SEND_INTERVAL: Span = Span::new(0.001, 1.0);
/// Command-line only: `simulate --buffer-size` (the firmware's is 3.6 MB).
pub const METER_BUFFER_BYTES: Count = Count::new(KIB, GIB, "bytes");
/// Command-line only: partitions of `bench cluster` (`cluster.partitions`).
pub const PARTITIONS: Count = Count::new(1, 1024, "partitions");
pub const CYCLES: Count = Count::new(1, 1000, "cycles");
pub const HARMONIC_ORDER: Count = Count::new(2, MAX_HARMONIC_ORDER as u64, "");

/// Checks every duration, size and count of `config`.
pub fn check(config: &PipelineConfig) -> anyhow::Result<()> {
    PACKET_INTERVAL.check_s(
        "aggregation.packet_interval_s",
        config.aggregation.packet_interval_s,
    )?;
    PACKET_GRACE.check_s("service.packet_grace_s", config.service.packet_grace_s)?;
    METER_IDLE.check_s(
        "service.forget_meters_after_s",
        config.service.forget_meters_after_s,
    )?;
    dsp(&config.dsp)?;
    source(&config.source)?;
    if let Some(parquet) = &config.sink.parquet {
        self::parquet(parquet)?;
    }
    if let Some(packets) = &config.sink.packets {
        if let Some(n) = packets.build.max_sensors_per_packet {
            SENSORS_PER_PACKET.check_usize("sink.packets.build.max_sensors_per_packet", n)?;
        }
        targets(&packets.targets)?;
    }
    Ok(())
}

/// The `[dsp]` numbers; the CLI's engine flags go through the same ranges.
pub fn dsp(dsp: &EngineConfig) -> anyhow::Result<()> {
    if let Some(hz) = dsp.nominal_frequency_hz {
        NOMINAL_FREQUENCY.check("dsp.nominal_frequency_hz", hz)?;
    }
    if let Some(cycles) = dsp.cycles_per_window {
        CYCLES.check("dsp.cycles_per_window", cycles.into())?;
    }
    HARMONIC_ORDER.check("dsp.max_harmonic_order", dsp.max_harmonic_order.into())?;
    if let Some(volts) = dsp.declared_voltage_v {
        DECLARED_VOLTAGE.check("dsp.declared_voltage_v", volts)?;
    }
    if let Some(volts) = dsp.pq.as_ref().and_then(|pq| pq.udin_v) {
        DECLARED_VOLTAGE.check("dsp.pq.udin_v", volts)?;
    }
    SAMPLE_VOLTAGE.check("dsp.max_sample_voltage_v", dsp.max_sample_voltage_v)?;
    SAMPLE_CURRENT.check("dsp.max_sample_current_a", dsp.max_sample_current_a)?;
    Ok(())
}

fn source(source: &SourceConfig) -> anyhow::Result<()> {
    match source {
        SourceConfig::Files(files) => {
            if let Some(rate) = files.raw.rate {
                RATE_HZ.check("source.raw.rate", rate.into())?;
            }
        }
        SourceConfig::VirtualMeters(meters) => {
            RUN_SECONDS.check_s("source.seconds", meters.seconds)?;
        }
        SourceConfig::SmartmeterServer(link) | SourceConfig::SmartmeterClient(link) => {
            CONNECTIONS.check_usize("source.max_connections", link.max_connections)?;
            CONNECTIONS.check_usize("source.max_pending", link.max_pending)?;
            WORKERS.check_usize("source.workers", link.workers)?;
            QUEUE_DEPTH.check_usize("source.queue_depth", link.queue_depth)?;
            INFO_TIMEOUT.check_s("source.info_timeout_s", link.info_timeout_s)?;
            IDLE_TIMEOUT.check_s("source.idle_timeout_s", link.idle_timeout_s)?;
            KEEPALIVE.check_s("source.keepalive_s", link.keepalive_s)?;
            READ_PAUSE.check_s("source.read_pause_s", link.read_pause_s)?;
            let min = RECONNECT_BACKOFF.check_s("source.backoff_min_s", link.backoff_min_s)?;
            let max = RECONNECT_BACKOFF.check_s("source.backoff_max_s", link.backoff_max_s)?;
            if max < min {
                bail!(
                    "source.backoff_max_s: {} s is below source.backoff_min_s ({} s)",
                    link.backoff_max_s,
                    link.backoff_min_s
                );
            }
        }
        SourceConfig::Telemetry(telemetry) => {
            FLUSH_INTERVAL.check_s("source.flush_interval_s", telemetry.flush_interval_s)?;
            if let Some(seconds) = telemetry.seconds {
                RUN_SECONDS.check_s("source.seconds", seconds)?;
            }
            for (k, input) in telemetry.rtl433.iter().enumerate() {
                if let Some(mqtt) = &input.mqtt {
                    PORT.check(&format!("source.rtl433[{k}].mqtt.port"), mqtt.port.into())?;
                }
            }
        }
    }
    Ok(())
}

fn parquet(parquet: &ParquetConfig) -> anyhow::Result<()> {
    FILE_SPAN.check_whole_s("sink.parquet.max_file_span_s", parquet.max_file_span_s)?;
    FILE_BYTES.check("sink.parquet.max_file_bytes", parquet.max_file_bytes)?;
    ROWS.check_usize("sink.parquet.row_group_rows", parquet.row_group_rows)?;
    RAW_ROWS.check_usize(
        "sink.parquet.raw_row_group_rows",
        parquet.raw_row_group_rows,
    )?;
    ROWS.check_usize("sink.parquet.batch_rows", parquet.batch_rows)?;
    WRITER_QUEUE.check_usize("sink.parquet.queue_capacity", parquet.queue_capacity)?;
    for (key, level) in [
        ("zstd_level", parquet.zstd_level),
        ("raw_zstd_level", parquet.raw_zstd_level),
    ] {
        if !(1..=22).contains(&level) {
            bail!("sink.parquet.{key}: {level} is out of range (1 ..= 22)");
        }
    }
    Ok(())
}

fn targets(targets: &DeliveryConfig) -> anyhow::Result<()> {
    const T: &str = "sink.packets.targets";
    if let Some(ndjson) = &targets.ndjson {
        FILE_BYTES.check(&format!("{T}.ndjson.max_file_bytes"), ndjson.max_file_bytes)?;
        FILE_AGE.check_whole_s(
            &format!("{T}.ndjson.max_file_age_secs"),
            ndjson.max_file_age_secs,
        )?;
    }
    if let Some(http) = &targets.http {
        REQUEST_TIMEOUT.check_ms(&format!("{T}.http.timeout_ms"), http.timeout_ms)?;
        ATTEMPTS.check(&format!("{T}.http.max_attempts"), http.max_attempts.into())?;
        let initial = RETRY_BACKOFF.check_ms(
            &format!("{T}.http.backoff_initial_ms"),
            http.backoff_initial_ms,
        )?;
        let max =
            RETRY_BACKOFF.check_ms(&format!("{T}.http.backoff_max_ms"), http.backoff_max_ms)?;
        if max < initial {
            bail!(
                "{T}.http.backoff_max_ms: {} ms is below backoff_initial_ms",
                http.backoff_max_ms
            );
        }
    }
    if let Some(mqtt) = &targets.mqtt {
        PORT.check(&format!("{T}.mqtt.port"), mqtt.port.into())?;
        MQTT_KEEP_ALIVE
            .check_whole_s(&format!("{T}.mqtt.keep_alive_secs"), mqtt.keep_alive_secs)?;
        REQUEST_TIMEOUT.check_ms(&format!("{T}.mqtt.timeout_ms"), mqtt.timeout_ms)?;
        MQTT_PACKET_BYTES
            .check_usize(&format!("{T}.mqtt.max_packet_bytes"), mqtt.max_packet_bytes)?;
    }
    let spool = &targets.spool;
    SEGMENT_BYTES.check(
        &format!("{T}.spool.segment_max_bytes"),
        spool.segment_max_bytes,
    )?;
    SPOOL_BYTES.check(&format!("{T}.spool.max_bytes"), spool.max_bytes)?;
    FSYNC_INTERVAL.check_ms(
        &format!("{T}.spool.fsync_interval_ms"),
        spool.fsync_interval_ms,
    )?;
    MEMORY_QUEUE.check_usize(&format!("{T}.spool.memory_queue"), spool.memory_queue)?;
    let retry = &targets.retry;
    let initial = RETRY_BACKOFF.check_ms(
        &format!("{T}.retry.initial_backoff_ms"),
        retry.initial_backoff_ms,
    )?;
    let max = RETRY_BACKOFF.check_ms(&format!("{T}.retry.max_backoff_ms"), retry.max_backoff_ms)?;
    if max < initial {
        bail!(
            "{T}.retry.max_backoff_ms: {} ms is below initial_backoff_ms",
            retry.max_backoff_ms
        );
    }
    Ok(())
}
