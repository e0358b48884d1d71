//! Settings of `type: datadog`.

use std::time::Duration;

use serde::Deserialize;

use crate::scalars::{nonzero_duration, packet_size, tags};

/// `type: datadog`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatadogConfig {
    /// The DogStatsD agent, `host:port`.
    pub host: String,
    /// How often counters (as deltas) and gauges are sent.
    #[serde(deserialize_with = "nonzero_duration")]
    pub flush_interval: Duration,
    /// Tags added to every metric (`key:value`).
    #[serde(deserialize_with = "tags")]
    pub tags: Vec<String>,
    /// Largest datagram sent (bytes); lines are packed up to it.
    #[serde(deserialize_with = "packet_size")]
    pub max_packet_size: usize,
}

impl Default for DatadogConfig {
    fn default() -> Self {
        DatadogConfig {
            host: "127.0.0.1:8125".into(),
            flush_interval: Duration::from_secs(10),
            tags: vec![],
            max_packet_size: 1432,
        }
    }
}
