//! `cargo xtask samples`: re-records the small real recordings in `samples/` (needs root).
//!
//! Each sample is one scenario of loopback traffic between real programs — `curl` against
//! Python's `http.server`, `dig` against `dnsmasq`, `iperf3`, busybox in podman containers —
//! recorded by the real `gespann record` with a port filter, so that nothing else on the host
//! leaks in and the reports of `samples/` look like what a user sees of their own services.
//! Each scenario checks that the programs did what it says (their exit codes, a reset seen by
//! the kernel's counters) before the file is kept. The analyzer's and replay's snapshot and
//! consistency tests run over these files.
//!
//! Servers start, and are probed, before the recording starts, so the probe is not in it.
//! `cargo xtask samples containers` re-records only `containers.parquet`. Recordings of the
//! earlier schema versions are kept apart, as test fixtures (`testkit/recordings/`), not here.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::util::root;

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

/// A server program, stopped (SIGTERM, then reaped) when dropped.
struct Server {
    name: &'static str,
    child: Child,
}

impl Server {
    fn start(name: &'static str, cmd: &mut Command) -> Result<Server> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name} (sudo cargo xtask test installs it)"))?;
        Ok(Server { name, child })
    }

    /// Waits until `connect` succeeds (before the recording starts).
    fn ready(mut self, connect: impl Fn() -> bool) -> Result<Server> {
        let t0 = Instant::now();
        while !connect() {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before it served: {status}", self.name);
            }
            if t0.elapsed() > Duration::from_secs(15) {
                bail!("{} did not start serving in 15 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(self)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `prog` as an executable file in a directory of `PATH`, or of sbin (where Debian puts
/// dnsmasq, and a user's `PATH` may not look).
fn find(prog: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn tcp_up(addr: &str, port: u16) -> bool {
    TcpStream::connect((addr, port)).is_ok()
}

fn free_port(addr: &str) -> Result<u16> {
    Ok(TcpListener::bind((addr, 0))?.local_addr()?.port())
}

/// `python3 -m http.server` speaking HTTP/1.1 (keep-alive) on `addr:port`, serving `www`.
fn http_server(www: &Path, addr: &str, port: u16) -> Result<Server> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "http.server", "--protocol", "HTTP/1.1", "--bind", addr, "--directory"])
        .arg(www)
        .arg(port.to_string());
    Server::start("python3 -m http.server", &mut cmd)?.ready(|| tcp_up(addr, port))
}

/// Files of the sizes the web scenarios fetch: `b<size>` holds `size` bytes.
fn www(dir: &Path) -> Result<PathBuf> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    for size in [200, 1200, 2200, 3200, 4200, 5200, 6200, 16384, 1 << 20] {
        std::fs::write(www.join(format!("b{size}")), vec![b'.'; size])?;
    }
    Ok(www)
}

/// Runs `curl ARGS`; its exit code must be one of `ok` (0 success, 7 refused, 52 empty reply,
/// 56 reset while receiving, 63 larger than --max-filesize).
fn curl(args: &[&str], ok: &[i32]) -> Result<i32> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "--output", "/dev/null"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run curl")?;
    let code = out.status.code().unwrap_or(-1);
    ensure!(ok.contains(&code), "curl {args:?} exited {code}: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(code)
}

/// The host's TCP counter `name` from `/proc/net/snmp` (a second witness for resets).
fn tcp_counter(name: &str) -> Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp")?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (head, values) = (tcp.next().context("no Tcp: in /proc/net/snmp")?, tcp.next().context("no Tcp values")?);
    let i = head.split_whitespace().position(|h| h == name).with_context(|| format!("no Tcp {name}"))?;
    Ok(values.split_whitespace().nth(i).context("short Tcp line")?.parse()?)
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
    let needed: &[(&str, &str)] = if only.is_some() {
        &[("podman", "podman"), ("runc", "runc"), ("busybox", "busybox-static")]
    } else {
        &[
            ("curl", "curl"),
            ("python3", "python3"),
            ("dnsmasq", "dnsmasq-base"),
            ("dig", "bind9-dnsutils"),
            ("iperf3", "iperf3"),
            ("podman", "podman"),
            ("runc", "runc"),
            ("busybox", "busybox-static"),
        ]
    };
    let missing: Vec<&str> = needed.iter().filter(|(prog, _)| find(prog).is_none()).map(|(_, pkg)| *pkg).collect();
    if !missing.is_empty() {
        bail!(
            "the samples are recorded between real programs; install them first: apt-get install {}",
            missing.join(" ")
        );
    }
    let root = root()?;
    // The test build's binary (`cargo build -p gespann` would resolve other features and
    // rebuild DataFusion, and the next test build would rebuild it back).
    let bin = gespann_testkit::gespann_bin();
    let dir = tempfile::tempdir()?;
    let tmp = dir.path().join("s.parquet");
    let samples = root.join("samples");
    std::fs::create_dir_all(&samples)?;
    if only == Some("containers") {
        return containers(&bin, dir.path(), &samples.join("containers.parquet"));
    }
    let www = www(dir.path())?;
    web(&bin, &tmp, &www, &samples.join("web.parquet"))?;
    refused(&bin, &tmp, &www, &samples.join("refused.parquet"))?;
    resets(&bin, &tmp, &www, &samples.join("resets.parquet"))?;
    dns(&bin, &tmp, dir.path(), &samples.join("dns.parquet"))?;
    bulk(&bin, &tmp, &samples.join("bulk.parquet"))?;
    containers(&bin, dir.path(), &samples.join("containers.parquet"))
}

/// Web request bursts: 5 bursts of 12 parallel `curl`s (one connection each) against
/// `http.server`, and one keep-alive `curl` fetching 16 KiB five times over one connection
/// across the bursts.
fn web(bin: &Path, tmp: &Path, www: &Path, dest: &Path) -> Result<()> {
    let port = free_port("127.0.0.1")?;
    let _server = http_server(www, "127.0.0.1", port)?;
    let r = record(bin, tmp, &[port], &["--sample-interval", "500ms"])?;
    let url = |name: String| format!("http://127.0.0.1:{port}/{name}");
    let keep_url = url("b16384".into());
    let keep = std::thread::spawn(move || {
        let mut args = vec!["--rate", "2/s"];
        for _ in 0..5 {
            args.extend(["--output", "/dev/null", keep_url.as_str()]);
        }
        curl(&args, &[0])
    });
    for burst in 0..5 {
        let clients: Vec<_> = (0..12)
            .map(|i| {
                let u = url(format!("b{}", 200 + 1000 * ((burst * 12 + i) % 7)));
                std::thread::spawn(move || curl(&[&u], &[0]))
            })
            .collect();
        for c in clients {
            c.join().expect("curl thread")?;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    keep.join().expect("curl thread")?;
    finish(r, dest)
}

/// Refused connects, IPv4 and IPv6 (`curl` to a port nothing listens on), next to a few
/// fetches that succeed.
fn refused(bin: &Path, tmp: &Path, www: &Path, dest: &Path) -> Result<()> {
    let open = free_port("127.0.0.1")?;
    let closed = free_port("127.0.0.1")?;
    let _server = http_server(www, "127.0.0.1", open)?;
    let r = record(bin, tmp, &[open, closed], &[])?;
    for i in 0..12 {
        let to = if i % 3 == 2 { format!("http://[::1]:{closed}/") } else { format!("http://127.0.0.1:{closed}/") };
        curl(&[&to], &[7])?;
        if i % 4 == 0 {
            curl(&[&format!("http://127.0.0.1:{open}/b200")], &[0])?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    finish(r, dest)
}

/// Resets both ways. The client resets: `curl --max-filesize` gives up on a 1 MiB answer and
/// closes with the rest unread. The server resets: `http.server` (on `::1`) answers a POST with
/// 501 and closes with the 1 MiB body unread. Between them, ordinary fetches.
fn resets(bin: &Path, tmp: &Path, www: &Path, dest: &Path) -> Result<()> {
    let port = free_port("127.0.0.1")?;
    let port6 = free_port("::1")?;
    let _server = http_server(www, "127.0.0.1", port)?;
    let _server6 = http_server(www, "::1", port6)?;
    let body = www.join("b1048576");
    let upload = format!("@{}", body.display());
    let rsts = tcp_counter("OutRsts")?;
    let r = record(bin, tmp, &[port, port6], &[])?;
    for _ in 0..5 {
        curl(&[&format!("http://127.0.0.1:{port}/b1200")], &[0])?;
        curl(&["--max-filesize", "1000", &format!("http://127.0.0.1:{port}/b1048576")], &[63])?;
        // Either the 501 arrives before the reset, or the reset before curl has read it.
        curl(&["--header", "Expect:", "--data-binary", &upload, &format!("http://[::1]:{port6}/upload")], &[0, 56])?;
        std::thread::sleep(Duration::from_millis(40));
    }
    finish(r, dest)?;
    let sent = tcp_counter("OutRsts")? - rsts;
    ensure!(sent >= 10, "the kernel sent {sent} resets, not at least 10: the scenario did not reset");
    Ok(())
}

/// DNS over UDP: `dig` against `dnsmasq` on 127.0.0.1 and ::1 (names it knows, names it
/// refuses), a few queries to a port no server listens on (no answer: ICMP port unreachable),
/// and one query over TCP.
fn dns(bin: &Path, tmp: &Path, dir: &Path, dest: &Path) -> Result<()> {
    let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let down = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let pid_file = dir.join("dnsmasq.pid");
    let mut cmd = Command::new(find("dnsmasq").context("no dnsmasq")?);
    cmd.args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--user=root"])
        .args(["--listen-address=127.0.0.1", "--listen-address=::1", "--address=/example.internal/10.0.0.7"])
        .args(["--address=/example.internal/fd00::7", &format!("--port={port}")])
        .arg(format!("--pid-file={}", pid_file.display()));
    let _server = Server::start("dnsmasq", &mut cmd)?.ready(|| tcp_up("127.0.0.1", port))?;
    let r = record(bin, tmp, &[port, down], &[])?;
    let dig = |server: &str, port: u16, args: &[&str]| -> Result<String> {
        let out = Command::new("dig")
            .args([&format!("@{server}"), "-p", &port.to_string(), "+tries=1", "+timeout=1"])
            .args(args)
            .output()
            .context("cannot run dig")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for i in 0..16 {
        let (server, name) = match i % 4 {
            0 | 1 => ("127.0.0.1", format!("api-{i}.example.internal")),
            2 => ("::1", format!("db-{i}.example.internal")),
            _ => ("127.0.0.1", format!("www-{i}.elsewhere.org")),
        };
        let qtype = if i % 8 == 2 { "AAAA" } else { "A" };
        let answer = dig(server, port, &[&name, qtype])?;
        let want = if i % 4 == 3 { "status: REFUSED" } else { "status: NOERROR" };
        ensure!(answer.contains(want), "dig {name} {qtype} @{server}: no `{want}` in\n{answer}");
    }
    for i in 0..3 {
        let answer = dig("127.0.0.1", down, &[&format!("api-{i}.example.internal")])?;
        ensure!(answer.contains("no servers could be reached"), "dig to a closed port answered:\n{answer}");
    }
    let answer = dig("127.0.0.1", port, &["+tcp", "api.example.internal"])?;
    ensure!(answer.contains("status: NOERROR"), "dig +tcp:\n{answer}");
    finish(r, dest)
}

/// A bulk transfer long enough for several samples: `iperf3` for 3 seconds at 400 Mbit/s
/// (its control connection and its data connection).
fn bulk(bin: &Path, tmp: &Path, dest: &Path) -> Result<()> {
    let port = free_port("127.0.0.1")?;
    let mut cmd = Command::new("iperf3");
    cmd.args(["--server", "--bind", "127.0.0.1", "--port", &port.to_string()]);
    let _server = Server::start("iperf3 --server", &mut cmd)?;
    // iperf3 takes a probe for a client; wait for its listening socket instead.
    let t0 = Instant::now();
    while !std::fs::read_to_string("/proc/net/tcp")?.contains(&format!("0100007F:{port:04X} 00000000:0000 0A")) {
        ensure!(t0.elapsed() < Duration::from_secs(15), "iperf3 --server did not listen in 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = record(bin, tmp, &[port], &["--sample-interval", "500ms"])?;
    let out = Command::new("iperf3")
        .args(["--client", "127.0.0.1", "--port", &port.to_string(), "--time", "3", "--bitrate", "400M"])
        .output()
        .context("cannot run iperf3")?;
    ensure!(out.status.success(), "iperf3 --client failed: {}", String::from_utf8_lossy(&out.stderr));
    finish(r, dest)
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
