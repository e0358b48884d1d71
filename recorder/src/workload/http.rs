//! One HTTP/1.1 `GET` over a unix socket, with hyper's client (it handles `Content-Length`
//! and chunked bodies; podman answers chunked) on the caller's tokio runtime.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// The largest body read: a listing of thousands of containers is a few MiB.
const MAX_BODY: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to `{socket}`")]
    Connect {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP exchange with `{socket}` failed")]
    Http {
        socket: String,
        #[source]
        source: hyper::Error,
    },
    #[error("the body from `{socket}` could not be read (or is over {MAX_BODY} bytes)")]
    Body {
        socket: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("`{socket}` did not answer within {timeout:?}")]
    Timeout { socket: String, timeout: Duration },
}

/// `GET path` on `socket`: the status and the whole body, within `timeout`.
pub async fn get(socket: &Path, path: &str, timeout: Duration) -> Result<(u16, Bytes), HttpError> {
    let name = || socket.display().to_string();
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|source| HttpError::Connect { socket: name(), source })?;
        let http = |source| HttpError::Http { socket: name(), source };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .expect("a GET with a static header is a valid request");
        let resp = sender.send_request(req).await.map_err(http)?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|source| HttpError::Body { socket: name(), source })?
            .to_bytes();
        drop(sender);
        conn.abort();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(HttpError::Timeout { socket: name(), timeout }))
}
