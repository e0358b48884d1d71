//! The seam between the recorder and the kernel: everything [`crate::Recorder`] asks of it.
//!
//! The real implementation is [`crate::ebpf::Probes`] (aya maps, a ring buffer, sock_diag,
//! `/proc`); [`crate::fake::FakeKernel`] holds the same things in memory, so the recorder's
//! control loop (ticks, the reorder watermark, UDP flow release, the final drain, lost-event
//! totals, the user-space copy of the kernel filters) is tested without root, and
//! `cargo xtask bench-drain` measures the recorder's real path on records it makes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use gespann_common::Workload;

use gespann_common::raw::{ListenerKey, UdpFlow, UdpKey};

use crate::sockdiag::{ProcOwner, TcpSocket, Tuple};
use crate::tracker::{Clock, ResetReasons};

/// The kernel's per-CPU lost counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Records dropped because the ring buffer was full.
    pub ring: u64,
    /// Connections or flows the kernel's tables had no room for.
    pub table: u64,
}

impl Lost {
    /// What `gespann.events_lost` holds.
    pub fn total(&self) -> u64 {
        self.ring + self.table
    }
}

/// A feature that could not be attached, and what the recording lacks because of it.
#[derive(Clone, Debug)]
pub struct Missing {
    pub what: String,
    pub effect: &'static str,
    pub error: String,
}

/// What the recorder needs from the kernel.
pub trait Kernel {
    /// Hands every record waiting in the ring buffer to `each`, in ring order.
    fn drain(&mut self, each: &mut dyn FnMut(&[u8]));

    /// Completes when records are waiting (the kernel woke the reader) or `timeout` passed.
    fn wait(&mut self, timeout: Duration) -> impl Future<Output = io::Result<()>>;

    /// The lost counters so far.
    fn lost(&self) -> Lost;

    /// Every live UDP flow the kernel aggregates.
    fn udp_flows(&self) -> Vec<(UdpKey, UdpFlow)>;

    /// The UDP sockets the kernel holds flows for (until they are released).
    fn udp_sockets(&self) -> HashSet<u64>;

    /// Removes the flows of UDP socket `sk` from the kernel's table and returns them.
    fn take_udp_flows(&mut self, sk: u64) -> Vec<UdpFlow>;

    /// TCP sockets whose state is in the `1 << state` mask `states` (sock_diag), with
    /// `tcp_info` if `with_info`, in every network namespace on the host.
    fn tcp_sockets(&mut self, states: u32, with_info: bool) -> io::Result<Vec<TcpSocket>>;

    /// The TCP sockets with exactly these endpoints (each in its namespace), with `tcp_info`;
    /// endpoints without a socket are left out. What periodic samples ask: it costs one lookup
    /// per connection, where [`Kernel::tcp_sockets`] walks the kernel's whole socket table.
    fn tcp_sockets_of(&mut self, wanted: &[Tuple]) -> io::Result<Vec<TcpSocket>>;

    /// Socket inode -> the process holding it.
    fn socket_owners(&mut self) -> HashMap<u64, ProcOwner>;

    /// Tells the kernel who owns the `sockets` sockets listening on `key` (namespace, family,
    /// address, port) before the recording started, so that connections they accept get an
    /// owner at once.
    fn set_listener_owner(&mut self, key: ListenerKey, owner: &ProcOwner, sockets: u32);

    /// With owner filters (`--pid`, `--comm`), tells the kernel which connections older than
    /// the recording are wanted: their owners are known here (from sock_diag), not there. The
    /// kernel then drops the closes and retransmits of every other socket it does not track
    /// (connections the filters left out) instead of sending them for user space to drop.
    /// Until the list is complete, and for good if it cannot be (more than its table holds),
    /// the kernel sends them all: nothing is lost either way.
    fn want_preexisting(&mut self, wanted: &[TcpSocket]);

    /// A cgroup id seen in a record: resolved now, while the cgroup exists (a container's goes
    /// when it exits). Called once per id the recorder has not seen, not per record.
    fn note_cgroup(&mut self, cgroup_id: u64);

    /// The cgroup, container and pod of `cgroup_id`, for a row about to be written.
    fn workload(&mut self, cgroup_id: u64) -> Arc<Workload>;

    /// With `--cgroup`/`--container`: the cgroup ids the filters resolve to now (the cgroups of
    /// containers that started since the last call are added to the kernel's table first).
    /// `None` without those filters.
    fn filter_cgroups(&mut self) -> Option<HashSet<u64>>;

    /// CLOCK_MONOTONIC, the clock of every record's timestamps.
    fn now_ns(&self) -> u64;

    /// How record timestamps map to wall-clock time.
    fn clock(&self) -> Clock;

    /// The names of the kernel's RST reasons.
    fn reset_reasons(&self) -> ResetReasons;

    /// What could not be attached, and what the recording lacks because of it.
    fn missing(&self) -> &[Missing];
}
