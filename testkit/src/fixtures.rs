//! Small recordings that tests build by hand, each kept exactly as the tests that assert on it
//! expect it (the numbers in those tests are worked out from these rows).
//!
//! - [`sample_event`]: the rows of the format's round-trip and crash-journal tests;
//! - [`ev`] and [`Conn`]: a row with neutral values and a connection to make rows of, for
//!   recordings whose every number is counted by hand (the analyzer's), written by
//!   [`write_recording`];
//! - [`row`] and [`with_bytes`]: one TCP client row at a time, for unit tests that feed a
//!   pipeline by hand (the replay processor's, its source's, its adapters');
//! - [`mixed_connections`]: a few hundred random connections of every kind over a span, written
//!   by [`write_mixed`], for tests that compare a pipeline's output with the rows' own aggregates
//!   (the replay's).
//!
//! Large recordings with a realistic shape come from [`crate::synth`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gespann_common::{Event, EventKind, Protocol, RecordingMeta, RecordingWriter, ResetBy, Role, Workload};

use crate::synth::rfc3339;

/// 2026-01-01T00:00:00Z, the start of hand-made recordings.
pub const T0: i64 = 1_767_225_600_000_000_000;
/// One second in nanoseconds.
pub const SEC: i64 = 1_000_000_000;

/// Row `i`, `i` microseconds after a fixed instant (recordings keep microseconds): opens on
/// even `i`, remote resets (with a kernel reason) on odd `i`.
pub fn sample_event(i: u64) -> Event {
    Event {
        ts_ns: 1_700_000_000_000_000_000 + i as i64 * 1_000,
        kind: if i.is_multiple_of(2) { EventKind::Open } else { EventKind::Reset },
        conn_id: i,
        protocol: Protocol::Tcp,
        role: Role::Client,
        local_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        remote_addr: "::1".parse().unwrap(),
        local_port: 40000,
        remote_port: 443,
        pid: 1234,
        comm: Arc::from("curl"),
        cgroup_id: 1,
        netns: 4026531840,
        workload: Arc::new(Workload {
            cgroup: Arc::from("/libpod_parent/libpod-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            container_id: Some(Arc::from("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")),
            container_name: Some(Arc::from("web")),
            ..Workload::default()
        }),
        state: Some("ESTABLISHED"),
        bytes_sent: 10,
        bytes_received: 20,
        packets_sent: 1,
        packets_received: 2,
        retransmits: 0,
        rtt_us: Some(50),
        handshake_us: None,
        duration_ns: Some(5),
        error: if i % 2 == 1 { Some("ECONNRESET") } else { None },
        reset_by: if i % 2 == 1 { Some(ResetBy::Remote) } else { None },
        reset_reason: if i % 2 == 1 { Some(Arc::from("TCP_ABORT_ON_CLOSE")) } else { None },
        preexisting: false,
    }
}

/// An event with every field at a neutral value.
pub fn ev(kind: EventKind, ts_s: f64, conn_id: u64) -> Event {
    Event {
        ts_ns: T0 + (ts_s * SEC as f64) as i64,
        kind,
        conn_id,
        protocol: Protocol::Tcp,
        role: Role::Client,
        local_addr: "10.0.1.17".parse().unwrap(),
        remote_addr: "192.0.2.10".parse().unwrap(),
        local_port: 40000 + conn_id as u16,
        remote_port: 443,
        pid: 100,
        comm: Arc::from("curl"),
        cgroup_id: 1,
        netns: 4026531840,
        workload: Arc::new(Workload { cgroup: Arc::from("/"), ..Workload::default() }),
        state: Some("ESTABLISHED"),
        ..Event::default()
    }
}

pub struct Conn {
    pub proto: Protocol,
    pub role: Role,
    pub remote: &'static str,
    pub rport: u16,
    pub lport: u16,
    pub comm: &'static str,
    pub pid: u32,
}

impl Conn {
    pub fn tcp(remote: &'static str, rport: u16, comm: &'static str, pid: u32) -> Conn {
        Conn { proto: Protocol::Tcp, role: Role::Client, remote, rport, lport: 0, comm, pid }
    }
    pub fn at(&self, kind: EventKind, ts_s: f64, id: u64) -> Event {
        let mut e = ev(kind, ts_s, id);
        e.protocol = self.proto;
        e.role = self.role;
        e.remote_addr = self.remote.parse::<IpAddr>().unwrap();
        e.remote_port = self.rport;
        if self.lport != 0 {
            e.local_port = self.lport;
        }
        e.comm = Arc::from(self.comm);
        e.pid = self.pid;
        if self.proto == Protocol::Udp {
            e.state = None;
        }
        if kind.is_terminal() {
            e.state = Some("CLOSE");
        }
        e
    }
}

/// Writes events as a recording with the given metadata.
pub fn write_recording(path: &Path, events: &[Event], lost: u64, start: i64, end: i64) {
    let meta = RecordingMeta {
        schema_version: gespann_common::schema::SCHEMA_VERSION,
        version: "test".into(),
        hostname: "testhost".into(),
        kernel: "6.8.0-test".into(),
        started_at: rfc3339(start),
        ended_at: String::new(),
        events_lost: 0,
        command_line: "gespann record (test)".into(),
        sample_interval_ms: Some(1000),
        anonymized: None,
    };
    let mut w = RecordingWriter::create(path, true, &meta).expect("create recording");
    for e in events {
        w.push(e).expect("push");
    }
    w.finish(&rfc3339(end), lost).expect("finish");
}

/// A TCP client row from 10.0.0.1 to 10.0.0.2:443 by `curl` (pid 42), `ts_s` seconds after
/// 2023-11-14T22:13:20Z; counters at zero.
pub fn row(ts_s: f64, kind: EventKind, conn_id: u64) -> Event {
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

/// `e` with these cumulative byte counters.
pub fn with_bytes(mut e: Event, sent: u64, received: u64) -> Event {
    e.bytes_sent = sent;
    e.bytes_received = received;
    e
}

/// A small PRNG (xorshift), so recordings are the same on every run.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn mixed_base(ts_ns: i64, kind: EventKind, conn_id: u64) -> Event {
    Event {
        ts_ns,
        kind,
        conn_id,
        protocol: Protocol::Tcp,
        role: Role::Client,
        local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
        local_port: 40000,
        remote_port: 443,
        pid: 100,
        comm: Arc::from("curl"),
        cgroup_id: 1,
        ..Event::default()
    }
}

/// `conns` connections spread over `span`: TCP and UDP, clients and servers, IPv4 and IPv6,
/// preexisting ones (whose `open` carries counters so far), samples with cumulative counters,
/// retransmits, closes, resets (with kernel reasons) and failed attempts; a few stay open.
/// Rows are in time order.
pub fn mixed_connections(conns: u64, span: Duration, seed: u64) -> Vec<Event> {
    let mut rng = XorShift::new(seed);
    let start: i64 = 1_764_000_000_000_000_000;
    let span_ns = span.as_nanos() as i64;
    let comms: Vec<Arc<str>> =
        ["curl", "nginx", "postgres", "Web Content", "dns,resolver"].iter().map(|s| Arc::from(*s)).collect();
    let reasons: Vec<Arc<str>> =
        ["NOT_SPECIFIED", "TCP_ABORT_ON_DATA", "NO_SOCKET"].iter().map(|s| Arc::from(*s)).collect();
    let mut rows = Vec::new();
    for c in 0..conns {
        let id = c + 1;
        let t0 = start + (rng.below(span_ns as u64 * 7 / 10)) as i64;
        let life = (rng.below(span_ns as u64 / 4) + 1_000) as i64;
        let mut e = mixed_base(t0, EventKind::Open, id);
        e.protocol = if rng.below(5) == 0 { Protocol::Udp } else { Protocol::Tcp };
        e.role = if rng.below(3) == 0 { Role::Server } else { Role::Client };
        let dst = rng.below(12) as u8;
        if rng.below(6) == 0 {
            e.local_addr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
            e.remote_addr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, u16::from(dst)));
        } else {
            e.remote_addr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, dst));
        }
        e.remote_port = [443, 80, 5432, 53, 8080][rng.below(5) as usize];
        e.local_port = 30000 + rng.below(30000) as u16;
        e.pid = 100 + rng.below(5) as u32;
        e.comm = comms[rng.below(comms.len() as u64) as usize].clone();
        let tcp = e.protocol == Protocol::Tcp;
        if tcp {
            e.rtt_us = Some(50 + rng.below(20_000) as u32);
        }

        // A failed attempt: a single `failed` row.
        if tcp && e.role == Role::Client && rng.below(10) == 0 {
            e.kind = EventKind::Failed;
            e.error = Some(["ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH"][rng.below(3) as usize]);
            e.duration_ns = Some(rng.below(3_000_000_000));
            e.rtt_us = None;
            rows.push(e);
            continue;
        }
        let preexisting = rng.below(8) == 0;
        let (mut sent, mut recv, mut pk_s, mut pk_r, mut retr) = (0u64, 0u64, 0u64, 0u64, 0u32);
        if preexisting {
            e.preexisting = true;
            sent = rng.below(1 << 20);
            recv = rng.below(1 << 22);
            pk_s = sent / 1000 + 1;
            pk_r = recv / 1000 + 1;
            e.bytes_sent = sent;
            e.bytes_received = recv;
            e.packets_sent = pk_s;
            e.packets_received = pk_r;
        } else if tcp && e.role == Role::Client {
            e.handshake_us = Some(20 + rng.below(50_000) as u32);
        }
        rows.push(e.clone());
        let samples = rng.below(5);
        for s in 0..samples {
            let mut x = e.clone();
            x.kind = if tcp && rng.below(4) == 0 {
                retr += 1;
                EventKind::Retransmit
            } else {
                EventKind::Sample
            };
            x.ts_ns = t0 + life * (s as i64 + 1) / (samples as i64 + 2);
            // Sometimes nothing moved (an idle sample).
            if rng.below(3) != 0 {
                sent += rng.below(100_000);
                recv += rng.below(1_000_000);
                pk_s += 1;
                pk_r += 2;
            }
            x.bytes_sent = sent;
            x.bytes_received = recv;
            x.packets_sent = pk_s;
            x.packets_received = pk_r;
            x.retransmits = retr;
            x.handshake_us = None;
            x.preexisting = false;
            rows.push(x);
        }
        // A few stay open to the end.
        if rng.below(10) == 0 {
            continue;
        }
        let mut x = e.clone();
        x.ts_ns = t0 + life;
        x.handshake_us = None;
        x.preexisting = false;
        sent += rng.below(10_000);
        recv += rng.below(10_000);
        x.bytes_sent = sent;
        x.bytes_received = recv;
        x.packets_sent = pk_s + 1;
        x.packets_received = pk_r + 1;
        x.retransmits = retr;
        x.duration_ns = Some(life as u64);
        if tcp && rng.below(4) == 0 {
            x.kind = EventKind::Reset;
            x.reset_by = Some(if rng.below(2) == 0 { ResetBy::Local } else { ResetBy::Remote });
            if x.reset_by == Some(ResetBy::Local) {
                x.reset_reason = Some(reasons[rng.below(3) as usize].clone());
            }
            x.error = Some("ECONNRESET");
        } else {
            x.kind = EventKind::Close;
        }
        rows.push(x);
    }
    rows.sort_by_key(|e| (e.ts_ns, e.conn_id));
    rows
}

/// The metadata of [`write_mixed`] recordings.
pub fn mixed_meta() -> RecordingMeta {
    RecordingMeta {
        schema_version: gespann_common::schema::SCHEMA_VERSION,
        version: "test".into(),
        hostname: "test".into(),
        kernel: "test".into(),
        started_at: "2025-11-24T16:00:00Z".into(),
        command_line: "test".into(),
        sample_interval_ms: Some(1000),
        ..RecordingMeta::default()
    }
}

/// Writes `rows` (typically [`mixed_connections`]) as a recording with [`mixed_meta`].
pub fn write_mixed(path: &Path, rows: &[Event]) {
    write_mixed_with(path, rows, gespann_common::recording::Pages::Small);
}

/// [`write_mixed`] with `pages` compression (`Fast`: as a recording rebuilt by `recover` holds).
pub fn write_mixed_with(path: &Path, rows: &[Event], pages: gespann_common::recording::Pages) {
    let mut w = RecordingWriter::create_with(path, true, &mixed_meta(), pages).expect("create recording");
    for e in rows {
        w.push(e).expect("push");
    }
    w.finish("2025-11-24T16:10:00Z", 0).expect("finish");
}
