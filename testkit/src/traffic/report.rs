//! What the generator did, as its own sockets saw it: every count here is a return value of a
//! socket call (a connect that succeeded or was refused, bytes `write` took and `read` gave, a
//! datagram `send_to` sent or `recv_from` returned), never a plan. That is what makes the report
//! checkable against a recording: the recorder sees the same sockets from the kernel.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;

/// Why a TCP connection was made, and so how it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpKind {
    /// HTTP/1.1, several requests on one connection; the client closes (FIN) after the last.
    HttpKeepAlive,
    /// HTTP/1.1 with `Connection: close`: one request, the server closes after its response.
    HttpClose,
    /// `GET /abort`: the server reads the request and closes with SO_LINGER 0 (RST sent by the
    /// server, ECONNRESET at the client).
    ServerAbort,
    /// One request and its response, then the client closes with SO_LINGER 0 (RST sent by the
    /// client, ECONNRESET at the server).
    ClientAbort,
    /// A connect to a port bound but not listening: refused (RST answers the SYN).
    Refused,
    /// One HTTP download of [`super::BULK_BYTES`] bytes of body.
    Bulk,
}

impl TcpKind {
    /// How a connection of this kind ends (from either end).
    pub fn outcome(self) -> Outcome {
        match self {
            TcpKind::HttpKeepAlive | TcpKind::HttpClose | TcpKind::Bulk => Outcome::Closed,
            TcpKind::ServerAbort | TcpKind::ClientAbort => Outcome::Reset,
            TcpKind::Refused => Outcome::Failed,
        }
    }

    /// Which end sends the RST, for the kinds that end in one.
    pub fn reset_by(self) -> Option<End> {
        match self {
            TcpKind::ServerAbort => Some(End::Server),
            TcpKind::ClientAbort => Some(End::Client),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TcpKind::HttpKeepAlive => "http keep-alive",
            TcpKind::HttpClose => "http close",
            TcpKind::ServerAbort => "server abort",
            TcpKind::ClientAbort => "client abort",
            TcpKind::Refused => "refused",
            TcpKind::Bulk => "bulk",
        }
    }
}

/// How a connection ended, in the words of the recording's `connections.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Closed,
    Reset,
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Closed => "closed",
            Outcome::Reset => "reset",
            Outcome::Failed => "failed",
        }
    }
}

/// One end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    Client,
    Server,
}

/// The TCP connections of one kind to one server port, seen from the client. The server end of
/// each (all but refused ones) moved the same bytes the other way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpRow {
    pub kind: TcpKind,
    pub family: u8,
    pub addr: IpAddr,
    pub port: u16,
    pub outcome: Outcome,
    /// The end that sent the RST (`reset` rows only).
    pub reset_by: Option<End>,
    /// The errno connect() returned (`failed` rows only).
    pub error: Option<&'static str>,
    pub connections: u64,
    /// HTTP requests written (0 for refused connects).
    pub requests: u64,
    /// Payload bytes the clients wrote (all of them read by the server).
    pub bytes_sent: u64,
    /// Payload bytes the clients read (all the server wrote).
    pub bytes_received: u64,
}

/// One DNS-style UDP flow: a client socket and the server it asked. `sent`/`received` are the
/// client's; `server_*` the server socket's datagrams to and from this client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UdpFlow {
    pub family: u8,
    pub client_addr: IpAddr,
    pub client_port: u16,
    pub server_port: u16,
    /// `connect`ed client socket (send/recv) rather than sendto/recvfrom.
    pub connected: bool,
    pub queries: u64,
    /// Queries the server was meant to leave unanswered (names under `void.test`).
    pub unanswered_by_design: u64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub server_datagrams_received: u64,
    pub server_datagrams_sent: u64,
    pub server_bytes_received: u64,
    pub server_bytes_sent: u64,
}

/// A server the generator ran (or, for `refused`, a port it held without listening).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerRow {
    pub name: &'static str,
    pub protocol: &'static str,
    pub family: u8,
    pub addr: IpAddr,
    pub port: u16,
    /// TCP: connections accepted. UDP: datagrams received.
    pub accepted: u64,
}

/// Everything the generator did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Wall time from the first burst to the end, in seconds.
    pub elapsed_s: f64,
    pub bursts: u32,
    pub rate: u32,
    /// Stopped early (Ctrl-C): the counts are still what was done.
    pub interrupted: bool,
    pub servers: Vec<ServerRow>,
    pub tcp: Vec<TcpRow>,
    /// HTTP responses the clients read, by status code.
    pub http_responses: BTreeMap<u16, u64>,
    pub udp: Vec<UdpFlow>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data")
    }

    /// TCP connections the clients opened (refused attempts included).
    pub fn tcp_connections(&self) -> u64 {
        self.tcp.iter().map(|r| r.connections).sum()
    }
}

/// What the client threads add up while they run.
#[derive(Default)]
pub(crate) struct Tally {
    tcp: Mutex<BTreeMap<(TcpKind, u16), TcpRow>>,
    statuses: Mutex<BTreeMap<u16, u64>>,
    udp: Mutex<Vec<UdpFlow>>,
}

/// One client connection's facts, added to the tally when it ended.
pub(crate) struct Conn {
    pub kind: TcpKind,
    pub server: std::net::SocketAddr,
    pub requests: u64,
    pub sent: u64,
    pub received: u64,
}

impl Tally {
    pub fn add(&self, c: Conn) {
        let mut tcp = self.tcp.lock().unwrap_or_else(|p| p.into_inner());
        let row = tcp.entry((c.kind, c.server.port())).or_insert_with(|| TcpRow {
            kind: c.kind,
            family: family(c.server.ip()),
            addr: c.server.ip(),
            port: c.server.port(),
            outcome: c.kind.outcome(),
            reset_by: c.kind.reset_by(),
            error: (c.kind == TcpKind::Refused).then_some("ECONNREFUSED"),
            connections: 0,
            requests: 0,
            bytes_sent: 0,
            bytes_received: 0,
        });
        row.connections += 1;
        row.requests += c.requests;
        row.bytes_sent += c.sent;
        row.bytes_received += c.received;
    }

    pub fn status(&self, code: u16) {
        *self.statuses.lock().unwrap_or_else(|p| p.into_inner()).entry(code).or_default() += 1;
    }

    pub fn udp(&self, flow: UdpFlow) {
        self.udp.lock().unwrap_or_else(|p| p.into_inner()).push(flow);
    }

    pub fn into_parts(self) -> (Vec<TcpRow>, BTreeMap<u16, u64>, Vec<UdpFlow>) {
        let tcp = self.tcp.into_inner().unwrap_or_else(|p| p.into_inner()).into_values().collect();
        let statuses = self.statuses.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut udp = self.udp.into_inner().unwrap_or_else(|p| p.into_inner());
        udp.sort_by_key(|f| (f.server_port, f.client_port));
        (tcp, statuses, udp)
    }
}

pub(crate) fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}
