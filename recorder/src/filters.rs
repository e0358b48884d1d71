//! What to record: the filters the kernel applies, and their user-space copy.
//!
//! One definition of the matching rules, validated once: the values become read-only globals of
//! the BPF object ([`Filters::kernel_globals`]), and the same rules decide, in user space, which
//! connections already open at start are recorded ([`Filters::wants`]), so both sides agree.

use std::time::Duration;

use gespann_common::raw::{COMM_LEN, MAX_COMMS, MAX_PIDS, MAX_PORTS};

use crate::RecorderError;

/// Kernel-side filters; empty kinds match everything. A connection is kept if it matches
/// every kind given (any value within a kind).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pids: Vec<u32>,
    comms: Vec<String>,
    ports: Vec<u16>,
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
        Ok(Filters { pids, comms, ports })
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

    /// True when an owner filter (`--pid`, `--comm`) is set.
    pub fn by_owner(&self) -> bool {
        !self.pids.is_empty() || !self.comms.is_empty()
    }

    /// The kernel's `owner_wanted`: the process id is listed (if any are) and the command name,
    /// as the kernel keeps it, equals a listed one (if any are).
    pub fn wants_owner(&self, pid: u32, comm: &str) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| comm_prefix(c) == comm_prefix(comm)))
    }

    /// The kernel's `ports_wanted`: either port is listed (if any are).
    pub fn wants_ports(&self, local: u16, remote: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&local) || self.ports.contains(&remote)
    }

    /// Both rules; `owner` is `None` when no process holds the socket any more.
    pub fn wants(&self, local_port: u16, remote_port: u16, owner: Option<(u32, &str)>) -> bool {
        self.wants_ports(local_port, remote_port)
            && (!self.by_owner() || owner.is_some_and(|(pid, comm)| self.wants_owner(pid, comm)))
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
}

/// What to record, validated.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub filters: Filters,
    /// How often connections that moved get a `sample` row.
    pub sample_interval: Duration,
    /// Ring buffer size in bytes: a power of two, at least a page.
    pub ring_buffer_bytes: u32,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            filters: Filters::default(),
            sample_interval: Duration::from_secs(1),
            ring_buffer_bytes: 16 << 20,
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
    /// How often live connections that moved get a `sample` row.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub sample_interval: Duration,
    /// Kernel ring buffer size in MiB (a power of two). Larger absorbs bigger bursts.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub buffer_mib: u32,
}

impl RecorderArgs {
    /// The validated options; each error names the flag.
    pub fn options(&self) -> Result<RecordOptions, RecorderError> {
        let filters = Filters::new(self.pids.clone(), self.comms.clone(), self.ports.clone())?;
        let ring = self
            .buffer_mib
            .checked_mul(1 << 20)
            .filter(|b| b.is_power_of_two())
            .ok_or(RecorderError::BufferMib(self.buffer_mib))?;
        if self.sample_interval.is_zero() {
            return Err(RecorderError::SampleInterval);
        }
        Ok(RecordOptions { filters, sample_interval: self.sample_interval, ring_buffer_bytes: ring })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pids: &[u32], comms: &[&str], ports: &[u16]) -> Filters {
        Filters::new(pids.to_vec(), comms.iter().map(|s| s.to_string()).collect(), ports.to_vec()).unwrap()
    }

    #[test]
    fn no_filter_wants_everything_even_without_an_owner() {
        assert!(Filters::default().wants(1, 2, None));
    }

    #[test]
    fn every_kind_must_match_and_any_value_within_a_kind() {
        let x = f(&[10, 11], &["nginx"], &[443]);
        assert!(x.wants(443, 5000, Some((11, "nginx"))));
        assert!(x.wants(5000, 443, Some((10, "nginx"))));
        assert!(!x.wants(443, 5000, Some((12, "nginx"))), "pid");
        assert!(!x.wants(443, 5000, Some((10, "curl"))), "comm");
        assert!(!x.wants(80, 5000, Some((10, "nginx"))), "port");
        assert!(!x.wants(443, 5000, None), "an owner filter needs an owner");
    }

    #[test]
    fn command_names_compare_on_the_fifteen_bytes_the_kernel_keeps() {
        let x = f(&[], &["a-very-long-command-name"], &[]);
        assert!(x.wants_owner(1, "a-very-long-com"));
        assert!(!x.wants_owner(1, "a-very-long-co"));
        assert!(!f(&[], &["curl"], &[]).wants_owner(1, "curly"));
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
            sample_interval: Duration::from_secs(1),
            buffer_mib: mib,
        };
        assert_eq!(args(16).options().unwrap().ring_buffer_bytes, 16 << 20);
        for bad in [0, 3, 4096] {
            assert!(matches!(args(bad).options(), Err(RecorderError::BufferMib(_))), "{bad}");
        }
    }
}
