//! The adapters' input loops: rtl_433 lines (file, stdin) and MQTT, MPPT
//! and AirLink files replayed. Each hands accepted readings on as
//! submissions and counts what it refused; the HTTP endpoints are in
//! `mppt::server` and `airlink::thingsboard::server`.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::airlink::{self, cbor, thingsboard};
use super::config::{AirlinkFile, Rtl433Mqtt};
use super::lines::AnyLineReader;
use super::time::TimeContext;
use super::{mppt, rtl433, BatchSender, IngestCounts, Submission};
use crate::model::{Reading, TelemetryBatch};

/// rtl_433 JSON lines until the end of the input or `cancel`.
pub async fn rtl433_lines(
    mut reader: AnyLineReader,
    input: &str,
    ctx: &TimeContext,
    counts: &IngestCounts,
    tx: &BatchSender,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let next = tokio::select! {
            next = reader.next_line() => next?,
            _ = cancel.cancelled() => return Ok(()),
        };
        let Some((line_no, line)) = next else {
            return Ok(());
        };
        let at = format!("{input}:{line_no}");
        let parsed = line.and_then(|l| rtl433::parse_line(l, ctx));
        submit(parsed, counts, tx, rtl433::SOURCE, &at).await?;
    }
}

/// Sends accepted readings on, or counts the rejection; `Err` only when
/// the pipeline has stopped taking batches.
pub async fn submit(
    parsed: Result<Vec<Reading>, String>,
    counts: &IngestCounts,
    tx: &BatchSender,
    source: &str,
    at: &str,
) -> anyhow::Result<()> {
    match parsed {
        Ok(readings) => {
            let n = readings.len();
            tx.send(Submission::new(TelemetryBatch::Readings(readings)))
                .await
                .map_err(|_| anyhow::anyhow!("the pipeline has stopped"))?;
            counts.accept(n);
        }
        Err(reason) => counts.reject(source, at, &reason),
    }
    Ok(())
}

/// Subscribes to rtl_433's MQTT events until `cancel`; reconnects (and
/// subscribes again) after a broker outage.
pub async fn rtl433_mqtt(
    config: &Rtl433Mqtt,
    ctx: &TimeContext,
    counts: &IngestCounts,
    tx: &BatchSender,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
    let client_id = config
        .client_id
        .clone()
        .unwrap_or_else(|| format!("meterflow-rtl433-{}", std::process::id()));
    let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true);
    if let Some(user) = &config.username {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let topic = format!("mqtt {}", config.topic);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                client
                    .subscribe(config.topic.clone(), QoS::AtLeastOnce)
                    .await
                    .with_context(|| format!("subscribing to {}", config.topic))?;
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                let at = format!("{topic} ({})", publish.topic);
                let line =
                    std::str::from_utf8(&publish.payload).map_err(|e| format!("not UTF-8: {e}"));
                let parsed = line.and_then(|l| rtl433::parse_line(l, ctx));
                if submit(parsed, counts, tx, rtl433::SOURCE, &at)
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(
                    "rtl_433 MQTT {}:{}: {error}; retrying",
                    config.host,
                    config.port
                );
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// One file holding one MPPT request body.
pub async fn replay_mppt(
    path: &std::path::Path,
    sender: &str,
    counts: &IngestCounts,
    tx: &BatchSender,
) -> anyhow::Result<()> {
    let at = path.display().to_string();
    let body = match tokio::fs::read(path).await {
        Ok(body) => body,
        Err(e) => {
            counts.reject(mppt::SOURCE, &at, &e);
            return Ok(());
        }
    };
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    match mppt::parse_body(&body, sender, now) {
        Ok(records) => {
            let n = records.iter().map(|r| mppt::readings(r).len()).sum();
            tx.send(Submission::new(TelemetryBatch::Mppt(records)))
                .await
                .map_err(|_| anyhow::anyhow!("the pipeline has stopped"))?;
            counts.accept(n);
        }
        Err(reason) => counts.reject(mppt::SOURCE, &at, &reason),
    }
    Ok(())
}

/// One AirLink file: Thingsboard JSON lines, or one raw CBOR item.
pub async fn replay_airlink(
    file: &AirlinkFile,
    counts: &IngestCounts,
    tx: &BatchSender,
) -> anyhow::Result<()> {
    let at = file.path.display().to_string();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    if let Some(resource) = &file.resource {
        let decoded = match tokio::fs::read(&file.path).await {
            Err(e) => Err(e.to_string()),
            Ok(bytes) => {
                let device = file.device.as_deref().unwrap_or_default();
                if resource.trim_start_matches('/') == "advt" {
                    cbor::decode_advertisement(&bytes, device, now)
                } else {
                    cbor::decode_resource(resource, &bytes, device, now)
                }
            }
        };
        return submit(decoded, counts, tx, airlink::SOURCE, &at).await;
    }
    let mut reader = match AnyLineReader::open(&file.path).await {
        Ok(reader) => reader,
        Err(error) => {
            counts.reject(airlink::SOURCE, &at, &format!("{error:#}"));
            return Ok(());
        }
    };
    loop {
        let (line_no, line) = match reader.next_line().await {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(()),
            Err(error) => {
                counts.reject(airlink::SOURCE, &at, &format!("{error:#}"));
                return Ok(());
            }
        };
        let parsed =
            line.and_then(|l| thingsboard::parse(l.as_bytes(), file.device.as_deref(), now));
        submit(
            parsed,
            counts,
            tx,
            airlink::SOURCE,
            &format!("{at}:{line_no}"),
        )
        .await?;
    }
}
