//! A small HTTP/1.1 server and its clients, enough for realistic request/response connections:
//! GET only, `Content-Length` bodies, keep-alive unless the request says `Connection: close`.
//! Paths choose the answer: `/missing` is a 404, `/error` a 500, `/abort` an RST (SO_LINGER 0,
//! the server "crashing" mid-request), `/bulk` a [`super::BULK_BYTES`] body, `/item/N` a 200
//! whose body length depends on N.
//!
//! The server reads each request whole before it answers or closes, and clients read each
//! response whole, so no close ever finds unread data (which would turn a FIN into an RST): a
//! connection ends in a reset only where it is meant to.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Scope;
use std::time::Duration;

use socket2::SockRef;

use super::Error;
use super::report::{Conn, Tally, TcpKind};

/// A server connection waiting longer than this for its client is a bug in the generator.
const SERVER_IDLE: Duration = Duration::from_secs(20);

/// The body length of `/item/N`.
pub fn item_len(n: u64) -> usize {
    64 + (n * 97 % 2000) as usize
}

/// One listener and what it did.
pub struct Server {
    pub listener: TcpListener,
    pub bulk_bytes: u64,
    pub accepted: AtomicU64,
}

impl Server {
    /// Accepts until `halt` is set and the listener shut down ([`Server::halt`]), one scoped
    /// thread per connection. A connection's unexpected error goes to `errors`.
    pub fn serve<'s>(&'s self, scope: &'s Scope<'s, '_>, halt: &'s AtomicBool, errors: &'s super::Errors) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    scope.spawn(move || {
                        if let Err(e) = self.connection(s) {
                            errors.push(e);
                        }
                    });
                }
                Err(_) if halt.load(Ordering::SeqCst) => return,
                Err(e) => return errors.push(Error::io("accept an HTTP connection", e)),
            }
        }
    }

    /// Wakes [`Server::serve`]'s accept with EINVAL (shutdown on a listening socket), so that it
    /// returns without a connection of our own on the port.
    pub fn halt(&self) {
        let _ = SockRef::from(&self.listener).shutdown(std::net::Shutdown::Read);
    }

    fn connection(&self, mut s: TcpStream) -> Result<(), Error> {
        s.set_read_timeout(Some(SERVER_IDLE)).map_err(|e| Error::io("set a read timeout", e))?;
        loop {
            let req = match read_head(&mut s, &mut 0) {
                Ok(Some(head)) => parse_request(&head)?,
                Ok(None) => return Ok(()), // the client closed: close too (FIN)
                // The client aborted (SO_LINGER 0): what ClientAbort is for.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(Error::io("read an HTTP request", e)),
            };
            if req.path == "/abort" {
                SockRef::from(&s).set_linger(Some(Duration::ZERO)).map_err(|e| Error::io("set SO_LINGER 0", e))?;
                return Ok(()); // dropped: RST
            }
            let (status, len) = match req.path.as_str() {
                "/missing" => (404, 10),
                "/error" => (500, 22),
                "/bulk" => (200, self.bulk_bytes as usize),
                p => match p.strip_prefix("/item/").and_then(|n| n.parse().ok()) {
                    Some(n) => (200, item_len(n)),
                    None => (404, 10),
                },
            };
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                _ => "Internal Server Error",
            };
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\nServer: gespann-traffic\r\nContent-Type: text/plain\r\n\
                 Content-Length: {len}\r\n{}\r\n",
                if req.close { "Connection: close\r\n" } else { "" }
            );
            s.write_all(head.as_bytes()).map_err(|e| Error::io("write an HTTP response", e))?;
            write_body(&mut s, len).map_err(|e| Error::io("write an HTTP body", e))?;
            if req.close {
                return Ok(()); // dropped: FIN after the response
            }
        }
    }
}

struct Request {
    path: String,
    close: bool,
}

fn parse_request(head: &[u8]) -> Result<Request, Error> {
    let text = String::from_utf8_lossy(head);
    let mut words = text.split_whitespace();
    let (Some("GET"), Some(path)) = (words.next(), words.next()) else {
        return Err(Error::Unexpected(format!("not a GET request: {text:?}")));
    };
    let close = text.lines().any(|l| l.eq_ignore_ascii_case("connection: close"));
    Ok(Request { path: path.to_owned(), close })
}

fn write_body(s: &mut TcpStream, mut len: usize) -> io::Result<()> {
    static CHUNK: [u8; 256 * 1024] = [b'g'; 256 * 1024];
    while len > 0 {
        let n = len.min(CHUNK.len());
        s.write_all(&CHUNK[..n])?;
        len -= n;
    }
    Ok(())
}

/// Reads up to the end of a message head (`\r\n\r\n`), adding what it read to `count`. `None`
/// when the peer closed before sending anything. Reads a byte at a time once a chunk might hold
/// the end, so that nothing past the head is consumed (requests are not pipelined).
fn read_head(s: &mut TcpStream, count: &mut u64) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte)? {
            0 if head.is_empty() => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ => {
                *count += 1;
                head.push(byte[0]);
                if head.ends_with(b"\r\n\r\n") {
                    return Ok(Some(head));
                }
            }
        }
    }
}

/// A client connection counting every byte it moves.
pub struct Client {
    s: TcpStream,
    conn: Conn,
}

impl Client {
    pub fn connect(kind: TcpKind, server: SocketAddr) -> Result<Client, Error> {
        let s = TcpStream::connect(server).map_err(|e| Error::io(format!("connect to {server}"), e))?;
        Ok(Client { s, conn: Conn { kind, server, requests: 0, sent: 0, received: 0 } })
    }

    /// Sends `GET path` and reads the response whole: its status.
    pub fn get(&mut self, path: &str, close: bool) -> Result<u16, Error> {
        self.send(path, close)?;
        let head = read_head(&mut self.s, &mut self.conn.received)
            .map_err(|e| Error::io(format!("read the response to {path}"), e))?
            .ok_or_else(|| Error::Unexpected(format!("{} closed before answering {path}", self.conn.server)))?;
        let text = String::from_utf8_lossy(&head);
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
        let len = text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<u64>().ok())?
        });
        let (Some(status), Some(len)) = (status, len) else {
            return Err(Error::Unexpected(format!("not an HTTP response: {text:?}")));
        };
        let got = io::copy(&mut (&mut self.s).take(len), &mut io::sink())
            .map_err(|e| Error::io(format!("read the body of {path}"), e))?;
        self.conn.received += got;
        if got != len {
            return Err(Error::Unexpected(format!("{path}: body of {got} bytes, {len} announced")));
        }
        Ok(status)
    }

    /// Sends `GET path` and expects the server to reset the connection before answering.
    pub fn get_reset(&mut self, path: &str) -> Result<(), Error> {
        self.send(path, false)?;
        let mut buf = [0u8; 512];
        match self.s.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
            Ok(n) => Err(Error::Unexpected(format!("{path}: {n} bytes where a reset was due"))),
            Err(e) => Err(Error::io(format!("read after {path}"), e)),
        }
    }

    fn send(&mut self, path: &str, close: bool) -> Result<(), Error> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gespann-traffic\r\nAccept: */*\r\n{}\r\n",
            self.conn.server,
            if close { "Connection: close\r\n" } else { "" }
        );
        self.s.write_all(req.as_bytes()).map_err(|e| Error::io(format!("send GET {path}"), e))?;
        self.conn.sent += req.len() as u64;
        self.conn.requests += 1;
        Ok(())
    }

    /// Reads to the server's FIN (after a `Connection: close` response), then closes.
    pub fn finish_after_server_close(mut self, tally: &Tally) -> Result<(), Error> {
        let mut rest = Vec::new();
        self.s.read_to_end(&mut rest).map_err(|e| Error::io("read to the server's close", e))?;
        if !rest.is_empty() {
            return Err(Error::Unexpected(format!("{} bytes after a complete response", rest.len())));
        }
        tally.add(self.conn);
        Ok(())
    }

    /// Closes: a FIN, or with `abort` an RST (SO_LINGER 0).
    pub fn close(self, abort: bool, tally: &Tally) -> Result<(), Error> {
        if abort {
            SockRef::from(&self.s).set_linger(Some(Duration::ZERO)).map_err(|e| Error::io("set SO_LINGER 0", e))?;
        }
        drop(self.s);
        tally.add(self.conn);
        Ok(())
    }

    /// A connection the server ended with an RST.
    pub fn reset_by_server(self, tally: &Tally) {
        tally.add(self.conn);
    }
}
