//! The recorder: loads the kernel side, drains its ring buffer and turns raw kernel events into
//! recording rows ([`gespann_common::Event`]).
//!
//! Shaped around one seam to the kernel ([`ebpf::Probes`]) and pure logic behind it
//! ([`tracker::Tracker`]), so everything but loading is tested without root. The kernel reports
//! lifecycle transitions (open, close, reset, failed, retransmit) with counters read from the
//! socket at that moment; user space adds what tracepoints cannot give: connections already
//! open at start and exact periodic samples (both from sock_diag, the kernel's `ss` interface),
//! and the time order of rows (a short reorder window, since CPUs fill the ring buffer
//! concurrently and some facts arrive as amendments just after the row they change).
//!
//! ```ignore
//! let mut rec = Recorder::start(&RecordOptions::default())?;   // needs root / CAP_BPF+CAP_PERFMON
//! loop { let events = rec.next_events().await?; /* in time order, may be empty */ }
//! let last = rec.finish()?;                                     // final samples of open connections
//! ```

pub mod doctor;
pub mod ebpf;
pub mod sockdiag;
pub mod tracker;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use gespann_common::Event;
use gespann_common::raw::RawEvent;
use tokio::io::unix::AsyncFd;

use crate::ebpf::{Filters, Missing, Probes};
use crate::tracker::{Clock, Followup, ResetReasons, Tracker, monotonic_ns};

/// How long rows wait in user space so that rows from different CPUs, and amendments, can be
/// put in order before they are handed out.
pub const REORDER_WINDOW: Duration = Duration::from_millis(500);
/// How often [`Recorder::next_events`] drains the ring buffer and returns. The kernel wakes
/// the reader only when an eighth of the buffer is full, so this timer does most draining.
const TICK: Duration = Duration::from_millis(100);

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub ports: Vec<u16>,
    pub sample_interval: Duration,
    /// Ring buffer size in bytes: a power of two, at least a page.
    pub ring_buffer_bytes: u32,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            pids: vec![],
            comms: vec![],
            ports: vec![],
            sample_interval: Duration::from_secs(1),
            ring_buffer_bytes: 16 << 20,
        }
    }
}

/// Running totals.
#[derive(Clone, Debug, Default)]
pub struct RecorderStats {
    /// Rows produced so far (including rows still in the reorder window).
    pub events: u64,
    /// Kernel-side losses: ring-buffer reserve failures and connections the table had no room for.
    pub events_lost: u64,
    pub open_connections: usize,
    /// Kernel events about sockets the recorder could not attribute (dropped).
    pub unattributed: u64,
    /// Kernel records of a kind this build does not know (dropped).
    pub unknown_records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(
        "permission denied loading eBPF programs: run as root (sudo) or grant CAP_BPF and CAP_PERFMON (plus CAP_NET_ADMIN for the cgroup hooks)"
    )]
    Permission(#[source] Box<aya::EbpfError>),
    #[error("cannot load the eBPF object")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("cannot mount tracefs at /sys/kernel/tracing (needed to find tracepoints)")]
    Tracefs(#[source] std::io::Error),
    #[error("failed to attach `{program}` to {target}")]
    Attach {
        program: String,
        target: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("the eBPF object has no program `{0}` (stale object?)")]
    MissingProgram(String),
    #[error("the eBPF object has no map `{0}` (stale object?)")]
    MissingMap(&'static str),
    #[error("cannot use map `{0}`")]
    Map(&'static str, #[source] Box<aya::maps::MapError>),
    #[error("cannot open cgroup v2 root `{path}`")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("too many filters: at most {pids} --pid, {comms} --comm and {ports} --port")]
    TooManyFilters { pids: usize, comms: usize, ports: usize },
    #[error("ring buffer size {0} is not a power of two of at least 4096 bytes")]
    RingSize(u32),
    #[error("cannot poll the ring buffer")]
    Poll(#[source] std::io::Error),
    #[error("sock_diag netlink dump failed")]
    SockDiag(#[source] std::io::Error),
}

impl RecorderError {
    fn load(e: aya::EbpfError) -> RecorderError {
        let text = format!("{e:?}");
        if text.contains("EPERM") || text.contains("PermissionDenied") || text.contains("Operation not permitted") {
            RecorderError::Permission(Box::new(e))
        } else {
            RecorderError::Load(Box::new(e))
        }
    }

    /// True when the cause is missing privileges.
    pub fn is_permission(&self) -> bool {
        match self {
            RecorderError::Permission(_) => true,
            RecorderError::Attach { source, .. } => {
                format!("{source:?}").contains("EPERM") || format!("{source:?}").contains("PermissionDenied")
            }
            _ => false,
        }
    }
}

/// A running recording. Dropping it detaches every program.
pub struct Recorder {
    ring: AsyncFd<aya::maps::RingBuf<aya::maps::MapData>>,
    probes_rest: ProbesRest,
    tracker: Tracker,
    sample_interval: Duration,
    next_sample: u64,
    next_tick: u64,
    listening: HashSet<u16>,
}

/// The parts of [`Probes`] other than the ring buffer (which moved into the `AsyncFd`).
struct ProbesRest {
    _ebpf: aya::Ebpf,
    lost: aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    udp_flows: aya::maps::HashMap<aya::maps::MapData, ebpf::Key, ebpf::Flow>,
    missing: Vec<Missing>,
}

impl Recorder {
    /// Loads and attaches the probes, then snapshots the connections already open.
    pub fn start(opts: &RecordOptions) -> Result<Recorder, RecorderError> {
        let size = opts.ring_buffer_bytes;
        if size < 4096 || !size.is_power_of_two() {
            return Err(RecorderError::RingSize(size));
        }
        let _ = raise_memlock();
        let filters = Filters { pids: opts.pids.clone(), comms: opts.comms.clone(), ports: opts.ports.clone() };
        let Probes { ebpf, ring, lost, udp_flows, missing } = Probes::load(&filters, size)?;
        for m in &missing {
            tracing::debug!(missing = %m.what, effect = m.effect, error = %m.error, "recording without it");
        }
        // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open for as long as it is registered.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| RecorderError::Poll(std::io::Error::other(e.to_string())))?;
        let mut tracker = Tracker::new(Clock::now(), ResetReasons::load());

        // Connections already open: one `open` row each (preexisting), with counters so far.
        let cgroot = ebpf::cgroup2_root();
        let listeners = sockdiag::dump_tcp(sockdiag::LISTEN, false).map_err(RecorderError::SockDiag)?;
        let listening: HashSet<u16> = listeners.iter().map(|s| s.local_port).collect();
        let established = sockdiag::dump_tcp(sockdiag::ESTABLISHED_LIKE, true).map_err(RecorderError::SockDiag)?;
        let owners = sockdiag::socket_owners(cgroot.as_deref());
        let mut rest = ProbesRest { _ebpf: ebpf, lost, udp_flows, missing };
        prefill_listeners(&mut rest._ebpf, &listeners, &owners);
        let filtered: Vec<_> = established
            .into_iter()
            .filter(|s| {
                let o = owners.get(&s.inode);
                (opts.ports.is_empty() || opts.ports.contains(&s.local_port) || opts.ports.contains(&s.remote_port))
                    && (opts.pids.is_empty() || o.is_some_and(|o| opts.pids.contains(&o.pid)))
                    && (opts.comms.is_empty()
                        || o.is_some_and(|o| {
                            opts.comms.iter().any(|c| c.starts_with(&o.comm) && o.comm.len() >= c.len().min(15))
                        }))
            })
            .collect();
        tracker.add_preexisting(&filtered, &owners, &listening, monotonic_ns());
        if !opts.pids.is_empty() || !opts.comms.is_empty() {
            ebpf::want_preexisting(&mut rest._ebpf, &filtered)?;
        }

        let now = monotonic_ns();
        Ok(Recorder {
            ring,
            probes_rest: rest,
            tracker,
            sample_interval: opts.sample_interval,
            next_sample: now + opts.sample_interval.as_nanos() as u64,
            next_tick: now + TICK.as_nanos() as u64,
            listening,
        })
    }

    /// What could not be attached on this kernel, and what the recording lacks because of it.
    pub fn missing(&self) -> &[Missing] {
        &self.probes_rest.missing
    }

    /// Waits for the next events (at most about 200 ms) and returns them in time order.
    pub async fn next_events(&mut self) -> Result<Vec<Event>, RecorderError> {
        loop {
            let now = monotonic_ns();
            if now >= self.next_tick {
                self.drain_ring();
                self.periodic(now, false)?;
                self.next_tick = now + TICK.as_nanos() as u64;
                let watermark = now.saturating_sub(REORDER_WINDOW.as_nanos() as u64);
                return Ok(self.tracker.drain_ready(watermark));
            }
            let wait = Duration::from_nanos(self.next_tick - now);
            match tokio::time::timeout(wait, self.ring.readable_mut()).await {
                Ok(Ok(mut guard)) => {
                    guard.clear_ready();
                    drop(guard);
                    self.drain_ring();
                }
                Ok(Err(e)) => return Err(RecorderError::Poll(e)),
                Err(_) => {}
            }
        }
    }

    fn drain_ring(&mut self) {
        let mut releases = Vec::new();
        {
            let ring = self.ring.get_mut();
            while let Some(item) = ring.next() {
                let Some(raw) = RawEvent::from_bytes(&item) else { continue };
                tracing::trace!(
                    kind = raw.kind,
                    conn_id = raw.conn_id,
                    flags = raw.flags,
                    sport = raw.sport,
                    dport = raw.dport,
                    "raw event"
                );
                if let Followup::ReleaseUdpSocket(sk) = self.tracker.on_raw(&raw) {
                    releases.push(sk);
                }
            }
        }
        for sk in releases {
            let now = monotonic_ns();
            for flow in take_udp_flows_of(&mut self.probes_rest.udp_flows, sk) {
                self.tracker.udp_flow_ended(&flow, now);
            }
        }
    }

    fn periodic(&mut self, now: u64, force: bool) -> Result<(), RecorderError> {
        if !force && now < self.next_sample {
            return Ok(());
        }
        self.next_sample = now + self.sample_interval.as_nanos() as u64;
        let socks = sockdiag::dump_tcp(sockdiag::ESTABLISHED_LIKE, true).map_err(RecorderError::SockDiag)?;
        let at = monotonic_ns();
        self.tracker.on_tcp_snapshot(&socks, at, force);
        let flows: Vec<_> = self.probes_rest.udp_flows.iter().filter_map(Result::ok).map(|(k, v)| (k.0, v.0)).collect();
        self.tracker.on_udp_snapshot(&flows, at, force);
        Ok(())
    }

    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            events: self.tracker.stats.rows,
            events_lost: lost_total(&self.probes_rest.lost),
            open_connections: self.tracker.open_connections(),
            unattributed: self.tracker.stats.untracked_dropped,
            unknown_records: self.tracker.stats.unknown_records,
        }
    }

    /// Ports that were listening at start (for callers that label roles).
    pub fn listening_ports(&self) -> &HashSet<u16> {
        &self.listening
    }

    /// Ends the recording: drains the kernel, and returns the remaining events, including one
    /// final `sample` for every connection still open.
    pub fn finish(mut self) -> Result<Vec<Event>, RecorderError> {
        // Let in-flight events land, then take everything.
        std::thread::sleep(Duration::from_millis(20));
        self.drain_ring();
        self.periodic(monotonic_ns(), true)?;
        self.drain_ring();
        Ok(self.tracker.drain_all())
    }
}

fn lost_total(lost: &aya::maps::PerCpuArray<aya::maps::MapData, u64>) -> u64 {
    let mut total = 0;
    for slot in [gespann_common::raw::LOST_RINGBUF, gespann_common::raw::LOST_TABLE] {
        if let Ok(values) = lost.get(&slot, 0) {
            total += values.iter().sum::<u64>();
        }
    }
    total
}

fn take_udp_flows_of(
    map: &mut aya::maps::HashMap<aya::maps::MapData, ebpf::Key, ebpf::Flow>,
    sk: u64,
) -> Vec<gespann_common::raw::UdpFlow> {
    let keys: Vec<ebpf::Key> = map.keys().filter_map(Result::ok).filter(|k| k.0.sk == sk).collect();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Ok(v) = map.get(&k, 0) {
            out.push(v.0);
        }
        let _ = map.remove(&k);
    }
    out
}

/// Tells the kernel who owns the sockets that were listening before the recording started, so
/// that connections they accept get an owner at once.
fn prefill_listeners(
    ebpf: &mut aya::Ebpf,
    listeners: &[sockdiag::TcpSocket],
    owners: &std::collections::HashMap<u64, sockdiag::ProcOwner>,
) {
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    struct O(gespann_common::raw::Owner);
    // SAFETY: repr(transparent) over a repr(C) struct of integers without padding.
    unsafe impl aya::Pod for O {}
    let Some(map) = ebpf.map_mut("listeners") else {
        return;
    };
    let Ok(mut map) = aya::maps::HashMap::<_, u16, O>::try_from(map) else {
        return;
    };
    for l in listeners {
        let Some(o) = owners.get(&l.inode) else {
            continue;
        };
        let mut comm = [0u8; gespann_common::raw::COMM_LEN];
        let n = o.comm.len().min(comm.len() - 1);
        comm[..n].copy_from_slice(&o.comm.as_bytes()[..n]);
        let owner = gespann_common::raw::Owner { cgroup_id: o.cgroup_id, pid: o.pid, _pad: 0, comm };
        let _ = map.insert(l.local_port, O(owner), 0);
    }
}

fn raise_memlock() -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
