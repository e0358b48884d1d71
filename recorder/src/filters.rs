//! What to record: the filters the kernel applies, and their user-space copy.
//!
//! One definition of the matching rules, validated once: the values become read-only globals of
//! the BPF object ([`Filters::kernel_globals`]) and its `filter_cgroups`/`filter_netns` maps, and
//! the same rules decide, in user space, which connections already open at start are recorded
//! ([`Filters::wants`]), so both sides agree. Containers and cgroup paths are names; the kernel
//! compares cgroup ids, which the kernel seam resolves them to (and keeps resolving while
//! recording, for containers that start later).

use std::collections::HashSet;
use std::time::Duration;

use gespann_common::raw::{COMM_LEN, MAX_COMMS, MAX_PIDS, MAX_PORTS};

use crate::error::RecorderError;

/// Kernel-side filters; empty kinds match everything. A connection is kept if it matches
/// every kind given (any value within a kind).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pids: Vec<u32>,
    comms: Vec<String>,
    ports: Vec<u16>,
    /// `--netns`: network namespace inodes.
    netns: Vec<u32>,
    /// `--cgroup`: cgroup v2 paths (with their descendants).
    cgroups: Vec<String>,
    /// `--container`: container ids, id prefixes or names.
    containers: Vec<String>,
}

/// A socket's owner as the filters see it.
#[derive(Clone, Copy, Debug)]
pub struct OwnerView<'a> {
    pub pid: u32,
    pub comm: &'a str,
    pub cgroup_id: u64,
}

/// The significant part of a command name: the kernel keeps 15 bytes (`TASK_COMM_LEN` - 1).
fn comm_prefix(name: &str) -> &[u8] {
    let b = name.as_bytes();
    &b[..b.len().min(COMM_LEN - 1)]
}

impl Filters {
    /// Checks the counts against what the kernel side holds.
    pub fn new(pids: Vec<u32>, comms: Vec<String>, ports: Vec<u16>) -> Result<Filters, RecorderError> {
        if pids.len() > MAX_PIDS || comms.len() > MAX_COMMS || ports.len() > MAX_PORTS {
            return Err(RecorderError::TooManyFilters { pids: MAX_PIDS, comms: MAX_COMMS, ports: MAX_PORTS });
        }
        Ok(Filters { pids, comms, ports, ..Filters::default() })
    }

    /// Adds the namespace and workload filters (`--netns`, `--cgroup`, `--container`).
    pub fn with_places(mut self, netns: Vec<u32>, cgroups: Vec<String>, containers: Vec<String>) -> Filters {
        self.netns = netns;
        self.cgroups = cgroups;
        self.containers = containers;
        self
    }

    pub fn netns(&self) -> &[u32] {
        &self.netns
    }

    pub fn cgroups(&self) -> &[String] {
        &self.cgroups
    }

    pub fn containers(&self) -> &[String] {
        &self.containers
    }

    /// True when `--cgroup` or `--container` is set: only owners in the cgroups they resolve to.
    pub fn by_cgroup(&self) -> bool {
        !self.cgroups.is_empty() || !self.containers.is_empty()
    }

    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    pub fn comms(&self) -> &[String] {
        &self.comms
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// True when an owner filter (`--pid`, `--comm`, `--cgroup`, `--container`) is set.
    pub fn by_owner(&self) -> bool {
        !self.pids.is_empty() || !self.comms.is_empty() || self.by_cgroup()
    }

    /// The kernel's `owner_wanted`: the process id is listed (if any are), the command name,
    /// as the kernel keeps it, equals a listed one (if any are), and the owner's cgroup is one of
    /// `cgroups` (the ids the cgroup and container filters resolved to), if those filters are on.
    pub fn wants_owner(&self, o: OwnerView<'_>, cgroups: &HashSet<u64>) -> bool {
        (self.pids.is_empty() || self.pids.contains(&o.pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| comm_prefix(c) == comm_prefix(o.comm)))
            && (!self.by_cgroup() || cgroups.contains(&o.cgroup_id))
    }

    /// The kernel's `netns_wanted`.
    pub fn wants_netns(&self, netns: u32) -> bool {
        self.netns.is_empty() || self.netns.contains(&netns)
    }

    /// The kernel's `ports_wanted`: either port is listed (if any are).
    pub fn wants_ports(&self, local: u16, remote: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&local) || self.ports.contains(&remote)
    }

    /// Every rule; `owner` is `None` when no process holds the socket any more.
    pub fn wants(
        &self,
        local_port: u16,
        remote_port: u16,
        netns: u32,
        owner: Option<OwnerView<'_>>,
        cgroups: &HashSet<u64>,
    ) -> bool {
        self.wants_ports(local_port, remote_port)
            && self.wants_netns(netns)
            && (!self.by_owner() || owner.is_some_and(|o| self.wants_owner(o, cgroups)))
    }

    /// The values of the BPF object's `filter_*` globals.
    pub(crate) fn kernel_globals(&self) -> KernelFilters {
        let mut k = KernelFilters::default();
        k.pids[..self.pids.len()].copy_from_slice(&self.pids);
        for (slot, c) in k.comms.iter_mut().zip(&self.comms) {
            let b = comm_prefix(c);
            slot[..b.len()].copy_from_slice(b);
        }
        k.ports[..self.ports.len()].copy_from_slice(&self.ports);
        k.npids = self.pids.len() as u32;
        k.ncomms = self.comms.len() as u32;
        k.nports = self.ports.len() as u32;
        k.by_cgroup = u32::from(self.by_cgroup());
        k.by_netns = u32::from(!self.netns.is_empty());
        k
    }
}

/// The `filter_*` globals, as the object declares them.
#[derive(Debug, Default)]
pub(crate) struct KernelFilters {
    pub pids: [u32; MAX_PIDS],
    pub npids: u32,
    pub comms: [[u8; COMM_LEN]; MAX_COMMS],
    pub ncomms: u32,
    pub ports: [u16; MAX_PORTS],
    pub nports: u32,
    pub by_cgroup: u32,
    pub by_netns: u32,
}

/// How many TCP connections the kernel side tracks at once by default.
pub const DEFAULT_TCP_TABLE: u32 = 262_144;

/// What to record, validated.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub filters: Filters,
    /// How often connections that moved get a `sample` row.
    pub sample_interval: Duration,
    /// Ring buffer size in bytes: a power of two, at least a page.
    pub ring_buffer_bytes: u32,
    /// Kernel programs not to attach (`cargo xtask bench-record --ablate` prices each this way).
    pub leave_out: Vec<String>,
    /// Also record connects refused before any packet (`--connect-errors`).
    pub connect_errors: bool,
    /// The kernel table's cap on TCP connections tracked at once (`--tcp-table`).
    pub tcp_table: u32,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            filters: Filters::default(),
            sample_interval: Duration::from_secs(1),
            ring_buffer_bytes: 16 << 20,
            leave_out: Vec::new(),
            connect_errors: false,
            tcp_table: DEFAULT_TCP_TABLE,
        }
    }
}

/// The options `gespann record` and `gespann replay --live` share, flattened into both.
#[derive(Clone, Debug, clap::Args)]
pub struct RecorderArgs {
    /// Only connections owned by this process id (repeatable, up to 8).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only connections owned by processes with this command name (repeatable, up to 8; the
    /// kernel compares the first 15 bytes).
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// Only connections with this local or remote port (repeatable, up to 16).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Only connections owned by processes of this container: a full id, an id prefix of at
    /// least 12 hex digits, or a name as `docker ps` / `podman ps` show it (repeatable). Found
    /// through the cgroup tree and the runtime's API socket at start; a matching container that
    /// starts while recording is added at the next sample (--sample-interval).
    #[arg(long = "container", value_name = "ID|NAME")]
    pub containers: Vec<String>,
    /// Only connections owned by processes in this cgroup v2 or below it: a path relative to
    /// the cgroup2 root as /proc/PID/cgroup shows it, e.g. /system.slice/nginx.service
    /// (repeatable).
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,
    /// Only connections in this network namespace: its inode number, as `ls -l
    /// /proc/PID/ns/net` or `lsns -t net` show it (repeatable).
    #[arg(long = "netns", value_name = "INODE")]
    pub netns: Vec<u32>,
    /// How often live connections that moved get a `sample` row.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub sample_interval: Duration,
    /// Kernel ring buffer size in MiB (a power of two). Larger absorbs bigger bursts.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub buffer_mib: u32,
    /// Also record connect() calls refused before any packet is sent, as `failed` rows with
    /// connect()'s errno: no route (ENETUNREACH), a cgroup or LSM veto (EACCES, EPERM), no free
    /// local port (EADDRNOTAVAIL; without this flag such a row has no error). Refusals by the
    /// peer (ECONNREFUSED) and timeouts are recorded either way. Off by default for its cost:
    /// it attaches syscalls:sys_exit_connect, which puts every syscall of every process on the
    /// host on the kernel's slower traced-syscall path while recording, and a cgroup hook on
    /// every connect() (about 1.2 µs of BPF per connection on top of that, measured by
    /// `cargo xtask bench-record`; README, Benchmarks).
    #[arg(long)]
    pub connect_errors: bool,
    /// Most TCP connections tracked at once (each end of a connection on this host counts).
    /// Entries are made as connections open (about 120 bytes of kernel memory each) and go
    /// when their socket does; a connection opening while the table is full is not recorded
    /// and is counted in events_lost.
    #[arg(long, default_value_t = DEFAULT_TCP_TABLE, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub tcp_table: u32,
    /// Do not attach this kernel program (repeatable): for measuring what each costs, as
    /// `cargo xtask bench-record --ablate` does. The recording lists it as missing.
    #[arg(long = "leave-out", value_name = "PROGRAM", hide = true)]
    pub leave_out: Vec<String>,
}

impl RecorderArgs {
    /// The validated options; each error names the flag.
    pub fn options(&self) -> Result<RecordOptions, RecorderError> {
        let filters = Filters::new(self.pids.clone(), self.comms.clone(), self.ports.clone())?.with_places(
            self.netns.clone(),
            self.cgroups.clone(),
            self.containers.clone(),
        );
        let ring = self
            .buffer_mib
            .checked_mul(1 << 20)
            .filter(|b| b.is_power_of_two())
            .ok_or(RecorderError::BufferMib(self.buffer_mib))?;
        if self.sample_interval.is_zero() {
            return Err(RecorderError::SampleInterval);
        }
        Ok(RecordOptions {
            filters,
            sample_interval: self.sample_interval,
            ring_buffer_bytes: ring,
            leave_out: self.leave_out.clone(),
            connect_errors: self.connect_errors,
            tcp_table: self.tcp_table,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pids: &[u32], comms: &[&str], ports: &[u16]) -> Filters {
        Filters::new(pids.to_vec(), comms.iter().map(|s| s.to_string()).collect(), ports.to_vec()).unwrap()
    }

    fn o(pid: u32, comm: &str) -> Option<OwnerView<'_>> {
        Some(OwnerView { pid, comm, cgroup_id: 1 })
    }

    #[test]
    fn no_filter_wants_everything_even_without_an_owner() {
        assert!(Filters::default().wants(1, 2, 3, None, &HashSet::new()));
    }

    #[test]
    fn every_kind_must_match_and_any_value_within_a_kind() {
        let x = f(&[10, 11], &["nginx"], &[443]);
        let none = HashSet::new();
        assert!(x.wants(443, 5000, 7, o(11, "nginx"), &none));
        assert!(x.wants(5000, 443, 7, o(10, "nginx"), &none));
        assert!(!x.wants(443, 5000, 7, o(12, "nginx"), &none), "pid");
        assert!(!x.wants(443, 5000, 7, o(10, "curl"), &none), "comm");
        assert!(!x.wants(80, 5000, 7, o(10, "nginx"), &none), "port");
        assert!(!x.wants(443, 5000, 7, None, &none), "an owner filter needs an owner");
        let y = x.clone().with_places(vec![7, 8], vec![], vec!["web".into()]);
        let k = y.kernel_globals();
        assert_eq!((k.by_cgroup, k.by_netns), (1, 1));
        assert!(y.by_owner());
        assert!(y.wants(443, 5000, 8, o(10, "nginx"), &HashSet::from([1])));
        assert!(!y.wants(443, 5000, 9, o(10, "nginx"), &HashSet::from([1])), "netns");
        assert!(!y.wants(443, 5000, 8, o(10, "nginx"), &HashSet::from([2])), "cgroup");
        let only_netns = Filters::default().with_places(vec![7], vec![], vec![]);
        assert!(!only_netns.by_owner(), "a namespace filter needs no owner");
        assert!(only_netns.wants(1, 2, 7, None, &none));
    }

    #[test]
    fn command_names_compare_on_the_fifteen_bytes_the_kernel_keeps() {
        let x = f(&[], &["a-very-long-command-name"], &[]);
        let none = HashSet::new();
        let v = |comm| OwnerView { pid: 1, comm, cgroup_id: 1 };
        assert!(x.wants_owner(v("a-very-long-com"), &none));
        assert!(!x.wants_owner(v("a-very-long-co"), &none));
        assert!(!f(&[], &["curl"], &[]).wants_owner(v("curly"), &none));
        let k = x.kernel_globals();
        assert_eq!(&k.comms[0][..16], b"a-very-long-com\0");
        assert_eq!(k.ncomms, 1);
    }

    #[test]
    fn counts_are_checked_once_against_the_kernel_tables() {
        assert!(Filters::new(vec![1; MAX_PIDS + 1], vec![], vec![]).is_err());
        assert!(Filters::new(vec![], vec![], vec![1; MAX_PORTS]).is_ok());
        let args = |mib| RecorderArgs {
            pids: vec![],
            comms: vec![],
            ports: vec![],
            containers: vec![],
            cgroups: vec![],
            netns: vec![],
            sample_interval: Duration::from_secs(1),
            buffer_mib: mib,
            leave_out: vec![],
            connect_errors: false,
            tcp_table: DEFAULT_TCP_TABLE,
        };
        assert_eq!(args(16).options().unwrap().ring_buffer_bytes, 16 << 20);
        for bad in [0, 3, 4096] {
            assert!(matches!(args(bad).options(), Err(RecorderError::BufferMib(_))), "{bad}");
        }
    }
}
