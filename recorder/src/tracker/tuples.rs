//! Connections by their endpoints: how sockets that predate the recording are matched when the
//! kernel reports them (it has no id for them), and how sock_diag samples find their
//! connection. The kernel's ids are used wherever the kernel has one.

use std::net::IpAddr;

use gespann_common::raw::RawEvent;
use rustc_hash::FxHashMap;

use crate::addr::addr_of;
use crate::sockdiag::TcpSocket;

/// Network namespace, local address and port, remote address and port: the same addresses
/// and ports can be in use in any number of namespaces at once (every pod has its loopback).
pub type Tuple = (u32, IpAddr, u16, IpAddr, u16);

pub fn of_record(r: &RawEvent) -> Tuple {
    (r.netns, addr_of(r.family, &r.saddr), r.sport, addr_of(r.family, &r.daddr), r.dport)
}

pub fn of_socket(s: &TcpSocket) -> Tuple {
    (s.netns, s.local, s.local_port, s.remote, s.remote_port)
}

/// Live TCP connections by tuple.
#[derive(Debug, Default)]
pub struct Tuples(FxHashMap<Tuple, u64>);

impl Tuples {
    /// Records `conn_id` for `t`; returns the id it replaces.
    pub fn insert(&mut self, t: Tuple, conn_id: u64) -> Option<u64> {
        self.0.insert(t, conn_id)
    }

    pub fn get(&self, t: &Tuple) -> Option<u64> {
        self.0.get(t).copied()
    }

    pub fn contains(&self, t: &Tuple) -> bool {
        self.0.contains_key(t)
    }

    pub fn remove(&mut self, t: &Tuple) {
        self.0.remove(t);
    }
}
