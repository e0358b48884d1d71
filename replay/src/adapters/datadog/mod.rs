//! The DataDog adapter: every metric as `gespann.<name>` over DogStatsD (UDP), labels as tags.
//! Counters are sent as deltas since the previous flush and gauges as values (see
//! [`crate::model`]); the lines go through cadence's queuing sink (a thread sends, the replay
//! never blocks on the network) wrapping its buffered UDP sink (lines packed into datagrams of
//! at most `max_packet_size` bytes).

mod config;
pub mod encoder;
mod sink;
#[cfg(test)]
mod tests;

pub use config::DatadogConfig;
pub use sink::{DatadogAdapter, DatadogStats};
