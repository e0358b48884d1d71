//! One row at a time: [`Anonymizer`] replaces a row's addresses, process name and workload and
//! leaves every other column as it was. Each distinct address, name and workload is worked out
//! once (a recording has millions of rows and few of those).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use gespann_common::{Event, Workload};

use crate::cryptopan::CryptoPan;
use crate::key::Key;
use crate::names::Names;

/// The replacements of one key, remembered.
#[derive(Debug)]
pub struct Anonymizer {
    pan: CryptoPan,
    names: Names,
    addresses: HashMap<IpAddr, IpAddr>,
    comms: HashMap<Arc<str>, Arc<str>>,
    workloads: HashMap<Workload, Arc<Workload>>,
}

impl Anonymizer {
    pub fn new(key: &Key) -> Anonymizer {
        Anonymizer {
            pan: CryptoPan::new(&key.cryptopan),
            names: Names::new(&key.names),
            addresses: HashMap::new(),
            comms: HashMap::new(),
            workloads: HashMap::new(),
        }
    }

    /// The keyed hashes, for the names outside rows (the host's).
    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn address(&mut self, a: IpAddr) -> IpAddr {
        *self.addresses.entry(a).or_insert_with(|| self.pan.ip(a))
    }

    pub fn comm(&mut self, comm: &Arc<str>) -> Arc<str> {
        if let Some(c) = self.comms.get(comm) {
            return c.clone();
        }
        let c: Arc<str> = Arc::from(self.names.comm(comm));
        self.comms.insert(comm.clone(), c.clone());
        c
    }

    /// A workload with every name and id replaced; a column that is unset stays unset, so the
    /// analyzer tells pods, containers and the host apart as before.
    pub fn workload(&mut self, w: &Arc<Workload>) -> Arc<Workload> {
        if let Some(x) = self.workloads.get(&**w) {
            return x.clone();
        }
        let n = &self.names;
        let opt = |v: &Option<Arc<str>>, f: &dyn Fn(&str) -> String| v.as_deref().map(|s| Arc::from(f(s)));
        let x = Arc::new(Workload {
            cgroup: Arc::from(n.cgroup(&w.cgroup)),
            container_id: opt(&w.container_id, &|s| n.container_id(s)),
            container_name: opt(&w.container_name, &|s| n.container_name(s)),
            pod_uid: opt(&w.pod_uid, &|s| n.pod_uid(s)),
            pod_name: opt(&w.pod_name, &|s| n.pod_name(s)),
            pod_namespace: opt(&w.pod_namespace, &|s| n.pod_namespace(s)),
        });
        self.workloads.insert((**w).clone(), x.clone());
        x
    }

    /// `e` with its addresses, process name and workload replaced; every count, time, port,
    /// protocol, outcome, id and kernel word (state, errno, reset reason) as it was.
    pub fn event(&mut self, e: &Event) -> Event {
        Event {
            local_addr: self.address(e.local_addr),
            remote_addr: self.address(e.remote_addr),
            comm: self.comm(&e.comm),
            workload: self.workload(&e.workload),
            ..e.clone()
        }
    }

    /// How many distinct values were replaced so far.
    pub fn seen(&self) -> Seen {
        let kept = self.addresses.iter().filter(|(a, b)| a == b).count();
        Seen {
            addresses: self.addresses.len() - kept,
            addresses_kept: kept,
            comms: self.comms.keys().filter(|c| !c.is_empty()).count(),
            workloads: self.workloads.keys().filter(|w| **w != Workload::default()).count(),
        }
    }
}

/// Distinct values an [`Anonymizer`] has seen: addresses replaced and kept, process names and
/// workloads (an unknown one, or an empty name, is nothing to replace and not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub addresses: usize,
    pub addresses_kept: usize,
    pub comms: usize,
    pub workloads: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use gespann_testkit::fixtures::sample_event;

    #[test]
    fn a_row_keeps_every_column_but_addresses_and_names() {
        let mut a = Anonymizer::new(&Key::from_secret(&[1; 32]).unwrap());
        let mut e = sample_event(1);
        e.local_addr = "10.0.0.1".parse().unwrap();
        let x = a.event(&e);
        assert_ne!(x.local_addr, e.local_addr);
        assert_eq!(x.remote_addr, e.remote_addr, "::1 is kept");
        assert!(x.comm.starts_with("comm-"));
        assert_eq!(x.workload.container_name.as_deref().map(|n| &n[..4]), Some("ctr-"));
        assert!(x.workload.pod_uid.is_none() && x.workload.pod_name.is_none());
        let id = x.workload.container_id.clone().unwrap();
        assert_eq!(&*x.workload.cgroup, format!("/libpod_parent/libpod-{id}"));
        let restored = Event {
            local_addr: e.local_addr,
            remote_addr: e.remote_addr,
            comm: e.comm.clone(),
            workload: e.workload.clone(),
            ..x.clone()
        };
        assert_eq!(restored, e, "nothing else changed");
        assert_eq!(a.event(&e), x, "the same row twice");
        assert_eq!(a.seen(), Seen { addresses: 1, addresses_kept: 1, comms: 1, workloads: 1 });
    }
}
