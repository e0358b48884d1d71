//! The loopback traffic generator behind `cargo xtask traffic`: a realistic mix of connections
//! for trying Gespann out, and the same code a root test records and checks row by row.
//!
//! Everything stays on 127.0.0.1 and ::1, against servers started here on ephemeral ports (no
//! program needs to be installed): one burst a second of HTTP/1.1 requests (keep-alive and one
//! per connection, some 404 and 500 answers; a third of them over IPv6), a server abort and a
//! client abort (RSTs, SO_LINGER 0), connects refused by a port held bound without a listener,
//! DNS-style UDP queries to a server that leaves some unanswered (IPv4 unconnected, IPv6
//! connected sockets), and once, mid-way, one bulk HTTP download of [`BULK_BYTES`].
//!
//! [`Traffic::bind`] opens every port first, so a caller can start a recording filtered to them
//! before [`Traffic::run`] makes any traffic. The [`Report`] holds what the sockets did (see
//! [`report`]), exact enough to be compared with a recording. The generator is a library in
//! the test kit rather than xtask code so that the root test runs the very code it checks, in
//! its own process (so its rows are found by pid as well as port), with no binary to build.

mod dns;
mod http;
pub mod report;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Socket, Type};

pub use report::{End, Outcome, Report, ServerRow, TcpKind, TcpRow, UdpFlow};

/// The body of the one bulk download: 32 MiB.
pub const BULK_BYTES: u64 = 32 << 20;
/// One burst of traffic starts every this long.
pub const BURST_EVERY: Duration = Duration::from_secs(1);

/// How much traffic, for how long.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bursts start every [`BURST_EVERY`] while less than this has passed; then the generator
    /// waits for the rest of it and ends.
    pub duration: Duration,
    /// HTTP requests per burst (a third of them over IPv6). DNS queries per burst are half of
    /// it over IPv4 and a quarter over IPv6 (at least one each).
    pub rate: u32,
    /// The bulk download's body size.
    pub bulk_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config { duration: Duration::from_secs(30), rate: 20, bulk_bytes: BULK_BYTES }
    }
}

/// Why the generator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A socket did something the generator did not make it do (a refused port that accepted,
    /// a response that is not HTTP, ...): its counts would no longer be facts.
    #[error("{0}")]
    Unexpected(String),
}

impl Error {
    fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}

/// Errors of server threads, reported after the run.
#[derive(Default)]
struct Errors(Mutex<Vec<Error>>);

impl Errors {
    fn push(&self, e: Error) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
}

/// The ports the generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ports {
    pub http4: u16,
    pub http6: u16,
    pub bulk: u16,
    pub dns4: u16,
    pub dns6: u16,
    pub refused4: u16,
    pub refused6: u16,
}

impl Ports {
    pub fn all(&self) -> [u16; 7] {
        [self.http4, self.http6, self.bulk, self.dns4, self.dns6, self.refused4, self.refused6]
    }
}

/// Every server socket, bound (and listening) on an ephemeral loopback port.
pub struct Traffic {
    http4: http::Server,
    http6: http::Server,
    bulk: http::Server,
    dns4: dns::Server,
    dns6: dns::Server,
    /// Bound, never listening: a connect to them is refused, and no one else can take the port.
    refused4: Socket,
    refused6: Socket,
}

const V4: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const V6: SocketAddr = SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::LOCALHOST), 0);

impl Traffic {
    /// Binds every server on 127.0.0.1 or ::1.
    pub fn bind() -> Result<Traffic, Error> {
        let listen = |at: SocketAddr, bulk_bytes| -> Result<http::Server, Error> {
            let listener = TcpListener::bind(at).map_err(|e| Error::io(format!("listen on {at}"), e))?;
            Ok(http::Server { listener, bulk_bytes, accepted: AtomicU64::new(0) })
        };
        let udp = |at: SocketAddr| -> Result<dns::Server, Error> {
            let s = UdpSocket::bind(at).map_err(|e| Error::io(format!("bind UDP {at}"), e))?;
            Ok(dns::Server::new(s))
        };
        let hold = |at: SocketAddr| -> Result<Socket, Error> {
            let what = || format!("bind (without listening) {at}");
            let s = Socket::new(Domain::for_address(at), Type::STREAM, None).map_err(|e| Error::io(what(), e))?;
            s.bind(&at.into()).map_err(|e| Error::io(what(), e))?;
            Ok(s)
        };
        Ok(Traffic {
            http4: listen(V4, 0)?,
            http6: listen(V6, 0)?,
            bulk: listen(V4, BULK_BYTES)?,
            dns4: udp(V4)?,
            dns6: udp(V6)?,
            refused4: hold(V4)?,
            refused6: hold(V6)?,
        })
    }

    pub fn ports(&self) -> Ports {
        let tcp = |s: &http::Server| s.listener.local_addr().map_or(0, |a| a.port());
        let udp = |s: &dns::Server| s.socket.local_addr().map_or(0, |a| a.port());
        let held = |s: &Socket| s.local_addr().ok().and_then(|a| a.as_socket()).map_or(0, |a| a.port());
        Ports {
            http4: tcp(&self.http4),
            http6: tcp(&self.http6),
            bulk: tcp(&self.bulk),
            dns4: udp(&self.dns4),
            dns6: udp(&self.dns6),
            refused4: held(&self.refused4),
            refused6: held(&self.refused6),
        }
    }

    /// Makes the traffic, then closes every server socket (ending the servers' UDP flows) and
    /// reports. Setting `stop` ends it early (after the operations under way), with the report
    /// of what was done.
    pub fn run(mut self, cfg: &Config, stop: &AtomicBool) -> Result<Report, Error> {
        if cfg.rate == 0 {
            return Err(Error::Unexpected("a rate of 0 requests per burst makes no traffic".into()));
        }
        self.bulk.bulk_bytes = cfg.bulk_bytes;
        let ports = self.ports();
        let tally = report::Tally::default();
        let errors = Errors::default();
        let halt = AtomicBool::new(false);
        let bursts = cfg.duration.as_nanos().div_ceil(BURST_EVERY.as_nanos()).max(1) as u32;
        let plan = Plan { ports, rate: u64::from(cfg.rate), stop, tally: &tally };
        let start = Instant::now();
        let mut done = 0;
        let outcome = std::thread::scope(|s| {
            let (this, halt, errors) = (&self, &halt, &errors);
            for server in [&this.http4, &this.http6, &this.bulk] {
                s.spawn(move || server.serve(s, halt, errors));
            }
            for server in [&this.dns4, &this.dns6] {
                s.spawn(move || server.serve(halt, errors));
            }
            let plan = &plan;
            let mut result = Ok(());
            let mut bulk = None;
            for k in 0..bursts {
                if !sleep_until(start + BURST_EVERY * k, stop) {
                    break;
                }
                if k == bursts / 2 {
                    bulk = Some(s.spawn(move || plan.bulk()));
                }
                done += 1;
                if let Err(e) = plan.burst(k) {
                    result = Err(e);
                    break;
                }
            }
            if let Some(Err(e)) = bulk.map(|b| b.join().expect("the bulk transfer does not panic")) {
                result = result.and(Err(e));
            }
            if result.is_ok() {
                sleep_until(start + cfg.duration, stop);
            }
            halt.store(true, Ordering::SeqCst);
            for server in [&this.http4, &this.http6, &this.bulk] {
                server.halt();
            }
            result
        });
        let elapsed = start.elapsed();
        outcome?;
        if let Some(e) = errors.0.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
            return Err(e);
        }
        let servers = self.servers();
        let (tcp, http_responses, mut udp) = tally.into_parts();
        for f in &mut udp {
            let server = if f.family == 4 { &self.dns4 } else { &self.dns6 };
            let (received, sent) = server.peer(SocketAddr::new(f.client_addr, f.client_port));
            f.server_datagrams_received = received.datagrams;
            f.server_bytes_received = received.bytes;
            f.server_datagrams_sent = sent.datagrams;
            f.server_bytes_sent = sent.bytes;
        }
        drop(self);
        Ok(Report {
            elapsed_s: elapsed.as_secs_f64(),
            bursts: done,
            rate: cfg.rate,
            interrupted: stop.load(Ordering::SeqCst),
            servers,
            tcp,
            http_responses,
            udp,
        })
    }

    fn servers(&self) -> Vec<ServerRow> {
        let p = self.ports();
        let tcp = |name, s: &http::Server, port| ServerRow {
            name,
            protocol: "tcp",
            family: report::family(s.listener.local_addr().map(|a| a.ip()).unwrap_or(V4.ip())),
            addr: s.listener.local_addr().map(|a| a.ip()).unwrap_or(V4.ip()),
            port,
            accepted: s.accepted.load(Ordering::Relaxed),
        };
        let udp = |name, s: &dns::Server, family: u8, port| ServerRow {
            name,
            protocol: "udp",
            family,
            addr: if family == 4 { V4.ip() } else { V6.ip() },
            port,
            accepted: s.peers.lock().unwrap_or_else(|p| p.into_inner()).values().map(|(r, _)| r.datagrams).sum(),
        };
        let held = |family: u8, port| ServerRow {
            name: "refused",
            protocol: "tcp",
            family,
            addr: if family == 4 { V4.ip() } else { V6.ip() },
            port,
            accepted: 0,
        };
        vec![
            tcp("http", &self.http4, p.http4),
            tcp("http", &self.http6, p.http6),
            tcp("bulk", &self.bulk, p.bulk),
            udp("dns", &self.dns4, 4, p.dns4),
            udp("dns", &self.dns6, 6, p.dns6),
            held(4, p.refused4),
            held(6, p.refused6),
        ]
    }
}

/// Sleeps until `t` in short steps; false when `stop` was set.
fn sleep_until(t: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= t {
            return true;
        }
        std::thread::sleep((t - now).min(Duration::from_millis(50)));
    }
}

/// What one burst does, and the clients doing it.
struct Plan<'a> {
    ports: Ports,
    rate: u64,
    stop: &'a AtomicBool,
    tally: &'a report::Tally,
}

impl Plan<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Burst `k`: its parts at once, each in a thread; the first error wins.
    fn burst(&self, k: u32) -> Result<(), Error> {
        let v6 = self.rate / 3;
        let q4 = (self.rate / 2).max(1);
        let q6 = (self.rate / 4).max(1);
        let id = (k as u16).wrapping_mul(1000);
        let (http4, http6) = (loop4(self.ports.http4), loop6(self.ports.http6));
        let (dns4, dns6) = (loop4(self.ports.dns4), loop6(self.ports.dns6));
        std::thread::scope(|s| {
            let parts = [
                s.spawn(move || self.http(http4, self.rate - v6, u64::from(k) * self.rate)),
                s.spawn(move || self.http(http6, v6, u64::from(k) * self.rate + self.rate - v6)),
                s.spawn(move || dns::resolve(dns4, q4, false, id, self.stop, self.tally)),
                s.spawn(move || dns::resolve(dns6, q6, true, id.wrapping_add(500), self.stop, self.tally)),
                s.spawn(move || self.failures(k)),
            ];
            parts.into_iter().try_for_each(|p| p.join().expect("a client does not panic"))
        })
    }

    /// `n` requests to `server`, numbered from `first`: half of them on keep-alive connections
    /// of up to four requests, the rest one per connection. Every 7th is a 404, every 13th a 500.
    fn http(&self, server: SocketAddr, n: u64, first: u64) -> Result<(), Error> {
        let path = |j: u64| match j {
            j if j % 7 == 6 => "/missing".to_owned(),
            j if j % 13 == 12 => "/error".to_owned(),
            j => format!("/item/{j}"),
        };
        let keep_alive = n / 2;
        let mut j = first;
        while j < first + keep_alive && !self.stopped() {
            let mut c = http::Client::connect(TcpKind::HttpKeepAlive, server)?;
            let end = (j + 4).min(first + keep_alive);
            while j < end {
                self.tally.status(c.get(&path(j), false)?);
                j += 1;
            }
            c.close(false, self.tally)?;
        }
        while j < first + n && !self.stopped() {
            let mut c = http::Client::connect(TcpKind::HttpClose, server)?;
            self.tally.status(c.get(&path(j), true)?);
            c.finish_after_server_close(self.tally)?;
            j += 1;
        }
        Ok(())
    }

    /// A server abort and a client abort (IPv4 and IPv6, alternating by burst), and a refused
    /// connect to each family's held port.
    fn failures(&self, k: u32) -> Result<(), Error> {
        let (a, b) = (loop4(self.ports.http4), loop6(self.ports.http6));
        let (server_abort, client_abort) = if k.is_multiple_of(2) { (a, b) } else { (b, a) };
        if self.stopped() {
            return Ok(());
        }
        let mut c = http::Client::connect(TcpKind::ServerAbort, server_abort)?;
        c.get_reset("/abort")?;
        c.reset_by_server(self.tally);
        let mut c = http::Client::connect(TcpKind::ClientAbort, client_abort)?;
        self.tally.status(c.get("/item/1", false)?);
        c.close(true, self.tally)?;
        for to in [loop4(self.ports.refused4), loop6(self.ports.refused6)] {
            match std::net::TcpStream::connect(to) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => self.tally.add(report::Conn {
                    kind: TcpKind::Refused,
                    server: to,
                    requests: 0,
                    sent: 0,
                    received: 0,
                }),
                Err(e) => return Err(Error::io(format!("connect to {to} (expected: refused)"), e)),
                Ok(_) => return Err(Error::Unexpected(format!("{to} accepted a connection: it has no listener"))),
            }
        }
        Ok(())
    }

    /// The bulk download.
    fn bulk(&self) -> Result<(), Error> {
        let mut c = http::Client::connect(TcpKind::Bulk, loop4(self.ports.bulk))?;
        self.tally.status(c.get("/bulk", true)?);
        c.finish_after_server_close(self.tally)
    }
}

fn loop4(port: u16) -> SocketAddr {
    SocketAddr::new(V4.ip(), port)
}

fn loop6(port: u16) -> SocketAddr {
    SocketAddr::new(V6.ip(), port)
}

#[cfg(test)]
mod tests;
