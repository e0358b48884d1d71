//! The Prometheus adapter: serves the absolute values on `/metrics` (and `/healthz`), for
//! Prometheus to scrape. Values are taken from the processor at scrape time, so a scrape always
//! sees the latest state; encoding goes through the `prometheus` crate's registry and text
//! encoder.

mod config;
pub mod encoder;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{Listen, Port, PrometheusConfig};
pub use sink::PrometheusAdapter;
