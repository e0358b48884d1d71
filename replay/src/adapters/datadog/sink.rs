//! The network side: cadence's queuing sink around its buffered UDP sink, flushed on a timer,
//! when a replay ends, and on shutdown (after the queue has drained).

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
use tokio::sync::watch;

use super::config::DatadogConfig;
use super::encoder::DeltaEncoder;
use crate::adapters::adapter::{Adapter, AdapterError, AdapterTask, MetricsHandle, Phase, SinkCause};

/// Lines queued by the adapter and datagrams the UDP sink sent, for tests and the benchmark.
#[derive(Debug, Default)]
pub struct DatadogStats {
    pub flushes: AtomicU64,
    pub lines: AtomicU64,
    /// Lines refused by the queue (full) — each one a lost update.
    pub lines_dropped: AtomicU64,
    pub datagrams_sent: AtomicU64,
    pub datagrams_dropped: AtomicU64,
    pub bytes_sent: AtomicU64,
}

/// Lines waiting in the queue before the adapter reports drops (a flush is a few hundred).
const QUEUE_CAPACITY: usize = 1 << 16;

/// `type: datadog`.
pub struct DatadogAdapter {
    config: DatadogConfig,
    stats: Arc<DatadogStats>,
}

impl DatadogAdapter {
    pub fn new(config: DatadogConfig) -> Self {
        DatadogAdapter { config, stats: Arc::default() }
    }

    /// Counters that stay readable after the adapter has been started.
    pub fn stats(&self) -> Arc<DatadogStats> {
        self.stats.clone()
    }
}

/// Resolves `host:port`, preferring IPv4 (as `localhost` usually means 127.0.0.1 to an agent).
fn resolve(host: &str) -> Result<SocketAddr, AdapterError> {
    let addrs: Vec<SocketAddr> =
        host.to_socket_addrs().map_err(|source| AdapterError::Resolve { host: host.to_string(), source })?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| AdapterError::NoAddress { host: host.to_string() })
}

struct Flusher {
    sink: QueuingMetricSink,
    encoder: DeltaEncoder,
    metrics: MetricsHandle,
    stats: Arc<DatadogStats>,
    addr: SocketAddr,
}

impl Flusher {
    /// Encodes the current values and queues the lines; with `wait`, also waits (up to 2s) for
    /// the queue to drain and pushes out the last partly filled datagram.
    async fn flush(&mut self, wait: bool) {
        let lines = self.encoder.encode(&self.metrics.snapshot());
        let mut dropped = 0u64;
        for l in &lines {
            if self.sink.emit(l).is_err() {
                dropped += 1;
            }
        }
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats.lines.fetch_add(lines.len() as u64 - dropped, Ordering::Relaxed);
        if dropped > 0 {
            self.stats.lines_dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(dropped, addr = %self.addr, "DogStatsD queue full: lines dropped");
        }
        if wait {
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.sink.queued() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // Sends the partly filled datagram (everything drained so far).
        if let Err(e) = self.sink.flush() {
            tracing::warn!(error = %e, addr = %self.addr, "DogStatsD flush failed");
        }
        let s = self.sink.stats();
        self.stats.datagrams_sent.store(s.packets_sent, Ordering::Relaxed);
        self.stats.datagrams_dropped.store(s.packets_dropped, Ordering::Relaxed);
        self.stats.bytes_sent.store(s.bytes_sent, Ordering::Relaxed);
    }
}

impl Adapter for DatadogAdapter {
    fn name(&self) -> &'static str {
        "datadog"
    }

    fn start(
        self: Box<Self>,
        metrics: MetricsHandle,
        mut phase: watch::Receiver<Phase>,
    ) -> Result<AdapterTask, AdapterError> {
        let addr = resolve(&self.config.host)?;
        let bind: SocketAddr =
            if addr.is_ipv4() { "0.0.0.0:0".parse().expect("literal") } else { "[::]:0".parse().expect("literal") };
        let udp_err = |source| AdapterError::Udp { addr, source };
        let socket = UdpSocket::bind(bind).map_err(udp_err)?;
        let buffered = BufferedUdpMetricSink::with_capacity(addr, socket, self.config.max_packet_size)
            .map_err(|e| AdapterError::Sink { addr, source: SinkCause(e) })?;
        let errors = AtomicU64::new(0);
        let sink = QueuingMetricSink::builder()
            .with_capacity(QUEUE_CAPACITY)
            .with_error_handler(move |e| {
                // Every failed send is counted by the sink's stats; log the first, then
                // every power of ten, so an absent agent cannot flood the log.
                let n = errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 10u64.pow(n.ilog10()) {
                    tracing::warn!(%addr, error = %e, failures = n, "DogStatsD send failed");
                }
            })
            .build(buffered);
        tracing::info!(%addr, every = ?self.config.flush_interval, "sending DogStatsD");
        let mut f = Flusher {
            sink,
            encoder: DeltaEncoder::new(self.config.tags.clone()),
            metrics,
            stats: self.stats.clone(),
            addr,
        };
        let every = self.config.flush_interval;
        Ok(Box::pin(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    changed = phase.changed() => {
                        let p = if changed.is_err() { Phase::Stopping } else { *phase.borrow() };
                        match p {
                            Phase::Running => {}
                            Phase::Finished => f.flush(true).await,
                            Phase::Stopping => {
                                f.flush(true).await;
                                let s = &f.stats;
                                tracing::info!(
                                    addr = %f.addr,
                                    flushes = s.flushes.load(Ordering::Relaxed),
                                    lines = s.lines.load(Ordering::Relaxed),
                                    lines_dropped = s.lines_dropped.load(Ordering::Relaxed),
                                    datagrams_sent = s.datagrams_sent.load(Ordering::Relaxed),
                                    datagrams_dropped = s.datagrams_dropped.load(Ordering::Relaxed),
                                    "DogStatsD flushed"
                                );
                                return Ok(());
                            }
                        }
                    }
                    _ = tick.tick() => f.flush(false).await,
                }
            }
        }))
    }
}
