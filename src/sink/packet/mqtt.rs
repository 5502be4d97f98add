//! MQTT target: publishes each packet with QoS 1 to a topic made from a
//! template (`betterfleet/{device_id}`), and counts it delivered only once
//! the broker's PUBACK for it has arrived.
//!
//! The rumqttc event loop is driven here, one packet at a time, so the
//! deliverer keeps the order and the retry policy. On any connection error
//! the client is dropped and rebuilt on the next try: rumqttc's own
//! re-sending would otherwise race with the deliverer's.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::target::{DeliveryError, PacketTarget};

fn default_port() -> u16 {
    1883
}
fn default_topic() -> String {
    "betterfleet/{device_id}".to_owned()
}
fn default_keep_alive_secs() -> u64 {
    30
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_packet_bytes() -> usize {
    4 * 1024 * 1024
}

/// Which broker and topic packets are published to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address (plain TCP).
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Topic template; `{device_id}` is replaced by the gateway's UUID.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// MQTT client id; default `meterflow-<device_id>`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// Longest wait for connect + PUBACK of one packet.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest packet sent (a packet of 100 sensors is about 100 kB).
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: usize,
}

impl MqttConfig {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            topic: default_topic(),
            client_id: None,
            username: None,
            password: None,
            keep_alive_secs: default_keep_alive_secs(),
            timeout_ms: default_timeout_ms(),
            max_packet_bytes: default_max_packet_bytes(),
        }
    }
}

/// The topic for a gateway: `{device_id}` replaced; anything else in braces,
/// or an MQTT wildcard, is a config error.
pub fn render_topic(template: &str, device_id: &Uuid) -> Result<String> {
    let topic = template.replace("{device_id}", &device_id.to_string());
    if topic.contains('{') || topic.contains('}') {
        bail!("MQTT topic template {template:?}: only {{device_id}} can be filled in");
    }
    if topic.is_empty() || topic.contains('+') || topic.contains('#') {
        bail!("MQTT topic {topic:?} must be non-empty and without wildcards (+, #)");
    }
    Ok(topic)
}

/// Publishes packets to one broker with QoS 1.
pub struct MqttTarget {
    options: MqttOptions,
    max_packet_bytes: usize,
    topic: String,
    timeout: Duration,
    connection: Option<(AsyncClient, EventLoop)>,
}

impl MqttTarget {
    pub fn new(config: &MqttConfig, device_id: Uuid) -> Result<Self> {
        let topic = render_topic(&config.topic, &device_id)?;
        if config.host.trim().is_empty() {
            bail!("MQTT target: host is empty");
        }
        let client_id = config
            .client_id
            .clone()
            .unwrap_or_else(|| format!("meterflow-{device_id}"));
        let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
        options
            .set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)))
            .set_clean_session(true)
            .set_max_packet_size(config.max_packet_bytes, config.max_packet_bytes);
        match (&config.username, &config.password) {
            (Some(user), password) => {
                options.set_credentials(user.clone(), password.clone().unwrap_or_default());
            }
            (None, Some(_)) => bail!("MQTT target: password given without username"),
            (None, None) => {}
        }
        Ok(Self {
            options,
            max_packet_bytes: config.max_packet_bytes,
            topic,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            connection: None,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn connection(&mut self) -> &mut (AsyncClient, EventLoop) {
        let options = &self.options;
        let timeout_secs = self.timeout.as_secs().max(1);
        self.connection.get_or_insert_with(|| {
            let (client, mut eventloop) = AsyncClient::new(options.clone(), 8);
            let mut network = rumqttc::NetworkOptions::new();
            network.set_connection_timeout(timeout_secs);
            eventloop.set_network_options(network);
            (client, eventloop)
        })
    }

    async fn publish_and_wait_for_ack(&mut self, packet: &Bytes) -> Result<()> {
        let topic = self.topic.clone();
        let (client, eventloop) = self.connection();
        client
            .publish_bytes(topic, QoS::AtLeastOnce, false, packet.clone())
            .await
            .context("queueing an MQTT publish")?;
        let mut our_pkid = None;
        loop {
            let event = eventloop.poll().await.context("MQTT connection")?;
            match event {
                Event::Outgoing(Outgoing::Publish(pkid)) if our_pkid.is_none() => {
                    our_pkid = Some(pkid);
                }
                Event::Incoming(Incoming::PubAck(ack)) if Some(ack.pkid) == our_pkid => {
                    return Ok(());
                }
                Event::Incoming(Incoming::ConnAck(ack))
                    if ack.code != rumqttc::ConnectReturnCode::Success =>
                {
                    return Err(anyhow!(
                        "MQTT broker refused the connection: {:?}",
                        ack.code
                    ));
                }
                _ => {}
            }
        }
    }
}

impl PacketTarget for MqttTarget {
    fn name(&self) -> &str {
        "mqtt"
    }

    async fn deliver(&mut self, packet: &Bytes) -> Result<(), DeliveryError> {
        // Fixed header (≤ 5) + topic length (2) + topic + packet id (2).
        let size = packet.len() + self.topic.len() + 9;
        if size > self.max_packet_bytes {
            // Sending it again can never work: set it aside.
            return Err(DeliveryError::Rejected(anyhow!(
                "MQTT packet of {size} bytes exceeds max_packet_bytes = {}",
                self.max_packet_bytes
            )));
        }
        let addr = format!(
            "{}:{}",
            self.options.broker_address().0,
            self.options.broker_address().1
        );
        let result =
            tokio::time::timeout(self.timeout, self.publish_and_wait_for_ack(packet)).await;
        let error = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => anyhow!("no PUBACK within {:?}", self.timeout),
        };
        // Start clean next time, so nothing is re-sent behind our back.
        self.connection = None;
        Err(DeliveryError::Unavailable(error.context(format!(
            "MQTT publish to {addr} topic {}",
            self.topic
        ))))
    }

    /// Lets the event loop send keep-alive pings while idle.
    async fn maintain(&mut self) -> Result<()> {
        let Some((_, eventloop)) = self.connection.as_mut() else {
            return Ok(());
        };
        loop {
            match tokio::time::timeout(Duration::from_millis(10), eventloop.poll()).await {
                Err(_) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "MQTT connection dropped while idle");
                    self.connection = None;
                    return Ok(());
                }
            }
        }
    }

    /// Says goodbye to the broker (best effort: packets are all acked).
    async fn close(&mut self) -> Result<()> {
        if let Some((client, mut eventloop)) = self.connection.take() {
            if client.disconnect().await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    while let Ok(event) = eventloop.poll().await {
                        if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_template() -> Result<()> {
        let id = Uuid::nil();
        assert_eq!(
            render_topic("betterfleet/{device_id}", &id)?,
            "betterfleet/00000000-0000-0000-0000-000000000000"
        );
        assert!(render_topic("a/{sensor}", &id).is_err());
        assert!(render_topic("a/#", &id).is_err());
        Ok(())
    }
}
