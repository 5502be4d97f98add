//! HTTP target: POSTs each packet as a JSON body to a configured URL, with
//! configured headers (for auth), a timeout, and a few quick retries with
//! exponential backoff for blips. A longer outage is the deliverer's job:
//! the packet is spooled and retried later.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::target::{DeliveryError, PacketTarget};

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    3
}
fn default_backoff_initial_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    5_000
}

/// Where and how packets are POSTed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http://` or `https://` URL the packets are POSTed to.
    pub url: String,
    /// Extra request headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whole-request timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Tries per packet before the target counts as down (at least 1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the second try; doubles for each further try.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait between two tries.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

impl HttpConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: BTreeMap::new(),
            timeout_ms: default_timeout_ms(),
            max_attempts: default_max_attempts(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }
}

/// The wait before try number `attempt + 1` (`attempt` counts from 1).
pub fn backoff_delay(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

/// POSTs packets with reqwest (rustls, no OpenSSL).
pub struct HttpTarget {
    client: reqwest::Client,
    url: Url,
    config: HttpConfig,
}

impl HttpTarget {
    /// Checks the URL and headers now, so a bad config fails at start.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let url = Url::parse(&config.url)
            .with_context(|| format!("HTTP target: bad url {:?}", config.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!(
                "HTTP target: url {:?} is not http:// or https://",
                config.url
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("HTTP target: bad header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .with_context(|| format!("HTTP target: bad value for header {name}"))?;
            headers.insert(name, value);
        }
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("HTTP target: building the HTTP client")?;
        Ok(Self {
            client,
            url,
            config,
        })
    }

    /// One POST. `Err(Rejected)` for a 4xx other than 408/429 (retrying the
    /// same body cannot succeed); `Err(Unavailable)` for everything else.
    async fn post_once(&self, packet: &Bytes) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(self.url.clone())
            .body(packet.clone())
            .send()
            .await
            .map_err(|e| {
                DeliveryError::Unavailable(anyhow!(e).context(format!("POST {}", self.url)))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let snippet: String = body.chars().take(200).collect();
        let error = anyhow!("POST {} answered {status}: {snippet}", self.url);
        let retryable = status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || !status.is_client_error();
        if retryable {
            Err(DeliveryError::Unavailable(error))
        } else {
            Err(DeliveryError::Rejected(error))
        }
    }
}

impl PacketTarget for HttpTarget {
    fn name(&self) -> &str {
        "http"
    }

    async fn deliver(&mut self, packet: &Bytes) -> Result<(), DeliveryError> {
        let attempts = self.config.max_attempts.max(1);
        let initial = Duration::from_millis(self.config.backoff_initial_ms);
        let max = Duration::from_millis(self.config.backoff_max_ms);
        let mut attempt = 1;
        loop {
            match self.post_once(packet).await {
                Err(DeliveryError::Unavailable(e)) if attempt < attempts => {
                    tracing::debug!(attempt, error = %format!("{e:#}"), "HTTP target: retrying");
                    tokio::time::sleep(backoff_delay(initial, max, attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let d: Vec<_> = (1..=6)
            .map(|a| backoff_delay(ms(100), ms(1000), a))
            .collect();
        assert_eq!(d, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(backoff_delay(ms(100), ms(1000), 200), ms(1000));
    }

    #[test]
    fn bad_config_fails_at_start() {
        assert!(HttpTarget::new(HttpConfig::new("ftp://127.0.0.1/")).is_err());
        assert!(HttpTarget::new(HttpConfig::new("not a url")).is_err());
        let mut c = HttpConfig::new("http://127.0.0.1:1/");
        c.headers.insert("bad header".into(), "x".into());
        assert!(HttpTarget::new(c).is_err());
    }
}
