//! The recorder's control loop over a [`Kernel`]: drain the ring on a timer (or when the kernel
//! wakes the reader), sample live connections every `sample_interval`, release rows behind the
//! reorder watermark, end UDP flows, and at the end drain everything before the lost counters
//! are read. Generic over the kernel so that every step is tested without root.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gespann_common::Event;
use gespann_common::raw::{ListenerKey, RawEvent};

use crate::error::RecorderError;
use crate::filters::{OwnerView, RecordOptions};
use crate::kernel::{Kernel, Lost, Missing};
use crate::sockdiag::{ESTABLISHED_LIKE, LISTEN, ProcOwner, TcpSocket, Tuple};
use crate::tracker::{Followup, Tracker, TrackerStats, socket_tuple};
use rustc_hash::FxHashSet;

/// How long rows wait in user space so that rows from different CPUs, and amendments, can be
/// put in order before they are handed out.
pub const REORDER_WINDOW: Duration = Duration::from_millis(500);
/// How often [`Recorder::next_events`] drains the ring buffer and returns. The kernel wakes
/// the reader only when an eighth of the buffer is full, so this timer does most draining.
pub const TICK: Duration = Duration::from_millis(100);

/// Up to this many live TCP connections, a sample looks each one up in sock_diag; beyond, it
/// dumps the table. A dump costs about 10 ms of system time on this kind of host whatever it
/// returns (it walks every bucket of the kernel's socket hash); a batched lookup about 2 µs
/// per connection.
pub const QUERY_AT_MOST: usize = 4096;

/// Running totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Kernel-side losses by cause; `lost.total()` is `gespann.events_lost`.
    pub lost: Lost,
    pub open_connections: usize,
    /// Ring records that were too short or of a kind this version does not know (dropped).
    pub unknown_records: u64,
    pub tracker: TrackerStats,
}

impl RecorderStats {
    /// Rows produced so far (including rows still in the reorder window).
    pub fn events(&self) -> u64 {
        self.tracker.rows
    }

    pub fn events_lost(&self) -> u64 {
        self.lost.total()
    }
}

/// What [`Recorder::finish`] hands back: the last rows, and the totals read after them.
#[derive(Debug)]
pub struct Finished {
    pub events: Vec<Event>,
    pub stats: RecorderStats,
}

/// A running recording over kernel `K`. Dropping it (and so `K`) detaches every program.
pub struct Recorder<K: Kernel> {
    kernel: K,
    tracker: Tracker,
    sample_interval: u64,
    next_sample: u64,
    next_tick: u64,
    listening: HashSet<(u32, u16)>,
    unknown_records: u64,
    /// UDP sockets with flows but no entry in the kernel's socket table at the last sample.
    orphan_sockets: HashSet<u64>,
    /// Cgroup ids the kernel seam was told about (each resolved once, when first seen).
    seen_cgroups: FxHashSet<u64>,
    /// Seen during the current drain, to tell the seam after it.
    new_cgroups: Vec<u64>,
    /// `--cgroup`/`--container` are on: their cgroups are looked for again at every sample.
    by_cgroup: bool,
}

impl<K: Kernel> Recorder<K> {
    /// Starts recording on an attached kernel: the connections already open get their `open`
    /// rows (preexisting, with their counters so far), filtered as the kernel filters.
    pub fn new(mut kernel: K, opts: &RecordOptions) -> Result<Recorder<K>, RecorderError> {
        let mut tracker = Tracker::new(kernel.clock(), kernel.reset_reasons());
        let listeners = kernel.tcp_sockets(LISTEN, false).map_err(RecorderError::SockDiag)?;
        let established = kernel.tcp_sockets(ESTABLISHED_LIKE, true).map_err(RecorderError::SockDiag)?;
        let owners = kernel.socket_owners();
        // One entry per listening address, owned by the first of its sockets with an owner and
        // counting them all (an SO_REUSEPORT group is several sockets on one address).
        let mut by_key: HashMap<ListenerKey, (Option<&ProcOwner>, u32)> = HashMap::new();
        for l in &listeners {
            let e = by_key.entry(ListenerKey::new(l.netns, l.family, l.local, l.local_port)).or_default();
            e.1 += 1;
            if e.0.is_none() {
                e.0 = owners.get(&l.inode);
            }
        }
        for (key, (owner, sockets)) in by_key {
            if let Some(o) = owner {
                kernel.set_listener_owner(key, o, sockets);
            }
        }
        let listening: HashSet<(u32, u16)> = listeners.iter().map(|s| (s.netns, s.local_port)).collect();
        let cgroups = kernel.filter_cgroups().unwrap_or_default();
        let wanted: Vec<_> = established
            .into_iter()
            .filter(|s| {
                let owner =
                    owners.get(&s.inode).map(|o| OwnerView { pid: o.pid, comm: &o.comm, cgroup_id: o.cgroup_id });
                opts.filters.wants(s.local_port, s.remote_port, s.netns, owner, &cgroups)
            })
            .collect();
        let mut seen_cgroups = FxHashSet::default();
        for s in &wanted {
            if let Some(o) = owners.get(&s.inode)
                && seen_cgroups.insert(o.cgroup_id)
            {
                kernel.note_cgroup(o.cgroup_id);
            }
        }
        if opts.filters.by_owner() {
            kernel.want_preexisting(&wanted);
        }
        let now = kernel.now_ns();
        tracker.add_preexisting(&wanted, &owners, &listening, now);
        let sample_interval = opts.sample_interval.as_nanos() as u64;
        Ok(Recorder {
            kernel,
            tracker,
            sample_interval,
            next_sample: now + sample_interval,
            next_tick: now + TICK.as_nanos() as u64,
            listening,
            unknown_records: 0,
            orphan_sockets: HashSet::new(),
            seen_cgroups,
            new_cgroups: Vec::new(),
            by_cgroup: opts.filters.by_cgroup(),
        })
    }

    /// The kernel's monotonic clock (ns): the session's time.
    pub fn now_ns(&self) -> u64 {
        self.kernel.now_ns()
    }

    /// What could not be attached on this kernel, and what the recording lacks because of it.
    pub fn missing(&self) -> &[Missing] {
        self.kernel.missing()
    }

    /// (Network namespace, port) pairs that were listening at start.
    pub fn listening_ports(&self) -> &HashSet<(u32, u16)> {
        &self.listening
    }

    /// Waits for the next tick (every [`TICK`]) and returns the rows released by it, in time
    /// order (possibly none). Records are drained whenever the kernel wakes the reader.
    pub async fn next_events(&mut self) -> Result<Vec<Event>, RecorderError> {
        loop {
            let now = self.kernel.now_ns();
            if now >= self.next_tick {
                return self.tick(now);
            }
            self.kernel.wait(Duration::from_nanos(self.next_tick - now)).await.map_err(RecorderError::Poll)?;
            self.drain();
        }
    }

    /// One tick at `now` (monotonic ns): drain, sample if due, release rows behind the watermark.
    pub fn tick(&mut self, now: u64) -> Result<Vec<Event>, RecorderError> {
        self.drain();
        if now >= self.next_sample {
            self.next_sample = now + self.sample_interval;
            self.sample(false)?;
        }
        self.next_tick = now + TICK.as_nanos() as u64;
        let watermark = now.saturating_sub(REORDER_WINDOW.as_nanos() as u64);
        let mut rows = self.tracker.drain_ready(watermark);
        self.place(&mut rows);
        Ok(rows)
    }

    /// Gives each row its owner's workload (cgroup, container, pod) as it leaves the reorder
    /// buffer: late owner amendments have moved its cgroup id by then, and the names looked up
    /// in the background for a cgroup first seen in that window have had time to arrive.
    /// A row that already holds its workload's `Arc` (most rows of an unplaced host hold the
    /// shared unknown one) is left alone: no reference count changes hands.
    fn place(&mut self, rows: &mut [Event]) {
        use std::sync::Arc;
        let mut last: Option<(u64, Arc<gespann_common::Workload>)> = None;
        for e in rows {
            let w = match &last {
                Some((id, w)) if *id == e.cgroup_id => w,
                _ => &last.insert((e.cgroup_id, self.kernel.workload(e.cgroup_id))).1,
            };
            if !Arc::ptr_eq(&e.workload, w) {
                e.workload = w.clone();
            }
        }
    }

    /// Hands every waiting ring record to the tracker, and ends the flows of released UDP
    /// sockets.
    fn drain(&mut self) {
        let mut releases = Vec::new();
        let tracker = &mut self.tracker;
        let unknown = &mut self.unknown_records;
        let seen = &mut self.seen_cgroups;
        let new_cgroups = &mut self.new_cgroups;
        let mut last_cgroup = u64::MAX;
        self.kernel.drain(&mut |bytes| {
            let Some(raw) = RawEvent::from_bytes(bytes) else {
                *unknown += 1;
                return;
            };
            tracing::trace!(
                kind = raw.kind,
                conn_id = raw.conn_id,
                flags = raw.flags,
                sport = raw.sport,
                dport = raw.dport,
                "raw event"
            );
            if raw.cgroup_id != last_cgroup {
                last_cgroup = raw.cgroup_id;
                if seen.insert(raw.cgroup_id) {
                    new_cgroups.push(raw.cgroup_id);
                }
            }
            if let Followup::ReleaseUdpSocket(sk) = tracker.on_raw(&raw) {
                releases.push(sk);
            }
        });
        for id in std::mem::take(&mut self.new_cgroups) {
            self.kernel.note_cgroup(id);
        }
        for sk in releases {
            let now = self.kernel.now_ns();
            for flow in self.kernel.take_udp_flows(sk) {
                self.tracker.udp_flow_ended(&flow, now);
            }
        }
    }

    /// Samples every live connection (that moved, unless `force`): TCP from sock_diag, UDP
    /// from the kernel's flow table; ends flows the table lost. Returns the TCP sockets the
    /// kernel held established-like.
    fn sample(&mut self, force: bool) -> Result<Vec<TcpSocket>, RecorderError> {
        if self.by_cgroup {
            // Containers that started since: their cgroups join the kernel's filter table.
            self.kernel.filter_cgroups();
        }
        // Asked by endpoints while that is cheaper than a dump, which walks the kernel's whole
        // socket table (every bucket, every TIME_WAIT socket) whatever it returns: under
        // connection churn that walk was most of the recorder's system time.
        let live = self.tracker.live_tcp();
        let mut socks = if live.len() > QUERY_AT_MOST {
            self.kernel.tcp_sockets(ESTABLISHED_LIKE, true)
        } else if live.is_empty() {
            Ok(Vec::new())
        } else {
            self.kernel.tcp_sockets_of(&live)
        }
        .map_err(RecorderError::SockDiag)?;
        // A lookup finds a socket in any state (or the listener of its port): keep what a dump
        // of the established-like states would hold.
        socks.retain(|s| ESTABLISHED_LIKE & (1 << s.state) != 0);
        let at = self.kernel.now_ns();
        self.tracker.on_tcp_snapshot(&socks, at, force);
        let known = self.tracker.live_udp();
        let flows = self.kernel.udp_flows();
        let at = self.kernel.now_ns();
        // Every record submitted before the table was read, before the table is compared.
        self.drain();
        self.tracker.on_udp_snapshot(&flows, at, force);
        self.tracker.end_missing_udp(&known, &flows, at);
        self.end_orphaned_udp(&flows, at);
        Ok(socks)
    }

    /// At the end: TCP connections live here that the final sample did not find
    /// established-like and whose end record has not come (`held`: what it found). Asked for
    /// once more by their endpoints (a dump of a busy table can miss a socket); those the
    /// kernel holds established-like now get their final sample, the others ended unseen.
    fn end_unseen_tcp(&mut self, held: &[TcpSocket]) -> Result<(), RecorderError> {
        let held: HashSet<Tuple> = held.iter().map(socket_tuple).collect();
        let mut unseen: Vec<Tuple> = self.tracker.live_tcp().into_iter().filter(|t| !held.contains(t)).collect();
        unseen.sort_unstable();
        if unseen.is_empty() {
            return Ok(());
        }
        let socks = self.kernel.tcp_sockets_of(&unseen).map_err(RecorderError::SockDiag)?;
        let at = self.kernel.now_ns();
        let (live, gone): (Vec<TcpSocket>, Vec<TcpSocket>) =
            socks.into_iter().partition(|s| ESTABLISHED_LIKE & (1 << s.state) != 0);
        self.tracker.on_tcp_snapshot(&live, at, true);
        let state: HashMap<Tuple, u8> = gone.iter().map(|s| (socket_tuple(s), s.state)).collect();
        let live: HashSet<Tuple> = live.iter().map(socket_tuple).collect();
        for t in unseen.iter().filter(|t| !live.contains(t)) {
            tracing::debug!(?t, state = ?state.get(t), "a TCP connection ended without its end record");
            self.tracker.end_unseen_tcp(t, state.get(t).copied(), at);
        }
        Ok(())
    }

    /// Flows of sockets the kernel's socket table no longer holds: sock_release removes the
    /// entry whatever happens, so their socket was released and its release record lost (a
    /// full ring). A socket counts only when seen so at two samples in a row, since a new
    /// flow enters the flow table just before its socket enters the socket table.
    fn end_orphaned_udp(&mut self, flows: &[(gespann_common::raw::UdpKey, gespann_common::raw::UdpFlow)], at: u64) {
        let sockets = self.kernel.udp_sockets();
        let orphans: HashSet<u64> = flows.iter().map(|(k, _)| k.sk).filter(|sk| !sockets.contains(sk)).collect();
        for &sk in orphans.intersection(&self.orphan_sockets) {
            for flow in self.kernel.take_udp_flows(sk) {
                self.tracker.udp_flow_orphaned(&flow, at);
            }
        }
        self.orphan_sockets = orphans.difference(&self.orphan_sockets).copied().collect();
    }

    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            lost: self.kernel.lost(),
            open_connections: self.tracker.open_connections(),
            unknown_records: self.unknown_records + self.tracker.stats().unknown_records,
            tracker: self.tracker.stats(),
        }
    }

    /// Ends the recording: lets in-flight records land, drains the kernel, samples every open
    /// connection one last time, and only then reads the lost counters.
    pub fn finish(mut self) -> Result<Finished, RecorderError> {
        std::thread::sleep(Duration::from_millis(20));
        self.drain();
        let held = self.sample(true)?;
        self.drain();
        self.end_unseen_tcp(&held)?;
        let mut events = self.tracker.drain_all();
        self.place(&mut events);
        Ok(Finished { events, stats: self.stats() })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use gespann_common::raw::{self, kind};
    use gespann_common::{EventKind, Protocol, Role};

    use super::*;
    use crate::Filters;
    use crate::fake::records::{self, udp_flow, udp_open};
    use crate::fake::{FakeHandle, FakeKernel};
    use crate::sockdiag::{ProcOwner, TcpInfo, TcpSocket};

    const MS: u64 = 1_000_000;

    /// A client record whose port tells connections apart.
    fn tcp(kind: u8, conn_id: u64, ts: u64) -> RawEvent {
        RawEvent {
            start_ns: ts,
            sport: 40000 + conn_id as u16,
            state: if kind == raw::kind::OPEN { 1 } else { 7 },
            ..records::tcp(kind, conn_id, ts)
        }
    }

    /// Flow `conn_id` of socket 9 to port `port` as the kernel holds it (flow table, socket
    /// table) and its open record in the ring.
    fn live_udp_flow(h: &FakeHandle, conn_id: u64, port: u16, ts: u64) {
        let (k, f) = udp_flow(conn_id, 9, port, 10);
        let mut s = h.state();
        s.udp_flows.insert(k, f);
        s.udp_socks.insert(9);
        s.ring.push(udp_open(conn_id, 9, port, ts).as_bytes().to_vec());
    }

    fn start(opts: &RecordOptions, setup: impl FnOnce(&FakeHandle)) -> (Recorder<FakeKernel>, FakeHandle) {
        let (k, h) = FakeKernel::new(1_000_000_000_000);
        setup(&h);
        (Recorder::new(k, opts).unwrap(), h)
    }

    /// Runs the loop until `h`'s clock passed `until` (virtual ns after start), collecting rows.
    fn run(rec: &mut Recorder<FakeKernel>, h: &FakeHandle, for_ns: u64) -> Vec<Event> {
        let end = h.now_ns() + for_ns;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut out = Vec::new();
        while h.now_ns() < end {
            out.extend(rt.block_on(rec.next_events()).unwrap());
        }
        out
    }

    #[test]
    fn rows_wait_for_the_reorder_window_and_come_out_in_time_order() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        h.push(&tcp(kind::OPEN, 2, t0 + 20 * MS));
        h.push(&tcp(kind::OPEN, 1, t0 + 10 * MS));
        let early = run(&mut rec, &h, 300 * MS);
        assert!(early.is_empty(), "nothing before the window passed: {early:?}");
        let rows = run(&mut rec, &h, 400 * MS);
        assert_eq!(rows.iter().map(|e| e.conn_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(rec.stats().tracker.late_rows, 0);
    }

    #[test]
    fn a_record_behind_the_watermark_is_counted_late() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        h.push(&tcp(kind::OPEN, 1, t0 + 10 * MS));
        assert_eq!(run(&mut rec, &h, 800 * MS).len(), 1);
        // A record stamped before the row already handed out (a CPU that lagged by a second).
        h.push(&tcp(kind::OPEN, 2, t0 + 5 * MS));
        let rows = run(&mut rec, &h, 200 * MS);
        assert_eq!(rows.len(), 1, "the fact is kept");
        assert_eq!(rec.stats().tracker.late_rows, 1, "and counted");
    }

    #[test]
    fn an_owner_amendment_after_its_rows_were_written_is_counted_late() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        let mut open = tcp(kind::OPEN, 3, t0 + MS);
        open.role = raw::ROLE_SERVER;
        h.push(&open);
        assert_eq!(run(&mut rec, &h, 800 * MS).len(), 1);
        let amend = RawEvent { kind: kind::AMEND_OWNER, conn_id: 3, pid: 777, ts_ns: h.now_ns(), ..Default::default() };
        h.push(&amend);
        run(&mut rec, &h, 200 * MS);
        assert_eq!(rec.stats().tracker.late_amends, 1);
    }

    #[test]
    fn records_of_unknown_kind_or_size_are_counted() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        h.push(&RawEvent { kind: 200, ..Default::default() });
        h.push_bytes(&[1, 2, 3]);
        run(&mut rec, &h, 200 * MS);
        assert_eq!(rec.stats().unknown_records, 2);
    }

    #[test]
    fn connections_open_at_start_follow_the_kernel_filters_and_listeners_get_their_owner() {
        let sock = |port: u16, remote: u16, inode: u64, state: u8| TcpSocket {
            netns: 0,
            family: 4,
            local: "127.0.0.1".parse().unwrap(),
            local_port: port,
            remote: "127.0.0.1".parse().unwrap(),
            remote_port: remote,
            state,
            inode,
            info: Some(TcpInfo { bytes_acked: 1, ..Default::default() }),
        };
        let owner = |pid, comm: &str| ProcOwner { pid, comm: comm.into(), cgroup_id: 1 };
        let opts = RecordOptions {
            filters: Filters::new(vec![], vec!["nginx".into()], vec![]).unwrap(),
            ..Default::default()
        };
        let (mut rec, h) = start(&opts, |h| {
            let mut s = h.state();
            s.tcp = vec![sock(443, 0, 1, 10), sock(443, 5000, 2, 1), sock(5001, 80, 3, 1), sock(5002, 80, 4, 1)];
            s.owners = HashMap::from([(1, owner(10, "nginx")), (2, owner(10, "nginx")), (3, owner(11, "curl"))]);
        });
        let key = ListenerKey::new(0, 4, "127.0.0.1".parse().unwrap(), 443);
        assert_eq!(h.state().listener_owners.get(&key).map(|(o, n)| (o.pid, *n)), Some((10, 1)));
        let told = h.state().wanted_preexisting.clone().expect("owner filters: the kernel is told");
        assert_eq!(told.iter().map(|s| s.inode).collect::<Vec<_>>(), vec![2]);
        let rows = run(&mut rec, &h, 700 * MS);
        assert_eq!(rows.len(), 1, "only nginx's connection; the ownerless one is filtered too: {rows:?}");
        assert!(rows[0].preexisting && rows[0].role == Role::Server && rows[0].pid == 10);
    }

    #[test]
    fn a_released_udp_socket_ends_each_of_its_flows() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        for (id, port) in [(1, 53), (2, 54)] {
            live_udp_flow(&h, id, port, t0 + MS);
        }
        h.push(&RawEvent {
            kind: kind::UDP_RELEASE,
            protocol: raw::PROTO_UDP,
            sk: 9,
            ts_ns: t0 + 2 * MS,
            ..Default::default()
        });
        let rows = run(&mut rec, &h, 800 * MS);
        let closes: Vec<_> = rows.iter().filter(|e| e.kind == EventKind::Close).collect();
        assert_eq!(closes.len(), 2, "{rows:?}");
        assert!(closes.iter().all(|e| e.protocol == Protocol::Udp && e.bytes_sent == 10));
        assert!(h.state().udp_flows.is_empty(), "taken out of the kernel's table");
        assert_eq!(rec.stats().open_connections, 0);
    }

    #[test]
    fn a_udp_flow_whose_close_was_lost_does_not_stay_live() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        live_udp_flow(&h, 1, 53, t0 + MS);
        run(&mut rec, &h, 200 * MS);
        // sock_release deleted the flow, but its `close` record did not fit in the ring.
        {
            let mut s = h.state();
            s.udp_flows.clear();
            s.lost.ring += 1;
        }
        let rows = run(&mut rec, &h, 2_000 * MS);
        let close = rows.iter().find(|e| e.kind == EventKind::Close).expect("a close row");
        assert_eq!((close.conn_id, close.bytes_sent), (1, 10));
        let stats = rec.stats();
        assert_eq!((stats.open_connections, stats.tracker.udp_ends_inferred, stats.events_lost()), (0, 1, 1));
    }

    #[test]
    fn a_flow_whose_close_is_still_in_the_ring_is_not_ended_twice() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        live_udp_flow(&h, 1, 53, t0 + MS);
        run(&mut rec, &h, 200 * MS);
        // Released right before the sample: the flow is gone and its close waits in the ring.
        {
            let mut s = h.state();
            s.udp_flows.clear();
            let mut close = udp_open(1, 9, 53, s.now_ns);
            close.kind = kind::CLOSE;
            s.ring.push(close.as_bytes().to_vec());
        }
        let rows = run(&mut rec, &h, 2_000 * MS);
        assert_eq!(rows.iter().filter(|e| e.kind == EventKind::Close).count(), 1);
        assert_eq!(rec.stats().tracker.udp_ends_inferred, 0);
    }

    #[test]
    fn flows_of_a_socket_released_without_its_record_are_ended() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        for (id, port) in [(1, 53), (2, 54)] {
            let (k, f) = udp_flow(id, 9, port, 10);
            h.state().udp_flows.insert(k, f);
            h.push(&udp_open(id, 9, port, t0 + MS));
        }
        h.state().udp_socks.insert(9);
        run(&mut rec, &h, 1_500 * MS);
        assert_eq!(rec.stats().open_connections, 2);
        // sock_release removed the socket's entry, but its UDP_RELEASE did not fit in the ring.
        {
            let mut s = h.state();
            s.udp_socks.clear();
            s.lost.ring += 1;
        }
        let rows = run(&mut rec, &h, 3_000 * MS);
        assert_eq!(rows.iter().filter(|e| e.kind == EventKind::Close).count(), 2, "{rows:?}");
        assert!(h.state().udp_flows.is_empty(), "taken out of the kernel's table");
        let stats = rec.stats();
        assert_eq!((stats.open_connections, stats.tracker.udp_ends_inferred), (0, 2));
    }

    #[test]
    fn a_new_flow_whose_socket_entry_is_not_there_yet_is_left_alone() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let (k, f) = udp_flow(1, 9, 53, 10);
        h.state().udp_flows.insert(k, f);
        h.push(&udp_open(1, 9, 53, h.now_ns()));
        run(&mut rec, &h, 1_100 * MS); // one sample sees the flow without its socket
        h.state().udp_socks.insert(9); // which the kernel inserts just after
        run(&mut rec, &h, 3_000 * MS);
        assert_eq!(rec.stats().open_connections, 1);
        assert_eq!(h.state().udp_flows.len(), 1);
    }

    #[test]
    fn finish_drains_the_ring_before_reading_the_lost_counters() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        run(&mut rec, &h, 200 * MS);
        let t = h.now_ns();
        h.push(&tcp(kind::OPEN, 1, t));
        h.state().on_drain = Some(Box::new(|s| s.lost.ring = 5));
        let done = rec.finish().unwrap();
        let kinds: Vec<EventKind> = done.events.iter().map(|e| e.kind).collect();
        // The open still in the ring, and (no socket in the fake kernel) its inferred end.
        assert_eq!(kinds, vec![EventKind::Open, EventKind::Close], "{:?}", done.events);
        assert_eq!(done.stats.events_lost(), 5);
    }

    #[test]
    fn live_tcp_connections_are_sampled_every_interval_when_they_move() {
        let opts = RecordOptions { sample_interval: Duration::from_millis(500), ..Default::default() };
        let (mut rec, h) = start(&opts, |_| {});
        let t0 = h.now_ns();
        let open = tcp(kind::OPEN, 1, t0 + MS);
        h.push(&open);
        let sock = |acked| TcpSocket {
            netns: 0,
            family: 4,
            local: "127.0.0.1".parse().unwrap(),
            local_port: open.sport,
            remote: "127.0.0.2".parse().unwrap(),
            remote_port: 80,
            state: 1,
            inode: 1,
            info: Some(TcpInfo { bytes_acked: acked, ..Default::default() }),
        };
        h.state().tcp = vec![sock(101)];
        let rows = run(&mut rec, &h, 3_000 * MS);
        let samples: Vec<_> = rows.iter().filter(|e| e.kind == EventKind::Sample).collect();
        assert_eq!(samples.len(), 1, "one sample when it moved, none while it did not: {rows:?}");
        assert_eq!(samples[0].bytes_sent, 100, "the SYN is not payload");
    }

    /// The socket of the client record `r` (see [`tcp`]) as sock_diag reports it in `state`.
    fn sock(r: &RawEvent, state: u8) -> TcpSocket {
        TcpSocket {
            netns: r.netns,
            family: 4,
            local: "127.0.0.1".parse().unwrap(),
            local_port: r.sport,
            remote: "127.0.0.2".parse().unwrap(),
            remote_port: 80,
            state,
            inode: r.conn_id,
            info: Some(TcpInfo { bytes_acked: 1 + r.conn_id, ..Default::default() }),
        }
    }

    #[test]
    fn samples_look_live_connections_up_by_endpoints_and_dump_only_when_there_are_many() {
        let opts = RecordOptions { sample_interval: Duration::from_millis(500), ..Default::default() };
        let (mut rec, h) = start(&opts, |_| {});
        let t0 = h.now_ns();
        let dumps_at_start = h.state().dumps;
        let live = tcp(kind::OPEN, 1, t0 + MS);
        h.push(&live);
        // A socket that a lookup finds in TIME_WAIT is not sampled (a dump would not hold it).
        let ending = tcp(kind::OPEN, 2, t0 + MS);
        h.push(&ending);
        h.state().tcp = vec![sock(&live, 1), sock(&ending, 6)];
        let rows = run(&mut rec, &h, 1_200 * MS);
        let samples: Vec<u64> = rows.iter().filter(|e| e.kind == EventKind::Sample).map(|e| e.conn_id).collect();
        assert_eq!(samples, vec![1]);
        assert_eq!(h.state().dumps, dumps_at_start, "no dump for two connections");
        assert!(h.state().queries >= 2);

        let many: Vec<RawEvent> =
            (10..10 + QUERY_AT_MOST as u64 + 1).map(|id| tcp(kind::OPEN, id, t0 + 1_300 * MS)).collect();
        for r in &many {
            h.push(r);
        }
        h.state().tcp = many.iter().map(|r| sock(r, 1)).collect();
        let rows = run(&mut rec, &h, 1_000 * MS);
        let samples = rows.iter().filter(|e| e.kind == EventKind::Sample).count();
        assert_eq!(samples, many.len());
        assert!(h.state().dumps > dumps_at_start, "more than QUERY_AT_MOST live connections: one dump");
    }

    #[test]
    fn connections_whose_end_record_never_came_are_ended_at_the_final_sample_and_counted() {
        let (mut rec, h) = start(&RecordOptions::default(), |_| {});
        let t0 = h.now_ns();
        let (live, timewait, gone, closed) = (
            tcp(kind::OPEN, 1, t0 + MS),
            tcp(kind::OPEN, 2, t0 + MS),
            tcp(kind::OPEN, 3, t0 + MS),
            tcp(kind::OPEN, 4, t0 + MS),
        );
        for r in [&live, &timewait, &gone, &closed] {
            h.push(r);
        }
        // Connection 4 ends as the kernel says; 2 and 3 end without a record.
        h.push(&tcp(kind::CLOSE, 4, t0 + 2 * MS));
        h.state().tcp = vec![sock(&live, 1), sock(&timewait, 6)];
        let mut rows = run(&mut rec, &h, 100 * MS);
        let finished = rec.finish().unwrap();
        rows.extend(finished.events);
        let ends: Vec<(u64, EventKind, Option<&str>)> =
            rows.iter().filter(|e| e.kind != EventKind::Open).map(|e| (e.conn_id, e.kind, e.state)).collect();
        assert_eq!(
            ends,
            vec![
                (4, EventKind::Close, Some("CLOSE")),
                (1, EventKind::Sample, Some("ESTABLISHED")),
                (2, EventKind::Close, Some("TIME_WAIT")),
                (3, EventKind::Close, None),
            ]
        );
        assert_eq!(finished.stats.tracker.tcp_ends_inferred, 2);
        assert_eq!(finished.stats.open_connections, 1, "only the one the kernel still holds");
        let inferred = rows.iter().find(|e| e.conn_id == 2 && e.kind == EventKind::Close).unwrap();
        assert!(inferred.duration_ns.is_some_and(|d| d >= 99 * MS), "a bound: from its start to the final sample");
    }

    fn workload(container: &str) -> std::sync::Arc<gespann_common::Workload> {
        std::sync::Arc::new(gespann_common::Workload {
            cgroup: format!("/libpod_parent/libpod-{container}").into(),
            container_id: Some(container.into()),
            ..Default::default()
        })
    }

    #[test]
    fn rows_get_the_workload_of_their_cgroup_as_they_leave_the_reorder_window() {
        let (mut rec, h) = start(&RecordOptions::default(), |h| {
            let mut s = h.state();
            s.workloads.insert(5, workload("aaa"));
            s.workloads.insert(6, workload("bbb"));
        });
        let t0 = h.now_ns();
        let mut server_open = RawEvent { cgroup_id: 5, role: raw::ROLE_SERVER, ..tcp(kind::OPEN, 1, t0 + MS) };
        server_open.netns = 4026532001;
        // The accepting process, in another cgroup, is learnt at its first send: the row that is
        // still waiting takes that cgroup's workload.
        let amend = RawEvent { kind: kind::AMEND_OWNER, conn_id: 1, cgroup_id: 6, pid: 77, ..Default::default() };
        let other = RawEvent { cgroup_id: 5, ..tcp(kind::OPEN, 2, t0 + 2 * MS) };
        h.push(&server_open);
        h.push(&amend);
        h.push(&other);
        let rows = run(&mut rec, &h, 700 * MS);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!((rows[0].conn_id, rows[0].cgroup_id, rows[0].netns), (1, 6, 4026532001));
        assert_eq!(rows[0].workload.container_id.as_deref(), Some("bbb"));
        assert_eq!(rows[1].workload.container_id.as_deref(), Some("aaa"));
        // Each cgroup was handed to the seam once, when first seen.
        let noted = h.state().noted_cgroups.clone();
        assert_eq!(noted, vec![5, 6], "the amendment's cgroup too, each once: {noted:?}");
    }

    #[test]
    fn preexisting_connections_are_matched_in_their_own_namespace() {
        // The same 4-tuple open in two namespaces at start; each one's close, from the kernel,
        // ends its own connection.
        let sock = |netns: u32, inode: u64, acked: u64| TcpSocket {
            netns,
            family: 4,
            local: "127.0.0.1".parse().unwrap(),
            local_port: 40001,
            remote: "127.0.0.2".parse().unwrap(),
            remote_port: 80,
            state: 1,
            inode,
            info: Some(TcpInfo { bytes_acked: acked, ..Default::default() }),
        };
        let (mut rec, h) = start(&RecordOptions::default(), |h| {
            let mut s = h.state();
            s.tcp = vec![sock(11, 1, 10), sock(22, 2, 20)];
            s.owners = HashMap::from([
                (1, ProcOwner { pid: 100, comm: "a".into(), cgroup_id: 1 }),
                (2, ProcOwner { pid: 200, comm: "b".into(), cgroup_id: 1 }),
            ]);
        });
        let t0 = h.now_ns();
        let close = |netns: u32, acked: u64| RawEvent {
            flags: raw::flags::UNTRACKED | raw::flags::HAS_RTT,
            netns,
            sport: 40001,
            bytes_sent: acked,
            ..tcp(kind::CLOSE, 0, t0 + MS)
        };
        h.push(&close(22, 500));
        let rows = run(&mut rec, &h, 700 * MS);
        let opens: Vec<_> = rows.iter().filter(|e| e.kind == EventKind::Open).collect();
        assert_eq!(opens.iter().map(|e| (e.netns, e.pid)).collect::<Vec<_>>(), vec![(11, 100), (22, 200)]);
        let closes: Vec<_> = rows.iter().filter(|e| e.kind == EventKind::Close).collect();
        assert_eq!(closes.len(), 1, "{rows:?}");
        assert_eq!((closes[0].netns, closes[0].pid, closes[0].bytes_sent), (22, 200, 499));
        let ns22 = opens.iter().find(|e| e.netns == 22).unwrap().conn_id;
        assert_eq!(closes[0].conn_id, ns22);
        assert_eq!(rec.stats().open_connections, 1, "namespace 11's connection is still open");
    }
}
