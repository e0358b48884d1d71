//! `cargo xtask samples`: re-records the small real recordings in `samples/` (needs root).
//!
//! Each sample is one scenario of loopback traffic, recorded by the real `gespann record` with
//! a port filter so that nothing else on the host leaks in. The analyzer's and replay's snapshot
//! and consistency tests run over these files.
//!
//! `cargo xtask samples containers` re-records only `containers.parquet` (real podman
//! containers, schema version 2); the other samples are version 1 recordings, kept as such so
//! that readers of that version stay tested.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{root, run_cmd};

struct Rec {
    child: Child,
    tmp: PathBuf,
}

fn record(bin: &Path, tmp: &Path, ports: &[u16], extra: &[&str]) -> Result<Rec> {
    let _ = std::fs::remove_file(tmp);
    let mut cmd = Command::new(bin);
    cmd.args(["record", "--duration", "5m", "-q", "-o"]).arg(tmp).args(extra).stdout(Stdio::null());
    for p in ports {
        cmd.args(["--port", &p.to_string()]);
    }
    let child = cmd.spawn().context("run gespann record")?;
    let journal = PathBuf::from(format!("{}.journal", tmp.display()));
    let t0 = Instant::now();
    while !journal.exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("gespann record did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Rec { child, tmp: tmp.to_owned() })
}

fn finish(mut r: Rec, dest: &Path) -> Result<()> {
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(r.child.id() as i32, libc::SIGINT) };
    if !r.child.wait()?.success() {
        bail!("gespann record failed");
    }
    std::fs::copy(&r.tmp, dest)?;
    let (_, rows, _) = gespann_common::recording::inspect(dest)?;
    eprintln!("xtask: wrote {} ({rows} rows)", dest.display());
    Ok(())
}

fn linger0(s: &TcpStream) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: valid fd and option struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
}

/// A tiny HTTP/1.1-ish server: reads a request line, answers with a body of the size asked for.
fn web_server(l: TcpListener) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                let mut pending = Vec::new();
                loop {
                    // A request ends with an empty line.
                    let end = loop {
                        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    let req = String::from_utf8_lossy(&pending[..end]).into_owned();
                    pending.drain(..end);
                    let size: usize = req
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.trim_start_matches('/').parse().ok())
                        .unwrap_or(100);
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                    if s.write_all(head.as_bytes()).is_err() || s.write_all(&vec![b'.'; size]).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn get(s: &mut TcpStream, size: usize) -> Result<()> {
    s.write_all(format!("GET /{size} HTTP/1.1\r\nHost: sample\r\n\r\n").as_bytes())?;
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").len();
    let mut got = vec![0u8; head + size];
    s.read_exact(&mut got)?;
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("recording samples loads eBPF programs: run as root");
    }
    let only = match args {
        [] => None,
        [one] if one == "containers" => Some(one.as_str()),
        other => bail!("unknown samples {other:?} (none: all of them; `containers`: that one)"),
    };
    let root = root()?;
    run_cmd(crate::util::cargo()?.args(["build", "--quiet", "-p", "gespann"]))?;
    let bin = root.join("target/debug/gespann");
    let dir = tempfile::tempdir()?;
    let tmp = dir.path().join("s.parquet");
    let samples = root.join("samples");
    std::fs::create_dir_all(&samples)?;
    if only == Some("containers") {
        return containers(&bin, dir.path(), &samples.join("containers.parquet"));
    }

    // Web-style request bursts: short connections and one keep-alive client.
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    web_server(l);
    let r = record(&bin, &tmp, &[port], &["--sample-interval", "500ms"])?;
    let mut keep = TcpStream::connect(("127.0.0.1", port))?;
    for burst in 0..5 {
        let mut hs = Vec::new();
        for i in 0..12 {
            hs.push(std::thread::spawn(move || -> Result<()> {
                let mut s = TcpStream::connect(("127.0.0.1", port))?;
                get(&mut s, 200 + 1000 * ((burst * 12 + i) % 7))?;
                Ok(())
            }));
        }
        for h in hs {
            h.join().expect("client")?;
        }
        get(&mut keep, 4096)?;
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(keep);
    finish(r, &samples.join("web.parquet"))?;

    // Refused connects (IPv4 and IPv6) next to a few that succeed.
    let l = TcpListener::bind("127.0.0.1:0")?;
    let open_port = l.local_addr()?.port();
    web_server(l);
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let r = record(&bin, &tmp, &[open_port, closed], &[])?;
    for i in 0..12 {
        let addr: SocketAddr =
            if i % 3 == 2 { format!("[::1]:{closed}").parse()? } else { (Ipv4Addr::LOCALHOST, closed).into() };
        let _ = TcpStream::connect(addr);
        if i % 4 == 0 {
            let mut s = TcpStream::connect(("127.0.0.1", open_port))?;
            get(&mut s, 300)?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    finish(r, &samples.join("refused.parquet"))?;

    // Resets both ways: clients that abort (SO_LINGER 0), and a server that aborts.
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    web_server(l);
    let abort_l = TcpListener::bind("[::1]:0")?;
    let abort_port = abort_l.local_addr()?.port();
    std::thread::spawn(move || {
        for s in abort_l.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            linger0(&s);
        }
    });
    let r = record(&bin, &tmp, &[port, abort_port], &[])?;
    for _ in 0..5 {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        get(&mut s, 1500)?;
        linger0(&s);
        drop(s);
        let mut s = TcpStream::connect(format!("[::1]:{abort_port}"))?;
        s.write_all(b"hello")?;
        let mut buf = [0u8; 8];
        let _ = s.read(&mut buf);
        std::thread::sleep(Duration::from_millis(40));
    }
    finish(r, &samples.join("resets.parquet"))?;

    // DNS-style UDP: a resolver answering most queries, unconnected and connected clients.
    let server = UdpSocket::bind("127.0.0.1:0")?;
    let port = server.local_addr()?.port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let mut n = 0u32;
        while let Ok((len, from)) = server.recv_from(&mut buf) {
            n += 1;
            if !n.is_multiple_of(7) {
                let mut answer = buf[..len].to_vec();
                answer.extend_from_slice(&[0u8; 48]);
                let _ = server.send_to(&answer, from);
            }
        }
    });
    let r = record(&bin, &tmp, &[port], &[])?;
    for i in 0..20 {
        let c = UdpSocket::bind("127.0.0.1:0")?;
        c.set_read_timeout(Some(Duration::from_millis(100)))?;
        let q = format!("query-{i}.example.internal");
        if i % 5 == 0 {
            c.connect(("127.0.0.1", port))?;
            c.send(q.as_bytes())?;
        } else {
            c.send_to(q.as_bytes(), ("127.0.0.1", port))?;
        }
        let mut buf = [0u8; 512];
        let _ = c.recv_from(&mut buf);
    }
    finish(r, &samples.join("dns.parquet"))?;

    // A bulk transfer long enough for several samples.
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let r = record(&bin, &tmp, &[port], &["--sample-interval", "500ms"])?;
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let chunk = vec![0u8; 256 * 1024];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        s.write_all(&chunk)?;
        std::thread::sleep(Duration::from_millis(25));
    }
    drop(s);
    finish(r, &samples.join("bulk.parquet"))?;
    containers(&bin, dir.path(), &samples.join("containers.parquet"))
}

/// A small container host: a web server in a container on the host network, a client container
/// fetching from it (and from a port nothing listens on), a sidecar container in a network
/// namespace of its own serving itself over its loopback, and a host process as a second client.
fn containers(bin: &Path, dir: &Path, dest: &Path) -> Result<()> {
    use gespann_testkit::podman::{ApiService, Container, rootfs};
    let _api = ApiService::ensure();
    let rootfs = rootfs(dir);
    let web_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let r = record(bin, &dir.join("c.parquet"), &[web_port, closed, 8080], &["--sample-interval", "500ms"])?;
    let _web = Container::run("gespann-web", "host", &rootfs, &format!("httpd -f -p 127.0.0.1:{web_port} -h /www"));
    let get = |port: u16| format!("wget -q -O /dev/null http://127.0.0.1:{port}/index.html");
    let fetches = vec![get(web_port); 6].join(" && ");
    let client = Container::run(
        "gespann-client",
        "host",
        &rootfs,
        &format!("sleep 1 && {fetches} && ({} || true) && ({} || true) && sleep 1", get(closed), get(closed)),
    );
    let sidecar = Container::run(
        "gespann-sidecar",
        "none",
        &rootfs,
        &format!("httpd -p 127.0.0.1:8080 -h /www && sleep 1 && {} && sleep 1", vec![get(8080); 3].join(" && ")),
    );
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", web_port))?;
        s.write_all(b"GET /index.html HTTP/1.0\r\nHost: sample\r\n\r\n")?;
        let mut body = Vec::new();
        s.read_to_end(&mut body)?;
    }
    client.wait();
    sidecar.wait();
    let rec_tmp = r.tmp.clone();
    finish(r, dest)?;
    let _ = std::fs::remove_file(rec_tmp);
    Ok(())
}
