//! DNS-style UDP: real DNS messages (a 12-byte header, one A question; the answer repeats the
//! question and adds one A record for 127.0.0.1) between resolver sockets and a server on one
//! unconnected socket, which leaves names under `void.test` unanswered, as a resolver sees a
//! server that drops queries. The server counts datagrams per client endpoint, which is how the
//! recorder sees a flow of an unconnected socket: the socket and one remote endpoint.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Error;
use super::report::{Tally, UdpFlow, family};

/// How long a resolver waits for an answer to a name under `void.test` before it gives up (the
/// server never answers those)...
const VOID_WAIT: Duration = Duration::from_millis(200);
/// ... and for any other: long, so that a busy machine does not turn a slow answer into a late
/// one (which would be read with the next query's, or never).
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Datagrams and bytes one way.
#[derive(Debug, Default, Clone, Copy)]
pub struct Count {
    pub datagrams: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: usize) {
        self.datagrams += 1;
        self.bytes += bytes as u64;
    }
}

/// The server socket and, per client endpoint, what it received and sent.
pub struct Server {
    pub socket: UdpSocket,
    pub peers: Mutex<HashMap<SocketAddr, (Count, Count)>>,
}

impl Server {
    pub fn new(socket: UdpSocket) -> Server {
        Server { socket, peers: Mutex::new(HashMap::new()) }
    }

    /// Answers until `halt` is set (polling it every 20 ms).
    pub fn serve(&self, halt: &AtomicBool, errors: &super::Errors) {
        if let Err(e) = self.socket.set_read_timeout(Some(Duration::from_millis(20))) {
            return errors.push(Error::io("set a UDP read timeout", e));
        }
        let mut buf = [0u8; 512];
        while !halt.load(Ordering::SeqCst) {
            let (n, from) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
                Err(e) => return errors.push(Error::io("receive a DNS query", e)),
            };
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            let (received, sent) = peers.entry(from).or_default();
            received.add(n);
            let Some(answer) = answer(&buf[..n]) else { continue };
            match self.socket.send_to(&answer, from) {
                Ok(k) => sent.add(k),
                Err(e) => return errors.push(Error::io(format!("answer {from}"), e)),
            }
        }
    }

    /// What the server received from and sent to `peer`.
    pub fn peer(&self, peer: SocketAddr) -> (Count, Count) {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).get(&peer).copied().unwrap_or_default()
    }
}

/// A query for `name` (type A, class IN) with transaction id `id`, recursion desired.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The answer to `q`, or `None` for a name under `void.test` (or something not a query).
fn answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 17 || q[2] & 0x80 != 0 || q.windows(10).any(|w| w == b"\x04void\x04test") {
        return None;
    }
    let mut a = q.to_vec();
    a[2] = 0x81; // response, recursion desired
    a[3] = 0x80; // recursion available, no error
    a[7] = 1; // one answer
    // The answer record: a pointer to the question's name, A, IN, TTL 60, 127.0.0.1.
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    Some(a)
}

/// One resolver socket asking `server` `queries` names, every fifth under `void.test`;
/// `connected` uses connect + send/recv instead of sendto/recvfrom. Closes the socket (ending
/// the flow) before it returns; the server's side of the flow is filled in at the end.
pub fn resolve(
    server: SocketAddr,
    queries: u64,
    connected: bool,
    first_id: u16,
    stop: &AtomicBool,
    tally: &Tally,
) -> Result<(), Error> {
    let bind: SocketAddr = if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.parse().expect("an address");
    let s = UdpSocket::bind(bind).map_err(|e| Error::io(format!("bind a UDP socket on {bind}"), e))?;
    let local = s.local_addr().map_err(|e| Error::io("read a UDP socket's address", e))?;
    if connected {
        s.connect(server).map_err(|e| Error::io(format!("connect a UDP socket to {server}"), e))?;
    }
    let mut flow = UdpFlow {
        family: family(server.ip()),
        client_addr: local.ip(),
        client_port: local.port(),
        server_port: server.port(),
        connected,
        queries: 0,
        unanswered_by_design: 0,
        datagrams_sent: 0,
        datagrams_received: 0,
        bytes_sent: 0,
        bytes_received: 0,
        server_datagrams_received: 0,
        server_datagrams_sent: 0,
        server_bytes_received: 0,
        server_bytes_sent: 0,
    };
    let mut buf = [0u8; 512];
    for i in 0..queries {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let id = first_id.wrapping_add(i as u16);
        let void = i % 5 == 4;
        let name = if void { format!("q{id}.void.test") } else { format!("host{}.svc.example.test", id % 50) };
        let q = query(id, &name);
        let wait = if void { VOID_WAIT } else { ANSWER_WAIT };
        s.set_read_timeout(Some(wait)).map_err(|e| Error::io("set a UDP read timeout", e))?;
        let sent = if connected { s.send(&q) } else { s.send_to(&q, server) };
        let n = sent.map_err(|e| Error::io(format!("send a DNS query to {server}"), e))?;
        flow.queries += 1;
        flow.unanswered_by_design += u64::from(void);
        flow.datagrams_sent += 1;
        flow.bytes_sent += n as u64;
        // Read answers until this query's (a late one for an earlier query counts too) or
        // until the wait runs out.
        loop {
            let got = if connected { s.recv(&mut buf) } else { s.recv_from(&mut buf).map(|(n, _)| n) };
            match got {
                Ok(n) => {
                    flow.datagrams_received += 1;
                    flow.bytes_received += n as u64;
                    if n >= 2 && buf[..2] == id.to_be_bytes() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(Error::io(format!("receive a DNS answer from {server}"), e)),
            }
        }
    }
    drop(s);
    tally.udp(flow);
    Ok(())
}
