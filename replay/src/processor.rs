//! The metrics processor: turns events into connection state and metric values.
//!
//! It is fed every event in time order (from a recording or the live recorder, the same
//! [`Event`] type either way) and keeps only what the metrics need: the counters of connections
//! not yet ended, running totals, histograms, and three bounded top-N tables (destinations,
//! processes, containers), each keyed by its labels' values. Recording counters
//! are cumulative per connection, so totals grow by the difference to the last value seen for the
//! connection; a connection first seen mid-way (a preexisting one, or one whose `open` row was
//! lost) contributes everything it carries. [`Processor::snapshot`] renders the absolute values
//! that the adapters publish (see [`crate::model`] for the counter semantics).

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use gespann_common::{Event, EventKind, Protocol, Role, Workload};
use rustc_hash::FxHashMap;

use crate::model::{
    DURATION_BUCKETS, Family, HistogramValue, LATENCY_BUCKETS, MAX_RESET_REASONS, Metric, Series, Snapshot, Value,
};

/// What the processor can be told.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessorOptions {
    /// An open connection that moved no bytes for this long is idle.
    pub idle_threshold: Duration,
    /// How many destinations, processes and containers get their own series (each table is
    /// keyed by its labels, the workload's included).
    pub top_n: usize,
}

impl Default for ProcessorOptions {
    fn default() -> Self {
        ProcessorOptions { idle_threshold: Duration::from_secs(30), top_n: 20 }
    }
}

/// Ended connections remembered (so a late row for one is not counted as a new connection).
const ENDED_REMEMBERED: usize = 1 << 16;

#[derive(Default)]
struct Conn {
    open: bool,
    ended: bool,
    bytes_sent: u64,
    bytes_received: u64,
    retransmits: u32,
    last_activity_ns: i64,
}

#[derive(Clone, Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], count: 0, sum: 0.0 }
    }

    fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.count += 1;
        self.sum += v;
    }

    fn value(&self) -> Value {
        let mut acc = 0;
        let cumulative = self.counts[..self.bounds.len()]
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect();
        Value::Histogram(HistogramValue { bounds: self.bounds, cumulative, count: self.count, sum: self.sum })
    }
}

/// Connections and bytes attributed to one destination, process or container (`failed` and
/// `reset` are published for containers only).
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    connections: u64,
    failed: u64,
    reset: u64,
    sent: u64,
    received: u64,
}

/// A table of tallies with bounded memory: when it is full, the less busy half is forgotten
/// (a forgotten key that comes back starts from zero). Only the top N are ever published.
struct TopTable<K> {
    map: FxHashMap<K, Tally>,
    cap: usize,
}

impl<K: Hash + Eq + Clone + Ord> TopTable<K> {
    fn new(top_n: usize) -> Self {
        TopTable { map: FxHashMap::default(), cap: (top_n * 64).max(4096) }
    }

    fn tally(&mut self, key: K) -> &mut Tally {
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            self.evict();
        }
        match self.map.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(Tally::default()),
        }
    }

    fn evict(&mut self) {
        let mut all: Vec<(K, Tally)> = self.map.drain().collect();
        let keep = self.cap / 2;
        all.select_nth_unstable_by(keep, |a, b| rank(&a.1, &b.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(keep);
        self.map.extend(all);
    }

    fn top(&self, n: usize) -> Vec<(&K, &Tally)> {
        let mut v: Vec<(&K, &Tally)> = self.map.iter().collect();
        let by = |a: &(&K, &Tally), b: &(&K, &Tally)| rank(a.1, b.1).then_with(|| a.0.cmp(b.0));
        if v.len() > n && n > 0 {
            v.select_nth_unstable_by(n - 1, by);
            v.truncate(n);
        } else if n == 0 {
            v.clear();
        }
        v.sort_by(by);
        v
    }
}

/// Busiest first: by connections, then bytes.
fn rank(a: &Tally, b: &Tally) -> std::cmp::Ordering {
    b.connections.cmp(&a.connections).then_with(|| (b.sent + b.received).cmp(&(a.sent + a.received)))
}

/// A destination: the remote address and the service port (the remote port of a client
/// connection, the local port of a server one), so ephemeral ports never become label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Destination {
    address: IpAddr,
    port: u16,
    protocol: Protocol,
}

/// The `container` and `pod` label values of a row's workload (see [`crate::model`]): `None`
/// for a host process or an unknown owner, so host rows cost no allocation. The tables are keyed
/// by these rendered values, so two workloads that render alike share a series and no two series
/// of a family can have the same labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Place {
    container: Option<Arc<str>>,
    pod: Option<Arc<str>>,
}

/// Characters of a container id shown when the container's name is unknown (as `docker ps`).
const SHORT_ID: usize = 12;

impl Place {
    fn of(w: &Workload) -> Place {
        let nonempty = |s: &Option<Arc<str>>| s.as_ref().filter(|s| !s.is_empty()).cloned();
        let container = nonempty(&w.container_name).or_else(|| {
            nonempty(&w.container_id).map(|id| match id.get(..SHORT_ID) {
                Some(short) if id.len() > SHORT_ID => Arc::from(short),
                _ => id,
            })
        });
        let pod = match (nonempty(&w.pod_namespace), nonempty(&w.pod_name)) {
            (Some(ns), Some(name)) => Some(Arc::from(format!("{ns}/{name}"))),
            (None, Some(name)) => Some(name),
            _ => nonempty(&w.pod_uid),
        };
        Place { container, pod }
    }

    fn is_host(&self) -> bool {
        self.container.is_none() && self.pod.is_none()
    }

    fn labels(&self) -> [String; 2] {
        let s = |v: &Option<Arc<str>>| v.as_deref().unwrap_or_default().to_owned();
        [s(&self.container), s(&self.pod)]
    }
}

/// Workloads rendered to [`Place`]s, so a row costs a pointer comparison (rows of one cgroup
/// share their `Arc<Workload>`) or a lookup, not a string formatted per row.
#[derive(Default)]
struct Places {
    last: Option<(Arc<Workload>, Place)>,
    seen: FxHashMap<Arc<Workload>, Place>,
}

/// Distinct workloads remembered by [`Places`] before it starts over.
const PLACES_REMEMBERED: usize = 4096;

impl Places {
    fn of(&mut self, w: &Arc<Workload>) -> Place {
        if w.container_id.is_none() && w.container_name.is_none() && w.pod_uid.is_none() && w.pod_name.is_none() {
            return Place::default();
        }
        if let Some((last, place)) = &self.last
            && Arc::ptr_eq(last, w)
        {
            return place.clone();
        }
        let place = match self.seen.get(w) {
            Some(p) => p.clone(),
            None => {
                if self.seen.len() >= PLACES_REMEMBERED {
                    self.seen.clear();
                }
                let p = Place::of(w);
                self.seen.insert(w.clone(), p.clone());
                p
            }
        };
        self.last = Some((w.clone(), place.clone()));
        place
    }
}

/// Totals a recording can be checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub events: u64,
    pub connections: u64,
    pub tcp_connections: u64,
    pub udp_connections: u64,
    pub open: u64,
    pub closed: u64,
    pub reset: u64,
    pub failed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub retransmits: u64,
}

impl Totals {
    /// Adds `o`'s counts to these (the totals of several hosts).
    pub fn add(&mut self, o: &Totals) {
        self.events += o.events;
        self.connections += o.connections;
        self.tcp_connections += o.tcp_connections;
        self.udp_connections += o.udp_connections;
        self.open += o.open;
        self.closed += o.closed;
        self.reset += o.reset;
        self.failed += o.failed;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.retransmits += o.retransmits;
    }
}

fn proto_idx(p: Protocol) -> usize {
    match p {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
    }
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

fn kind_idx(k: EventKind) -> usize {
    EventKind::ALL.iter().position(|x| *x == k).unwrap_or(0)
}

/// The metrics processor (see the module doc).
pub struct Processor {
    opts: ProcessorOptions,
    conns: FxHashMap<u64, Conn>,
    ended: VecDeque<u64>,
    clock_ns: i64,
    totals: Totals,
    /// Connections seen, per protocol.
    by_protocol: [u64; 2],
    /// Bytes [protocol][sent, received].
    bandwidth: [[u64; 2]; 2],
    /// Event counts per reset reason (index 0 = none, last = other), [kind][protocol].
    events: Vec<[[u64; 2]; 6]>,
    reset_reasons: Vec<Arc<str>>,
    failures: Vec<(&'static str, [u64; 2])>,
    duration: [Histogram; 2],
    duration_ms_sum: f64,
    rtt: Histogram,
    rtt_us_sum: f64,
    handshake: Histogram,
    places: Places,
    destinations: TopTable<(Destination, Place)>,
    processes: TopTable<(Arc<str>, Place)>,
    /// Rows with a container or pod only.
    containers: TopTable<Place>,
    events_lost: u64,
    finished: bool,
    /// The `host` label value of every series (see [`crate::model`]): empty for a replay of one
    /// host.
    host: String,
}

impl Processor {
    pub fn new(opts: ProcessorOptions) -> Self {
        let top_n = opts.top_n;
        Processor {
            opts,
            conns: FxHashMap::default(),
            ended: VecDeque::new(),
            clock_ns: i64::MIN,
            totals: Totals::default(),
            by_protocol: [0; 2],
            bandwidth: [[0; 2]; 2],
            events: vec![[[0; 2]; 6]; 2],
            reset_reasons: vec![],
            failures: vec![],
            duration: [Histogram::new(DURATION_BUCKETS), Histogram::new(DURATION_BUCKETS)],
            duration_ms_sum: 0.0,
            rtt: Histogram::new(LATENCY_BUCKETS),
            rtt_us_sum: 0.0,
            handshake: Histogram::new(LATENCY_BUCKETS),
            places: Places::default(),
            destinations: TopTable::new(top_n),
            processes: TopTable::new(top_n),
            containers: TopTable::new(top_n),
            events_lost: 0,
            finished: false,
            host: String::new(),
        }
    }

    /// Names the host whose events this processor counts: the `host` label of its series.
    pub fn set_host(&mut self, host: impl Into<String>) {
        self.host = host.into();
    }

    pub fn options(&self) -> &ProcessorOptions {
        &self.opts
    }

    /// Moves the clock used for idle detection forward (it also follows event timestamps).
    pub fn advance_clock(&mut self, now_ns: i64) {
        self.clock_ns = self.clock_ns.max(now_ns);
    }

    /// The recorder's count of lost events (absolute).
    pub fn set_events_lost(&mut self, lost: u64) {
        self.events_lost = lost;
    }

    /// Marks the replay as complete (`gespann_replay_finished` becomes 1).
    pub fn set_finished(&mut self) {
        self.finished = true;
    }

    pub fn totals(&self) -> Totals {
        Totals { open: self.conns.values().filter(|c| c.open).count() as u64, ..self.totals.clone() }
    }

    fn reason_idx(&mut self, reason: Option<&Arc<str>>) -> usize {
        let Some(r) = reason else { return 0 };
        if let Some(i) = self.reset_reasons.iter().position(|x| **x == **r) {
            return i + 1;
        }
        if self.reset_reasons.len() < MAX_RESET_REASONS {
            self.reset_reasons.push(r.clone());
            self.events.insert(self.reset_reasons.len(), [[0; 2]; 6]);
            return self.reset_reasons.len();
        }
        self.events.len() - 1
    }

    /// Feeds a batch of events (in time order).
    pub fn process_all(&mut self, events: &[Event]) {
        for e in events {
            self.process(e);
        }
    }

    /// Feeds one event.
    pub fn process(&mut self, e: &Event) {
        self.totals.events += 1;
        self.clock_ns = self.clock_ns.max(e.ts_ns);
        let p = proto_idx(e.protocol);
        let reason = self.reason_idx(e.reset_reason.as_ref());
        self.events[reason][kind_idx(e.kind)][p] += 1;

        let destination = Destination {
            address: e.remote_addr,
            port: match e.role {
                Role::Client => e.remote_port,
                Role::Server => e.local_port,
            },
            protocol: e.protocol,
        };

        let (conn, new) = match self.conns.entry(e.conn_id) {
            Entry::Occupied(o) => (o.into_mut(), false),
            Entry::Vacant(v) => (v.insert(Conn::default()), true),
        };
        if new {
            conn.open = !e.kind.is_terminal();
            conn.last_activity_ns = e.ts_ns;
        }
        let sent = e.bytes_sent.saturating_sub(conn.bytes_sent);
        let received = e.bytes_received.saturating_sub(conn.bytes_received);
        let retrans = e.retransmits.saturating_sub(conn.retransmits);
        conn.bytes_sent = conn.bytes_sent.max(e.bytes_sent);
        conn.bytes_received = conn.bytes_received.max(e.bytes_received);
        conn.retransmits = conn.retransmits.max(e.retransmits);
        if sent > 0 || received > 0 {
            conn.last_activity_ns = conn.last_activity_ns.max(e.ts_ns);
        }
        let mut newly_ended = false;
        if e.kind.is_terminal() {
            conn.open = false;
            newly_ended = !conn.ended;
            conn.ended = true;
        }

        if newly_ended {
            self.ended.push_back(e.conn_id);
            if self.ended.len() > ENDED_REMEMBERED
                && let Some(old) = self.ended.pop_front()
                && self.conns.get(&old).is_some_and(|c| c.ended)
            {
                self.conns.remove(&old);
            }
        }

        if new {
            self.totals.connections += 1;
            self.by_protocol[p] += 1;
            match e.protocol {
                Protocol::Tcp => self.totals.tcp_connections += 1,
                Protocol::Udp => self.totals.udp_connections += 1,
            }
        }
        self.totals.bytes_sent += sent;
        self.totals.bytes_received += received;
        self.totals.retransmits += u64::from(retrans);
        self.bandwidth[p][0] += sent;
        self.bandwidth[p][1] += received;
        let failed = u64::from(e.kind == EventKind::Failed);
        let reset = u64::from(e.kind == EventKind::Reset);
        if new || sent > 0 || received > 0 || failed > 0 || reset > 0 {
            let place = self.places.of(&e.workload);
            let add = |t: &mut Tally| {
                t.connections += u64::from(new);
                t.failed += failed;
                t.reset += reset;
                t.sent += sent;
                t.received += received;
            };
            if !place.is_host() {
                add(self.containers.tally(place.clone()));
            }
            add(self.destinations.tally((destination, place.clone())));
            add(self.processes.tally((e.comm.clone(), place)));
        }

        match e.kind {
            EventKind::Close | EventKind::Reset => {
                if e.kind == EventKind::Close {
                    self.totals.closed += 1;
                } else {
                    self.totals.reset += 1;
                }
                if let Some(d) = e.duration_ns {
                    self.duration[p].observe(d as f64 / 1e9);
                    self.duration_ms_sum += d as f64 / 1e6;
                }
            }
            EventKind::Failed => {
                self.totals.failed += 1;
                let err = e.error.unwrap_or("unknown");
                match self.failures.iter_mut().find(|(n, _)| *n == err) {
                    Some((_, c)) => c[p] += 1,
                    None => {
                        let mut c = [0; 2];
                        c[p] = 1;
                        self.failures.push((err, c));
                    }
                }
            }
            EventKind::Open => {
                // The client's side: a server's handshake time starts at its SYN-ACK.
                if let (Some(h), gespann_common::Role::Client) = (e.handshake_us, e.role) {
                    self.handshake.observe(f64::from(h) / 1e6);
                }
            }
            EventKind::Retransmit | EventKind::Sample => {}
        }
        if let Some(rtt) = e.rtt_us {
            self.rtt.observe(f64::from(rtt) / 1e6);
            self.rtt_us_sum += f64::from(rtt);
        }
    }

    /// Every metric, absolute values, labels bounded.
    pub fn snapshot(&self) -> Snapshot {
        let idle_before = self.clock_ns.saturating_sub(self.opts.idle_threshold.as_nanos() as i64);
        let (mut open, mut idle) = (0u64, 0u64);
        for c in self.conns.values().filter(|c| c.open) {
            open += 1;
            if c.last_activity_ns < idle_before {
                idle += 1;
            }
        }
        let t = &self.totals;
        let counter = |v: u64| vec![series(vec![], Value::Counter(v))];
        let gauge = |v: f64| vec![series(vec![], Value::Gauge(v))];
        let ended = self.duration[0].count + self.duration[1].count;
        let avg = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
        let reason_name = |i: usize| -> String {
            match i {
                0 => "none".into(),
                i if i <= self.reset_reasons.len() => self.reset_reasons[i - 1].to_string(),
                _ => "other".into(),
            }
        };

        let mut families = Vec::with_capacity(Metric::ALL.len());
        for &metric in Metric::ALL {
            // No wildcard arm: a metric added to the model without a value here does not compile.
            let s = match metric {
                Metric::Open => gauge(open as f64),
                Metric::Idle => gauge(idle as f64),
                Metric::Total => gauge(t.connections as f64),
                Metric::Closed => counter(t.closed),
                Metric::Reset => counter(t.reset),
                Metric::Failed => counter(t.failed),
                Metric::Tcp => counter(self.by_protocol[0]),
                Metric::Udp => counter(self.by_protocol[1]),
                Metric::BytesSent => counter(t.bytes_sent),
                Metric::BytesReceived => counter(t.bytes_received),
                Metric::Bandwidth => {
                    let mut v = vec![];
                    for (d, dir) in ["sent", "received"].into_iter().enumerate() {
                        for p in PROTOCOLS {
                            v.push(series(
                                vec![dir.into(), p.as_str().into()],
                                Value::Counter(self.bandwidth[proto_idx(p)][d]),
                            ));
                        }
                    }
                    v
                }
                Metric::Retransmits => counter(t.retransmits),
                Metric::AvgDuration => gauge(avg(self.duration_ms_sum, ended)),
                Metric::AvgRtt => gauge(avg(self.rtt_us_sum, self.rtt.count)),
                Metric::Events => {
                    let mut v = vec![];
                    for (r, per_kind) in self.events.iter().enumerate() {
                        for (k, kind) in EventKind::ALL.iter().enumerate() {
                            for p in PROTOCOLS {
                                let c = per_kind[k][proto_idx(p)];
                                // The closed part of the label space is always present;
                                // reason-specific series appear once seen.
                                if c > 0 || r == 0 {
                                    v.push(series(
                                        vec![kind.as_str().into(), p.as_str().into(), reason_name(r)],
                                        Value::Counter(c),
                                    ));
                                }
                            }
                        }
                    }
                    v
                }
                Metric::Failures => {
                    let mut v = vec![];
                    let mut sorted = self.failures.clone();
                    sorted.sort_by_key(|(n, _)| *n);
                    for (err, c) in sorted {
                        for p in PROTOCOLS {
                            if c[proto_idx(p)] > 0 {
                                v.push(series(vec![err.into(), p.as_str().into()], Value::Counter(c[proto_idx(p)])));
                            }
                        }
                    }
                    v
                }
                Metric::Duration => PROTOCOLS
                    .iter()
                    .map(|p| series(vec![p.as_str().into()], self.duration[proto_idx(*p)].value()))
                    .collect(),
                Metric::Rtt => vec![series(vec![], self.rtt.value())],
                Metric::Handshake => vec![series(vec![], self.handshake.value())],
                Metric::DestConnections => self
                    .destinations
                    .top(self.opts.top_n)
                    .into_iter()
                    .map(|((d, place), t)| series(labels(dest_labels(d), place), Value::Counter(t.connections)))
                    .collect(),
                Metric::DestBytes => {
                    let mut v = vec![];
                    for ((d, place), t) in self.destinations.top(self.opts.top_n) {
                        for (dir, b) in [("sent", t.sent), ("received", t.received)] {
                            let mut l = dest_labels(d);
                            l.push(dir.into());
                            v.push(series(labels(l, place), Value::Counter(b)));
                        }
                    }
                    v
                }
                Metric::ProcConnections => self
                    .processes
                    .top(self.opts.top_n)
                    .into_iter()
                    .map(|((c, place), t)| series(labels(vec![c.to_string()], place), Value::Counter(t.connections)))
                    .collect(),
                Metric::ProcBytes => {
                    let mut v = vec![];
                    for ((c, place), t) in self.processes.top(self.opts.top_n) {
                        for (dir, b) in [("sent", t.sent), ("received", t.received)] {
                            v.push(series(labels(vec![c.to_string(), dir.into()], place), Value::Counter(b)));
                        }
                    }
                    v
                }
                Metric::ContainerConnections => self.container_series(|t| t.connections),
                Metric::ContainerFailed => self.container_series(|t| t.failed),
                Metric::ContainerReset => self.container_series(|t| t.reset),
                Metric::ContainerBytes => {
                    let mut v = vec![];
                    for (place, t) in self.containers.top(self.opts.top_n) {
                        for (dir, b) in [("sent", t.sent), ("received", t.received)] {
                            v.push(series(labels(vec![dir.into()], place), Value::Counter(b)));
                        }
                    }
                    v
                }
                Metric::EventsProcessed => counter(t.events),
                Metric::EventsLost => counter(self.events_lost),
                Metric::ReplayFinished => gauge(if self.finished { 1.0 } else { 0.0 }),
            };
            let mut s = s;
            for sr in &mut s {
                sr.labels.push(self.host.clone());
            }
            families.push(Family { metric, series: s });
        }
        Snapshot { families }
    }

    /// One series per top-N container, valued by `f`.
    fn container_series(&self, f: impl Fn(&Tally) -> u64) -> Vec<Series> {
        self.containers
            .top(self.opts.top_n)
            .into_iter()
            .map(|(place, t)| series(labels(vec![], place), Value::Counter(f(t))))
            .collect()
    }
}

/// `required` label values followed by the workload's (`container`, `pod`).
fn labels(mut required: Vec<String>, place: &Place) -> Vec<String> {
    required.extend(place.labels());
    required
}

fn series(labels: Vec<String>, value: Value) -> Series {
    Series { labels, value }
}

fn dest_labels(d: &Destination) -> Vec<String> {
    vec![d.address.to_string(), d.port.to_string(), d.protocol.as_str().into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{API_ID, WEB_ID, at, bytes, ev, two_containers_and_a_host, web};
    use EventKind::*;

    fn value(p: &Processor, name: &str, labels: &[&str]) -> f64 {
        p.snapshot().value(name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }

    #[test]
    fn totals_follow_cumulative_counters_per_connection() {
        let mut p = Processor::new(ProcessorOptions::default());
        // 1: opened, two samples, closed. 2: preexisting, its open row carries 500/700 so far.
        // 3: failed attempt (no open). 4: reset with a reason. 5: UDP flow still open.
        let mut pre = bytes(ev(0.5, Open, 2), 500, 700);
        pre.preexisting = true;
        let mut failed = ev(1.5, Failed, 3);
        failed.error = Some("ECONNREFUSED");
        let mut reset = bytes(ev(3.0, Reset, 4), 10, 0);
        reset.reset_reason = Some(Arc::from("TCP_ABORT_ON_DATA"));
        reset.duration_ns = Some(2_000_000_000);
        let mut udp = bytes(ev(2.0, Open, 5), 30, 40);
        udp.protocol = Protocol::Udp;
        let mut close = bytes(ev(4.0, Close, 1), 300, 3000);
        close.duration_ns = Some(4_000_000_000);
        let mut open1 = ev(0.0, Open, 1);
        open1.handshake_us = Some(1500);
        open1.rtt_us = Some(100);
        let mut s1 = bytes(ev(1.0, Sample, 1), 100, 1000);
        s1.rtt_us = Some(300);
        p.process_all(&[
            open1,
            pre,
            s1,
            ev(1.0, Open, 4),
            failed,
            udp,
            bytes(ev(2.0, Sample, 1), 100, 1000),
            bytes(ev(2.5, Sample, 2), 600, 700),
            reset,
            close,
        ]);
        let t = p.totals();
        assert_eq!(
            t,
            Totals {
                events: 10,
                connections: 5,
                tcp_connections: 4,
                udp_connections: 1,
                open: 2,
                closed: 1,
                reset: 1,
                failed: 1,
                bytes_sent: 300 + 600 + 10 + 30,
                bytes_received: 3000 + 700 + 40,
                retransmits: 0,
            }
        );
        assert_eq!(value(&p, "gespann_open_connections", &[]), 2.0);
        assert_eq!(value(&p, "gespann_total_connections", &[]), 5.0);
        assert_eq!(value(&p, "gespann_failed_connections_total", &[]), 1.0);
        assert_eq!(value(&p, "gespann_udp_connections_total", &[]), 1.0);
        assert_eq!(value(&p, "gespann_connection_bandwidth_bytes_total", &["sent", "udp"]), 30.0);
        assert_eq!(value(&p, "gespann_connection_events_total", &["reset", "tcp", "TCP_ABORT_ON_DATA"]), 1.0);
        assert_eq!(value(&p, "gespann_connection_events_total", &["sample", "tcp", "none"]), 3.0);
        assert_eq!(value(&p, "gespann_connection_failures_total", &["ECONNREFUSED", "tcp"]), 1.0);
        // Mean of the 4 s close and the 2 s reset; mean of the two RTT reports.
        assert_eq!(value(&p, "gespann_avg_connection_duration_ms", &[]), 3000.0);
        assert_eq!(value(&p, "gespann_avg_rtt_microseconds", &[]), 200.0);
        let s = p.snapshot();
        let h = &s.family("gespann_handshake_seconds").unwrap().series[0].value;
        match h {
            Value::Histogram(h) => {
                assert_eq!(h.count, 1);
                assert!((h.sum - 0.0015).abs() < 1e-12);
                // 1.5 ms falls in the 2.5 ms bucket, not the 1 ms one.
                let i1 = h.bounds.iter().position(|b| *b == 0.001).unwrap();
                assert_eq!(h.cumulative[i1], 0);
                assert_eq!(h.cumulative[i1 + 1], 1);
            }
            other => panic!("not a histogram: {other:?}"),
        }
    }

    #[test]
    fn late_rows_of_an_ended_connection_are_not_new_connections() {
        let mut p = Processor::new(ProcessorOptions::default());
        p.process_all(&[
            bytes(ev(0.0, Open, 1), 0, 0),
            bytes(ev(1.0, Close, 1), 10, 20),
            bytes(ev(1.1, Reset, 1), 10, 20),
        ]);
        let t = p.totals();
        assert_eq!((t.connections, t.open, t.closed, t.reset), (1, 0, 1, 1));
        assert_eq!((t.bytes_sent, t.bytes_received), (10, 20));
    }

    #[test]
    fn idle_connections_moved_no_bytes_for_the_threshold() {
        let mut p = Processor::new(ProcessorOptions { idle_threshold: Duration::from_secs(30), top_n: 5 });
        p.process_all(&[
            ev(0.0, Open, 1),
            ev(0.0, Open, 2),
            // 2 keeps moving bytes; 1 only reports samples with unchanged counters.
            bytes(ev(20.0, Sample, 2), 5, 5),
            ev(25.0, Sample, 1),
            bytes(ev(40.0, Sample, 2), 9, 9),
        ]);
        assert_eq!(value(&p, "gespann_idle_connections", &[]), 1.0);
        p.advance_clock(1_700_000_000_000_000_000 + 71_000_000_000);
        assert_eq!(value(&p, "gespann_idle_connections", &[]), 2.0);
        assert_eq!(value(&p, "gespann_open_connections", &[]), 2.0);
    }

    #[test]
    fn per_destination_and_process_series_are_bounded_to_top_n() {
        let mut p = Processor::new(ProcessorOptions { idle_threshold: Duration::from_secs(30), top_n: 3 });
        let mut id = 0;
        // 10_000 destinations (more than the table holds), destination d gets d % 7 + 1
        // connections, except three busy ones with 100 each.
        for d in 0..10_000u32 {
            let n = if d % 2500 == 7 { 100 } else { d % 7 + 1 };
            for _ in 0..n {
                id += 1;
                let mut e = bytes(ev(id as f64 * 1e-3, Open, id), 1, 1);
                e.remote_addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + d));
                e.comm = Arc::from(format!("proc{}", d % 50).as_str());
                p.process(&e);
            }
        }
        let s = p.snapshot();
        let dests = &s.family("gespann_destination_connections_total").unwrap().series;
        assert_eq!(dests.len(), 3);
        for sr in dests {
            assert_eq!(sr.value, Value::Counter(100), "{sr:?}");
        }
        assert_eq!(s.family("gespann_destination_bytes_total").unwrap().series.len(), 6);
        assert_eq!(s.family("gespann_process_connections_total").unwrap().series.len(), 3);
        assert_eq!(s.family("gespann_process_bytes_total").unwrap().series.len(), 6);
        assert!(p.destinations.map.len() <= p.destinations.cap);
    }

    #[test]
    fn reset_reasons_beyond_the_cap_are_other() {
        let mut p = Processor::new(ProcessorOptions::default());
        for i in 0..(MAX_RESET_REASONS as u64 + 10) {
            let mut e = ev(i as f64, Reset, i + 1);
            e.reset_reason = Some(Arc::from(format!("REASON_{i}").as_str()));
            p.process(&e);
        }
        let s = p.snapshot();
        let reasons: std::collections::BTreeSet<&str> =
            s.family("gespann_connection_events_total").unwrap().series.iter().map(|s| s.labels[2].as_str()).collect();
        assert_eq!(reasons.len(), MAX_RESET_REASONS + 1 + 1, "cap + none + other");
        assert_eq!(s.value("gespann_connection_events_total", &["reset", "tcp", "other"]), Some(10.0));
    }

    #[test]
    fn workload_labels_split_process_destination_and_container_series() {
        let p = two_containers_and_a_host();
        let web = ["web", ""];
        let api = ["bbbbbbbbbbbb", "prod/api-0"];
        let v = |name: &str, labels: &[&str], place: &[&str]| {
            let l: Vec<&str> = labels.iter().chain(place).copied().collect();
            value(&p, name, &l)
        };
        // Per process: the two nginx are two series; the host curl has no workload labels.
        assert_eq!(v("gespann_process_connections_total", &["nginx"], &web), 2.0);
        assert_eq!(v("gespann_process_connections_total", &["nginx"], &api), 2.0);
        assert_eq!(value(&p, "gespann_process_connections_total", &["curl"]), 1.0);
        assert_eq!(v("gespann_process_bytes_total", &["nginx", "sent"], &web), 100.0);
        assert_eq!(v("gespann_process_bytes_total", &["nginx", "received"], &web), 1000.0);
        assert_eq!(v("gespann_process_bytes_total", &["nginx", "sent"], &api), 50.0);
        assert_eq!(v("gespann_process_bytes_total", &["nginx", "received"], &api), 100.0);
        assert_eq!(value(&p, "gespann_process_bytes_total", &["curl", "received"]), 7.0);
        let s = p.snapshot();
        assert_eq!(s.family("gespann_process_connections_total").unwrap().series.len(), 3);
        // Per destination: 10.0.0.2:443 once from each workload.
        for place in [&web[..], &api[..], &["", ""][..]] {
            assert_eq!(
                v("gespann_destination_connections_total", &["10.0.0.2", "443", "tcp"], place),
                1.0,
                "{place:?}"
            );
        }
        assert_eq!(v("gespann_destination_connections_total", &["10.0.0.2", "80", "tcp"], &web), 1.0);
        assert_eq!(v("gespann_destination_bytes_total", &["10.0.0.53", "53", "udp", "received"], &api), 80.0);
        assert_eq!(value(&p, "gespann_destination_bytes_total", &["10.0.0.2", "443", "tcp", "sent"]), 5.0);
        assert_eq!(s.family("gespann_destination_connections_total").unwrap().series.len(), 5);
        // Per container: the host has no series.
        for (name, w, a) in [
            ("gespann_container_connections_total", 2.0, 2.0),
            ("gespann_container_failed_connections_total", 1.0, 0.0),
            ("gespann_container_reset_connections_total", 0.0, 1.0),
        ] {
            assert_eq!(value(&p, name, &web), w, "{name} web");
            assert_eq!(value(&p, name, &api), a, "{name} api");
            assert_eq!(s.family(name).unwrap().series.len(), 2, "{name}");
        }
        assert_eq!(value(&p, "gespann_container_bytes_total", &["sent", "web"]), 100.0);
        assert_eq!(v("gespann_container_bytes_total", &["received"], &api), 100.0);
        assert_eq!(s.family("gespann_container_bytes_total").unwrap().series.len(), 4);
        // The totals do not depend on workloads.
        let t = p.totals();
        assert_eq!((t.connections, t.failed, t.reset, t.closed, t.open), (5, 1, 1, 2, 1));
        assert_eq!((t.bytes_sent, t.bytes_received), (155, 1107));
    }

    #[test]
    fn host_only_data_has_no_workload_labels_and_no_container_series() {
        let mut p = Processor::new(ProcessorOptions::default());
        p.process_all(&[ev(0.0, Open, 1), bytes(ev(1.0, Close, 1), 3, 4)]);
        let s = p.snapshot();
        for f in &s.families {
            let optional = f.def().optional.len();
            for sr in &f.series {
                let n = sr.labels.len();
                assert!(sr.labels[n - optional..].iter().all(String::is_empty), "{}: {sr:?}", f.def().name);
            }
        }
        for m in [Metric::ContainerConnections, Metric::ContainerFailed, Metric::ContainerReset, Metric::ContainerBytes]
        {
            assert!(s.get(m).unwrap().series.is_empty(), "{m:?}");
        }
        assert_eq!(value(&p, "gespann_process_connections_total", &["curl"]), 1.0);
    }

    #[test]
    fn container_label_is_the_name_else_the_short_id_and_pod_is_namespace_slash_name_else_uid() {
        let place = |w: Workload| {
            let l = Place::of(&w).labels();
            (l[0].clone(), l[1].clone())
        };
        let id = || Some(Arc::from(WEB_ID));
        let s = |v: &str| Some(Arc::from(v));
        assert_eq!(place(Workload { container_id: id(), ..Workload::default() }).0, "aaaaaaaaaaaa");
        assert_eq!(place(Workload { container_id: id(), container_name: s("web"), ..Workload::default() }).0, "web");
        // An empty name is no name; an id of 12 characters or fewer is kept whole.
        assert_eq!(
            place(Workload { container_id: id(), container_name: s(""), ..Workload::default() }).0,
            "aaaaaaaaaaaa"
        );
        assert_eq!(place(Workload { container_id: s("abc"), ..Workload::default() }).0, "abc");
        let pod = Workload { pod_uid: s("1234-5678"), ..Workload::default() };
        assert_eq!(place(pod.clone()), (String::new(), "1234-5678".into()));
        let named = Workload { pod_name: s("api-0"), pod_namespace: s("prod"), ..pod };
        assert_eq!(place(named).1, "prod/api-0");
        assert_eq!(
            place(Workload { cgroup: Arc::from("/user.slice"), ..Workload::default() }),
            (String::new(), String::new())
        );
    }

    /// Two workloads that render alike (same container name, different ids: a container
    /// re-created under its name) share one series: no family ever has two series with the
    /// same labels, which Prometheus would reject.
    #[test]
    fn workloads_that_render_alike_share_a_series() {
        let mut p = Processor::new(ProcessorOptions::default());
        let again = Arc::new(Workload { container_id: Some(Arc::from(API_ID)), ..(*web()).clone() });
        p.process_all(&[at(ev(0.0, Open, 1), &web(), "nginx"), at(ev(1.0, Open, 2), &again, "nginx")]);
        assert_eq!(value(&p, "gespann_container_connections_total", &["web"]), 2.0);
        assert_eq!(value(&p, "gespann_process_connections_total", &["nginx", "web"]), 2.0);
        for f in &p.snapshot().families {
            let mut seen = std::collections::HashSet::new();
            for sr in &f.series {
                assert!(seen.insert(&sr.labels), "{}: duplicate {:?}", f.def().name, sr.labels);
            }
        }
    }

    #[test]
    fn container_series_are_bounded_to_top_n() {
        let mut p = Processor::new(ProcessorOptions { idle_threshold: Duration::from_secs(30), top_n: 2 });
        let mut id = 0;
        // 6000 containers (more than the caches hold) with 1 connection each, two with 50.
        for c in 0..6000u64 {
            let w = Arc::new(Workload {
                container_id: Some(Arc::from(format!("{c:064x}"))),
                container_name: Some(Arc::from(format!("c{c}"))),
                ..Workload::default()
            });
            for _ in 0..if c == 10 || c == 4000 { 50 } else { 1 } {
                id += 1;
                p.process(&at(ev(id as f64 * 1e-3, Open, id), &w, "app"));
            }
        }
        let s = p.snapshot();
        let top: Vec<_> = s.family("gespann_container_connections_total").unwrap().series.iter().collect();
        assert_eq!(top.len(), 2);
        assert!(top.iter().all(|sr| sr.value == Value::Counter(50)), "{top:?}");
        assert_eq!(s.family("gespann_container_bytes_total").unwrap().series.len(), 4);
        assert_eq!(s.family("gespann_process_connections_total").unwrap().series.len(), 2);
        assert!(p.containers.map.len() <= p.containers.cap);
        assert!(p.places.seen.len() <= PLACES_REMEMBERED);
    }

    #[test]
    fn server_connections_use_the_local_service_port() {
        let mut p = Processor::new(ProcessorOptions::default());
        let mut e = ev(0.0, Open, 1);
        e.role = Role::Server;
        e.local_port = 5432;
        e.remote_port = 51234;
        p.process(&e);
        assert_eq!(
            p.snapshot().value("gespann_destination_connections_total", &["10.0.0.2", "5432", "tcp"]),
            Some(1.0)
        );
    }
}
