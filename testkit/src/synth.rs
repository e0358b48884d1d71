//! The synthetic recording generator: what `cargo xtask synth` writes, and what the analyzer's
//! tests and the benchmarks generate, large or small, with a realistic shape.
//!
//! The shape mimics a busy application host: a few hundred destinations (web APIs, databases,
//! caches, backup targets, DNS resolvers, a metrics sink), short web requests, pooled long-lived
//! database connections (some already open when the recording starts, most still open at its end),
//! an nginx serving remote clients, bulk transfers with retransmits, refused and timed-out connects
//! to a handful of broken destinations, resets in both directions, and UDP flows (DNS, some never
//! answered; statsd, never answered by design). Every row follows schema version 1 and the
//! recorder's semantics (cumulative counters, rows in time order, one final `sample` per connection
//! still open at the end). The output depends only on the arguments: the same seed gives the same
//! file, byte for byte, so the analyzer's tests compare its numbers with DuckDB's and keep snapshots
//! of its reports.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use gespann_common::recording::{RecordingMeta, RecordingWriter};
use gespann_common::{Event, EventKind, Protocol, ResetBy, Role, Workload};

/// 2026-01-01T00:00:00Z in nanoseconds.
pub const DEFAULT_START_NS: i64 = 1_767_225_600_000_000_000;
const SEC: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Approximate number of rows (the final samples of connections open at the end come on top).
    pub events: u64,
    pub seed: u64,
    pub start_ns: i64,
    /// Written to `gespann.events_lost`.
    pub events_lost: u64,
    /// New connections per second; `None` scales it with `events`.
    pub connections_per_sec: Option<f64>,
}

impl SynthConfig {
    pub fn new(events: u64, seed: u64) -> Self {
        SynthConfig { events, seed, start_ns: DEFAULT_START_NS, events_lost: 0, connections_per_sec: None }
    }
}

/// A small, fast, seeded generator (SplitMix64): the file must depend only on the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    /// Log-uniform between `lo` and `hi`: a crude heavy tail.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.f64() * (hi.ln() - lo.ln())).exp()
    }
    /// Exponentially distributed with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Web,
    Db,
    Bulk,
    Dns,
    Statsd,
}

struct Dest {
    addr: IpAddr,
    port: u16,
    class: Class,
    rtt_us: f64,
    fail_prob: f64,
    fail_errno: &'static str,
    reset_prob: f64,
    loss: f64,
    /// DNS: share of queries never answered.
    unanswered: f64,
}

struct Proc {
    comm: Arc<str>,
    pid: u32,
    cgroup_id: u64,
    netns: u32,
    workload: Arc<Workload>,
}

/// The host's network namespace in synthetic recordings.
const HOST_NETNS: u32 = 4026531840;

/// Where a synthetic process runs, shaped like a Kubernetes node: the services run in pods (each
/// its own network namespace, a containerd cgroup), the agents on the host. Derived from the pid
/// alone, so the random stream (and every other synthetic fact) stays as it was.
fn placement(comm: &str, pid: u32, k: u64) -> (u32, Arc<Workload>) {
    let hex = |seed: u64, len: usize| -> String {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from_digit((x % 16) as u32, 16).unwrap_or('0')
            })
            .collect()
    };
    if matches!(comm, "node" | "envoy" | "nginx" | "postgres" | "pgbouncer") {
        let id = hex(u64::from(pid), 64);
        let u = hex(u64::from(pid) + 1, 32);
        let uid = format!("{}-{}-{}-{}-{}", &u[..8], &u[8..12], &u[12..16], &u[16..20], &u[20..]);
        let cgroup = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
            uid.replace('-', "_")
        );
        let w = Workload {
            cgroup: Arc::from(cgroup),
            container_id: Some(Arc::from(id)),
            container_name: Some(Arc::from(comm)),
            pod_uid: Some(Arc::from(uid)),
            pod_name: Some(Arc::from(format!("{comm}-{k}"))),
            pod_namespace: Some(Arc::from("prod")),
        };
        (4026532000 + pid % 1000, Arc::new(w))
    } else {
        let w = Workload { cgroup: Arc::from(format!("/system.slice/{comm}.service")), ..Workload::default() };
        (HOST_NETNS, Arc::new(w))
    }
}

struct World {
    dests: Vec<Dest>,
    web: Vec<usize>,
    db: Vec<usize>,
    bulk: Vec<usize>,
    dns: Vec<usize>,
    statsd: Vec<usize>,
    procs: BTreeMap<&'static str, Vec<Proc>>,
    local4: IpAddr,
    local6: IpAddr,
}

fn build_world(rng: &mut Rng) -> World {
    let mut dests = Vec::new();
    let mut web = Vec::new();
    let mut db = Vec::new();
    let mut bulk = Vec::new();
    let mut dns = Vec::new();
    let mut statsd = Vec::new();
    let v4 = |net: u8, host: u8| -> IpAddr {
        let base = match net {
            0 => [192, 0, 2],
            1 => [198, 51, 100],
            _ => [203, 0, 113],
        };
        IpAddr::V4(Ipv4Addr::new(base[0], base[1], base[2], host))
    };
    // 240 web destinations: most healthy, a few broken or flaky.
    for i in 0..240u32 {
        let addr = if i % 8 == 7 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, (i / 256) as u16, 0, 0, 0, i as u16 + 1))
        } else {
            v4((i % 3) as u8, (i / 3 + 1) as u8)
        };
        let port = [443, 443, 443, 80, 8080, 8443][(i % 6) as usize];
        let broken = i % 29 == 5;
        let flaky = i % 17 == 3;
        let fail_errno = ["ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH"][(i % 3) as usize];
        web.push(dests.len());
        dests.push(Dest {
            addr,
            port,
            class: Class::Web,
            rtt_us: rng.log_uniform(300.0, 180_000.0),
            fail_prob: if broken {
                0.6 + 0.4 * rng.f64()
            } else if flaky {
                0.05
            } else {
                0.0
            },
            fail_errno,
            reset_prob: if i % 13 == 4 { 0.25 } else { 0.01 },
            loss: if i % 11 == 2 { 0.02 } else { 0.001 },
            unanswered: 0.0,
        });
    }
    for (i, port) in [5432u16, 5432, 5432, 6379, 6379, 6379, 9042, 27017].into_iter().cycle().take(24).enumerate() {
        db.push(dests.len());
        dests.push(Dest {
            addr: IpAddr::V4(Ipv4Addr::new(10, 20, (i / 8) as u8, 10 + i as u8)),
            port,
            class: Class::Db,
            rtt_us: rng.log_uniform(100.0, 2_000.0),
            fail_prob: if i == 5 { 0.5 } else { 0.0 },
            fail_errno: "ECONNREFUSED",
            reset_prob: if i == 7 { 0.3 } else { 0.02 },
            loss: 0.0005,
            unanswered: 0.0,
        });
    }
    for i in 0..6u8 {
        bulk.push(dests.len());
        dests.push(Dest {
            addr: IpAddr::V4(Ipv4Addr::new(10, 30, 0, 5 + i)),
            port: if i % 2 == 0 { 873 } else { 9000 },
            class: Class::Bulk,
            rtt_us: rng.log_uniform(2_000.0, 60_000.0),
            fail_prob: 0.0,
            fail_errno: "ETIMEDOUT",
            reset_prob: 0.05,
            loss: 0.01 + 0.02 * f64::from(i % 3),
            unanswered: 0.0,
        });
    }
    for (i, a) in ["10.0.0.2", "10.0.0.3", "1.1.1.1", "2001:db8:53::53"].into_iter().enumerate() {
        dns.push(dests.len());
        dests.push(Dest {
            addr: a.parse().expect("literal address"),
            port: 53,
            class: Class::Dns,
            rtt_us: rng.log_uniform(200.0, 20_000.0),
            fail_prob: 0.0,
            fail_errno: "ETIMEDOUT",
            reset_prob: 0.0,
            loss: 0.0,
            unanswered: if i == 2 { 0.2 } else { 0.01 },
        });
    }
    for i in 0..2u8 {
        statsd.push(dests.len());
        dests.push(Dest {
            addr: IpAddr::V4(Ipv4Addr::new(10, 40, 0, 1 + i)),
            port: 8125,
            class: Class::Statsd,
            rtt_us: 0.0,
            fail_prob: 0.0,
            fail_errno: "ETIMEDOUT",
            reset_prob: 0.0,
            loss: 0.0,
            unanswered: 1.0,
        });
    }
    let mut procs = BTreeMap::new();
    let mut pid = 1000u32;
    for (comm, n) in [
        ("curl", 6),
        ("python3", 4),
        ("java", 2),
        ("node", 3),
        ("envoy", 2),
        ("nginx", 4),
        ("postgres", 1),
        ("pgbouncer", 1),
        ("rsync", 2),
        ("systemd-resolve", 1),
        ("statsd-agent", 1),
    ] {
        let v: Vec<Proc> = (0..n)
            .map(|k| {
                pid += 7 + rng.below(50) as u32;
                let (netns, workload) = placement(comm, pid, k);
                Proc { comm: Arc::from(comm), pid, cgroup_id: 4000 + (pid as u64 % 5) + k, netns, workload }
            })
            .collect();
        procs.insert(comm, v);
    }
    World {
        dests,
        web,
        db,
        bulk,
        dns,
        statsd,
        procs,
        local4: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 17)),
        local6: "2001:db8:1::17".parse().expect("literal address"),
    }
}

/// An event waiting in the merge heap, ordered by time then creation order.
struct Pending {
    ts: i64,
    seq: u64,
    event: Event,
}
impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

/// Generates the rows in time order and hands each to `sink`. Returns the number of rows.
pub fn generate(cfg: &SynthConfig, sink: &mut dyn FnMut(&Event) -> anyhow::Result<()>) -> anyhow::Result<u64> {
    let mut rng = Rng::new(cfg.seed);
    let world = build_world(&mut rng);
    let rate = cfg.connections_per_sec.unwrap_or_else(|| (cfg.events as f64 / 2_000.0).clamp(20.0, 20_000.0));
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut next_conn_id = 1u64;
    // Last emitted row of every connection not yet ended: the source of the final samples.
    let mut live: BTreeMap<u64, Event> = BTreeMap::new();
    let mut emitted = 0u64;
    let mut push_all = |heap: &mut BinaryHeap<Reverse<Pending>>, evs: Vec<Event>| {
        for event in evs {
            seq += 1;
            heap.push(Reverse(Pending { ts: event.ts_ns, seq, event }));
        }
    };

    // Connections already open when the recording starts: pooled database connections and a
    // few long transfers.
    let n_pre = 8 + (rate / 10.0) as u64;
    for _ in 0..n_pre {
        let id = next_conn_id;
        next_conn_id += 1;
        let evs = connection(&world, &mut rng, id, cfg.start_ns, true);
        push_all(&mut heap, evs);
    }
    let mut next_arrival = cfg.start_ns + rng.exp(SEC as f64 / rate) as i64;
    let mut last_ts = cfg.start_ns;
    while emitted < cfg.events {
        let head_ts = heap.peek().map(|Reverse(p)| p.ts);
        if head_ts.is_none_or(|t| next_arrival <= t) {
            let id = next_conn_id;
            next_conn_id += 1;
            let evs = connection(&world, &mut rng, id, next_arrival, false);
            push_all(&mut heap, evs);
            next_arrival += 1 + rng.exp(SEC as f64 / rate) as i64;
            continue;
        }
        let Some(Reverse(p)) = heap.pop() else { break };
        let e = p.event;
        last_ts = e.ts_ns;
        sink(&e)?;
        emitted += 1;
        if e.kind.is_terminal() {
            live.remove(&e.conn_id);
        } else {
            live.insert(e.conn_id, e);
        }
    }
    // The end of the window: one final sample per connection still open.
    let end = last_ts + 1;
    for (_, mut e) in live {
        e.ts_ns = end;
        e.kind = EventKind::Sample;
        e.handshake_us = None;
        e.preexisting = false;
        sink(&e)?;
        emitted += 1;
    }
    Ok(emitted)
}

/// The whole life of one connection (or flow, or failed attempt) starting at `t0`.
fn connection(world: &World, rng: &mut Rng, id: u64, t0: i64, preexisting: bool) -> Vec<Event> {
    let roll = rng.f64();
    let (class, role) = if preexisting {
        if roll < 0.85 { (Class::Db, Role::Client) } else { (Class::Bulk, Role::Client) }
    } else if roll < 0.50 {
        (Class::Web, Role::Client)
    } else if roll < 0.65 {
        (Class::Web, Role::Server)
    } else if roll < 0.70 {
        (Class::Db, Role::Client)
    } else if roll < 0.702 {
        (Class::Bulk, Role::Client)
    } else if roll < 0.93 {
        (Class::Dns, Role::Client)
    } else {
        (Class::Statsd, Role::Client)
    };
    let pick = |rng: &mut Rng, v: &[usize]| v[rng.below(v.len() as u64) as usize];
    // Web destinations are skewed: a few are hit far more often.
    let dest_idx = match class {
        Class::Web => {
            let r = rng.f64();
            world.web[((r * r * r) * world.web.len() as f64) as usize % world.web.len()]
        }
        Class::Db => pick(rng, &world.db),
        Class::Bulk => pick(rng, &world.bulk),
        Class::Dns => pick(rng, &world.dns),
        Class::Statsd => pick(rng, &world.statsd),
    };
    let d = &world.dests[dest_idx];
    let comm_name = match (class, role) {
        (Class::Web, Role::Server) => "nginx",
        (Class::Web, _) => ["curl", "python3", "java", "node", "envoy"][rng.below(5) as usize],
        (Class::Db, _) => ["java", "python3", "pgbouncer"][rng.below(3) as usize],
        (Class::Bulk, _) => "rsync",
        (Class::Dns, _) => "systemd-resolve",
        (Class::Statsd, _) => "statsd-agent",
    };
    let procs = &world.procs[comm_name];
    let p = &procs[rng.below(procs.len() as u64) as usize];
    let protocol = if matches!(class, Class::Dns | Class::Statsd) { Protocol::Udp } else { Protocol::Tcp };
    let (remote_addr, remote_port, local_port) = if role == Role::Server {
        let host = 1 + rng.below(250) as u8;
        let net = rng.below(3) as u8;
        let addr = IpAddr::V4(Ipv4Addr::new(
            [100, 172, 100][net as usize],
            [64, 16, 65][net as usize],
            rng.below(16) as u8,
            host,
        ));
        (addr, 32768 + rng.below(28000) as u16, d.port)
    } else {
        (d.addr, d.port, 32768 + rng.below(28000) as u16)
    };
    let local_addr = if remote_addr.is_ipv6() { world.local6 } else { world.local4 };
    let rtt_base = if role == Role::Server { rng.log_uniform(5_000.0, 120_000.0) } else { d.rtt_us };
    let rtt = |rng: &mut Rng| (rtt_base * (0.8 + 0.7 * rng.f64())).max(1.0) as u32;
    let base = Event {
        ts_ns: t0,
        kind: EventKind::Open,
        conn_id: id,
        protocol,
        role,
        local_addr,
        remote_addr,
        local_port,
        remote_port,
        pid: p.pid,
        comm: p.comm.clone(),
        cgroup_id: p.cgroup_id,
        netns: p.netns,
        workload: p.workload.clone(),
        state: None,
        bytes_sent: 0,
        bytes_received: 0,
        packets_sent: 0,
        packets_received: 0,
        retransmits: 0,
        rtt_us: None,
        handshake_us: None,
        duration_ns: None,
        error: None,
        reset_by: None,
        reset_reason: None,
        preexisting,
    };
    let mut out = Vec::new();

    if protocol == Protocol::Udp {
        let answered = !rng.chance(d.unanswered);
        let queries = if class == Class::Statsd { 1 + rng.below(40) } else { 1 + rng.below(3) };
        let q_bytes = 40 + rng.below(60);
        let dur = if class == Class::Statsd {
            (rng.log_uniform(0.05, 20.0) * SEC as f64) as i64
        } else if answered {
            (f64::from(rtt(rng)) * 1_000.0 * queries as f64) as i64 + 50_000
        } else {
            5 * SEC
        };
        let mut e = base.clone();
        e.bytes_sent = q_bytes;
        e.packets_sent = 1;
        out.push(e);
        let samples = (dur - 1).max(0) / SEC; // strictly before the end
        for s in 1..=samples {
            let mut e = base.clone();
            e.kind = EventKind::Sample;
            e.ts_ns = t0 + s * SEC;
            e.packets_sent = 1 + (queries - 1) * s as u64 / (samples as u64 + 1);
            e.bytes_sent = e.packets_sent * q_bytes;
            out.push(e);
        }
        let mut e = base.clone();
        e.kind = EventKind::Close;
        e.ts_ns = t0 + dur;
        e.packets_sent = queries;
        e.bytes_sent = queries * q_bytes;
        if answered {
            e.packets_received = queries;
            e.bytes_received = queries * (q_bytes + 16 + rng.below(200));
        }
        e.duration_ns = Some(dur as u64);
        out.push(e);
        return out;
    }

    // TCP. A failed connect never establishes: one `failed` row.
    if role == Role::Client && !preexisting && rng.chance(d.fail_prob) {
        let mut e = base.clone();
        e.kind = EventKind::Failed;
        e.state = Some("CLOSE");
        let attempt = match d.fail_errno {
            "ECONNREFUSED" => i64::from(rtt(rng)) * 1_000,
            "EHOSTUNREACH" => 3 * SEC + rng.below(1_000) as i64 * MS,
            _ => (1 + rng.below(7)) as i64 * SEC,
        };
        e.ts_ns = t0 + attempt;
        e.duration_ns = Some(attempt as u64);
        e.error = Some(d.fail_errno);
        e.packets_sent = 1 + (attempt / SEC) as u64;
        e.retransmits = (attempt / SEC) as u32;
        out.push(e);
        return out;
    }

    // Lifetime and volume by class.
    let (dur, total_sent, total_recv) = match (d.class, role) {
        (Class::Web, Role::Client) => (
            (rng.log_uniform(0.01, 4.0) * SEC as f64) as i64,
            200 + rng.log_uniform(100.0, 20_000.0) as u64,
            rng.log_uniform(500.0, 4_000_000.0) as u64,
        ),
        (Class::Web, _) => (
            (rng.log_uniform(0.005, 30.0) * SEC as f64) as i64,
            rng.log_uniform(800.0, 2_000_000.0) as u64,
            200 + rng.log_uniform(100.0, 8_000.0) as u64,
        ),
        (Class::Db, _) => (
            (rng.log_uniform(1.0, 900.0) * SEC as f64) as i64,
            rng.log_uniform(1_000.0, 5_000_000.0) as u64,
            rng.log_uniform(1_000.0, 50_000_000.0) as u64,
        ),
        _ => (
            (rng.log_uniform(30.0, 1_800.0) * SEC as f64) as i64,
            rng.log_uniform(100_000_000.0, 5_000_000_000.0) as u64,
            rng.log_uniform(10_000.0, 1_000_000.0) as u64,
        ),
    };
    // Idle keepalive connections: long, with almost nothing sent after the start.
    let idle = d.class == Class::Db && rng.chance(0.2);
    let handshake = rtt(rng);
    let mut open = base.clone();
    open.state = Some("ESTABLISHED");
    open.rtt_us = Some(handshake);
    if role == Role::Client && !preexisting {
        open.handshake_us = Some(handshake + rng.below(u64::from(handshake / 4 + 1)) as u32);
    }
    if preexisting {
        // Already open for a while: counters carry what came before the recording.
        open.bytes_sent = total_sent / 3;
        open.bytes_received = total_recv / 3;
        open.packets_sent = open.bytes_sent / 1448 + 1;
        open.packets_received = open.bytes_received / 1448 + 1;
    } else {
        open.packets_sent = 1;
        open.packets_received = 1;
    }
    let start_sent = open.bytes_sent;
    let start_recv = open.bytes_received;
    out.push(open.clone());

    let mut retrans = 0u32;
    let mut cur = open;
    let samples = (dur - 1).max(0) / SEC; // strictly before the end
    for s in 1..=samples {
        let frac = if idle {
            // A little traffic in the first two seconds, then nothing.
            0.005 * s.min(2) as f64
        } else {
            s as f64 / (samples + 1) as f64
        };
        let mut e = cur.clone();
        e.kind = EventKind::Sample;
        e.ts_ns = t0 + s * SEC;
        e.handshake_us = None;
        e.preexisting = false;
        e.bytes_sent = start_sent + ((total_sent - start_sent.min(total_sent)) as f64 * frac) as u64;
        e.bytes_received = start_recv + ((total_recv - start_recv.min(total_recv)) as f64 * frac) as u64;
        e.packets_sent = e.bytes_sent / 1448 + 1;
        e.packets_received = e.bytes_received / 1448 + 1;
        e.rtt_us = Some(rtt(rng));
        let new_pkts = e.packets_sent.saturating_sub(cur.packets_sent);
        let lost = (new_pkts as f64 * d.loss * (0.5 + rng.f64())) as u32;
        if lost > 0 || rng.chance(d.loss * 20.0) {
            let mut r = e.clone();
            r.kind = EventKind::Retransmit;
            r.ts_ns = e.ts_ns - 1 - rng.below(SEC as u64 / 2) as i64;
            retrans += lost.max(1);
            r.retransmits = retrans;
            out.push(r);
        }
        e.retransmits = retrans;
        out.push(e.clone());
        cur = e;
    }
    let reset = rng.chance(d.reset_prob);
    let mut end = cur.clone();
    end.ts_ns = t0 + dur.max(1);
    end.handshake_us = None;
    end.preexisting = false;
    end.bytes_sent = total_sent.max(start_sent);
    end.bytes_received = total_recv.max(start_recv);
    if idle {
        end.bytes_sent = cur.bytes_sent;
        end.bytes_received = cur.bytes_received;
    }
    end.packets_sent = end.bytes_sent / 1448 + 2;
    end.packets_received = end.bytes_received / 1448 + 2;
    end.rtt_us = Some(rtt(rng));
    end.state = Some("CLOSE");
    end.duration_ns = Some(dur.max(1) as u64);
    if reset {
        end.kind = EventKind::Reset;
        if rng.chance(0.7) {
            end.reset_by = Some(ResetBy::Remote);
            end.error = Some("ECONNRESET");
            end.reset_reason = Some(Arc::from("NOT_SPECIFIED"));
        } else {
            end.reset_by = Some(ResetBy::Local);
            end.reset_reason =
                Some(Arc::from(if rng.chance(0.5) { "TCP_ABORT_ON_CLOSE" } else { "TCP_ABORT_ON_DATA" }));
        }
    } else {
        end.kind = EventKind::Close;
    }
    out.push(end);
    out
}

/// Writes a synthetic recording to `path`.
pub fn write(cfg: &SynthConfig, path: &Path, force: bool) -> anyhow::Result<u64> {
    let meta = RecordingMeta {
        schema_version: gespann_common::schema::SCHEMA_VERSION,
        version: format!("synthetic (seed {})", cfg.seed),
        hostname: "synth-host".into(),
        kernel: "6.8.0-synthetic".into(),
        started_at: rfc3339(cfg.start_ns),
        ended_at: String::new(),
        events_lost: 0,
        command_line: format!("cargo xtask synth --events {} --seed {}", cfg.events, cfg.seed),
        sample_interval_ms: Some(1000),
        anonymized: None,
    };
    let mut w =
        RecordingWriter::create(path, force, &meta).with_context(|| format!("creating `{}`", path.display()))?;
    let mut last = cfg.start_ns;
    let rows = generate(cfg, &mut |e| {
        last = e.ts_ns;
        w.push(e)?;
        Ok(())
    })?;
    w.finish(&rfc3339(last), cfg.events_lost).with_context(|| format!("finishing `{}`", path.display()))?;
    Ok(rows)
}

/// RFC 3339 (UTC, nanoseconds) for a Unix time in nanoseconds.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(SEC);
    let nanos = ns.rem_euclid(SEC);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(DEFAULT_START_NS), "2026-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400 * SEC + 5), "2000-02-29T00:00:00.000000005Z");
    }
}
