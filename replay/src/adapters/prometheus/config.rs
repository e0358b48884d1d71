//! Settings of `type: prometheus`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// `type: prometheus`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// The TCP port of `/metrics` (a string or a number).
    pub port: Port,
    /// The address to bind: an IP address (default `0.0.0.0`), or `address:port`.
    pub listen: Option<Listen>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig { port: Port(8080), listen: None }
    }
}

impl PrometheusConfig {
    /// The socket address to bind.
    pub fn bind_addr(&self) -> SocketAddr {
        match self.listen {
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.port.0),
            Some(Listen::Ip(ip)) => SocketAddr::new(ip, self.port.0),
            Some(Listen::Socket(sa)) => sa,
        }
    }
}

/// A TCP/UDP port 1-65535, written as a string (`"8080"`) or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number 1-65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(p) if p > 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!("bad port `{v}`: expected 1-65535"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("bad port `{v}`: expected 1-65535"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                match v.trim().parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("bad port `{v}`: expected 1-65535"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The `listen` setting: an IP address, or an `address:port` that overrides `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    Ip(IpAddr),
    Socket(SocketAddr),
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::scalars::checked_scalar(d, "an IP address or address:port", |s| {
            let t = s.trim();
            if let Ok(ip) = t.trim_matches(['[', ']']).parse::<IpAddr>() {
                return Ok(Listen::Ip(ip));
            }
            t.parse::<SocketAddr>()
                .map(Listen::Socket)
                .map_err(|_| format!("bad listen address `{s}`: expected an IP address (0.0.0.0, ::1) or address:port"))
        })
    }
}
