//! The seam between the run and the backends: what an adapter is given (a [`MetricsHandle`] to
//! take snapshots from, the [`Phase`] of the run) and what it must do ([`Adapter`]).
//!
//! Kept apart from `adapters/mod.rs`, which builds the backends from a configuration, so that
//! each backend imports this file and nothing that imports it back.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::hosts::Hosts;
use crate::model::Snapshot;
use crate::processor::Processor;

/// The processors (one per host), shared between the event loop (which feeds them) and the
/// adapters (which take snapshots of them).
#[derive(Clone)]
pub struct MetricsHandle(Arc<Mutex<Hosts>>);

impl MetricsHandle {
    /// One processor, for a replay of one host or the live recorder.
    pub fn new(p: Processor) -> Self {
        Self::of_hosts(Hosts::single(p))
    }

    pub fn of_hosts(hosts: Hosts) -> Self {
        MetricsHandle(Arc::new(Mutex::new(hosts)))
    }

    /// Locks the processors (a panicking holder cannot leave them half-updated in a way that
    /// matters for metrics, so a poisoned lock is used as is).
    pub fn lock(&self) -> MutexGuard<'_, Hosts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Snapshot {
        self.lock().snapshot()
    }
}

/// Where the run is, as adapters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Events are flowing.
    Running,
    /// The recording has been replayed to its end; the final values stay published.
    Finished,
    /// Ctrl-C, SIGTERM or `--exit-on-end`: publish the last values and stop.
    Stopping,
}

/// The running part of an adapter: ends after `Phase::Stopping`, its last values flushed.
pub type AdapterTask = Pin<Box<dyn Future<Output = Result<(), AdapterError>> + Send>>;

/// A metrics backend.
pub trait Adapter: Send {
    /// `prometheus`, `datadog`.
    fn name(&self) -> &'static str;

    /// Binds or connects now, so that a bad address fails before any event is read, and returns
    /// the task that publishes `metrics` until `phase` becomes [`Phase::Stopping`].
    fn start(
        self: Box<Self>,
        metrics: MetricsHandle,
        phase: watch::Receiver<Phase>,
    ) -> Result<AdapterTask, AdapterError>;
}

/// An adapter failed; each variant names the address.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("prometheus adapter: cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("prometheus adapter: accepting on {addr} failed")]
    Accept { addr: SocketAddr, source: std::io::Error },
    #[error("datadog adapter: cannot resolve `{host}` (expected host:port, e.g. localhost:8125)")]
    Resolve { host: String, source: std::io::Error },
    #[error("datadog adapter: `{host}` resolves to no address")]
    NoAddress { host: String },
    #[error("datadog adapter: cannot open a UDP socket towards {addr}")]
    Udp { addr: SocketAddr, source: std::io::Error },
    #[error("datadog adapter: cannot set up sending towards {addr}")]
    Sink { addr: SocketAddr, source: SinkCause },
}

/// cadence's error as a source. It is the end of the chain: for an I/O failure cadence prints
/// the I/O error and also returns it as its `source()`, which would say it twice.
#[derive(Debug)]
pub struct SinkCause(pub cadence::MetricError);

impl std::fmt::Display for SinkCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SinkCause {}
