//! `cargo xtask bench-idle [--connections 50000] [--hold 10]`: many idle connections held open
//! while recording — the recorder's memory over time, what it recorded of them, and what it
//! lost (counted, never silent).
//!
//! The connections are loopback, so each is two sockets (a client and a server side) and two
//! connections in the recording. A process may hold 20,000 files here (the hard limit), so
//! they are spread over pairs of holder processes (this binary's hidden `idle-hold` task): one
//! accepting on its own port, one connecting to it from its own source addresses. Each holder
//! says `ready` once all its connections are up and closes them all when its stdin closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gespann_common::EventKind;
use socket2::{Domain, Socket, Type};

use crate::util::{root, run_cmd};

/// Connections per holder pair: within the open-files limit, with room to spare.
const PER_PAIR: usize = 12_500;

/// The recorder's resident and peak memory, kB (VmRSS, VmHWM of /proc/PID/status).
fn memory_kb(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn spawn(args: &[String]) -> Result<Holder> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("idle-hold")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start a holder")?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("holder stdout")?);
        Ok(Holder { child, stdin, stdout })
    }

    /// The holder's next line (`listening PORT`, `ready`).
    fn line(&mut self) -> Result<String> {
        let mut l = String::new();
        if self.stdout.read_line(&mut l)? == 0 {
            bail!("a holder exited: {:?}", self.child.try_wait()?);
        }
        Ok(l.trim().to_owned())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let mut n = 50_000usize;
    let mut hold = 10u64;
    let mut bin = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--connections" => n = val()?.parse()?,
            "--hold" => hold = val()?.parse()?,
            "--gespann" => bin = Some(PathBuf::from(val()?)),
            other => bail!("unknown option {other} (--connections N --hold SECONDS --gespann OTHER_BUILD)"),
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench-idle loads eBPF programs: run it as root");
    }
    let bin = match bin {
        Some(b) => b,
        None => {
            run_cmd(crate::util::cargo()?.args(["build", "--release", "--quiet", "-p", "gespann"]))?;
            root()?.join("target/release/gespann")
        }
    };
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("idle.parquet");
    let mut rec = Command::new(&bin)
        .args(["record", "--duration", "30m", "-q", "--force", "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .context("run gespann record")?;
    let journal = PathBuf::from(format!("{}.journal", out.display()));
    while !journal.exists() {
        if rec.try_wait()?.is_some() {
            bail!("gespann record exited at start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rec.id();
    let (rss0, _) = memory_kb(pid)?;
    eprintln!("recorder started: {} MiB resident", rss0 / 1024);

    let t0 = Instant::now();
    let pairs = n.div_ceil(PER_PAIR);
    let mut holders = Vec::new();
    let mut ports = Vec::new();
    for p in 0..pairs {
        let count = PER_PAIR.min(n - p * PER_PAIR);
        let mut server = Holder::spawn(&["--accept".into(), count.to_string()])?;
        let port: u16 = server.line()?.strip_prefix("listening ").context("holder's port")?.parse()?;
        let client =
            Holder::spawn(&["--connect".into(), count.to_string(), port.to_string(), format!("127.0.{}.1", 10 + p)])?;
        ports.push(port);
        holders.push(client);
        holders.push(server);
    }
    for h in &mut holders {
        let l = h.line()?;
        if l != "ready" {
            bail!("a holder said {l}");
        }
    }
    let up = t0.elapsed();
    eprintln!("{n} connections up in {:.1} s", up.as_secs_f64());
    let mut peak_during = 0;
    for s in 0..hold {
        std::thread::sleep(Duration::from_secs(1));
        let (rss, hwm) = memory_kb(pid)?;
        peak_during = peak_during.max(hwm);
        eprintln!("held {}s: recorder {} MiB resident, peak {} MiB", s + 1, rss / 1024, hwm / 1024);
    }
    let cpu_before_close = crate::bench_record::process_cpu(pid)?;
    drop(holders);
    std::thread::sleep(Duration::from_secs(2));
    let (rss_end, hwm_end) = memory_kb(pid)?;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = rec.wait()?;
    if !status.success() {
        bail!("gespann record failed: {status}");
    }
    let reader = gespann_common::recording::RecordingReader::open(&out)?;
    let lost = reader.meta.events_lost;
    let (_, _, schema) = gespann_common::recording::inspect(&out)?;
    let inferred: u64 = schema
        .metadata()
        .get(gespann_common::schema::meta::TCP_ENDS_INFERRED)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let events = reader.read_all()?;
    let mine = |e: &&gespann_common::Event| ports.contains(&e.local_port) || ports.contains(&e.remote_port);
    let count = |k: EventKind| events.iter().filter(mine).filter(|e| e.kind == k).count();
    let (opens, closes, resets, samples) =
        (count(EventKind::Open), count(EventKind::Close), count(EventKind::Reset), count(EventKind::Sample));
    println!("idle connections: {n} loopback connections ({} sockets) in {pairs} holder pairs, held {hold} s", 2 * n);
    println!("up in {:.1} s; recorder CPU while they were up and held: {:.2} s", up.as_secs_f64(), cpu_before_close);
    println!(
        "recorder memory: {} MiB at start, peak {} MiB while held, {} MiB after they closed (peak {} MiB)",
        rss0 / 1024,
        peak_during / 1024,
        rss_end / 1024,
        hwm_end / 1024
    );
    println!(
        "recorded: {opens} open rows and {} ends ({closes} close, {resets} reset) of the {} expected each, {samples} samples; events lost {lost}; ends inferred {inferred} (no end record came: closed at the final sample)",
        closes + resets,
        2 * n
    );
    if opens + lost as usize / 2 < 2 * n || closes + resets + lost as usize / 2 < 2 * n {
        // What the connections without an end did last, for finding out why.
        let ended: std::collections::HashSet<u64> = events
            .iter()
            .filter(mine)
            .filter(|e| matches!(e.kind, EventKind::Close | EventKind::Reset | EventKind::Failed))
            .map(|e| e.conn_id)
            .collect();
        let mut shown = 0;
        for e in events.iter().filter(mine) {
            if !ended.contains(&e.conn_id) && shown < 6 {
                eprintln!(
                    "no end: {:?} {} {:?} {}:{} -> {}:{} {:?}",
                    e.kind, e.conn_id, e.role, e.local_addr, e.local_port, e.remote_addr, e.remote_port, e.state
                );
                shown += 1;
            }
        }
        bail!("connections missing from the recording and not counted as lost");
    }
    Ok(())
}

/// The hidden `idle-hold` task: `--accept N` (prints `listening PORT`, accepts N connections)
/// or `--connect N PORT SRC`; then prints `ready` and holds them until stdin closes.
pub fn hold(args: &[String]) -> Result<()> {
    raise_nofile()?;
    let n: usize = args.get(1).context("count")?.parse()?;
    let mut held: Vec<TcpStream> = Vec::with_capacity(n);
    let mut stdout = std::io::stdout();
    match args.first().map(String::as_str) {
        Some("--accept") => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            // A deep backlog: the client connects much faster than one accept loop.
            let l = {
                let s = Socket::from(l);
                s.listen(4096)?;
                TcpListener::from(s)
            };
            writeln!(stdout, "listening {}", l.local_addr()?.port())?;
            while held.len() < n {
                held.push(l.accept()?.0);
            }
        }
        Some("--connect") => {
            let port: u16 = args.get(2).context("port")?.parse()?;
            let src: Ipv4Addr = args.get(3).context("source")?.parse()?;
            let dst: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
            for _ in 0..n {
                let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                s.bind(&SocketAddr::from((src, 0)).into())?;
                s.connect(&dst.into())?;
                held.push(s.into());
            }
        }
        _ => bail!("idle-hold --accept N | --connect N PORT SRC"),
    }
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}

fn raise_nofile() -> Result<()> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: r is a valid rlimit to fill and then pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        r.rlim_cur = r.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}
