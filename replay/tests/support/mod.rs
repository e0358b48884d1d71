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

/// Every `samples/*.parquet` of the repository (real recordings made by the recorder).
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
                input: Input::Recording { path: path.to_owned(), speed: Speed::Max },
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
