//! Replay and live export: `gespann replay` turns connection events into Prometheus and
//! DogStatsD metrics, from a recording (paced as recorded, faster, or as fast as possible) or
//! live from the kernel (`--live`, the sidecar).
//!
//! Shaped as one pipeline with a single event type, so that a recording and the live recorder
//! go through exactly the same code: a [`source`] yields [`gespann_common::Event`] rows in time
//! order, the [`processor`] keeps the connection state (open, idle, running averages,
//! histograms, bounded top-N tables) and renders [`model::Snapshot`]s of absolute values, and
//! each backend under [`adapters`] (one folder each: config, encoder, sink, tests) publishes
//! them with its own counter semantics, stated once in [`model`]. Encoders are pure functions
//! of a snapshot, so the exposition formats are tested without a network; label sets are
//! bounded by construction, so cardinality cannot explode whatever the traffic.

pub mod adapters;
pub mod cli;
pub mod config;
pub mod hosts;
pub mod model;
pub mod processor;
pub mod run;
mod scalars;
pub mod source;

pub use config::Config;
pub use processor::{Processor, ProcessorOptions, Totals};
pub use run::{Input, Outcome, ReplayError, RunOptions};
pub use source::Speed;

#[cfg(test)]
mod testutil;
