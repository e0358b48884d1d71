//! `cargo xtask bench-record`: what recording costs the traced workload, measured in one run.
//!
//! A churn workload (loopback connect, small request, response, close; several client threads
//! and source addresses) runs alternately with no tracer, under `gespann record`, under
//! libbpf-tools `tcplife` writing to a file, and under `gespann replay --live` (the sidecar). Each phase reports connections per second; the
//! table gives medians and ratios to the untraced baseline, plus what gespann recorded: events,
//! events lost, events/s drained and bytes per event on disk.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use socket2::{Domain, Socket, Type};

use crate::util::{root, run_cmd};

struct Opts {
    seconds: u64,
    clients: usize,
    rounds: usize,
    /// Another gespann binary (an earlier build) whose `record` runs as a phase of its own.
    baseline: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts { seconds: 8, clients: 4, rounds: 3, baseline: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().context(format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = val()?.parse()?,
            "--clients" => o.clients = val()?.parse()?,
            "--rounds" => o.rounds = val()?.parse()?,
            "--baseline" => o.baseline = Some(PathBuf::from(val()?)),
            other => bail!("unknown option {other} (--seconds N --clients N --rounds N --baseline GESPANN_BIN)"),
        }
    }
    Ok(o)
}

/// Runs the churn workload for `secs` and returns completed connections per second.
pub fn churn(secs: f64, clients: usize) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..2 {
        let l = listener.try_clone()?;
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            let mut req = [0u8; 64];
            let resp = [b'r'; 128];
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else { continue };
                if s.read_exact(&mut req).is_ok() {
                    let _ = s.write_all(&resp);
                }
                // The server closes first, so TIME_WAIT stays on its side and client ports recycle.
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut clients_h = Vec::new();
    for i in 0..clients {
        let done = done.clone();
        let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8);
        clients_h.push(std::thread::spawn(move || -> Result<()> {
            let dst: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
            let req = [b'q'; 64];
            let mut buf = [0u8; 256];
            while Instant::now() < deadline {
                let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                s.bind(&SocketAddr::from((src, 0)).into())?;
                s.connect(&dst.into())?;
                let mut s: TcpStream = s.into();
                s.write_all(&req)?;
                while s.read(&mut buf)? > 0 {}
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let start = Instant::now();
    for h in clients_h {
        h.join().expect("client thread")?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    // Wake the acceptors.
    for _ in 0..2 {
        let _ = TcpStream::connect(("127.0.0.1", port));
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

enum Tracer {
    None,
    Gespann {
        child: Child,
        out: PathBuf,
    },
    Tcplife {
        child: Child,
    },
    /// `gespann replay --live`: the sidecar (live metrics, nothing written).
    Live {
        child: Child,
    },
}

fn start_gespann(bin: &Path, dir: &Path, n: usize) -> Result<Tracer> {
    let out = dir.join(format!("bench-{n}.parquet"));
    let child = Command::new(bin)
        .args(["record", "--duration", "10m", "-q", "--force", "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .context("run gespann record")?;
    let journal = PathBuf::from(format!("{}.journal", out.display()));
    let t0 = Instant::now();
    while !journal.exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("gespann record did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Tracer::Gespann { child, out })
}

fn start_tcplife(dir: &Path) -> Result<Tracer> {
    let path = dir.join("tcplife.txt");
    let file = std::fs::File::create(&path)?;
    let mut child = Command::new("tcplife")
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .context("run tcplife (apt-get install libbpf-tools)")?;
    // tcplife prints its header only when its buffered stdout fills; give it time to attach.
    std::thread::sleep(Duration::from_secs(2));
    if let Some(status) = child.try_wait()? {
        bail!("tcplife exited at start: {status}");
    }
    // (Should a later step fail, Tracer's Drop still stops it.)
    Ok(Tracer::Tcplife { child })
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let child = match self {
            Tracer::None => return,
            Tracer::Gespann { child, .. } | Tracer::Tcplife { child } | Tracer::Live { child } => child,
        };
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_live(bin: &Path, dir: &Path) -> Result<Tracer> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cfg = dir.join("live.yaml");
    std::fs::write(
        &cfg,
        format!("adapters:\n  - type: prometheus\n    settings:\n      listen: 127.0.0.1\n      port: \"{port}\"\n"),
    )?;
    let child = Command::new(bin)
        .args(["replay", "--live", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .context("run gespann replay --live")?;
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("gespann replay --live did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Tracer::Live { child })
}

struct GespannRun {
    rows: u64,
    lost: u64,
    bytes: u64,
    secs: f64,
    /// The recorder process's own CPU during the phase: user and system seconds.
    cpu: (f64, f64),
}

/// utime and stime of process `pid` in seconds (fields 14 and 15 of /proc/PID/stat).
fn cpu_seconds(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')').context("malformed /proc/PID/stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((f[11].parse::<f64>()? / hz, f[12].parse::<f64>()? / hz))
}

fn pid_of(t: &Tracer) -> Option<u32> {
    match t {
        Tracer::Gespann { child, .. } | Tracer::Live { child } => Some(child.id()),
        _ => None,
    }
}

fn stop(mut t: Tracer, started: Instant, cpu_at_start: (f64, f64)) -> Result<Option<GespannRun>> {
    let out = match &t {
        Tracer::Gespann { out, .. } => Some(out.clone()),
        _ => None,
    };
    let secs = started.elapsed().as_secs_f64();
    let cpu_now = pid_of(&t).map(cpu_seconds).transpose()?.unwrap_or_default();
    let cpu = (cpu_now.0 - cpu_at_start.0, cpu_now.1 - cpu_at_start.1);
    let child = match &mut t {
        Tracer::None => return Ok(None),
        Tracer::Gespann { child, .. } | Tracer::Tcplife { child } | Tracer::Live { child } => child,
    };
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait()?;
    let Some(out) = out else { return Ok(None) };
    if !status.success() {
        bail!("gespann record failed: {status}");
    }
    let (meta, rows, _) = gespann_common::recording::inspect(&out)?;
    let bytes = std::fs::metadata(&out)?.len();
    std::fs::remove_file(&out)?;
    Ok(Some(GespannRun { rows, lost: meta.events_lost, bytes, secs, cpu }))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench-record loads eBPF programs: run it as root");
    }
    run_cmd(Command::new("cargo").current_dir(root()?).args(["build", "--release", "--quiet", "-p", "gespann"]))?;
    let bin = root()?.join("target/release/gespann");
    let dir = tempfile::tempdir()?;
    let _ = std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "1");
    eprintln!("warm-up ...");
    churn(2.0, o.clients)?;

    let names = ["no tracer", "gespann record", "tcplife > file", "replay --live", "baseline record"];
    let modes = if o.baseline.is_some() { 5 } else { 4 };
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes];
    // Per gespann-record mode (1 and 4): the runs, and CPU per connection (user, system) in µs.
    let mut runs: Vec<Vec<GespannRun>> = vec![Vec::new(), Vec::new()];
    let mut cpu_per_conn: Vec<Vec<(f64, f64)>> = vec![Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        for mode in 0..modes {
            let tracer = match mode {
                0 => Tracer::None,
                1 => start_gespann(&bin, dir.path(), round)?,
                2 => start_tcplife(dir.path())?,
                3 => start_live(&bin, dir.path())?,
                _ => start_gespann(o.baseline.as_deref().expect("baseline"), dir.path(), round)?,
            };
            let cpu_at_start = pid_of(&tracer).map(cpu_seconds).transpose()?.unwrap_or_default();
            let started = Instant::now();
            let rate = churn(o.seconds as f64, o.clients)?;
            let conns = rate * o.seconds as f64;
            std::thread::sleep(Duration::from_millis(700));
            let g = stop(tracer, started, cpu_at_start)?;
            let mut line = format!("round {round}: {:<15} {rate:>9.0} conn/s", names[mode]);
            if let Some(g) = g {
                let slot = usize::from(mode == 4);
                let per = (g.cpu.0 * 1e6 / conns, g.cpu.1 * 1e6 / conns);
                line.push_str(&format!("   recorder CPU {:.2} user + {:.2} sys µs/conn", per.0, per.1));
                cpu_per_conn[slot].push(per);
                runs[slot].push(g);
            }
            eprintln!("{line}");
            rates[mode].push(rate);
        }
    }
    let med: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
    let b = med[0];
    println!("churn benchmark: {} client threads, {} s per phase, {} rounds, medians", o.clients, o.seconds, o.rounds);
    println!("{:<18} {:>10} {:>8} {:>22}", "tracer", "conn/s", "ratio", "recorder µs CPU/conn");
    for (mode, name) in names.iter().enumerate().take(modes) {
        let cpu = match mode {
            1 | 4 => {
                let c = &cpu_per_conn[usize::from(mode == 4)];
                let mut u: Vec<f64> = c.iter().map(|x| x.0).collect();
                let mut s: Vec<f64> = c.iter().map(|x| x.1).collect();
                format!("{:.2} user + {:.2} sys", median(&mut u), median(&mut s))
            }
            _ => String::new(),
        };
        println!("{:<18} {:>10.0} {:>8.3} {:>22}", name, med[mode], med[mode] / b, cpu);
    }
    for (slot, label) in [(0, "gespann"), (1, "baseline")] {
        let r = &runs[slot];
        if r.is_empty() {
            continue;
        }
        let rows: u64 = r.iter().map(|r| r.rows).sum();
        let lost: u64 = r.iter().map(|r| r.lost).sum();
        let bytes: u64 = r.iter().map(|r| r.bytes).sum();
        let secs: f64 = r.iter().map(|r| r.secs).sum();
        println!(
            "{label}: {rows} events recorded, {lost} lost, {:.0} events/s drained, {:.1} bytes/event on disk",
            rows as f64 / secs,
            bytes as f64 / rows.max(1) as f64
        );
    }
    Ok(())
}
