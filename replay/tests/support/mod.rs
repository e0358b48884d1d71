//! Shared by the integration tests: the recording's own aggregates (computed independently of
//! the processor), and loopback helpers. The small deterministic recordings, the binary and free
//! ports come from `gespann-testkit`.
#![allow(dead_code, unused_imports, reason = "each test binary uses a different subset")]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gespann_common::recording::RecordingReader;
use gespann_common::{Event, EventKind, Protocol};
use gespann_replay::run::{Input, RunOptions, run};
use gespann_replay::{Config, Processor, ProcessorOptions, Speed};

/// The replay tests' names for the test kit's small random recordings (`live.rs` and the others
/// use them), and the kit's way to find the binary and a free port.
pub use gespann_testkit::fixtures::{
    mixed_connections as synthetic, mixed_meta as meta, write_mixed as write_recording,
};
pub use gespann_testkit::{free_port, gespann_bin as gespann_binary};

/// The recording's own aggregates, computed from its rows without the processor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregates {
    pub rows: u64,
    pub connections: u64,
    pub tcp: u64,
    pub udp: u64,
    pub closes: u64,
    pub resets: u64,
    pub failures: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Connections whose last row is not a close, reset or failure.
    pub open_at_end: u64,
}

pub fn aggregates(rows: &[Event]) -> Aggregates {
    let mut a = Aggregates::default();
    // conn_id -> (protocol, last bytes sent, last bytes received, last kind)
    let mut last: HashMap<u64, (Protocol, u64, u64, EventKind)> = HashMap::new();
    for e in rows {
        a.rows += 1;
        match e.kind {
            EventKind::Close => a.closes += 1,
            EventKind::Reset => a.resets += 1,
            EventKind::Failed => a.failures += 1,
            _ => {}
        }
        last.insert(e.conn_id, (e.protocol, e.bytes_sent, e.bytes_received, e.kind));
    }
    a.connections = last.len() as u64;
    for (p, s, r, k) in last.values() {
        match p {
            Protocol::Tcp => a.tcp += 1,
            Protocol::Udp => a.udp += 1,
        }
        a.bytes_sent += s;
        a.bytes_received += r;
        if !k.is_terminal() {
            a.open_at_end += 1;
        }
    }
    a
}

/// Every `samples/*.parquet` of the repository (real recordings made by the recorder), and the
/// real recordings of earlier schema versions (`testkit/recordings/`).
pub fn sample_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.extend(gespann_testkit::recordings::earlier_versions().into_iter().map(|(_, file)| file));
    v
}

/// A minimal HTTP/1.1 request over loopback: (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// `series -> value` of a text exposition (`name{labels}` exactly as printed).
pub fn parse_exposition(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Polls `/metrics` until `done` accepts it, or fails after `timeout`.
pub fn wait_metrics(
    addr: SocketAddr,
    timeout: Duration,
    done: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + timeout;
    let mut last = HashMap::new();
    while Instant::now() < deadline {
        if let Ok((200, body)) = http(addr, "GET", "/metrics") {
            last = parse_exposition(&body);
            if done(&last) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("/metrics at {addr} did not reach the expected state in {timeout:?}; last: {last:#?}");
}

/// A DogStatsD stand-in: collects every datagram sent to it.
pub struct UdpReceiver {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl UdpReceiver {
    pub fn start() -> UdpReceiver {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).to_string()),
                    Err(_) if s2.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            out
        });
        UdpReceiver { addr, stop, thread: Some(thread) }
    }

    /// Stops after the socket has been quiet for a moment; returns the datagrams.
    pub fn finish(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// One DogStatsD line, checked against the datagram format
/// `name:value|type[|@rate][|#tag,...]`.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsdLine {
    pub name: String,
    pub value: f64,
    pub kind: String,
    pub tags: Vec<String>,
}

pub fn parse_statsd_line(line: &str) -> Result<StatsdLine, String> {
    let (name, rest) = line.split_once(':').ok_or("no `:`")?;
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(format!("bad metric name `{name}`"));
    }
    let mut parts = rest.split('|');
    let value: f64 = parts.next().ok_or("no value")?.parse().map_err(|_| "value is not a number".to_string())?;
    let kind = parts.next().ok_or("no type")?.to_string();
    if !["c", "g", "h", "d", "ms", "s"].contains(&kind.as_str()) {
        return Err(format!("bad type `{kind}`"));
    }
    let mut tags = vec![];
    for p in parts {
        if let Some(t) = p.strip_prefix('#') {
            for tag in t.split(',') {
                if tag.is_empty() || tag.contains(['|', '#', ' ']) {
                    return Err(format!("bad tag `{tag}`"));
                }
                tags.push(tag.to_string());
            }
        } else if let Some(r) = p.strip_prefix('@') {
            r.parse::<f64>().map_err(|_| format!("bad rate `{r}`"))?;
        } else {
            return Err(format!("unknown section `{p}`"));
        }
    }
    Ok(StatsdLine { name: name.to_string(), value, kind, tags })
}

/// Splits datagrams into lines and checks each; panics naming the first bad line.
pub fn statsd_lines(datagrams: &[String]) -> Vec<StatsdLine> {
    datagrams
        .iter()
        .flat_map(|d| d.split('\n').filter(|l| !l.is_empty()))
        .map(|l| parse_statsd_line(l).unwrap_or_else(|e| panic!("bad DogStatsD line `{l}`: {e}")))
        .collect()
}

/// Sum of the counter deltas and last gauge value per `name` (+ sorted tags).
pub fn statsd_totals(lines: &[StatsdLine]) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for l in lines {
        let mut tags = l.tags.clone();
        tags.sort();
        let key = if tags.is_empty() { l.name.clone() } else { format!("{}#{}", l.name, tags.join(",")) };
        match l.kind.as_str() {
            "c" => *m.entry(key).or_insert(0.0) += l.value,
            _ => {
                m.insert(key, l.value);
            }
        }
    }
    m
}

/// Through the whole pipeline (reader, blocking replay thread, processor), no adapters.
fn replay_totals(path: &Path) -> gespann_replay::Totals {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = Config { adapters: vec![], ..Config::default() };
    let outcome = rt
        .block_on(run(
            RunOptions {
                config,
                input: Input::Recordings { inputs: vec![path.display().to_string()], speed: Speed::Max },
                exit_on_end: true,
            },
            vec![],
            std::future::pending(),
        ))
        .unwrap_or_else(|e| panic!("replay of {} failed: {e}", path.display()));
    assert!(outcome.replay.unwrap().complete);
    outcome.totals
}

/// Replays `path` to its end and checks the totals and the published metrics against the
/// recording's own aggregates.
pub fn check_consistency(path: &Path) {
    let rows = RecordingReader::open(path).unwrap().read_all().unwrap();
    let want: Aggregates = aggregates(&rows);
    let t = replay_totals(path);
    let what = path.display();
    assert_eq!(t.events, want.rows, "{what}: rows");
    assert_eq!(t.connections, want.connections, "{what}: distinct connections");
    assert_eq!(t.tcp_connections, want.tcp, "{what}: tcp connections");
    assert_eq!(t.udp_connections, want.udp, "{what}: udp connections");
    assert_eq!(t.closed, want.closes, "{what}: closes");
    assert_eq!(t.reset, want.resets, "{what}: resets");
    assert_eq!(t.failed, want.failures, "{what}: failures");
    assert_eq!(t.bytes_sent, want.bytes_sent, "{what}: bytes sent");
    assert_eq!(t.bytes_received, want.bytes_received, "{what}: bytes received");
    assert_eq!(t.open, want.open_at_end, "{what}: open at the end");

    // And the published metrics say the same.
    let mut p = Processor::new(ProcessorOptions::default());
    p.process_all(&rows);
    let s = p.snapshot();
    let v = |name: &str, labels: &[&str]| s.value(name, labels).unwrap_or(0.0) as u64;
    assert_eq!(v("gespann_closed_connections_total", &[]), want.closes, "{what}");
    assert_eq!(v("gespann_reset_connections_total", &[]), want.resets, "{what}");
    assert_eq!(v("gespann_failed_connections_total", &[]), want.failures, "{what}");
    assert_eq!(v("gespann_total_connections", &[]), want.connections, "{what}");
    assert_eq!(v("gespann_tcp_connections_total", &[]), want.tcp, "{what}");
    assert_eq!(v("gespann_udp_connections_total", &[]), want.udp, "{what}");
    assert_eq!(v("gespann_bytes_sent_total", &[]), want.bytes_sent, "{what}");
    assert_eq!(v("gespann_bytes_received_total", &[]), want.bytes_received, "{what}");
    assert_eq!(v("gespann_open_connections", &[]), want.open_at_end, "{what}");
    let bw = |dir| {
        v("gespann_connection_bandwidth_bytes_total", &[dir, "tcp"])
            + v("gespann_connection_bandwidth_bytes_total", &[dir, "udp"])
    };
    assert_eq!(bw("sent"), want.bytes_sent, "{what}");
    assert_eq!(bw("received"), want.bytes_received, "{what}");
    let events: f64 = s
        .family("gespann_connection_events_total")
        .unwrap()
        .series
        .iter()
        .map(|sr| match sr.value {
            gespann_replay::model::Value::Counter(c) => c as f64,
            _ => 0.0,
        })
        .sum();
    assert_eq!(events as u64, want.rows, "{what}: events by type add up to the rows");
}

/// A recording that holds every kind of event the replay turns into metrics, each series
/// growing several times over 80 s so that a scraper sees it move: six waves (10 s apart) of
/// closed TCP clients (with handshake and RTT), a reset received after a retransmit, a local reset
/// with a kernel reason (two reasons, alternating), refused, timed-out, unreachable and
/// errno-less connects, and a UDP flow; plus an idle connection and a busy one still open at the
/// end, and a preexisting server connection. The workloads are the host, container `web`, and an
/// unnamed container of pod `prod/api-0` (label `container="bbbbbbbbbbbb"`). Rows are in time
/// order; the last one is at 80 s, where the idle connection has moved nothing for 79 s.
pub fn every_kind_of_event() -> Vec<Event> {
    use gespann_common::{ResetBy, Role, Workload};

    let host = Arc::new(Workload { cgroup: Arc::from("/user.slice/user-1000.slice"), ..Workload::default() });
    let web = Arc::new(Workload {
        cgroup: Arc::from("/system.slice/docker-aaaaaaaaaaaa1111.scope"),
        container_id: Some(Arc::from("aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111")),
        container_name: Some(Arc::from("web")),
        ..Workload::default()
    });
    let api = Arc::new(Workload {
        cgroup: Arc::from("/kubepods.slice/kubepods-pod1234.slice/cri-containerd-bbbbbbbbbbbb2222.scope"),
        container_id: Some(Arc::from("bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222")),
        pod_uid: Some(Arc::from("1234-5678")),
        pod_name: Some(Arc::from("api-0")),
        pod_namespace: Some(Arc::from("prod")),
        ..Workload::default()
    });
    // One connection's fixed part: who (process, workload), to what (address, service port).
    struct Flow<'a> {
        comm: &'a str,
        workload: &'a Arc<Workload>,
        remote: &'a str,
        port: u16,
        protocol: Protocol,
        role: Role,
    }
    fn tcp<'a>(comm: &'a str, workload: &'a Arc<Workload>, remote: &'a str, port: u16) -> Flow<'a> {
        Flow { comm, workload, remote, port, protocol: Protocol::Tcp, role: Role::Client }
    }
    fn row(f: &Flow, kind: EventKind, t: f64, id: u64, sent: u64, received: u64) -> Event {
        let mut e = gespann_testkit::fixtures::ev(kind, t, id);
        e.comm = Arc::from(f.comm);
        e.workload = f.workload.clone();
        e.remote_addr = f.remote.parse().unwrap();
        e.protocol = f.protocol;
        e.role = f.role;
        match f.role {
            Role::Client => e.remote_port = f.port,
            Role::Server => {
                e.local_port = f.port;
                e.remote_port = 50_000 + id as u16;
            }
        }
        e.state = match (f.protocol, kind.is_terminal()) {
            (Protocol::Udp, _) => None,
            (_, true) => Some("CLOSE"),
            _ => Some("ESTABLISHED"),
        };
        e.bytes_sent = sent;
        e.bytes_received = received;
        e.packets_sent = sent / 1000 + 1;
        e.packets_received = received / 1000 + 1;
        e
    }
    const S: u64 = 1_000_000_000;

    let mut rows = Vec::new();
    let mut next_id = 0;
    let mut id = || {
        next_id += 1;
        next_id
    };
    let refused = tcp("api-client", &web, "10.0.0.20", 8080);
    for w in 0..6u32 {
        let t = 15.0 + 10.0 * f64::from(w);
        // Two closed connections of a host curl.
        let curl = tcp("curl", &host, "10.0.0.10", 443);
        let c = id();
        let mut open = row(&curl, EventKind::Open, t, c, 0, 0);
        open.handshake_us = Some(400 + 50 * w);
        open.rtt_us = Some(300 + 40 * w);
        let mut sample = row(&curl, EventKind::Sample, t + 1.0, c, 1_000, 20_000);
        sample.rtt_us = Some(350 + 40 * w);
        let mut close = row(&curl, EventKind::Close, t + 2.0, c, 1_500, 40_000);
        close.duration_ns = Some(2 * S);
        rows.extend([open, sample, close]);
        let c = id();
        let mut open = row(&curl, EventKind::Open, t + 0.5, c, 0, 0);
        open.handshake_us = Some(900);
        open.rtt_us = Some(800);
        let mut close = row(&curl, EventKind::Close, t + 3.0, c, 500, 8_000);
        close.duration_ns = Some(5 * S / 2);
        rows.extend([open, close]);

        // A database client in `web`: a retransmit, then the server resets it.
        let db = tcp("api-client", &web, "10.0.0.11", 5432);
        let c = id();
        let mut open = row(&db, EventKind::Open, t + 1.0, c, 0, 0);
        open.handshake_us = Some(1_200);
        open.rtt_us = Some(1_000);
        let mut retransmit = row(&db, EventKind::Retransmit, t + 2.0, c, 200, 100);
        retransmit.retransmits = 1;
        let mut reset = row(&db, EventKind::Reset, t + 4.0, c, 250, 100);
        reset.retransmits = 1;
        reset.reset_by = Some(ResetBy::Remote);
        reset.error = Some("ECONNRESET");
        reset.duration_ns = Some(3 * S);
        rows.extend([open, retransmit, reset]);

        // nginx in the pod serves a remote client (service port 80) and resets it itself.
        let clients = ["192.0.2.1", "192.0.2.2"];
        let nginx = Flow {
            comm: "nginx",
            workload: &api,
            remote: clients[w as usize % 2],
            port: 80,
            protocol: Protocol::Tcp,
            role: Role::Server,
        };
        let c = id();
        let mut open = row(&nginx, EventKind::Open, t + 2.0, c, 0, 0);
        open.rtt_us = Some(150);
        let sample = row(&nginx, EventKind::Sample, t + 3.0, c, 5_000, 300);
        let mut reset = row(&nginx, EventKind::Reset, t + 5.0, c, 5_000, 300);
        reset.reset_by = Some(ResetBy::Local);
        reset.reset_reason = Some(Arc::from(["TCP_ABORT_ON_DATA", "NOT_SPECIFIED"][w as usize % 2]));
        reset.error = Some("ECONNRESET");
        reset.duration_ns = Some(3 * S);
        rows.extend([open, sample, reset]);

        // Failed connects: refused every wave; timed out (in the pod) and unreachable (on the
        // host) in turn; twice with no errno at all.
        let mut failed = row(&refused, EventKind::Failed, t + 1.5, id(), 0, 0);
        failed.error = Some("ECONNREFUSED");
        failed.duration_ns = Some(S / 1000);
        rows.push(failed);
        let (flow, error) = if w % 2 == 0 {
            (tcp("worker", &api, "10.0.0.21", 443), "ETIMEDOUT")
        } else {
            (tcp("curl", &host, "10.0.0.21", 443), "EHOSTUNREACH")
        };
        let mut failed = row(&flow, EventKind::Failed, t + 2.5, id(), 0, 0);
        failed.error = Some(error);
        failed.duration_ns = Some(3 * S);
        rows.push(failed);
        if w == 0 || w == 3 {
            let mut failed = row(&tcp("curl", &host, "10.0.0.20", 8080), EventKind::Failed, t + 3.5, id(), 0, 0);
            failed.duration_ns = Some(S / 100);
            rows.push(failed);
        }

        // A DNS query over UDP from the pod.
        let dns = Flow {
            comm: "resolver",
            workload: &api,
            remote: "10.0.0.53",
            port: 53,
            protocol: Protocol::Udp,
            role: Role::Client,
        };
        let c = id();
        let open = row(&dns, EventKind::Open, t + 0.2, c, 40, 0);
        let mut close = row(&dns, EventKind::Close, t + 0.7, c, 80, 400);
        close.duration_ns = Some(S / 2);
        rows.extend([open, close]);
    }

    // Still open at the end: an idle connection (its counters never move after the open)...
    let redis = tcp("redis-cli", &host, "10.0.0.30", 6379);
    let c = id();
    let mut open = row(&redis, EventKind::Open, 1.0, c, 10, 20);
    open.handshake_us = Some(250);
    open.rtt_us = Some(200);
    rows.push(open);
    for k in 1..=8 {
        let mut sample = row(&redis, EventKind::Sample, 10.0 * f64::from(k), c, 10, 20);
        sample.rtt_us = Some(200);
        rows.push(sample);
    }
    // ...and a busy one, with two retransmits and bytes up to the last row.
    let rsync = tcp("rsync", &host, "10.0.0.31", 873);
    let c = id();
    let mut open = row(&rsync, EventKind::Open, 2.0, c, 0, 0);
    open.handshake_us = Some(600);
    open.rtt_us = Some(500);
    rows.push(open);
    let mut retransmits = 0;
    for k in 1..=16u64 {
        let kind = if k % 6 == 0 { EventKind::Retransmit } else { EventKind::Sample };
        retransmits += u32::from(kind == EventKind::Retransmit);
        let mut e = row(&rsync, kind, 5.0 * k as f64, c, 100_000 * k, 2_000 * k);
        e.retransmits = retransmits;
        e.rtt_us = Some(500 + 10 * k as u32);
        rows.push(e);
    }
    // A server connection open before the recording began (its open row carries counters so
    // far), closed with no known duration.
    let sshd = Flow {
        comm: "sshd",
        workload: &host,
        remote: "198.51.100.7",
        port: 22,
        protocol: Protocol::Tcp,
        role: Role::Server,
    };
    let c = id();
    let mut open = row(&sshd, EventKind::Open, 0.5, c, 1_000_000, 200_000);
    open.preexisting = true;
    rows.extend([
        open,
        row(&sshd, EventKind::Sample, 40.0, c, 1_200_000, 250_000),
        row(&sshd, EventKind::Close, 70.0, c, 1_300_000, 260_000),
    ]);

    rows.sort_by_key(|e| (e.ts_ns, e.conn_id));
    rows
}

/// `name` on `PATH`; panics saying which Debian package provides it (tests that need it fail,
/// they do not skip).
pub fn prometheus_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: `apt-get install prometheus` (Debian) provides it"))
}

/// A real Prometheus server (Debian package `prometheus`) scraping one target every second,
/// with its data in a directory of the test's; killed when dropped, however the test ends.
pub struct PrometheusServer {
    child: std::process::Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One element of an instant query's result: the series' labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct PromSample {
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

impl PrometheusServer {
    /// Starts Prometheus on a free loopback port, scraping `target` every second, and waits
    /// until it is ready and has tried the target once (it applies discovered targets after a
    /// delay, so this is when its scrapes begin).
    pub fn start(dir: &Path, target: SocketAddr) -> PrometheusServer {
        use std::process::{Command, Stdio};
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: gespann\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = dir.join("prometheus.log");
        let child = Command::new(prometheus_tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let server = PrometheusServer { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http(addr, "GET", "/-/ready"), Ok((200, _))) {
            assert!(Instant::now() < deadline, "prometheus did not become ready; its log:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        while server.query("up{job=\"gespann\"}").is_empty() {
            assert!(Instant::now() < deadline, "prometheus never tried {target}; its log:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/<path>?<param>=<value>&...`: the `data` of a `success` answer; panics with
    /// Prometheus's error otherwise (a PromQL syntax error, an unknown function).
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v))).collect();
        let path = format!("/api/v1/{path}?{}", query.join("&"));
        // HTTP/1.0: the answer comes whole, never in chunks.
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).expect("connect to prometheus");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        assert_eq!(v["status"], "success", "{params:?}: {body}");
        v["data"].clone()
    }

    /// An instant query (`/api/v1/query`, now): every element of its vector or scalar result.
    pub fn query(&self, promql: &str) -> Vec<PromSample> {
        let data = self.api("query", &[("query", promql)]);
        let value = |v: &serde_json::Value| -> f64 {
            let s = v[1].as_str().unwrap_or_else(|| panic!("{promql}: no value in {v}"));
            // Prometheus spells the special values its own way.
            match s {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().unwrap_or_else(|e| panic!("{promql}: value `{s}`: {e}")),
            }
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| PromSample {
                    labels: r["metric"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                    value: value(&r["value"]),
                })
                .collect(),
            Some("scalar") => vec![PromSample { labels: Default::default(), value: value(&data["result"]) }],
            other => panic!("{promql}: result type {other:?}, expected an instant vector: {data}"),
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
