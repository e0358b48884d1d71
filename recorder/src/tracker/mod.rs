//! Turns raw kernel events and sock_diag snapshots into recording rows.
//!
//! Pure logic: the kernel's facts arrive as arguments (raw records, sock_diag dumps, the UDP
//! flow table) from the [`crate::kernel::Kernel`] seam, so everything here is tested on
//! fixtures (only [`Clock::now`] and [`ResetReasons::load`] read the host). It keeps the
//! table of live connections (identity, last counters), matches sockets that predate the
//! recording by their endpoints, applies the kernel's amendments (a local RST right after a
//! close, the accepting process of a server connection) to rows still in the reorder buffer,
//! and releases rows in time order once they are older than the reorder window.

mod clock;
mod payload;
mod reasons;
mod reorder;
mod tuples;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use gespann_common::event::{errno_name, tcp_state_name};
use gespann_common::raw::{self, RawEvent, UdpFlow, UdpKey, flags, kind};
use gespann_common::{Event, EventKind, Protocol, ResetBy, Role};
use rustc_hash::FxHashMap;

use crate::addr::addr_of;
use crate::sockdiag::{ProcOwner, TcpSocket};

pub use clock::{Clock, monotonic_ns, realtime_ns};
pub use payload::{Counters, tcp_payload};
use payload::{measured_rtt, rtt_of};
pub use reasons::ResetReasons;
use reorder::Reorder;
pub use tuples::of_socket as socket_tuple;
use tuples::{Tuple, Tuples};

#[derive(Clone, Debug)]
struct Conn {
    protocol: Protocol,
    role: Role,
    local: IpAddr,
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
    pid: u32,
    comm: Arc<str>,
    cgroup_id: u64,
    netns: u32,
    start_mono: u64,
    last: Counters,
    ended_mono: Option<u64>,
}

/// What could not be put right or attributed; the recording's metadata carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Rows produced so far (including rows still in the reorder buffer).
    pub rows: u64,
    /// Kernel records about sockets the tracker could not attribute (dropped).
    pub untracked_dropped: u64,
    /// Amendments (a local RST after a close, an errno, the accepting process) that arrived
    /// after the rows they change had been written.
    pub late_amends: u64,
    /// Rows that arrived after a newer row had been written, so they are out of time order.
    pub late_rows: u64,
    /// Records of a kind this version does not know (dropped).
    pub unknown_records: u64,
    /// UDP flows ended without the kernel's record of their end (lost to a full ring buffer):
    /// the flow table no longer held them, or their socket's entry was gone (released).
    /// Ended at the sample that noticed.
    pub udp_ends_inferred: u64,
    /// TCP connections that ended without the kernel's record of their end, found out at the
    /// end of the recording: the kernel no longer held them established-like, and no `close`,
    /// `reset` or `failed` record had come. Ended at the final sample.
    pub tcp_ends_inferred: u64,
}

fn row(clock: &Clock, c: &Conn, conn_id: u64, kind: EventKind, ts_mono: u64) -> Event {
    Event {
        ts_ns: clock.wall(ts_mono),
        kind,
        conn_id,
        protocol: c.protocol,
        role: c.role,
        local_addr: c.local,
        remote_addr: c.remote,
        local_port: c.local_port,
        remote_port: c.remote_port,
        pid: c.pid,
        comm: c.comm.clone(),
        cgroup_id: c.cgroup_id,
        netns: c.netns,
        // Filled as the row leaves the reorder buffer (the owner may still change until then).
        workload: gespann_common::Workload::unknown(),
        state: None,
        bytes_sent: c.last.bytes_sent,
        bytes_received: c.last.bytes_received,
        packets_sent: c.last.packets_sent,
        packets_received: c.last.packets_received,
        retransmits: c.last.retransmits,
        rtt_us: None,
        handshake_us: None,
        duration_ns: None,
        error: None,
        reset_by: None,
        reset_reason: None,
        preexisting: false,
    }
}

/// What the caller must do after a raw event.
#[derive(Debug, PartialEq, Eq)]
pub enum Followup {
    None,
    /// A UDP socket with several flows was released: end its flows from the kernel map.
    ReleaseUdpSocket(u64),
}

pub struct Tracker {
    clock: Clock,
    conns: FxHashMap<u64, Conn>,
    /// Connections in `conns` not yet ended, so that [`Tracker::open_connections`] (read every
    /// tick) does not walk the table.
    live: usize,
    /// `(ended_mono, conn_id)` of every end, sorted by time: the ended connections to forget
    /// once the watermark passes their end, found without walking the table every tick. Ends
    /// arrive nearly in time order, so an end is nearly always appended. An entry whose
    /// connection has since ended again, or is gone, is skipped.
    ends: VecDeque<(u64, u64)>,
    tcp_tuples: Tuples,
    pending: Reorder,
    comms: FxHashMap<[u8; raw::COMM_LEN], Arc<str>>,
    reasons: ResetReasons,
    next_preexisting_id: u64,
    stats: TrackerStats,
}

/// Ids of connections found already open get their own range, never used by the kernel.
const PREEXISTING_ID_BASE: u64 = 1 << 62;

impl Tracker {
    pub fn new(clock: Clock, reasons: ResetReasons) -> Tracker {
        Tracker {
            clock,
            conns: FxHashMap::default(),
            live: 0,
            ends: VecDeque::new(),
            tcp_tuples: Tuples::default(),
            pending: Reorder::default(),
            comms: FxHashMap::default(),
            reasons,
            next_preexisting_id: PREEXISTING_ID_BASE,
            stats: TrackerStats::default(),
        }
    }

    /// Live (not yet ended) connections and flows.
    pub fn open_connections(&self) -> usize {
        debug_assert_eq!(self.live, self.conns.values().filter(|c| c.ended_mono.is_none()).count());
        self.live
    }

    fn insert_conn(&mut self, id: u64, conn: Conn) {
        self.live += usize::from(conn.ended_mono.is_none());
        if let Some(old) = self.conns.insert(id, conn) {
            self.live -= usize::from(old.ended_mono.is_none());
        }
    }

    fn remove_conn(&mut self, id: u64) {
        if let Some(old) = self.conns.remove(&id) {
            self.live -= usize::from(old.ended_mono.is_none());
        }
    }

    pub fn pending_rows(&self) -> usize {
        self.pending.len()
    }

    fn comm(&mut self, comm: &[u8; raw::COMM_LEN]) -> Arc<str> {
        if let Some(c) = self.comms.get(comm) {
            return c.clone();
        }
        let c: Arc<str> = Arc::from(raw::comm_to_str(comm));
        self.comms.insert(*comm, c.clone());
        c
    }

    fn push(&mut self, e: Event) {
        self.stats.rows += 1;
        self.pending.push(e);
    }

    fn conn_from_raw(&mut self, r: &RawEvent) -> Conn {
        Conn {
            protocol: if r.protocol == raw::PROTO_UDP { Protocol::Udp } else { Protocol::Tcp },
            role: if r.role == raw::ROLE_SERVER { Role::Server } else { Role::Client },
            local: addr_of(r.family, &r.saddr),
            local_port: r.sport,
            remote: addr_of(r.family, &r.daddr),
            remote_port: r.dport,
            pid: r.pid,
            comm: self.comm(&r.comm),
            cgroup_id: r.cgroup_id,
            netns: r.netns,
            start_mono: r.start_ns,
            last: Counters::default(),
            ended_mono: None,
        }
    }

    /// Handles one ring-buffer record.
    pub fn on_raw(&mut self, r: &RawEvent) -> Followup {
        match r.kind {
            kind::OPEN => self.on_open(r),
            kind::CLOSE | kind::RESET | kind::FAILED | kind::RETRANSMIT => self.on_tcp_or_udp_event(r),
            kind::AMEND_RESET => self.on_amend_reset(r),
            kind::AMEND_OWNER => self.on_amend_owner(r),
            kind::AMEND_ERROR => self.on_amend_error(r),
            kind::UDP_RELEASE => return Followup::ReleaseUdpSocket(r.sk),
            _ => self.stats.unknown_records += 1,
        }
        Followup::None
    }

    fn on_open(&mut self, r: &RawEvent) {
        let mut conn = self.conn_from_raw(r);
        conn.last = Counters::of_record(r, conn.role);
        let mut e = row(&self.clock, &conn, r.conn_id, EventKind::Open, r.ts_ns);
        if conn.protocol == Protocol::Tcp {
            e.state = tcp_state_name(r.state);
            e.rtt_us = rtt_of(r);
            if r.flags & flags::HAS_HANDSHAKE != 0 {
                e.handshake_us = Some(r.handshake_us);
            }
            let tuple = (conn.netns, conn.local, conn.local_port, conn.remote, conn.remote_port);
            // A connection seen both in the start-up dump and by the kernel keeps the kernel's id.
            if let Some(old) = self.tcp_tuples.insert(tuple, r.conn_id)
                && old >= PREEXISTING_ID_BASE
            {
                self.remove_conn(old);
                self.pending.forget(old);
            }
        }
        self.insert_conn(r.conn_id, conn);
        self.push(e);
    }

    fn on_tcp_or_udp_event(&mut self, r: &RawEvent) {
        let ev_kind = match r.kind {
            kind::CLOSE => EventKind::Close,
            kind::RESET => EventKind::Reset,
            kind::FAILED => EventKind::Failed,
            _ => EventKind::Retransmit,
        };
        let is_udp = r.protocol == raw::PROTO_UDP;

        // Which connection: the kernel's id, or (for sockets older than the recording) the
        // endpoints of one found at start-up.
        let conn_id = if r.flags & flags::UNTRACKED != 0 {
            match self.tcp_tuples.get(&tuples::of_record(r)) {
                Some(id) => id,
                None => {
                    self.stats.untracked_dropped += 1;
                    return;
                }
            }
        } else {
            r.conn_id
        };

        if !self.conns.contains_key(&conn_id) {
            // A UDP connect() refused before any datagram (no route) is its only record.
            if is_udp && ev_kind != EventKind::Failed {
                self.stats.untracked_dropped += 1;
                return;
            }
            // A failed attempt has no open row; anything else seen without its open
            // (the open was lost) still carries its full identity from the kernel.
            let conn = self.conn_from_raw(r);
            self.insert_conn(conn_id, conn);
        }
        let reason = (ev_kind == EventKind::Reset && r.flags & flags::RESET_LOCAL != 0 && r.reset_reason != 0)
            .then(|| self.reasons.name(u32::from(r.reset_reason) - 1));
        let conn = self.conns.get_mut(&conn_id).expect("inserted above");
        conn.last = Counters::of_record(r, conn.role);
        let mut e = row(&self.clock, conn, conn_id, ev_kind, r.ts_ns);
        if !is_udp {
            e.state = tcp_state_name(r.state);
            e.rtt_us = rtt_of(r);
        }
        if ev_kind.is_terminal() {
            let start = if r.start_ns != 0 { r.start_ns } else { conn.start_mono };
            if start != 0 && r.ts_ns >= start {
                e.duration_ns = Some(r.ts_ns - start);
            }
            if matches!(ev_kind, EventKind::Failed | EventKind::Reset) {
                e.error = errno_name(r.error);
            }
            if ev_kind == EventKind::Reset {
                e.reset_by = Some(if r.flags & flags::RESET_REMOTE != 0 { ResetBy::Remote } else { ResetBy::Local });
                e.reset_reason = reason;
            }
            self.live -= usize::from(conn.ended_mono.is_none());
            conn.ended_mono = Some(r.ts_ns);
            if self.ends.back().is_none_or(|&(t, _)| t <= r.ts_ns) {
                self.ends.push_back((r.ts_ns, conn_id));
            } else {
                let at = self.ends.partition_point(|&(t, _)| t <= r.ts_ns);
                self.ends.insert(at, (r.ts_ns, conn_id));
            }
            let tuple = (conn.netns, conn.local, conn.local_port, conn.remote, conn.remote_port);
            if ev_kind == EventKind::Failed {
                self.conns.remove(&conn_id);
            }
            if !is_udp {
                self.tcp_tuples.remove(&tuple);
            }
        }
        self.push(e);
    }

    fn on_amend_reset(&mut self, r: &RawEvent) {
        let reason = (r.reset_reason != 0).then(|| self.reasons.name(u32::from(r.reset_reason) - 1));
        match self.pending.last_of(r.conn_id, |p| p.kind == EventKind::Close) {
            Some(row) => {
                row.kind = EventKind::Reset;
                row.reset_by = Some(ResetBy::Local);
                row.reset_reason = reason;
            }
            None => self.stats.late_amends += 1,
        }
    }

    /// connect() returned `r.error` for an attempt whose `failed` row had no errno (the socket
    /// had none: no free local port).
    fn on_amend_error(&mut self, r: &RawEvent) {
        match self.pending.last_of(r.conn_id, |p| p.kind == EventKind::Failed) {
            Some(row) if row.error.is_none() => row.error = errno_name(r.error),
            Some(_) => {}
            None => self.stats.late_amends += 1,
        }
    }

    /// The accepting process of a server connection, learnt at its first send or receive. Its
    /// `open` row must still be waiting for the amendment to be on time.
    fn on_amend_owner(&mut self, r: &RawEvent) {
        let comm = self.comm(&r.comm);
        let Some(c) = self.conns.get_mut(&r.conn_id) else {
            self.stats.late_amends += 1;
            return;
        };
        c.pid = r.pid;
        c.comm = comm.clone();
        c.cgroup_id = r.cgroup_id;
        let mut open_waiting = false;
        for row in self.pending.rows_of(r.conn_id) {
            open_waiting |= row.kind == EventKind::Open;
            row.pid = r.pid;
            row.comm = comm.clone();
            row.cgroup_id = r.cgroup_id;
        }
        if !open_waiting {
            self.stats.late_amends += 1;
        }
    }

    /// A UDP flow ended by user space (its socket had several flows): one `close` row.
    pub fn udp_flow_ended(&mut self, flow: &UdpFlow, now_mono: u64) {
        if flow.ignored != 0 {
            return;
        }
        let r = RawEvent {
            ts_ns: now_mono,
            start_ns: flow.start_ns,
            conn_id: flow.conn_id,
            protocol: raw::PROTO_UDP,
            kind: kind::CLOSE,
            bytes_sent: flow.bytes_sent,
            bytes_received: flow.bytes_received,
            packets_sent: flow.packets_sent,
            packets_received: flow.packets_received,
            netns: flow.netns,
            ..Default::default()
        };
        self.on_tcp_or_udp_event(&r);
    }

    /// A UDP flow whose socket was released without the kernel's record of it (lost): ended
    /// now, and counted in `udp_ends_inferred`.
    pub fn udp_flow_orphaned(&mut self, flow: &UdpFlow, now_mono: u64) {
        if flow.ignored == 0 && self.conns.get(&flow.conn_id).is_some_and(|c| c.ended_mono.is_none()) {
            self.stats.udp_ends_inferred += 1;
        }
        self.udp_flow_ended(flow, now_mono);
    }

    /// Connections open before the recording started: one `open` row each, `preexisting`,
    /// with their counters so far. `listening` (namespace, port) pairs tell server sides from
    /// client sides.
    pub fn add_preexisting(
        &mut self,
        socks: &[TcpSocket],
        owners: &HashMap<u64, ProcOwner>,
        listening: &HashSet<(u32, u16)>,
        now_mono: u64,
    ) {
        for s in socks {
            let tuple = tuples::of_socket(s);
            if self.tcp_tuples.contains(&tuple) {
                continue;
            }
            let id = self.next_preexisting_id;
            self.next_preexisting_id += 1;
            let owner = owners.get(&s.inode);
            let info = s.info.unwrap_or_default();
            let role = if listening.contains(&(s.netns, s.local_port)) { Role::Server } else { Role::Client };
            let conn = Conn {
                protocol: Protocol::Tcp,
                role,
                local: s.local,
                local_port: s.local_port,
                remote: s.remote,
                remote_port: s.remote_port,
                pid: owner.map_or(0, |o| o.pid),
                comm: Arc::from(owner.map_or("", |o| o.comm.as_str())),
                cgroup_id: owner.map_or(0, |o| o.cgroup_id),
                netns: s.netns,
                start_mono: 0,
                last: Counters::of_socket(role, s.state, &info),
                ended_mono: None,
            };
            let mut e = row(&self.clock, &conn, id, EventKind::Open, now_mono);
            e.preexisting = true;
            e.state = tcp_state_name(s.state);
            e.rtt_us = s.info.and_then(|i| measured_rtt(i.rtt_us));
            self.tcp_tuples.insert(tuple, id);
            self.insert_conn(id, conn);
            self.push(e);
        }
    }

    /// Periodic TCP samples from a sock_diag dump: a `sample` row for each tracked connection
    /// whose counters moved since its last row (every one, if `force`).
    pub fn on_tcp_snapshot(&mut self, socks: &[TcpSocket], now_mono: u64, force: bool) {
        for s in socks {
            let Some(info) = s.info else { continue };
            let Some(id) = self.tcp_tuples.get(&tuples::of_socket(s)) else {
                continue;
            };
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.ended_mono.is_some() {
                continue;
            }
            let now = Counters::of_socket(c.role, s.state, &info);
            if now == c.last && !force {
                continue;
            }
            c.last = now;
            let c = c.clone();
            let mut e = row(&self.clock, &c, id, EventKind::Sample, now_mono);
            e.state = tcp_state_name(s.state);
            e.rtt_us = measured_rtt(info.rtt_us);
            self.push(e);
        }
    }

    /// The endpoints of every live TCP connection: what a periodic sample asks sock_diag about.
    pub fn live_tcp(&self) -> Vec<Tuple> {
        self.tcp_tuples
            .iter()
            .filter(|(_, id)| self.conns.get(id).is_some_and(|c| c.ended_mono.is_none()))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Periodic UDP samples from the kernel's flow table.
    pub fn on_udp_snapshot(&mut self, flows: &[(UdpKey, UdpFlow)], now_mono: u64, force: bool) {
        for (_, f) in flows {
            if f.ignored != 0 {
                continue;
            }
            let Some(c) = self.conns.get_mut(&f.conn_id) else {
                continue;
            };
            if c.ended_mono.is_some() {
                continue;
            }
            let now = Counters {
                bytes_sent: f.bytes_sent,
                bytes_received: f.bytes_received,
                packets_sent: f.packets_sent,
                packets_received: f.packets_received,
                retransmits: 0,
            };
            if now == c.last && !force {
                continue;
            }
            c.last = now;
            let c = c.clone();
            let e = row(&self.clock, &c, f.conn_id, EventKind::Sample, now_mono);
            self.push(e);
        }
    }

    /// The live UDP flows, taken before a flow-table snapshot (see [`Tracker::end_missing_udp`]).
    pub fn live_udp(&self) -> Vec<u64> {
        self.conns
            .iter()
            .filter(|(_, c)| c.protocol == Protocol::Udp && c.ended_mono.is_none())
            .map(|(&id, _)| id)
            .collect()
    }

    /// Ends the flows of `known_before` (live before the kernel's flow table was read) that
    /// the table no longer held and that are still live once every record submitted before it
    /// was read has been handled: the kernel deletes a flow only after submitting its `close`,
    /// so that record was lost (and counted by the kernel). A `close` row at `now_mono`, with
    /// the last counters, keeps the flow from looking live for the rest of the recording.
    pub fn end_missing_udp(&mut self, known_before: &[u64], flows: &[(UdpKey, UdpFlow)], now_mono: u64) {
        let held: std::collections::HashSet<u64> = flows.iter().map(|(_, f)| f.conn_id).collect();
        for &id in known_before {
            let Some(c) = self.conns.get(&id) else { continue };
            if c.ended_mono.is_some() || held.contains(&id) {
                continue;
            }
            let r = RawEvent {
                ts_ns: now_mono,
                start_ns: c.start_mono,
                conn_id: id,
                protocol: raw::PROTO_UDP,
                kind: kind::CLOSE,
                bytes_sent: c.last.bytes_sent,
                bytes_received: c.last.bytes_received,
                packets_sent: c.last.packets_sent,
                packets_received: c.last.packets_received,
                ..Default::default()
            };
            self.stats.udp_ends_inferred += 1;
            self.on_tcp_or_udp_event(&r);
        }
    }

    /// Ends TCP connection `tuple`, live here, that the kernel holds in `state` (TIME_WAIT,
    /// CLOSE) or not at all (`None`): its end record never came. A `close` row at `now_mono`
    /// with the last counters seen, counted in `tcp_ends_inferred`.
    pub fn end_unseen_tcp(&mut self, tuple: &Tuple, state: Option<u8>, now_mono: u64) {
        let Some(id) = self.tcp_tuples.get(tuple) else { return };
        let Some(c) = self.conns.get_mut(&id) else { return };
        if c.ended_mono.is_some() {
            return;
        }
        c.ended_mono = Some(now_mono);
        let c = c.clone();
        let mut e = row(&self.clock, &c, id, EventKind::Close, now_mono);
        e.state = state.and_then(tcp_state_name);
        if c.start_mono != 0 && now_mono >= c.start_mono {
            e.duration_ns = Some(now_mono - c.start_mono);
        }
        self.live -= 1;
        let at = self.ends.partition_point(|&(t, _)| t <= now_mono);
        self.ends.insert(at, (now_mono, id));
        self.tcp_tuples.remove(tuple);
        self.stats.tcp_ends_inferred += 1;
        self.push(e);
    }

    /// What could not be put right or attributed so far.
    pub fn stats(&self) -> TrackerStats {
        TrackerStats { late_rows: self.pending.late_rows(), ..self.stats.clone() }
    }

    /// Rows older than `watermark_mono`, in time order; later rows stay for reordering.
    pub fn drain_ready(&mut self, watermark_mono: u64) -> Vec<Event> {
        let ready = self.pending.release(self.clock.wall(watermark_mono));
        // Ended connections whose rows are all out can be forgotten.
        while let Some(&(ended, id)) = self.ends.front() {
            if ended > watermark_mono {
                break;
            }
            self.ends.pop_front();
            if let Some(c) = self.conns.get(&id)
                && c.ended_mono.is_some_and(|t| t <= watermark_mono)
            {
                self.conns.remove(&id);
            }
        }
        ready
    }

    /// Everything still buffered, in time order.
    pub fn drain_all(&mut self) -> Vec<Event> {
        self.pending.release_all()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::payload::TCP_LAST_ACK;
    use super::*;

    use crate::fake::records::tcp as raw_tcp;

    fn tracker() -> Tracker {
        Tracker::new(Clock::fixed(1_000_000_000), ResetReasons::default())
    }

    #[test]
    fn open_then_close_gives_two_rows_with_duration() {
        let mut t = tracker();
        t.on_raw(&raw_tcp(kind::OPEN, 1, 200));
        let mut close = raw_tcp(kind::CLOSE, 1, 1_100);
        close.bytes_sent = 11; // the SYN counts in bytes_acked
        close.state = 7;
        t.on_raw(&close);
        let rows = t.drain_all();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kind, EventKind::Open);
        assert_eq!(rows[0].ts_ns, 1_000_000_200);
        assert_eq!(&*rows[1].comm, "curl");
        assert_eq!(rows[1].duration_ns, Some(1_000));
        assert_eq!(rows[1].bytes_sent, 10);
        assert_eq!(rows[1].state, Some("CLOSE"));
        assert_eq!(rows[1].remote_addr.to_string(), "127.0.0.2");
    }

    #[test]
    fn local_rst_after_close_turns_the_close_into_a_reset() {
        let mut t = tracker();
        t.reasons = ResetReasons::from_format(
            r#"print fmt: "...", __print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, { 14, "TCP_STATE" })"#,
        );
        t.on_raw(&raw_tcp(kind::OPEN, 1, 200));
        t.on_raw(&raw_tcp(kind::CLOSE, 1, 300));
        let amend = RawEvent {
            kind: kind::AMEND_RESET,
            conn_id: 1,
            reset_reason: 15,
            flags: flags::RESET_LOCAL,
            ..Default::default()
        };
        t.on_raw(&amend);
        let rows = t.drain_all();
        assert_eq!(rows[1].kind, EventKind::Reset);
        assert_eq!(rows[1].reset_by, Some(ResetBy::Local));
        assert_eq!(rows[1].reset_reason.as_deref(), Some("TCP_STATE"));
    }

    #[test]
    fn refused_connect_is_one_failed_row_with_errno() {
        let mut t = tracker();
        let mut f = raw_tcp(kind::FAILED, 9, 500);
        f.error = 111;
        f.state = 7;
        t.on_raw(&f);
        let rows = t.drain_all();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, EventKind::Failed);
        assert_eq!(rows[0].error, Some("ECONNREFUSED"));
        assert_eq!(t.open_connections(), 0);
    }

    #[test]
    fn connects_errno_completes_a_failed_row_without_one() {
        let mut t = tracker();
        // No free local port: SYN_SENT -> CLOSE with no sk_err, then connect() returns.
        let mut f = raw_tcp(kind::FAILED, 9, 500);
        f.rtt_us = 0;
        t.on_raw(&f);
        let mut amend = raw_tcp(kind::AMEND_ERROR, 9, 510);
        amend.error = 99;
        t.on_raw(&amend);
        // A UDP connect() without a route: its failed row is the flow's only record.
        let mut u = raw_tcp(kind::FAILED, 10, 600);
        u.protocol = raw::PROTO_UDP;
        u.error = 113;
        t.on_raw(&u);
        let rows = t.drain_all();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!((rows[0].kind, rows[0].error), (EventKind::Failed, Some("EADDRNOTAVAIL")));
        assert_eq!(
            (rows[1].protocol, rows[1].kind, rows[1].error),
            (Protocol::Udp, EventKind::Failed, Some("EHOSTUNREACH"))
        );
        assert_eq!(t.open_connections(), 0);
    }

    #[test]
    fn an_srtt_of_zero_is_no_rtt_not_a_zero_rtt() {
        let mut t = tracker();
        let mut f = raw_tcp(kind::FAILED, 9, 500);
        f.error = 110;
        f.rtt_us = 0;
        t.on_raw(&f);
        let mut o = raw_tcp(kind::OPEN, 10, 600);
        o.rtt_us = 1;
        t.on_raw(&o);
        let rows = t.drain_all();
        assert_eq!((rows[0].error, rows[0].rtt_us), (Some("ETIMEDOUT"), None));
        assert_eq!(rows[1].rtt_us, Some(1));
    }

    #[test]
    fn accepted_connection_gets_the_accepting_process() {
        let mut t = tracker();
        let mut open = raw_tcp(kind::OPEN, 3, 200);
        open.role = raw::ROLE_SERVER;
        t.on_raw(&open);
        let mut amend = RawEvent { kind: kind::AMEND_OWNER, conn_id: 3, pid: 777, cgroup_id: 5, ..Default::default() };
        amend.comm[..5].copy_from_slice(b"nginx");
        t.on_raw(&amend);
        t.on_raw(&raw_tcp(kind::CLOSE, 3, 900));
        let rows = t.drain_all();
        assert!(rows.iter().all(|r| r.pid == 777 && &*r.comm == "nginx" && r.cgroup_id == 5));
    }

    #[test]
    fn rows_come_out_in_time_order_behind_the_watermark() {
        let mut t = tracker();
        t.on_raw(&raw_tcp(kind::OPEN, 2, 500));
        t.on_raw(&raw_tcp(kind::OPEN, 1, 300));
        t.on_raw(&raw_tcp(kind::RETRANSMIT, 1, 900));
        let first = t.drain_ready(600);
        assert_eq!(first.iter().map(|e| e.conn_id).collect::<Vec<_>>(), vec![1, 2]);
        let rest = t.drain_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].kind, EventKind::Retransmit);
    }

    #[test]
    fn preexisting_connections_are_matched_by_endpoints_when_they_close() {
        let mut t = tracker();
        let s = TcpSocket {
            netns: 0,
            family: 4,
            local: "127.0.0.1".parse().unwrap(),
            local_port: 40000,
            remote: "127.0.0.2".parse().unwrap(),
            remote_port: 80,
            state: 1,
            inode: 5,
            info: Some(crate::sockdiag::TcpInfo { bytes_acked: 7, ..Default::default() }),
        };
        let owners = HashMap::from([(5, ProcOwner { pid: 9, comm: "old".into(), cgroup_id: 1 })]);
        t.add_preexisting(&[s], &owners, &HashSet::new(), 50);
        let mut close = raw_tcp(kind::CLOSE, 0, 800);
        close.flags |= flags::UNTRACKED;
        close.bytes_sent = 9;
        t.on_raw(&close);
        let mut stray = raw_tcp(kind::CLOSE, 0, 900);
        stray.flags |= flags::UNTRACKED;
        stray.sport = 1;
        t.on_raw(&stray);
        let rows = t.drain_all();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].preexisting);
        assert_eq!(rows[0].bytes_sent, 6, "SYN taken out");
        assert_eq!(rows[1].conn_id, rows[0].conn_id);
        assert_eq!(rows[1].pid, 9);
        assert_eq!(rows[1].bytes_sent, 8);
        assert_eq!(t.stats().untracked_dropped, 1);
    }

    #[test]
    fn samples_only_for_connections_that_moved_unless_forced() {
        let mut t = tracker();
        t.on_raw(&raw_tcp(kind::OPEN, 1, 200));
        let mut s = TcpSocket {
            netns: 0,
            family: 4,
            local: "127.0.0.1".parse().unwrap(),
            local_port: 40000,
            remote: "127.0.0.2".parse().unwrap(),
            remote_port: 80,
            state: 1,
            inode: 1,
            info: Some(Default::default()),
        };
        t.on_tcp_snapshot(std::slice::from_ref(&s), 300, false);
        assert_eq!(t.pending_rows(), 1, "no movement, no sample");
        s.info = Some(crate::sockdiag::TcpInfo { bytes_acked: 100, ..Default::default() });
        t.on_tcp_snapshot(std::slice::from_ref(&s), 400, false);
        t.on_tcp_snapshot(std::slice::from_ref(&s), 500, true);
        let rows = t.drain_all();
        assert_eq!(rows.iter().filter(|r| r.kind == EventKind::Sample).count(), 2);
        assert_eq!(rows[1].bytes_sent, 99, "SYN taken out");
    }

    #[test]
    fn orderly_close_after_last_ack_takes_out_both_fins() {
        let mut t = tracker();
        let mut open = raw_tcp(kind::OPEN, 1, 10);
        open.role = raw::ROLE_SERVER;
        t.on_raw(&open);
        let mut close = raw_tcp(kind::CLOSE, 1, 20);
        close.role = raw::ROLE_SERVER;
        close.prev_state = TCP_LAST_ACK;
        close.fin_rcvd = 1;
        close.bytes_sent = 501;
        close.bytes_received = 1001;
        t.on_raw(&close);
        let rows = t.drain_all();
        assert_eq!((rows[1].bytes_sent, rows[1].bytes_received), (500, 1000));
    }

    #[test]
    fn v4_mapped_addresses_are_recorded_as_ipv4() {
        let mut r = raw_tcp(kind::OPEN, 1, 1);
        r.family = 6;
        r.saddr = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().octets();
        r.daddr = Ipv6Addr::LOCALHOST.octets();
        let mut t = tracker();
        t.on_raw(&r);
        let rows = t.drain_all();
        assert_eq!(rows[0].local_addr.to_string(), "127.0.0.1");
        assert_eq!(rows[0].remote_addr.to_string(), "::1");
    }
}
