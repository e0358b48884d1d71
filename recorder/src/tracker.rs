//! Turns raw kernel events and sock_diag snapshots into recording rows.
//!
//! Pure logic, no kernel access: everything here is tested on byte fixtures. It keeps the
//! table of live connections (identity, last counters), matches sockets that predate the
//! recording by their endpoints, applies the kernel's amendments (a local RST right after a
//! close, the accepting process of a server connection) to rows still in the reorder buffer,
//! and releases rows in time order once they are older than the reorder window.

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use gespann_common::event::{errno_name, tcp_state_name};
use gespann_common::raw::{self, RawEvent, UdpFlow, UdpKey, flags, kind};
use gespann_common::{Event, EventKind, Protocol, ResetBy, Role};

use crate::sockdiag::{ProcOwner, TcpSocket};

/// Maps CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads) to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i64,
}

impl Clock {
    pub fn now() -> Clock {
        let mono = monotonic_ns() as i64;
        let wall = realtime_ns();
        Clock { offset_ns: wall - mono }
    }

    pub fn fixed(offset_ns: i64) -> Clock {
        Clock { offset_ns }
    }

    pub fn wall(&self, mono_ns: u64) -> i64 {
        mono_ns as i64 + self.offset_ns
    }
}

pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

pub fn realtime_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are IPv4 on the wire: record them so.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn addr_of(family: u8, bytes: &[u8; 16]) -> IpAddr {
    if family == 6 {
        unmap(IpAddr::V6(Ipv6Addr::from(*bytes)))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

type Tuple = (IpAddr, u16, IpAddr, u16);

const TCP_FIN_WAIT2: u8 = 5;
const TCP_CLOSE_WAIT: u8 = 8;
const TCP_LAST_ACK: u8 = 9;
const TCP_CLOSING: u8 = 11;

/// Payload bytes from the kernel's counters. `bytes_acked` and `bytes_received` (in `tcp_sock`
/// and `tcp_info` alike) count sequence space: the SYN the client sent is acknowledged once
/// (the server's SYN-ACK is not counted: its connection is born after it), and each FIN
/// counts one. Recordings hold payload, so those are taken out here, in this one place.
pub fn tcp_payload(
    role: Role,
    bytes_acked: u64,
    bytes_received: u64,
    our_fin_acked: bool,
    their_fin_received: bool,
) -> (u64, u64) {
    let syn = u64::from(role == Role::Client && bytes_acked > 0);
    let sent = bytes_acked.saturating_sub(syn + u64::from(our_fin_acked));
    let received = bytes_received.saturating_sub(u64::from(their_fin_received));
    (sent, received)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    bytes_sent: u64,
    bytes_received: u64,
    packets_sent: u64,
    packets_received: u64,
    retransmits: u32,
}

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
    start_mono: u64,
    last: Counters,
    ended_mono: Option<u64>,
}

/// Counts of what could not be attributed; surfaced in logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub rows: u64,
    pub untracked_dropped: u64,
    pub late_amends: u64,
    /// Ring-buffer records of a `kind` this build does not know (an object newer than the
    /// recorder): dropped, and counted here.
    pub unknown_records: u64,
}

/// Names of `enum sk_rst_reason`, read from the `tcp_send_reset` tracepoint's format.
#[derive(Clone, Debug, Default)]
pub struct ResetReasons(HashMap<u32, Arc<str>>);

impl ResetReasons {
    /// Parses `__print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, ...)` out of a format file.
    pub fn from_format(format: &str) -> ResetReasons {
        let mut map = HashMap::new();
        if let Some(i) = format.find("__print_symbolic(REC->reason") {
            let mut rest = &format[i..];
            while let Some(open) = rest.find("{ ") {
                rest = &rest[open + 2..];
                let Some(comma) = rest.find(',') else { break };
                let Ok(n) = rest[..comma].trim().parse::<u32>() else {
                    break;
                };
                let after = &rest[comma + 1..];
                let (Some(q1), Some(_)) = (after.find('"'), after.find('}')) else {
                    break;
                };
                let name_start = &after[q1 + 1..];
                let Some(q2) = name_start.find('"') else {
                    break;
                };
                map.insert(n, Arc::from(&name_start[..q2]));
                rest = &name_start[q2..];
            }
        }
        ResetReasons(map)
    }

    pub fn load() -> ResetReasons {
        std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format")
            .map(|f| ResetReasons::from_format(&f))
            .unwrap_or_default()
    }

    fn name(&self, reason: u32) -> Arc<str> {
        self.0.get(&reason).cloned().unwrap_or_else(|| Arc::from(format!("REASON_{reason}")))
    }
}

/// Payload counters of a live socket from sock_diag, where the state tells the FINs apart.
fn snapshot_payload(role: Role, state: u8, info: &crate::sockdiag::TcpInfo) -> (u64, u64) {
    let our_fin_acked = state == TCP_FIN_WAIT2;
    let their_fin = matches!(state, TCP_CLOSE_WAIT | TCP_LAST_ACK | TCP_CLOSING);
    tcp_payload(role, info.bytes_acked, info.bytes_received, our_fin_acked, their_fin)
}

/// A smoothed RTT (from a raw record or tcp_info), if the kernel has measured one: an srtt of 0
/// means no sample yet (a failed attempt never has one; the kernel counts any sample as at
/// least 1 µs).
fn measured_rtt(rtt_us: u32) -> Option<u32> {
    (rtt_us != 0).then_some(rtt_us)
}

/// The RTT of a TCP record, see [`measured_rtt`].
fn rtt_of(r: &RawEvent) -> Option<u32> {
    if r.flags & flags::HAS_RTT != 0 { measured_rtt(r.rtt_us) } else { None }
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
    tcp_tuples: FxHashMap<Tuple, u64>,
    pending: Vec<Event>,
    comms: FxHashMap<[u8; raw::COMM_LEN], Arc<str>>,
    reasons: ResetReasons,
    next_preexisting_id: u64,
    pub stats: TrackerStats,
}

/// Ids of connections found already open get their own range, never used by the kernel.
const PREEXISTING_ID_BASE: u64 = 1 << 62;

impl Tracker {
    pub fn new(clock: Clock, reasons: ResetReasons) -> Tracker {
        Tracker {
            clock,
            conns: FxHashMap::default(),
            tcp_tuples: FxHashMap::default(),
            pending: Vec::with_capacity(1 << 16),
            comms: FxHashMap::default(),
            reasons,
            next_preexisting_id: PREEXISTING_ID_BASE,
            stats: TrackerStats::default(),
        }
    }

    /// Live (not yet ended) connections and flows.
    pub fn open_connections(&self) -> usize {
        self.conns.values().filter(|c| c.ended_mono.is_none()).count()
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
            start_mono: r.start_ns,
            last: Counters::default(),
            ended_mono: None,
        }
    }

    fn counters_of(r: &RawEvent, role: Role) -> Counters {
        let (bytes_sent, bytes_received) = if r.protocol == raw::PROTO_TCP {
            // An orderly close (CLOSE) after FIN_WAIT2, CLOSING or LAST_ACK means our FIN was
            // acknowledged; an RST or a timeout (sk_err set) in CLOSING/LAST_ACK means it was not.
            let fin_acked = match r.kind {
                kind::CLOSE | kind::RESET => {
                    r.prev_state == TCP_FIN_WAIT2
                        || (r.kind == kind::CLOSE && r.error == 0 && matches!(r.prev_state, TCP_CLOSING | TCP_LAST_ACK))
                }
                _ => r.state == TCP_FIN_WAIT2,
            };
            tcp_payload(role, r.bytes_sent, r.bytes_received, fin_acked, r.fin_rcvd != 0)
        } else {
            (r.bytes_sent, r.bytes_received)
        };
        Counters {
            bytes_sent,
            bytes_received,
            packets_sent: r.packets_sent,
            packets_received: r.packets_received,
            retransmits: r.retransmits,
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
        conn.last = Self::counters_of(r, conn.role);
        let mut e = row(&self.clock, &conn, r.conn_id, EventKind::Open, r.ts_ns);
        if conn.protocol == Protocol::Tcp {
            e.state = tcp_state_name(r.state);
            e.rtt_us = rtt_of(r);
            if r.flags & flags::HAS_HANDSHAKE != 0 {
                e.handshake_us = Some(r.handshake_us);
            }
            let tuple = (conn.local, conn.local_port, conn.remote, conn.remote_port);
            // A connection seen both in the start-up dump and by the kernel keeps the kernel's id.
            if let Some(old) = self.tcp_tuples.insert(tuple, r.conn_id)
                && old >= PREEXISTING_ID_BASE
            {
                self.conns.remove(&old);
                self.pending.retain(|p| p.conn_id != old);
            }
        }
        self.conns.insert(r.conn_id, conn);
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
            let tuple = (addr_of(r.family, &r.saddr), r.sport, addr_of(r.family, &r.daddr), r.dport);
            match self.tcp_tuples.get(&tuple) {
                Some(&id) => id,
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
            self.conns.insert(conn_id, conn);
        }
        let reason = (ev_kind == EventKind::Reset && r.flags & flags::RESET_LOCAL != 0 && r.reset_reason != 0)
            .then(|| self.reasons.name(u32::from(r.reset_reason) - 1));
        let conn = self.conns.get_mut(&conn_id).expect("inserted above");
        conn.last = Self::counters_of(r, conn.role);
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
            conn.ended_mono = Some(r.ts_ns);
            let tuple = (conn.local, conn.local_port, conn.remote, conn.remote_port);
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
        match self.pending.iter_mut().rev().find(|p| p.conn_id == r.conn_id && p.kind == EventKind::Close) {
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
        match self.pending.iter_mut().rev().find(|p| p.conn_id == r.conn_id && p.kind == EventKind::Failed) {
            Some(row) if row.error.is_none() => row.error = errno_name(r.error),
            Some(_) => {}
            None => self.stats.late_amends += 1,
        }
    }

    fn on_amend_owner(&mut self, r: &RawEvent) {
        let comm = self.comm(&r.comm);
        let Some(c) = self.conns.get_mut(&r.conn_id) else {
            return;
        };
        c.pid = r.pid;
        c.comm = comm.clone();
        c.cgroup_id = r.cgroup_id;
        for row in self.pending.iter_mut().filter(|p| p.conn_id == r.conn_id) {
            row.pid = r.pid;
            row.comm = comm.clone();
            row.cgroup_id = r.cgroup_id;
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
            ..Default::default()
        };
        self.on_tcp_or_udp_event(&r);
    }

    /// Connections open before the recording started: one `open` row each, `preexisting`,
    /// with their counters so far. `listening` ports tell server sides from client sides.
    pub fn add_preexisting(
        &mut self,
        socks: &[TcpSocket],
        owners: &HashMap<u64, ProcOwner>,
        listening: &HashSet<u16>,
        now_mono: u64,
    ) {
        for s in socks {
            let tuple = (s.local, s.local_port, s.remote, s.remote_port);
            if self.tcp_tuples.contains_key(&tuple) {
                continue;
            }
            let id = self.next_preexisting_id;
            self.next_preexisting_id += 1;
            let owner = owners.get(&s.inode);
            let info = s.info.unwrap_or_default();
            let role = if listening.contains(&s.local_port) { Role::Server } else { Role::Client };
            let (bytes_sent, bytes_received) = snapshot_payload(role, s.state, &info);
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
                start_mono: 0,
                last: Counters {
                    bytes_sent,
                    bytes_received,
                    packets_sent: u64::from(info.data_segs_out),
                    packets_received: u64::from(info.data_segs_in),
                    retransmits: info.total_retrans,
                },
                ended_mono: None,
            };
            let mut e = row(&self.clock, &conn, id, EventKind::Open, now_mono);
            e.preexisting = true;
            e.state = tcp_state_name(s.state);
            e.rtt_us = s.info.and_then(|i| measured_rtt(i.rtt_us));
            self.tcp_tuples.insert(tuple, id);
            self.conns.insert(id, conn);
            self.push(e);
        }
    }

    /// Periodic TCP samples from a sock_diag dump: a `sample` row for each tracked connection
    /// whose counters moved since its last row (every one, if `force`).
    pub fn on_tcp_snapshot(&mut self, socks: &[TcpSocket], now_mono: u64, force: bool) {
        for s in socks {
            let Some(info) = s.info else { continue };
            let Some(&id) = self.tcp_tuples.get(&(s.local, s.local_port, s.remote, s.remote_port)) else {
                continue;
            };
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.ended_mono.is_some() {
                continue;
            }
            let (bytes_sent, bytes_received) = snapshot_payload(c.role, s.state, &info);
            let now = Counters {
                bytes_sent,
                bytes_received,
                packets_sent: u64::from(info.data_segs_out),
                packets_received: u64::from(info.data_segs_in),
                retransmits: info.total_retrans,
            };
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

    /// Rows older than `watermark_mono`, in time order; later rows stay for reordering.
    pub fn drain_ready(&mut self, watermark_mono: u64) -> Vec<Event> {
        let watermark = self.clock.wall(watermark_mono);
        self.pending.sort_by_key(|e| e.ts_ns);
        let split = self.pending.partition_point(|e| e.ts_ns <= watermark);
        let rest = self.pending.split_off(split);
        let ready = std::mem::replace(&mut self.pending, rest);
        // Ended connections whose rows are all out can be forgotten.
        self.conns.retain(|_, c| c.ended_mono.is_none_or(|t| t > watermark_mono));
        ready
    }

    /// Everything still buffered, in time order.
    pub fn drain_all(&mut self) -> Vec<Event> {
        self.pending.sort_by_key(|e| e.ts_ns);
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tcp(kind: u8, conn_id: u64, ts: u64) -> RawEvent {
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
        assert_eq!(t.stats.untracked_dropped, 1);
    }

    #[test]
    fn samples_only_for_connections_that_moved_unless_forced() {
        let mut t = tracker();
        t.on_raw(&raw_tcp(kind::OPEN, 1, 200));
        let mut s = TcpSocket {
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
    fn syn_and_fins_are_not_payload() {
        // Client that sent 1000 and received 500, orderly close: SYN and FIN acked, FIN received.
        assert_eq!(tcp_payload(Role::Client, 1002, 501, true, true), (1000, 500));
        // Server side of the same connection: no SYN in its bytes_acked.
        assert_eq!(tcp_payload(Role::Server, 501, 1001, true, true), (500, 1000));
        // Reset before any FIN.
        assert_eq!(tcp_payload(Role::Client, 301, 0, false, false), (300, 0));
        // A refused connect acknowledged nothing.
        assert_eq!(tcp_payload(Role::Client, 0, 0, false, false), (0, 0));
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

    #[test]
    fn reset_reason_names_come_from_the_tracepoint_format() {
        let r = ResetReasons::from_format(
            r#"print fmt: "x", REC->state ? __print_symbolic(REC->state, { 1, "TCP_ESTABLISHED" }) : "UNKNOWN", __print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, { 1, "NO_SOCKET" }, { 12, "TCP_ABORT_ON_LINGER" })"#,
        );
        assert_eq!(&*r.name(12), "TCP_ABORT_ON_LINGER");
        assert_eq!(&*r.name(1), "NO_SOCKET");
        assert_eq!(&*r.name(99), "REASON_99");
    }
}
