//! `cargo xtask bench-replay`: `gespann replay --speed max` of a synthetic recording (10M events
//! by default) through both adapters at once, measuring
//! - replay throughput (events/s: the binary's own figure, from its `replay done` log line, and
//!   the wall time from start to `gespann_replay_finished 1` as seen by a scraper);
//! - the time to scrape `/metrics` with the top-N series present (during and after the replay);
//! - DogStatsD datagrams the adapter sent vs datagrams a local receiver got (target: none lost).
//!
//! It runs the release binary (`cargo build --release -p gespann`) as a user would; the
//! recording is made once by `synth` and kept in `target/bench/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use socket2::{Domain, Socket, Type};

use crate::synth;

const USAGE: &str = "usage: cargo xtask bench-replay [--events N[k|M]] [--seed N] [--input FILE] \
[--top-n N] [--flush-interval DURATION] [--bin PATH]";

struct Opts {
    events: u64,
    seed: u64,
    input: Option<PathBuf>,
    top_n: usize,
    flush_interval: String,
    bin: Option<PathBuf>,
}

/// The options, or `None` when help was asked for (and printed).
fn parse(args: &[String]) -> Result<Option<Opts>> {
    let mut o = Opts { events: 10_000_000, seed: 1, input: None, top_n: 20, flush_interval: "1s".into(), bin: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--events" | "-n" => o.events = synth::parse_count(&val("--events")?)?,
            "--seed" => o.seed = val("--seed")?.parse().context("--seed must be a number")?,
            "--input" | "-i" => o.input = Some(PathBuf::from(val("--input")?)),
            "--top-n" => o.top_n = val("--top-n")?.parse().context("--top-n must be a number")?,
            "--flush-interval" => o.flush_interval = val("--flush-interval")?,
            "--bin" => o.bin = Some(PathBuf::from(val("--bin")?)),
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(Some(o))
}

/// Counts datagrams (and their lines) arriving at a local DogStatsD stand-in.
struct Receiver {
    addr: SocketAddr,
    datagrams: Arc<AtomicU64>,
    lines: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Receiver {
    fn start() -> Result<Receiver> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
        // Room for bursts: the receiver must not be the one dropping.
        s.set_recv_buffer_size(32 << 20)?;
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let sock: UdpSocket = s.into();
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = sock.local_addr()?;
        let (datagrams, lines, stop) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (d, l, st) = (datagrams.clone(), lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        d.fetch_add(1, Ordering::Relaxed);
                        let k = buf[..n].split(|b| *b == b'\n').filter(|x| !x.is_empty()).count();
                        l.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    Err(_) if st.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
        });
        Ok(Receiver { addr, datagrams, lines, stop, thread })
    }

    fn finish(self) -> (u64, u64) {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        (self.datagrams.load(Ordering::Relaxed), self.lines.load(Ordering::Relaxed))
    }
}

/// GET /metrics: (time, body).
fn scrape(addr: SocketAddr) -> Result<(Duration, String)> {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&buf).to_string();
    if !text.starts_with("HTTP/1.1 200") {
        bail!("/metrics answered: {}", text.lines().next().unwrap_or(""));
    }
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((took, body))
}

fn value(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The log without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `key=value` of a log line (tracing's default format).
fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(o) = parse(args)? else { return Ok(()) };
    let root = crate::util::root()?;
    let bin = o.bin.clone().unwrap_or_else(|| root.join("target/release/gespann"));
    if !bin.is_file() {
        bail!("{} is missing: build it with `cargo build --release -p gespann`", bin.display());
    }
    let file = match &o.input {
        Some(f) => f.clone(),
        None => {
            let dir = root.join("target/bench");
            std::fs::create_dir_all(&dir)?;
            let file = dir.join(format!("synth-{}-seed{}.parquet", o.events, o.seed));
            if !file.exists() {
                eprintln!("bench-replay: generating {} ...", file.display());
                synth::write(&synth::SynthConfig::new(o.events, o.seed), &file, false)?;
            }
            file
        }
    };
    let rows = gespann_common::recording::RecordingReader::open(&file)?.rows;

    let receiver = Receiver::start()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let metrics: SocketAddr = ([127, 0, 0, 1], port).into();
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "top_n: {}\nadapters:\n  - type: prometheus\n    settings:\n      port: {port}\n      listen: 127.0.0.1\n  - type: datadog\n    settings:\n      host: \"{}\"\n      flush_interval: {}\n",
            o.top_n, receiver.addr, o.flush_interval
        ),
    )?;
    let log = tmp.path().join("stderr");
    eprintln!(
        "bench-replay: {} ({rows} rows) --speed max, Prometheus + DogStatsD (flush {})",
        file.display(),
        o.flush_interval
    );
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .arg("replay")
        .arg(&file)
        .args(["--speed", "max", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "gespann_replay=info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;

    // Scrape every 200 ms while it runs, as a Prometheus would (only more often).
    let mut during = Vec::new();
    let finished_at = loop {
        if let Some(status) = child.try_wait()? {
            bail!("gespann exited early ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        if let Ok((took, body)) = scrape(metrics) {
            during.push(took);
            if value(&body, "gespann_replay_finished") == Some(1.0) {
                break started.elapsed();
            }
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the replay did not finish in 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    // After the end: the full exposition with the top-N series, scraped repeatedly.
    let mut after = Vec::new();
    let mut body = String::new();
    for _ in 0..200 {
        let (took, b) = scrape(metrics)?;
        after.push(took);
        body = b;
    }
    during.sort();
    after.sort();
    let series = body.lines().filter(|l| !l.starts_with('#')).count();
    let top_series =
        body.lines().filter(|l| l.starts_with("gespann_destination_") || l.starts_with("gespann_process_")).count();
    let processed = value(&body, "gespann_events_processed_total").unwrap_or(0.0);

    // SIGTERM: the adapter flushes and reports what it sent.
    // SAFETY: kill(2) on the pid of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait()?;
    let (got_datagrams, got_lines) = receiver.finish();
    let stderr = strip_ansi(&std::fs::read_to_string(&log)?);
    if !status.success() {
        bail!("gespann exited with {status}: {stderr}");
    }
    let done = stderr.lines().find(|l| l.contains("replay done")).context("no `replay done` line in the log")?;
    let flushed =
        stderr.lines().find(|l| l.contains("DogStatsD flushed")).context("no `DogStatsD flushed` line in the log")?;
    let rate = field(done, "events_per_second").unwrap_or(0.0);
    let secs = field(done, "seconds").unwrap_or(0.0);
    let sent = field(flushed, "datagrams_sent").unwrap_or(-1.0) as u64;
    let sent_lines = field(flushed, "lines").unwrap_or(-1.0) as u64;
    let dropped = field(flushed, "lines_dropped").unwrap_or(-1.0) as u64
        + field(flushed, "datagrams_dropped").unwrap_or(-1.0) as u64;

    println!("bench-replay: {} rows, --speed max, both adapters", rows);
    println!(
        "  replay              {:.2} s, {:.2} M events/s (binary's own figure; target >= 1 M/s)",
        secs,
        rate / 1e6
    );
    println!(
        "  wall to finished    {:.2} s from process start ({:.2} M events/s incl. startup and reading)",
        finished_at.as_secs_f64(),
        rows as f64 / finished_at.as_secs_f64() / 1e6
    );
    println!("  events processed    {processed}");
    println!(
        "  /metrics during     {} scrapes, median {}, p99 {}, max {}",
        during.len(),
        ms(percentile(&during, 0.5)),
        ms(percentile(&during, 0.99)),
        ms(percentile(&during, 1.0))
    );
    println!(
        "  /metrics after      {} scrapes, median {}, p99 {}; {} series ({} top-N per-destination/process), {} bytes",
        after.len(),
        ms(percentile(&after, 0.5)),
        ms(percentile(&after, 0.99)),
        series,
        top_series,
        body.len()
    );
    println!(
        "  DogStatsD           {sent} datagrams / {sent_lines} lines sent, {got_datagrams} datagrams / {got_lines} lines received, {} lost, {dropped} dropped by the adapter",
        sent.saturating_sub(got_datagrams)
    );
    if processed as u64 != rows {
        bail!("processed {processed} of {rows} rows");
    }
    if got_datagrams != sent || got_lines != sent_lines {
        bail!("DogStatsD: sent {sent} datagrams ({sent_lines} lines), received {got_datagrams} ({got_lines})");
    }
    Ok(())
}
