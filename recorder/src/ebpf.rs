//! The one seam to the kernel: loads `recorder-ebpf/gespann.bpf.o` with aya, sets the filters,
//! attaches every program, and hands out the ring buffer and the maps user space reads.

use std::fs::File;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{CgroupAttachMode, CgroupSock, CgroupSockAddr, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader, Pod};
use gespann_common::raw::{self, TcpTuple, UdpFlow, UdpKey};

use crate::RecorderError;

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

/// `UdpKey`/`UdpFlow` as aya map types.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Key(pub UdpKey);
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Flow(pub UdpFlow);
/// `TcpTuple` as an aya map key.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Tuple(pub TcpTuple);
// SAFETY: repr(transparent) over repr(C) structs of integers without padding.
unsafe impl Pod for Key {}
// SAFETY: as above.
unsafe impl Pod for Tuple {}
// SAFETY: as above.
unsafe impl Pod for Flow {}

/// Kernel-side filters (empty: record everything).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub ports: Vec<u16>,
}

/// A feature that could not be attached, and what the recording lacks because of it.
#[derive(Clone, Debug)]
pub struct Missing {
    pub what: String,
    pub effect: &'static str,
    pub error: String,
}

pub struct Probes {
    pub ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    pub lost: PerCpuArray<MapData, u64>,
    pub udp_flows: BpfHashMap<MapData, Key, Flow>,
    pub missing: Vec<Missing>,
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
    pub fn load(filters: &Filters, ring_bytes: u32) -> Result<Probes, RecorderError> {
        if filters.pids.len() > raw::MAX_PIDS
            || filters.comms.len() > raw::MAX_COMMS
            || filters.ports.len() > raw::MAX_PORTS
        {
            return Err(RecorderError::TooManyFilters {
                pids: raw::MAX_PIDS,
                comms: raw::MAX_COMMS,
                ports: raw::MAX_PORTS,
            });
        }
        let mut pids = [0u32; raw::MAX_PIDS];
        pids[..filters.pids.len()].copy_from_slice(&filters.pids);
        let mut comms = [[0u8; raw::COMM_LEN]; raw::MAX_COMMS];
        for (slot, c) in comms.iter_mut().zip(&filters.comms) {
            let b = c.as_bytes();
            let n = b.len().min(raw::COMM_LEN - 1);
            slot[..n].copy_from_slice(&b[..n]);
        }
        let mut ports = [0u16; raw::MAX_PORTS];
        ports[..filters.ports.len()].copy_from_slice(&filters.ports);
        let (npids, ncomms, nports) =
            (filters.pids.len() as u32, filters.comms.len() as u32, filters.ports.len() as u32);

        // Raw tracepoints need no tracefs, but the reset-reason names and `doctor` read it.
        if let Err(e) = ensure_tracefs() {
            tracing::debug!(error = %error_chain(&e), "tracefs unavailable");
        }
        let mut ebpf = EbpfLoader::new()
            .override_global("filter_pids", &pids, true)
            .override_global("filter_npids", &npids, true)
            .override_global("filter_comms", &comms, true)
            .override_global("filter_ncomms", &ncomms, true)
            .override_global("filter_ports", &ports, true)
            .override_global("filter_nports", &nports, true)
            .override_global("wakeup_bytes", &(u64::from(ring_bytes) / 8), true)
            .map_max_entries("events", ring_bytes)
            .load(OBJECT)
            .map_err(RecorderError::load)?;

        let mut missing = Vec::new();
        for &(prog, category, event, effect) in TRACEPOINTS {
            if let Err(e) = attach_tracepoint(&mut ebpf, prog, category, event) {
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
        match cgroup2_root() {
            Some(root) => {
                for &(prog, effect) in CGROUP_HOOKS {
                    if let Err(e) = attach_cgroup(&mut ebpf, prog, &root) {
                        missing.push(Missing { what: format!("cgroup hook {prog}"), effect, error: error_chain(&e) });
                    }
                }
            }
            None => {
                for &(prog, effect) in CGROUP_HOOKS {
                    missing.push(Missing {
                        what: format!("cgroup hook {prog}"),
                        effect,
                        error: "no cgroup v2 mount found in /proc/self/mounts".into(),
                    });
                }
            }
        }

        let take = |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(RecorderError::MissingMap(name));
        let ring =
            RingBuf::try_from(take(&mut ebpf, "events")?).map_err(|e| RecorderError::Map("events", Box::new(e)))?;
        let lost =
            PerCpuArray::try_from(take(&mut ebpf, "lost")?).map_err(|e| RecorderError::Map("lost", Box::new(e)))?;
        let udp_flows = BpfHashMap::try_from(take(&mut ebpf, "udp_flows")?)
            .map_err(|e| RecorderError::Map("udp_flows", Box::new(e)))?;
        Ok(Probes { ebpf, ring, lost, udp_flows, missing })
    }
}

/// With owner filters (`--pid`, `--comm`), tells the kernel which connections older than the
/// recording are wanted: their owners are known here (from sock_diag), not there. The kernel then
/// drops the closes and retransmits of every other socket it does not track (connections the
/// filters left out) instead of sending them for user space to drop. Until the list is complete,
/// and for good if it cannot be (more than its table holds), the kernel sends them all, as without
/// the list: nothing is lost either way.
pub fn want_preexisting(ebpf: &mut Ebpf, wanted: &[crate::sockdiag::TcpSocket]) -> Result<(), RecorderError> {
    const MAP: &str = "wanted_preexisting";
    const READY: &str = "preexisting_ready";
    let map = ebpf.map_mut(MAP).ok_or(RecorderError::MissingMap(MAP))?;
    let mut map = BpfHashMap::<_, Tuple, u8>::try_from(map).map_err(|e| RecorderError::Map(MAP, Box::new(e)))?;
    for s in wanted {
        let t = TcpTuple::new(s.local, s.local_port, s.remote, s.remote_port);
        if let Err(e) = map.insert(Tuple(t), 1, 0) {
            tracing::debug!(error = %e, wanted = wanted.len(), "the kernel filters no untracked events");
            return Ok(());
        }
    }
    let ready = ebpf.map_mut(READY).ok_or(RecorderError::MissingMap(READY))?;
    let mut ready = Array::<_, u32>::try_from(ready).map_err(|e| RecorderError::Map(READY, Box::new(e)))?;
    ready.set(0, 1, 0).map_err(|e| RecorderError::Map(READY, Box::new(e)))
}

/// Attaches a program to a kernel tracepoint: as a raw tracepoint (the tracepoint's own
/// arguments, no trace record formatted per call), except for syscall tracepoints.
fn attach_tracepoint(ebpf: &mut Ebpf, prog: &str, category: &str, event: &str) -> Result<(), RecorderError> {
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
        let p: &mut RawTracePoint = p.try_into().map_err(err)?;
        p.load().map_err(err)?;
        p.attach(event).map_err(err)?;
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
