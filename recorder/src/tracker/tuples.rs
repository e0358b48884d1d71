//! Connections by their endpoints: how sockets that predate the recording are matched when the
//! kernel reports them (it has no id for them), and how sock_diag samples find their
//! connection. The kernel's ids are used wherever the kernel has one.

use gespann_common::raw::RawEvent;
use rustc_hash::FxHashMap;

use crate::addr::addr_of;
use crate::sockdiag::TcpSocket;

pub use crate::sockdiag::Tuple;

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

    /// Every tuple held, with its connection id.
    pub fn iter(&self) -> impl Iterator<Item = (&Tuple, u64)> {
        self.0.iter().map(|(t, &id)| (t, id))
    }

    pub fn remove(&mut self, t: &Tuple) {
        self.0.remove(t);
    }
}
