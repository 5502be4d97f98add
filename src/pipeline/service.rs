//! The `[service]` section: how a long-running pipeline keeps its state
//! and shows itself (state folder, metrics endpoint and its token).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// How the long-running service keeps state and shows itself.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where energy counters, per-meter state and the record log are kept (sink, writer, telemetry with live inputs).
    pub state_dir: PathBuf,
    /// Serve `/metrics`, `/healthz` and the live view (`/`, `/api`) while a long-running pipeline runs (sink, writer, telemetry with live inputs).
    pub metrics: bool,
    pub metrics_listen: SocketAddr,
    /// A file holding a token that `/`, `/api` and `/metrics` then require (`Authorization: Bearer <token>`; the page also as `/?token=<token>`); `/healthz` stays open.
    pub http_token_file: Option<PathBuf>,
    /// Packets of an interval leave this long after it ended (late windows wait), s.
    pub packet_grace_s: f64,
    /// A meter gone this long leaves the registry, `/metrics` and the state, s.
    pub forget_meters_after_s: f64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            state_dir: PathBuf::from("state"),
            metrics: true,
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9102)),
            http_token_file: None,
            packet_grace_s: 1.0,
            forget_meters_after_s: 7.0 * 86_400.0,
        }
    }
}

impl ServiceConfig {
    /// How long a meter may be gone before the sink forgets it.
    pub fn forget_meters_after(&self) -> Duration {
        super::limits::METER_IDLE.duration_s(self.forget_meters_after_s)
    }

    /// The token `service.http_token_file` holds (surrounding whitespace
    /// trimmed), when it is set; an unreadable or empty file is an error
    /// naming the key and the file.
    pub fn http_token(&self) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.http_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("service.http_token_file: reading {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("service.http_token_file: {} is empty", path.display());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            bail!(
                "service.http_token_file: the token in {} has spaces or characters an HTTP header cannot carry",
                path.display()
            );
        }
        Ok(Some(token.to_owned()))
    }

    /// How long packets of an interval wait for late windows.
    pub fn packet_grace(&self) -> Duration {
        super::limits::PACKET_GRACE.duration_s(self.packet_grace_s)
    }
}
