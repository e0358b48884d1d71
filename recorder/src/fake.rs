//! A [`Kernel`] in memory, for tests and for `cargo xtask bench-drain`: ring records, lost
//! counters, the UDP flow table, sock_diag dumps and socket owners, all set by the caller
//! through a [`FakeHandle`] while a [`crate::Recorder`] owns the kernel.
//!
//! Time is virtual: [`Kernel::wait`] returns at once when records are waiting, and otherwise
//! moves the clock on by the timeout, so a recording of minutes runs in milliseconds. It still
//! yields to the runtime once, so timers and signals are seen as with a real wait.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gespann_common::Workload;
use gespann_common::raw::{ListenerKey, RawEvent, UdpFlow, UdpKey};

use crate::kernel::{Kernel, Lost, Missing};
use crate::sockdiag::{LISTEN, ProcOwner, TcpSocket};
use crate::tracker::{Clock, ResetReasons};

/// Everything the fake kernel holds.
#[derive(Default)]
pub struct FakeState {
    /// Ring records waiting to be drained, oldest first.
    pub ring: Vec<Vec<u8>>,
    pub lost: Lost,
    pub udp_flows: HashMap<UdpKey, UdpFlow>,
    /// The sockets of `udp_socks` (the kernel's per-socket table).
    pub udp_socks: HashSet<u64>,
    /// Every TCP socket sock_diag would report (listeners included).
    pub tcp: Vec<TcpSocket>,
    pub owners: HashMap<u64, ProcOwner>,
    /// What the recorder told the kernel about listeners open at start.
    pub listener_owners: HashMap<ListenerKey, (ProcOwner, u32)>,
    /// What the recorder told the kernel about wanted connections older than the recording.
    pub wanted_preexisting: Option<Vec<TcpSocket>>,
    /// The workload of each cgroup id (others are unknown).
    pub workloads: HashMap<u64, Arc<Workload>>,
    /// The cgroup ids seen by the recorder, in the order it noted them.
    pub noted_cgroups: Vec<u64>,
    /// What `--cgroup`/`--container` resolve to (`None`: no such filter).
    pub filter_cgroups: Option<HashSet<u64>>,
    /// CLOCK_MONOTONIC now.
    pub now_ns: u64,
    /// How many times the ring was drained.
    pub drains: u64,
    /// How many times sockets were looked up by their endpoints, and the whole table dumped.
    pub queries: u64,
    pub dumps: u64,
    /// Called at the start of every drain, as if the kernel had done something meanwhile.
    #[expect(clippy::type_complexity, reason = "a test hook, named once")]
    pub on_drain: Option<Box<dyn FnMut(&mut FakeState) + Send>>,
}

/// The recorder's side of the fake kernel.
pub struct FakeKernel {
    state: Arc<Mutex<FakeState>>,
    clock: Clock,
}

/// The test's side: changes what the kernel holds.
#[derive(Clone)]
pub struct FakeHandle(Arc<Mutex<FakeState>>);

/// Where the virtual monotonic clock starts (an hour after boot).
pub const START_NS: u64 = 3_600_000_000_000;

impl FakeKernel {
    /// A fake kernel whose wall clock is `wall_offset_ns` ahead of its monotonic clock.
    pub fn new(wall_offset_ns: i64) -> (FakeKernel, FakeHandle) {
        let state = Arc::new(Mutex::new(FakeState { now_ns: START_NS, ..Default::default() }));
        (FakeKernel { state: state.clone(), clock: Clock::fixed(wall_offset_ns) }, FakeHandle(state))
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FakeHandle {
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one record as the kernel would write it.
    pub fn push(&self, r: &RawEvent) {
        self.state().ring.push(r.as_bytes().to_vec());
    }

    /// Queues raw bytes (a record of another size, say).
    pub fn push_bytes(&self, b: &[u8]) {
        self.state().ring.push(b.to_vec());
    }

    pub fn now_ns(&self) -> u64 {
        self.state().now_ns
    }

    pub fn advance(&self, by: Duration) {
        self.state().now_ns += by.as_nanos() as u64;
    }
}

impl Kernel for FakeKernel {
    fn drain(&mut self, each: &mut dyn FnMut(&[u8])) {
        let records = {
            let mut s = self.state();
            s.drains += 1;
            if let Some(mut hook) = s.on_drain.take() {
                hook(&mut s);
                s.on_drain = Some(hook);
            }
            std::mem::take(&mut s.ring)
        };
        for r in &records {
            each(r);
        }
    }

    async fn wait(&mut self, timeout: Duration) -> std::io::Result<()> {
        {
            let mut s = self.state();
            if s.ring.is_empty() {
                s.now_ns += timeout.as_nanos() as u64;
            }
        }
        // Give the runtime its turn (timers, signals), as a real wait would.
        tokio::task::yield_now().await;
        Ok(())
    }

    fn lost(&self) -> Lost {
        self.state().lost
    }

    fn udp_flows(&self) -> Vec<(UdpKey, UdpFlow)> {
        self.state().udp_flows.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn udp_sockets(&self) -> HashSet<u64> {
        self.state().udp_socks.clone()
    }

    fn take_udp_flows(&mut self, sk: u64) -> Vec<UdpFlow> {
        let mut s = self.state();
        let keys: Vec<UdpKey> = s.udp_flows.keys().filter(|k| k.sk == sk).copied().collect();
        keys.iter().filter_map(|k| s.udp_flows.remove(k)).collect()
    }

    fn tcp_sockets(&mut self, states: u32, with_info: bool) -> std::io::Result<Vec<TcpSocket>> {
        let mut s = self.state();
        s.dumps += 1;
        Ok(s.tcp
            .iter()
            .filter(|t| states & (1 << t.state) != 0)
            .map(|t| {
                let mut t = t.clone();
                if !with_info || states == LISTEN {
                    t.info = None;
                }
                t
            })
            .collect())
    }

    fn tcp_sockets_of(&mut self, wanted: &[crate::sockdiag::Tuple]) -> std::io::Result<Vec<TcpSocket>> {
        let mut s = self.state();
        s.queries += 1;
        // Found by endpoints in any state, as the kernel's lookup finds them.
        Ok(s.tcp
            .iter()
            .filter(|t| wanted.contains(&(t.netns, t.local, t.local_port, t.remote, t.remote_port)))
            .cloned()
            .collect())
    }

    fn socket_owners(&mut self) -> HashMap<u64, ProcOwner> {
        self.state().owners.clone()
    }

    fn set_listener_owner(&mut self, key: ListenerKey, owner: &ProcOwner, sockets: u32) {
        self.state().listener_owners.insert(key, (owner.clone(), sockets));
    }

    fn want_preexisting(&mut self, wanted: &[TcpSocket]) {
        self.state().wanted_preexisting = Some(wanted.to_vec());
    }

    fn note_cgroup(&mut self, cgroup_id: u64) {
        self.state().noted_cgroups.push(cgroup_id);
    }

    fn workload(&mut self, cgroup_id: u64) -> Arc<Workload> {
        self.state().workloads.get(&cgroup_id).cloned().unwrap_or_else(Workload::unknown)
    }

    fn filter_cgroups(&mut self) -> Option<HashSet<u64>> {
        self.state().filter_cgroups.clone()
    }

    fn now_ns(&self) -> u64 {
        self.state().now_ns
    }

    fn clock(&self) -> Clock {
        self.clock
    }

    fn reset_reasons(&self) -> ResetReasons {
        ResetReasons::default()
    }

    fn missing(&self) -> &[Missing] {
        &[]
    }
}

/// Ring records as the kernel writes them, for tests: loopback endpoints, `curl` as the owner.
pub mod records {
    use gespann_common::raw::{self, RawEvent, UdpFlow, UdpKey, flags, kind};

    /// A TCP client record of `kind` for connection `conn_id` at `ts` (monotonic ns):
    /// 127.0.0.1:40000 -> 127.0.0.2:80, pid 42, RTT 30 µs.
    pub fn tcp(kind: u8, conn_id: u64, ts: u64) -> RawEvent {
        let mut r = RawEvent {
            ts_ns: ts,
            start_ns: 100,
            conn_id,
            kind,
            protocol: raw::PROTO_TCP,
            role: raw::ROLE_CLIENT,
            family: 4,
            sport: 40000,
            dport: 80,
            pid: 42,
            state: 1,
            flags: flags::HAS_RTT,
            rtt_us: 30,
            ..Default::default()
        };
        r.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        r.daddr[..4].copy_from_slice(&[127, 0, 0, 2]);
        r.comm[..4].copy_from_slice(b"curl");
        r
    }

    /// The first datagram (10 bytes sent) of UDP flow `conn_id` of socket `sk` to 127.0.0.9:`port`.
    pub fn udp_open(conn_id: u64, sk: u64, port: u16, ts: u64) -> RawEvent {
        let mut r = RawEvent {
            ts_ns: ts,
            start_ns: ts,
            conn_id,
            sk,
            kind: kind::OPEN,
            protocol: raw::PROTO_UDP,
            role: raw::ROLE_CLIENT,
            family: 4,
            sport: 5353,
            dport: port,
            pid: 7,
            bytes_sent: 10,
            packets_sent: 1,
            ..Default::default()
        };
        r.daddr[..4].copy_from_slice(&[127, 0, 0, 9]);
        r
    }

    /// That flow as the kernel's flow table holds it, with `sent` bytes sent.
    pub fn udp_flow(conn_id: u64, sk: u64, port: u16, sent: u64) -> (UdpKey, UdpFlow) {
        let mut key = UdpKey { sk, dport: port, ..Default::default() };
        key.daddr[..4].copy_from_slice(&[127, 0, 0, 9]);
        let flow = UdpFlow {
            conn_id,
            start_ns: super::START_NS,
            bytes_sent: sent,
            packets_sent: 1,
            role: raw::ROLE_CLIENT,
            ..Default::default()
        };
        (key, flow)
    }
}
