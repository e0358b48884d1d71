//! The real [`Kernel`]: loads `recorder-ebpf/gespann.bpf.o` with aya, sets the filters,
//! attaches every program, and reads the ring buffer and the maps; sock_diag and `/proc` for
//! the sockets.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSock, CgroupSockAddr, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader, Pod};
use gespann_common::raw::{self, Listener, ListenerKey, Owner, TcpTuple, UdpFlow, UdpKey, UdpSock};
use tokio::io::unix::AsyncFd;

use crate::error::RecorderError;
use crate::filters::{Filters, RecordOptions};
use crate::kernel::{Kernel, Lost, Missing};
use crate::sockdiag::{self, ProcOwner, TcpSocket};
use crate::tracker::{Clock, ResetReasons, monotonic_ns};
use crate::workload::{WorkloadConfig, Workloads};

/// The compiled kernel side, committed so that `cargo build` needs no clang.
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../recorder-ebpf/gespann.bpf.o");

/// Every tracepoint Gespann attaches: (program, category, event, what is missing without it).
pub const TRACEPOINTS: &[(&str, &str, &str, &str)] = &[
    ("handle_set_state", "sock", "inet_sock_set_state", "all TCP rows"),
    ("handle_receive_reset", "tcp", "tcp_receive_reset", "`reset` rows for RSTs received (they become `close`)"),
    ("handle_send_reset", "tcp", "tcp_send_reset", "`reset` rows for RSTs sent, `reset_reason`"),
    ("handle_retransmit", "tcp", "tcp_retransmit_skb", "`retransmit` rows"),
    ("handle_destroy_sock", "tcp", "tcp_destroy_sock", "nothing visible (socket table cleanup)"),
    ("handle_send_length", "sock", "sock_send_length", "UDP rows; accepting process of server connections"),
    ("handle_recv_length", "sock", "sock_recv_length", "UDP rows; accepting process of server connections"),
    (
        "handle_exit_connect",
        "syscalls",
        "sys_exit_connect",
        "`failed` rows for connects refused before any packet (no route, no free local port)",
    ),
];

/// The programs `--connect-errors` adds: connects refused before any packet.
pub const CONNECT_ERROR_PROGRAMS: &[&str] = &["handle_exit_connect", "connect4", "connect6"];

/// cgroup hooks: (program, what is missing without it).
pub const CGROUP_HOOKS: &[(&str, &str)] = &[
    ("udp_sendmsg4", "remote address of unconnected UDP sends (IPv4)"),
    ("udp_sendmsg6", "remote address of unconnected UDP sends (IPv6)"),
    ("udp_recvmsg4", "remote address of unconnected UDP receives (IPv4)"),
    ("udp_recvmsg6", "remote address of unconnected UDP receives (IPv6)"),
    ("sock_release", "`close` rows of UDP flows"),
    ("connect4", "`failed` rows for connects refused before any packet (IPv4)"),
    ("connect6", "`failed` rows for connects refused before any packet (IPv6)"),
];

/// `UdpKey`/`UdpFlow`/`Owner` as aya map types.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Key(pub UdpKey);
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Flow(pub UdpFlow);
#[derive(Clone, Copy)]
#[repr(transparent)]
struct ListenerKeyPod(ListenerKey);
#[derive(Clone, Copy)]
#[repr(transparent)]
struct ListenerPod(Listener);
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Tuple(TcpTuple);
#[derive(Clone, Copy)]
#[repr(transparent)]
struct SockPod(UdpSock);
// SAFETY: repr(transparent) over repr(C) structs of integers without padding (checked against
// the object's BTF by the layout test).
unsafe impl Pod for Key {}
// SAFETY: as above.
unsafe impl Pod for Flow {}
// SAFETY: as above.
unsafe impl Pod for ListenerKeyPod {}
// SAFETY: as above.
unsafe impl Pod for ListenerPod {}
// SAFETY: as above.
unsafe impl Pod for Tuple {}
// SAFETY: as above.
unsafe impl Pod for SockPod {}

/// The loaded and attached kernel side: the real [`Kernel`]. Dropping it detaches every program.
pub struct Probes {
    ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    udp_flows: BpfHashMap<MapData, Key, Flow>,
    udp_socks: BpfHashMap<MapData, u64, SockPod>,
    listeners: BpfHashMap<MapData, ListenerKeyPod, ListenerPod>,
    diag: crate::netns::DiagSockets,
    workloads: Workloads,
    /// `--cgroup`/`--container`, and the cgroup ids they resolved to so far (all in the kernel's
    /// `filter_cgroups` table).
    filters: Filters,
    filter_cgroups: Option<(BpfHashMap<MapData, u64, u8>, HashSet<u64>)>,
    missing: Vec<Missing>,
    cgroup2: Option<PathBuf>,
    clock: Clock,
}

/// Mounts tracefs at /sys/kernel/tracing if nothing is mounted there (the names of the kernel's
/// RST reasons are read from it; some minimal systems do not mount it).
pub fn ensure_tracefs() -> Result<(), RecorderError> {
    let dir = Path::new("/sys/kernel/tracing");
    if dir.join("events").exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src, target, fstype) = (c("tracefs"), c("/sys/kernel/tracing"), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; a failed mount is reported, not assumed.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(RecorderError::Tracefs(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Where cgroup v2 is mounted (the root the cgroup hooks attach to).
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_dev, path, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(path))
    })
}

impl Probes {
    /// Loads the object with `opts`' filters and ring size and attaches every program (must
    /// run inside a tokio runtime: the ring buffer is polled through it).
    pub fn load(opts: &RecordOptions) -> Result<Probes, RecorderError> {
        let ring_bytes = opts.ring_buffer_bytes;
        if ring_bytes < 4096 || !ring_bytes.is_power_of_two() {
            return Err(RecorderError::RingSize(ring_bytes));
        }
        if let Err(e) = raise_memlock() {
            tracing::debug!(error = %e, "cannot raise RLIMIT_MEMLOCK");
        }
        let k = opts.filters.kernel_globals();
        let cgroup2 = cgroup2_root();
        let mut workloads = Workloads::new(WorkloadConfig { cgroup2_root: cgroup2.clone(), ..Default::default() });
        tracing::debug!(found = %workloads.summary(), "container runtimes");
        // Resolved before anything attaches: with a cgroup filter on, the kernel side records
        // nothing of a cgroup until it is in the table.
        let wanted_cgroups =
            if opts.filters.by_cgroup() { Some(resolve_cgroups(&mut workloads, &opts.filters, true)?) } else { None };
        // Raw tracepoints need no tracefs, but the reset-reason names and `doctor` read it.
        if let Err(e) = ensure_tracefs() {
            tracing::debug!(error = %error_chain(&e), "tracefs unavailable");
        }
        let mut ebpf = EbpfLoader::new()
            .override_global("filter_pids", &k.pids, true)
            .override_global("filter_npids", &k.npids, true)
            .override_global("filter_comms", &k.comms, true)
            .override_global("filter_ncomms", &k.ncomms, true)
            .override_global("filter_ports", &k.ports, true)
            .override_global("filter_nports", &k.nports, true)
            .override_global("filter_by_cgroup", &k.by_cgroup, true)
            .override_global("filter_by_netns", &k.by_netns, true)
            .override_global("wakeup_bytes", &(u64::from(ring_bytes) / 8), true)
            .override_global("connect_errors", &u32::from(opts.connect_errors), true)
            .map_max_entries("events", ring_bytes)
            .map_max_entries("tcp_conns", opts.tcp_table)
            // `peers` is task-local storage, which aya has no map type for; only the kernel
            // side uses it, so it is created as it is and never opened from here.
            .allow_unsupported_maps()
            .load(OBJECT)
            .map_err(RecorderError::load)?;
        let map_err = |name: &'static str| move |e| RecorderError::Map(name, Box::new(e));
        let take = |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(RecorderError::MissingMap(name));
        {
            let mut m: BpfHashMap<_, u32, u8> =
                BpfHashMap::try_from(ebpf.map_mut("filter_netns").ok_or(RecorderError::MissingMap("filter_netns"))?)
                    .map_err(map_err("filter_netns"))?;
            for &ns in opts.filters.netns() {
                m.insert(ns, 1, 0).map_err(map_err("filter_netns"))?;
            }
        }
        let filter_cgroups = match wanted_cgroups {
            Some(ids) => {
                let mut m: BpfHashMap<_, u64, u8> =
                    BpfHashMap::try_from(take(&mut ebpf, "filter_cgroups")?).map_err(map_err("filter_cgroups"))?;
                for &id in &ids {
                    m.insert(id, 1, 0).map_err(map_err("filter_cgroups"))?;
                }
                Some((m, ids))
            }
            None => None,
        };

        let mut missing = Vec::new();
        for name in &opts.leave_out {
            let known = TRACEPOINTS.iter().map(|t| t.0).chain(CGROUP_HOOKS.iter().map(|h| h.0));
            if name == "handle_set_state" || !known.clone().any(|p| p == name) {
                return Err(RecorderError::LeaveOut(name.clone()));
            }
        }
        // The pre-packet connect failures are opt-in (--connect-errors): not attached, and not
        // missing either.
        let off = |prog: &str| !opts.connect_errors && CONNECT_ERROR_PROGRAMS.contains(&prog);
        let left_out = |prog: &str| opts.leave_out.iter().any(|p| p == prog);
        let btf = Btf::from_sys_fs().map_err(RecorderError::Btf)?;
        // Not attached by choice: the opt-in ones say nothing, the left-out ones are missing.
        let skip = |prog: &str, what: &dyn Fn() -> String, effect: &'static str, missing: &mut Vec<Missing>| {
            if left_out(prog) && !off(prog) {
                missing.push(Missing { what: what(), effect, error: "--leave-out".into() });
            }
            off(prog) || left_out(prog)
        };
        for &(prog, category, event, effect) in TRACEPOINTS {
            if skip(prog, &|| format!("tracepoint {category}:{event}"), effect, &mut missing) {
                continue;
            }
            if let Err(e) = attach_tracepoint(&mut ebpf, &btf, prog, category, event) {
                if prog == "handle_set_state" {
                    return Err(e);
                }
                missing.push(Missing {
                    what: format!("tracepoint {category}:{event}"),
                    effect,
                    error: error_chain(&e),
                });
            }
        }
        match &cgroup2 {
            Some(root) => {
                for &(prog, effect) in CGROUP_HOOKS {
                    if skip(prog, &|| format!("cgroup hook {prog}"), effect, &mut missing) {
                        continue;
                    }
                    if let Err(e) = attach_cgroup(&mut ebpf, prog, root) {
                        missing.push(Missing { what: format!("cgroup hook {prog}"), effect, error: error_chain(&e) });
                    }
                }
            }
            None => {
                for &(prog, effect) in CGROUP_HOOKS.iter().filter(|h| !off(h.0)) {
                    missing.push(Missing {
                        what: format!("cgroup hook {prog}"),
                        effect,
                        error: "no cgroup v2 mount found in /proc/self/mounts".into(),
                    });
                }
            }
        }
        for m in &missing {
            tracing::debug!(missing = %m.what, effect = m.effect, error = %m.error, "recording without it");
        }

        let ring = RingBuf::try_from(take(&mut ebpf, "events")?).map_err(map_err("events"))?;
        let lost = PerCpuArray::try_from(take(&mut ebpf, "lost")?).map_err(map_err("lost"))?;
        let udp_flows = BpfHashMap::try_from(take(&mut ebpf, "udp_flows")?).map_err(map_err("udp_flows"))?;
        let udp_socks = BpfHashMap::try_from(take(&mut ebpf, "udp_socks")?).map_err(map_err("udp_socks"))?;
        let listeners = BpfHashMap::try_from(take(&mut ebpf, "listeners")?).map_err(map_err("listeners"))?;
        // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open and the same for as
        // long as it is registered.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| RecorderError::Poll(e.into()))?;
        Ok(Probes {
            ebpf,
            ring,
            lost,
            udp_flows,
            udp_socks,
            listeners,
            diag: crate::netns::DiagSockets::default(),
            workloads,
            filters: opts.filters.clone(),
            filter_cgroups,
            missing,
            cgroup2,
            clock: Clock::now(),
        })
    }
}

impl Probes {
    fn try_want_preexisting(&mut self, wanted: &[TcpSocket]) -> Result<(), RecorderError> {
        const MAP: &str = "wanted_preexisting";
        const READY: &str = "preexisting_ready";
        let map_err = |name: &'static str| move |e| RecorderError::Map(name, Box::new(e));
        let map = self.ebpf.map_mut(MAP).ok_or(RecorderError::MissingMap(MAP))?;
        let mut map = BpfHashMap::<_, Tuple, u8>::try_from(map).map_err(map_err(MAP))?;
        for s in wanted {
            let t = TcpTuple::new(s.netns, s.local, s.local_port, s.remote, s.remote_port);
            map.insert(Tuple(t), 1, 0).map_err(map_err(MAP))?;
        }
        let ready = self.ebpf.map_mut(READY).ok_or(RecorderError::MissingMap(READY))?;
        let mut ready = Array::<_, u32>::try_from(ready).map_err(map_err(READY))?;
        ready.set(0, 1, 0).map_err(map_err(READY))
    }
}

impl Kernel for Probes {
    fn drain(&mut self, each: &mut dyn FnMut(&[u8])) {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            each(&item);
        }
    }

    async fn wait(&mut self, timeout: Duration) -> std::io::Result<()> {
        match tokio::time::timeout(timeout, self.ring.readable_mut()).await {
            Ok(Ok(mut guard)) => {
                guard.clear_ready();
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => Ok(()),
        }
    }

    fn lost(&self) -> Lost {
        let slot = |i| self.lost.get(&i, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0);
        Lost { ring: slot(raw::LOST_RINGBUF), table: slot(raw::LOST_TABLE) }
    }

    fn udp_flows(&self) -> Vec<(UdpKey, UdpFlow)> {
        self.udp_flows.iter().filter_map(Result::ok).map(|(k, v)| (k.0, v.0)).collect()
    }

    fn udp_sockets(&self) -> HashSet<u64> {
        self.udp_socks.keys().filter_map(Result::ok).collect()
    }

    fn take_udp_flows(&mut self, sk: u64) -> Vec<UdpFlow> {
        let keys: Vec<Key> = self.udp_flows.keys().filter_map(Result::ok).filter(|k| k.0.sk == sk).collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Ok(v) = self.udp_flows.get(&k, 0) {
                out.push(v.0);
            }
            // Gone already if the kernel removed it meanwhile: nothing to undo.
            let _ = self.udp_flows.remove(&k);
        }
        out
    }

    fn tcp_sockets(&mut self, states: u32, with_info: bool) -> std::io::Result<Vec<TcpSocket>> {
        // Namespaces come and go with containers: looked for at every dump (a /proc scan).
        self.diag.refresh();
        self.diag.dump_tcp(states, with_info)
    }

    fn tcp_sockets_of(&mut self, wanted: &[sockdiag::Tuple]) -> std::io::Result<Vec<TcpSocket>> {
        self.diag.query_tcp(wanted)
    }

    fn socket_owners(&mut self) -> HashMap<u64, ProcOwner> {
        sockdiag::socket_owners(self.cgroup2.as_deref())
    }

    fn set_listener_owner(&mut self, key: ListenerKey, o: &ProcOwner, sockets: u32) {
        let mut comm = [0u8; raw::COMM_LEN];
        let n = o.comm.len().min(comm.len() - 1);
        comm[..n].copy_from_slice(&o.comm.as_bytes()[..n]);
        let owner = Owner { cgroup_id: o.cgroup_id, pid: o.pid, _pad: 0, comm };
        let value = Listener { owner, sockets, _pad: 0 };
        if let Err(e) = self.listeners.insert(ListenerKeyPod(key), ListenerPod(value), 0) {
            tracing::debug!(port = key.port, netns = key.netns, error = %e, "cannot prefill a listener's owner");
        }
    }

    fn want_preexisting(&mut self, wanted: &[TcpSocket]) {
        if let Err(e) = self.try_want_preexisting(wanted) {
            tracing::debug!(error = %error_chain(&e), wanted = wanted.len(), "the kernel filters no untracked events");
        }
    }

    fn note_cgroup(&mut self, cgroup_id: u64) {
        self.workloads.note(cgroup_id);
    }

    fn workload(&mut self, cgroup_id: u64) -> std::sync::Arc<gespann_common::Workload> {
        self.workloads.get(cgroup_id)
    }

    fn filter_cgroups(&mut self) -> Option<HashSet<u64>> {
        let (map, ids) = self.filter_cgroups.as_mut()?;
        match resolve_cgroups(&mut self.workloads, &self.filters, false) {
            Ok(now) => {
                for &id in now.difference(ids) {
                    match map.insert(id, 1, 0) {
                        Ok(()) => tracing::info!(cgroup_id = id, "a cgroup the filters match appeared: recording it"),
                        Err(e) => {
                            tracing::warn!(cgroup_id = id, error = %e, "cannot add a cgroup to the kernel's filter table")
                        }
                    }
                }
                ids.extend(now);
            }
            Err(e) => tracing::debug!(error = %error_chain(&e), "cannot look for new cgroups"),
        }
        Some(ids.clone())
    }

    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }

    fn clock(&self) -> Clock {
        self.clock
    }

    fn reset_reasons(&self) -> ResetReasons {
        ResetReasons::load()
    }

    fn missing(&self) -> &[Missing] {
        &self.missing
    }
}

/// The cgroup ids `--cgroup` and `--container` name now (a cgroup and all below it). At
/// `start`, a `--cgroup` path that does not exist is an error and a container that matches
/// nothing yet a warning (it may start while recording).
fn resolve_cgroups(workloads: &mut Workloads, filters: &Filters, start: bool) -> Result<HashSet<u64>, RecorderError> {
    let mut ids = HashSet::new();
    for path in filters.cgroups() {
        match workloads.cgroup_ids_under(path) {
            Ok(v) => ids.extend(v),
            Err(source) if start => return Err(RecorderError::NoSuchCgroup { path: path.clone(), source }),
            Err(_) => {}
        }
    }
    for want in filters.containers() {
        let found = workloads.container_cgroups(want);
        if found.is_empty() && start {
            tracing::warn!(container = %want, "no container matches `{want}` yet: recording it once it starts");
        }
        ids.extend(found.into_iter().map(|(id, _)| id));
    }
    Ok(ids)
}

fn raise_memlock() -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches a program to a kernel tracepoint: as a raw tracepoint (the tracepoint's own
/// arguments, no trace record formatted per call), except for syscall tracepoints.
fn attach_tracepoint(ebpf: &mut Ebpf, btf: &Btf, prog: &str, category: &str, event: &str) -> Result<(), RecorderError> {
    let err = |e: aya::programs::ProgramError| RecorderError::Attach {
        program: prog.to_owned(),
        target: format!("{category}:{event}"),
        source: Box::new(e),
    };
    let p = ebpf.program_mut(prog).ok_or_else(|| RecorderError::MissingProgram(prog.to_owned()))?;
    if category == "syscalls" {
        // Syscall tracepoints have no raw form of their own (only the all-syscalls
        // raw_syscalls:sys_exit, which would run for every syscall).
        let p: &mut TracePoint = p.try_into().map_err(err)?;
        p.load().map_err(err)?;
        p.attach(category, event).map_err(err)?;
    } else {
        // tp_btf: typed by the kernel's BTF (`btf_trace_<event>`), attached like a raw
        // tracepoint.
        let p: &mut BtfTracePoint = p.try_into().map_err(err)?;
        p.load(event, btf).map_err(err)?;
        p.attach().map_err(err)?;
    }
    Ok(())
}

/// Attached as bpf links, which the kernel always lets coexist with other programs (links
/// take no attach flags; `Single` maps to none).
fn attach_cgroup(ebpf: &mut Ebpf, prog: &str, root: &Path) -> Result<(), RecorderError> {
    let cgroup = File::open(root).map_err(|e| RecorderError::Cgroup { path: root.to_owned(), source: e })?;
    let err = |e: aya::programs::ProgramError| RecorderError::Attach {
        program: prog.to_owned(),
        target: root.display().to_string(),
        source: Box::new(e),
    };
    let p = ebpf.program_mut(prog).ok_or_else(|| RecorderError::MissingProgram(prog.to_owned()))?;
    if prog == "sock_release" {
        let p: &mut CgroupSock = p.try_into().map_err(err)?;
        p.load().map_err(err)?;
        p.attach(&cgroup, CgroupAttachMode::Single).map_err(err)?;
    } else {
        let p: &mut CgroupSockAddr = p.try_into().map_err(err)?;
        p.load().map_err(err)?;
        p.attach(&cgroup, CgroupAttachMode::Single).map_err(err)?;
    }
    Ok(())
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
