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
pub mod model;
pub mod processor;
pub mod run;
pub mod source;

pub use config::Config;
pub use processor::{Processor, ProcessorOptions, Totals};
pub use run::{Input, Outcome, ReplayError, RunOptions};
pub use source::Speed;

#[cfg(test)]
pub(crate) mod testutil {
    //! Event builders for unit tests.
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use gespann_common::{Event, EventKind, Protocol, Role};

    pub fn ev(ts_s: f64, kind: EventKind, conn_id: u64) -> Event {
        Event {
            ts_ns: 1_700_000_000_000_000_000 + (ts_s * 1e9) as i64,
            kind,
            conn_id,
            protocol: Protocol::Tcp,
            role: Role::Client,
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            local_port: 40000u16.wrapping_add(conn_id as u16),
            remote_port: 443,
            pid: 42,
            comm: Arc::from("curl"),
            cgroup_id: 1,
            ..Event::default()
        }
    }

    pub fn bytes(mut e: Event, sent: u64, received: u64) -> Event {
        e.bytes_sent = sent;
        e.bytes_received = received;
        e
    }
}
