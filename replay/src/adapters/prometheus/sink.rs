//! The HTTP side: a small hyper server that answers `GET /metrics` and `GET /healthz` and
//! nothing else (404 for other paths, 405 for other methods).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::config::PrometheusConfig;
use super::encoder::{self, CONTENT_TYPE, SnapshotCollector};
use crate::adapters::adapter::{Adapter, AdapterError, AdapterTask, MetricsHandle, Phase};

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `type: prometheus`.
pub struct PrometheusAdapter {
    config: PrometheusConfig,
}

impl PrometheusAdapter {
    pub fn new(config: PrometheusConfig) -> Self {
        PrometheusAdapter { config }
    }
}

impl Adapter for PrometheusAdapter {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn start(
        self: Box<Self>,
        metrics: MetricsHandle,
        mut phase: watch::Receiver<Phase>,
    ) -> Result<AdapterTask, AdapterError> {
        let addr = self.config.bind_addr();
        let listener = bind(addr)?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!(address = %local, "serving /metrics");
        let registry = Registry::new();
        registry
            .register(Box::new(SnapshotCollector::new(move || metrics.snapshot())))
            .expect("the catalog registers once");
        let registry = Arc::new(registry);
        Ok(Box::pin(async move {
            loop {
                tokio::select! {
                    changed = phase.changed() => {
                        if changed.is_err() || *phase.borrow() == Phase::Stopping {
                            return Ok(());
                        }
                    }
                    accepted = listener.accept() => {
                        let (stream, peer) = match accepted {
                            Ok(a) => a,
                            Err(e) if is_transient(&e) => {
                                tracing::warn!(error = %e, "accept failed; continuing");
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                continue;
                            }
                            Err(source) => return Err(AdapterError::Accept { addr: local, source }),
                        };
                        let registry = registry.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                let registry = registry.clone();
                                async move { Ok::<_, Infallible>(respond(&req, &registry)) }
                            });
                            // A client gets 10 s to send its request headers (no slowloris).
                            if let Err(e) = http1::Builder::new()
                                .timer(TokioTimer::new())
                                .header_read_timeout(HEADER_TIMEOUT)
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                            {
                                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                            }
                        });
                    }
                }
            }
        }))
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, AdapterError> {
    let err = |source| AdapterError::Bind { addr, source };
    let std = std::net::TcpListener::bind(addr).map_err(err)?;
    std.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(std).map_err(err)
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE: wait for a descriptor
}

/// Routes one request: only `/metrics` and `/healthz` exist.
fn respond(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        if let Ok(v) = header::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    };
    let path = req.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found: only /metrics and /healthz are served\n"),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", Bytes::from_static(b"method not allowed\n"));
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/healthz" {
        return reply(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n"));
    }
    let body = encoder::encode_registry(registry);
    reply(StatusCode::OK, CONTENT_TYPE, Bytes::from(body))
}
