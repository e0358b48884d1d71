//! Rows for the unit tests of the recording format and of the journal, defined once so that
//! neither module's tests reach into the other's.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::event::{Event, EventKind, Protocol, ResetBy, Role};

/// Row `i`: opens on even `i`, remote resets (with a kernel reason) on odd `i`.
pub fn sample_event(i: u64) -> Event {
    Event {
        ts_ns: 1_700_000_000_000_000_000 + i as i64,
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
