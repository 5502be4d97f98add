//! The `[source]` of the meter stream sink: how meters reach it (the
//! `smartmeter_server` and `smartmeter_client` sources), what each is asked
//! to sample, the limits against bad peers, and the ranges of its timings.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::model::bounds::{Span, DAY, HOUR};
use crate::source::meter_session::SessionSettings;
use crate::source::meter_session::STREAM_SERVER_PORT;
use crate::wire::layout::DEFAULT_RATE;
use crate::wire::Measures;

pub const INFO_TIMEOUT: Span = Span::new(0.1, HOUR);
pub const IDLE_TIMEOUT: Span = Span::new(0.1, DAY);
pub const KEEPALIVE: Span = Span::new(0.1, HOUR);
pub const READ_PAUSE: Span = Span::new(0.0, 1.0);
pub const RECONNECT_BACKOFF: Span = Span::new(0.01, DAY);

/// The port a meter takes commands on (the sink connects out to it).
pub const COMMAND_PORT: u16 = 54321;

/// Meters streaming into the sink: dialing in (`smartmeter_server`) or
/// dialed by it (`smartmeter_client`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MeterLinkConfig {
    /// Where the stream server listens (`smartmeter_server`).
    pub listen: SocketAddr,
    /// Meters' command ports to connect to (`smartmeter_client`), `host[:port]`.
    pub connect: Vec<String>,
    /// Sampling rate asked of every meter, Hz.
    pub rate: u32,
    /// Channels asked of every meter.
    pub measures: Measures,
    /// Per meter name: a different rate or layout.
    pub meters: BTreeMap<String, MeterOverride>,
    /// Streaming connections held at once; more are refused.
    pub max_connections: usize,
    /// Connections that have not yet sent their info line; more are refused.
    pub max_pending: usize,
    /// Longest wait for a new connection's info line, s.
    pub info_timeout_s: f64,
    /// Longest silence from a streaming meter before it is dropped, s.
    pub idle_timeout_s: f64,
    /// How often the keepalive `!` is sent, s.
    pub keepalive_s: f64,
    /// Pause after each read of a meter's socket, s: what arrives meanwhile
    /// is read at once (a meter sends a chunk every 5 ms at 8 kHz), so the
    /// sink wakes, reads and computes per handful of chunks instead of per
    /// chunk, at the cost of up to this much latency. 0: read as data comes.
    pub read_pause_s: f64,
    /// Meter names accepted (exact, or a prefix ending in `*`); empty: any.
    pub allow_names: Vec<String>,
    /// Source networks accepted (`10.0.0.0/8`, `127.0.0.1/32`); empty: any.
    pub allow_networks: Vec<String>,
    /// Threads computing windows (0: one per CPU).
    pub workers: usize,
    /// Batches of chunks queued per worker before sockets stop being read.
    pub queue_depth: usize,
    /// `smartmeter_client`: first wait before reconnecting, s (doubles up to the max).
    pub backoff_min_s: f64,
    pub backoff_max_s: f64,
    /// Ask each meter to stop after this many samples (`meterflow run`'s
    /// virtual meters); not a pipeline key.
    #[serde(skip)]
    #[schemars(skip)]
    pub stop_after_samples: Option<u64>,
}

impl Default for MeterLinkConfig {
    fn default() -> Self {
        MeterLinkConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], STREAM_SERVER_PORT)),
            connect: Vec::new(),
            rate: DEFAULT_RATE,
            measures: Measures::ThreePhase,
            meters: BTreeMap::new(),
            max_connections: 4096,
            max_pending: 256,
            info_timeout_s: 10.0,
            idle_timeout_s: 30.0,
            keepalive_s: 30.0,
            read_pause_s: 0.04,
            allow_names: Vec::new(),
            allow_networks: Vec::new(),
            workers: 0,
            queue_depth: 256,
            backoff_min_s: 1.0,
            backoff_max_s: 60.0,
            stop_after_samples: None,
        }
    }
}

/// What one meter is asked for instead of the defaults.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MeterOverride {
    pub rate: Option<u32>,
    pub measures: Option<Measures>,
}

/// A source network: an address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim()
            .parse()
            .with_context(|| format!("network {text:?}: not an IP address"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .with_context(|| format!("network {text:?}: prefix length must be 0..={bits}"))?,
            None => bits,
        };
        Ok(Network { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (net, ip, bits) = match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                (u128::from(u32::from(net)), u128::from(u32::from(ip)), 32u32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => (u128::from(net), u128::from(ip), 128u32),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        if host_bits >= 128 {
            return true;
        }
        (net >> host_bits) == (ip >> host_bits)
    }
}

impl MeterLinkConfig {
    pub fn validate(&self, client: bool) -> anyhow::Result<()> {
        self.measures
            .validate_rate(self.rate)
            .context("source.rate/measures")?;
        for (name, meter) in &self.meters {
            if !super::registry::valid_meter_name(name) {
                bail!(
                    "source.meters.{name:?}: no meter can stream under this name ({})",
                    super::registry::METER_NAME_RULE
                );
            }
            let measures = meter.measures.unwrap_or(self.measures);
            let rate = meter.rate.unwrap_or(self.rate);
            measures
                .validate_rate(rate)
                .with_context(|| format!("source.meters.{name:?}"))?;
        }
        for network in &self.allow_networks {
            Network::parse(network).context("source.allow_networks")?;
        }
        match (client, self.connect.is_empty()) {
            (true, true) => {
                bail!("source.connect is empty: name the meters to connect to (host[:port])")
            }
            (false, false) => bail!("source.connect belongs to smartmeter_client sources"),
            _ => {}
        }
        for (entry, address) in self.connect.iter().zip(self.connect_addresses()) {
            check_host_port(&address).with_context(|| {
                format!("source.connect: {entry:?} is not host[:port] (a name, an IPv4 or [IPv6] address)")
            })?;
        }
        Ok(())
    }

    pub fn networks(&self) -> anyhow::Result<Vec<Network>> {
        self.allow_networks
            .iter()
            .map(|n| Network::parse(n))
            .collect()
    }

    /// Whether a meter of this name may stream.
    pub fn name_allowed(&self, name: &str) -> bool {
        self.allow_names.is_empty()
            || self
                .allow_names
                .iter()
                .any(|allowed| match allowed.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == allowed,
                })
    }

    /// The session settings for the meter called `name`.
    pub fn session_settings(&self, name: &str) -> SessionSettings {
        let meter = self.meters.get(name);
        SessionSettings {
            rate: meter.and_then(|m| m.rate).unwrap_or(self.rate),
            measures: meter.and_then(|m| m.measures).unwrap_or(self.measures),
            handshake_timeout: self.info_timeout(),
            keepalive: KEEPALIVE.duration_s(self.keepalive_s),
            idle_timeout: Some(IDLE_TIMEOUT.duration_s(self.idle_timeout_s)),
            stop_after_samples: self.stop_after_samples,
            ..SessionSettings::default()
        }
    }

    pub fn info_timeout(&self) -> Duration {
        INFO_TIMEOUT.duration_s(self.info_timeout_s)
    }

    pub fn read_pause(&self) -> Duration {
        READ_PAUSE.duration_s(self.read_pause_s)
    }

    /// `smartmeter_client`'s first and longest wait before reconnecting.
    pub fn backoff(&self) -> (Duration, Duration) {
        (
            RECONNECT_BACKOFF.duration_s(self.backoff_min_s),
            RECONNECT_BACKOFF.duration_s(self.backoff_max_s),
        )
    }

    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// `connect` entries as `host:port` (the command port when none is given).
    pub fn connect_addresses(&self) -> Vec<String> {
        self.connect
            .iter()
            .map(|address| {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    // A bare IPv6 address takes brackets before its port.
                    SocketAddr::new(ip, COMMAND_PORT).to_string()
                } else if address.parse::<SocketAddr>().is_ok()
                    || address.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.contains(':') && port.parse::<u16>().is_ok()
                    })
                {
                    address.clone()
                } else {
                    format!("{address}:{COMMAND_PORT}")
                }
            })
            .collect()
    }
}

/// `host:port` as [`MeterLinkConfig::connect_addresses`] writes it: a
/// socket address, or a DNS name (RFC 1123 labels) and a port other than 0.
fn check_host_port(address: &str) -> anyhow::Result<()> {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        if socket.port() == 0 {
            bail!("port 0 cannot be connected to");
        }
        return Ok(());
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        bail!("no port");
    };
    match port.parse::<u16>() {
        Ok(0) | Err(_) => bail!("port {port:?} is not 1 ..= 65535"),
        Ok(_) => {}
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.len() > 253 || !host.split('.').all(label_ok) {
        bail!("{host:?} is neither an IP address nor a host name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host = Network::parse("127.0.0.1").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("meter.local").is_err());
    }

    #[test]
    fn names_match_exactly_or_by_prefix() {
        let config = MeterLinkConfig {
            allow_names: vec!["smartmeter0*".into(), "lab".into()],
            ..MeterLinkConfig::default()
        };
        assert!(config.name_allowed("smartmeter007"));
        assert!(config.name_allowed("lab"));
        assert!(!config.name_allowed("lab2"));
        assert!(!config.name_allowed("smartmeter1"));
        assert!(MeterLinkConfig::default().name_allowed("anything"));
    }

    #[test]
    fn per_meter_overrides_choose_the_settings() {
        let mut config = MeterLinkConfig::default();
        config.meters.insert(
            "fast".into(),
            MeterOverride {
                rate: Some(32_000),
                measures: Some(Measures::SinglePhase),
            },
        );
        let fast = config.session_settings("fast");
        assert_eq!((fast.rate, fast.measures), (32_000, Measures::SinglePhase));
        let other = config.session_settings("other");
        assert_eq!(
            (other.rate, other.measures),
            (DEFAULT_RATE, Measures::ThreePhase)
        );
    }

    #[test]
    fn command_port_is_added_when_missing() {
        let config = MeterLinkConfig {
            connect: vec![
                "10.0.0.5".into(),
                "meter.local:6000".into(),
                "[::1]:7000".into(),
                "fe80::1".into(),
            ],
            ..MeterLinkConfig::default()
        };
        assert_eq!(
            config.connect_addresses(),
            [
                "10.0.0.5:54321",
                "meter.local:6000",
                "[::1]:7000",
                "[fe80::1]:54321"
            ]
        );
        assert!(config.validate(true).is_ok());
    }

    #[test]
    fn connect_entries_that_cannot_be_dialled_are_refused() {
        for bad in [
            "::garbage::",
            "",
            "meter.local:0",
            "meter.local:70000",
            "a b",
            "-meter",
            "[::1]:0",
            "meter..local",
        ] {
            let config = MeterLinkConfig {
                connect: vec!["10.0.0.5".into(), bad.into()],
                ..MeterLinkConfig::default()
            };
            let error = format!("{:#}", config.validate(true).unwrap_err());
            assert!(
                error.starts_with(&format!("source.connect: {bad:?} is not host[:port]")),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn per_meter_tables_must_name_a_possible_meter() {
        for bad in ["", "a/b", ".hidden", "x y"] {
            let mut config = MeterLinkConfig::default();
            config.meters.insert(bad.into(), MeterOverride::default());
            let error = config.validate(false).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("source.meters.{bad:?}: ")),
                "{error}"
            );
        }
    }
}
