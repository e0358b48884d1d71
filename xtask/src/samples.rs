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

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::util::root;

/// A running `gespann record`: stopped with SIGINT by [`Rec::stop`], or, when a scenario
/// fails before that, when dropped (so no recorder is left running with its programs loaded).
struct Rec {
    child: Option<Child>,
    tmp: PathBuf,
}

fn record(bin: &Path, tmp: &Path, ports: &[u16], extra: &[&str]) -> Result<Rec> {
    let _ = std::fs::remove_file(tmp);
    let mut cmd = Command::new(bin);
    cmd.args(["record", "--duration", "5m", "-q", "-o"]).arg(tmp).args(extra).stdout(Stdio::null());
    for p in ports {
        cmd.args(["--port", &p.to_string()]);
    }
    let rec = Rec { child: Some(cmd.spawn().context("run gespann record")?), tmp: tmp.to_owned() };
    let journal = PathBuf::from(format!("{}.journal", tmp.display()));
    let t0 = Instant::now();
    while !journal.exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("gespann record did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(rec)
}

impl Rec {
    /// Ends the recording (a moment after the scenario, for its last rows) and returns its file.
    fn stop(mut self) -> Result<PathBuf> {
        std::thread::sleep(Duration::from_millis(700));
        let mut child = self.child.take().context("recorder already stopped")?;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        if !child.wait()?.success() {
            bail!("gespann record failed");
        }
        Ok(self.tmp.clone())
    }
}

impl Drop for Rec {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let t0 = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Keeps a finished recording as `dest`.
fn keep(file: &Path, dest: &Path) -> Result<()> {
    std::fs::copy(file, dest).with_context(|| format!("cannot write {}", dest.display()))?;
    let (_, rows, _) = gespann_common::recording::inspect(dest)?;
    eprintln!("xtask: wrote {} ({rows} rows)", dest.display());
    Ok(())
}

/// A server program, stopped (SIGTERM, then reaped) when dropped. Its standard error goes to a
/// file beside the recording, quoted when it fails to serve.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(name: &'static str, package: &str, dir: &Path, cmd: &mut Command) -> Result<Server> {
        let log = dir.join(format!("{}.log", name.split_whitespace().next().unwrap_or(name)));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {name} (Debian package {package})"))?;
        Ok(Server { name, child, log })
    }

    /// Waits until `serving` says so (before the recording starts, so a probe is not in it).
    fn ready(mut self, serving: impl Fn() -> bool) -> Result<Server> {
        let t0 = Instant::now();
        while !serving() {
            let stderr = || std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before it served ({status}): {}", self.name, stderr().trim());
            }
            if t0.elapsed() > Duration::from_secs(15) {
                bail!("{} did not start serving in 15 s: {}", self.name, stderr().trim());
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

/// `n` distinct ports that nothing uses now, on TCP and UDP over 127.0.0.1 and ::1, below the
/// kernel's ephemeral range: no client on the host takes one as its source port while the
/// recording filters on it, and a port picked for "nothing listens here" stays so.
fn unused_ports(n: usize) -> Result<Vec<u16>> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .context("cannot read /proc/sys/net/ipv4/ip_local_port_range")?;
    let low: u16 = range.split_whitespace().next().and_then(|p| p.parse().ok()).context("no ephemeral range")?;
    ensure!(low > 11_000, "the ephemeral port range starts at {low}: no room below it for the samples' ports");
    // Start somewhere different each run (a port in TIME_WAIT from the last run is not free).
    let mut p = low - 10_000 + (std::process::id() % 5_000) as u16;
    let mut out = Vec::new();
    while out.len() < n {
        let free = TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("::1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("::1", p)).is_ok();
        if free {
            out.push(p);
        }
        p += 1;
        ensure!(p < low, "no {n} unused ports below {low}");
    }
    Ok(out)
}

/// `python3 -m http.server` speaking HTTP/1.1 (keep-alive) on `addr:port`, serving `www`.
fn http_server(www: &Path, dir: &Path, addr: &str, port: u16) -> Result<Server> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "http.server", "--protocol", "HTTP/1.1", "--bind", addr, "--directory"])
        .arg(www)
        .arg(port.to_string());
    Server::start("python3 -m http.server", "python3", dir, &mut cmd)?.ready(|| tcp_up(addr, port))
}

/// Files of the sizes the web scenarios fetch: `b<size>` holds `size` bytes.
fn www(dir: &Path) -> Result<PathBuf> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    for size in [200, 1200, 2200, 3200, 4200, 5200, 6200, 16384, 1 << 20] {
        let f = www.join(format!("b{size}"));
        std::fs::write(&f, vec![b'.'; size]).with_context(|| format!("cannot write {}", f.display()))?;
    }
    Ok(www)
}

/// Runs `curl OPTS URL...`, each answer to /dev/null; its exit code must be one of `ok` (0
/// success, 7 refused, 55 reset while sending, 56 reset while receiving, 63 larger than
/// --max-filesize). `-q` first: no `~/.curlrc`; no proxy from the environment.
fn curl(opts: &[&str], urls: &[&str], ok: &[i32]) -> Result<()> {
    let mut cmd = Command::new("curl");
    cmd.args(["-q", "--noproxy", "*", "--silent", "--show-error", "--max-time", "10"]).args(opts);
    for u in urls {
        cmd.args(["--output", "/dev/null", u]);
    }
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().context("cannot run curl")?;
    let code = out.status.code().unwrap_or(-1);
    ensure!(
        ok.contains(&code),
        "curl {opts:?} {urls:?} exited {code}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The host's TCP counter `name` from `/proc/net/snmp` (a second witness for resets).
fn tcp_counter(name: &str) -> Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").context("cannot read /proc/net/snmp")?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (head, values) = (tcp.next().context("no Tcp: in /proc/net/snmp")?, tcp.next().context("no Tcp values")?);
    let i = head.split_whitespace().position(|h| h == name).with_context(|| format!("no Tcp {name}"))?;
    values.split_whitespace().nth(i).context("short Tcp line")?.parse().context("Tcp counter not a number")
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
    // Program and Debian package; the containers sample needs only the last four.
    let needed = [
        ("python3", "python3"),
        ("dnsmasq", "dnsmasq-base"),
        ("dig", "bind9-dnsutils"),
        ("iperf3", "iperf3"),
        ("curl", "curl"),
        ("podman", "podman"),
        ("runc", "runc"),
        ("busybox", "busybox-static"),
    ];
    let needed = if only.is_some() { &needed[4..] } else { &needed[..] };
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
    bulk(&bin, &tmp, dir.path(), &samples.join("bulk.parquet"))?;
    containers(&bin, dir.path(), &samples.join("containers.parquet"))
}

/// Web request bursts: 5 bursts of 12 parallel `curl`s (one connection each) against
/// `http.server`, and one keep-alive `curl` fetching 16 KiB five times over one connection
/// across the bursts.
fn web(bin: &Path, tmp: &Path, www: &Path, dest: &Path) -> Result<()> {
    let dir = tmp.parent().context("no directory")?;
    let [port] = unused_ports(1)?[..] else { unreachable!() };
    let _server = http_server(www, dir, "127.0.0.1", port)?;
    let r = record(bin, tmp, &[port], &["--sample-interval", "500ms"])?;
    let url = |name: String| format!("http://127.0.0.1:{port}/{name}");
    let keep_url = url("b16384".into());
    let keepalive = std::thread::spawn(move || curl(&["--rate", "2/s"], &[keep_url.as_str(); 5], &[0]));
    for burst in 0..5 {
        let clients: Vec<_> = (0..12)
            .map(|i| {
                let u = url(format!("b{}", 200 + 1000 * ((burst * 12 + i) % 7)));
                std::thread::spawn(move || curl(&[], &[&u], &[0]))
            })
            .collect();
        for c in clients {
            c.join().expect("curl thread")?;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    keepalive.join().expect("curl thread")?;
    keep(&r.stop()?, dest)
}

/// Refused connects, IPv4 and IPv6 (`curl` to a port nothing listens on), next to a few
/// fetches that succeed.
fn refused(bin: &Path, tmp: &Path, www: &Path, dest: &Path) -> Result<()> {
    let dir = tmp.parent().context("no directory")?;
    let [open, closed] = unused_ports(2)?[..] else { unreachable!() };
    let _server = http_server(www, dir, "127.0.0.1", open)?;
    let r = record(bin, tmp, &[open, closed], &[])?;
    for i in 0..12 {
        let to = if i % 3 == 2 { format!("http://[::1]:{closed}/") } else { format!("http://127.0.0.1:{closed}/") };
        curl(&[], &[&to], &[7])?;
        if i % 4 == 0 {
            curl(&[], &[&format!("http://127.0.0.1:{open}/b200")], &[0])?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    keep(&r.stop()?, dest)
}

/// Resets both ways, 5 rounds. The client resets: `curl --max-filesize` gives up on a 1 MiB
/// answer and closes with the rest unread. The server resets: `http.server` (on `::1`) answers
/// a 1 MiB POST with 501 and closes with the body unread. Which side aborts how depends on who
/// is first: when the answer (or the body) has not arrived yet at the close, the close is a FIN
/// and the reset answers the next segment. Between them, ordinary fetches. The kernel's own
/// count of resets sent is checked before the file is kept.
fn resets(bin: &Path, tmp: &Path, www: &Path, dest: &Path) -> Result<()> {
    let dir = tmp.parent().context("no directory")?;
    let [port, port6] = unused_ports(2)?[..] else { unreachable!() };
    let _server = http_server(www, dir, "127.0.0.1", port)?;
    let _server6 = http_server(www, dir, "::1", port6)?;
    let upload = format!("@{}", www.join("b1048576").display());
    let rsts = tcp_counter("OutRsts")?;
    let r = record(bin, tmp, &[port, port6], &[])?;
    for _ in 0..5 {
        curl(&[], &[&format!("http://127.0.0.1:{port}/b1200")], &[0])?;
        curl(&["--max-filesize", "1000"], &[&format!("http://127.0.0.1:{port}/b1048576")], &[63])?;
        // The 501 arrives before the reset, or the reset while curl still sends, or before it
        // has read the 501.
        let post = ["--header", "Expect:", "--data-binary", upload.as_str()];
        curl(&post, &[&format!("http://[::1]:{port6}/upload")], &[0, 55, 56])?;
        std::thread::sleep(Duration::from_millis(40));
    }
    let file = r.stop()?;
    let sent = tcp_counter("OutRsts")? - rsts;
    // Each round resets at least once, whoever is first.
    ensure!(sent >= 5, "the kernel sent {sent} resets in 5 rounds: the scenario did not reset");
    eprintln!("xtask: the kernel sent {sent} resets");
    keep(&file, dest)
}

/// DNS over UDP: `dig` against `dnsmasq` on 127.0.0.1 and ::1 (names it knows, names it
/// refuses), a few queries to a port no server listens on (no answer: ICMP port unreachable),
/// and one query over TCP.
fn dns(bin: &Path, tmp: &Path, dir: &Path, dest: &Path) -> Result<()> {
    let [port, down] = unused_ports(2)?[..] else { unreachable!() };
    let mut cmd = Command::new(find("dnsmasq").context("no dnsmasq")?);
    // No configuration of the host's (`--conf-file=/dev/null`), no upstream servers, no hosts
    // file; its own pid file (not the system's); root, so it needs no user of its own.
    cmd.args(["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"])
        .args(["--user=root", "--listen-address=127.0.0.1", "--listen-address=::1"])
        .args(["--address=/example.internal/10.0.0.7", "--address=/example.internal/fd00::7"])
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
    let _server = Server::start("dnsmasq", "dnsmasq-base", dir, &mut cmd)?.ready(|| tcp_up("127.0.0.1", port))?;
    let r = record(bin, tmp, &[port, down], &[])?;
    // `-r`: no `~/.digrc` (a `+short` there would hide the status line).
    let dig = |server: &str, port: u16, args: &[&str]| -> Result<String> {
        let out = Command::new("dig")
            .args(["-r", &format!("@{server}"), "-p", &port.to_string(), "+tries=1", "+timeout=1"])
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
    keep(&r.stop()?, dest)
}

/// Whether a TCP socket listens on 127.0.0.1:`port` (`/proc/net/tcp`: local address in hex,
/// host byte order on this little-endian machine, state 0A).
fn listening_v4(port: u16) -> bool {
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| t.contains(&format!("0100007F:{port:04X} 00000000:0000 0A")))
}

/// A bulk transfer long enough for several samples: `iperf3` for 3 seconds at 400 Mbit/s
/// (its control connection and its data connection).
fn bulk(bin: &Path, tmp: &Path, dir: &Path, dest: &Path) -> Result<()> {
    let [port] = unused_ports(1)?[..] else { unreachable!() };
    let mut cmd = Command::new("iperf3");
    cmd.args(["--server", "--bind", "127.0.0.1", "--port", &port.to_string()]);
    // iperf3 takes a connection for a client: wait for its listening socket instead.
    let _server = Server::start("iperf3 --server", "iperf3", dir, &mut cmd)?.ready(|| listening_v4(port))?;
    let r = record(bin, tmp, &[port], &["--sample-interval", "500ms"])?;
    let out = Command::new("iperf3")
        .args(["--client", "127.0.0.1", "--port", &port.to_string(), "--time", "3", "--bitrate", "400M"])
        .output()
        .context("cannot run iperf3")?;
    ensure!(out.status.success(), "iperf3 --client failed: {}", String::from_utf8_lossy(&out.stderr));
    keep(&r.stop()?, dest)
}

/// A small container host: a web server in a container on the host network, a client container
/// fetching from it (and from a port nothing listens on), a sidecar container in a network
/// namespace of its own serving itself over its loopback, and `curl` on the host as a second
/// client.
fn containers(bin: &Path, dir: &Path, dest: &Path) -> Result<()> {
    use gespann_testkit::podman::{ApiService, Container, rootfs};
    let _api = ApiService::ensure();
    let rootfs = rootfs(dir);
    let [web_port, closed, sidecar_port] = unused_ports(3)?[..] else { unreachable!() };
    let r = record(bin, &dir.join("c.parquet"), &[web_port, closed, sidecar_port], &["--sample-interval", "500ms"])?;
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
        &format!(
            "httpd -p 127.0.0.1:{sidecar_port} -h /www && sleep 1 && {} && sleep 1",
            vec![get(sidecar_port); 3].join(" && ")
        ),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let index = format!("http://127.0.0.1:{web_port}/index.html");
    curl(&[], &[&index], &[0])?;
    curl(&[], &[&index], &[0])?;
    client.wait();
    sidecar.wait();
    keep(&r.stop()?, dest)
}
