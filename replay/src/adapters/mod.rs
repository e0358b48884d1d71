//! Adapters: where the metrics go. One folder per backend, each split the same way (after
//! Vector's sinks): `config` (its settings), `encoder` (pure: a [`Snapshot`](crate::model::Snapshot) in, bytes or lines
//! out, tested without a network), `sink` (the network side), `tests`.
//!
//! Every adapter reads the same snapshots from a [`MetricsHandle`]; how counters are turned
//! into the backend's semantics (absolute for Prometheus, deltas for DogStatsD) is stated once,
//! in [`crate::model`].
//!
//! The seam itself (the [`Adapter`] trait, the [`MetricsHandle`] and the [`Phase`]) lives in
//! `adapter.rs`, which the backends import; this file only re-exports it and builds the adapters
//! of a configuration, so no backend imports the file that imports it.

mod adapter;
pub mod datadog;
pub mod prometheus;

pub use adapter::{Adapter, AdapterError, AdapterTask, MetricsHandle, Phase};

/// Builds the adapters of a configuration.
pub fn from_config(adapters: &[crate::config::AdapterConfig]) -> Vec<Box<dyn Adapter>> {
    adapters
        .iter()
        .map(|a| -> Box<dyn Adapter> {
            match a {
                crate::config::AdapterConfig::Prometheus(c) => Box::new(prometheus::PrometheusAdapter::new(c.clone())),
                crate::config::AdapterConfig::Datadog(c) => Box::new(datadog::DatadogAdapter::new(c.clone())),
            }
        })
        .collect()
}
