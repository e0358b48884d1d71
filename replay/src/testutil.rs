//! Event builders for the unit tests (the processor's, the source's and the adapters').

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
