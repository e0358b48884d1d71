//! Shared helpers for the root tests: run the real `gespann record`, make real traffic on
//! loopback, read the recording back.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gespann_common::{Event, RecordingReader};

/// Root tests share the host's network stack and its /proc/net/snmp counters: one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn gespann() -> Command {
    Command::new(gespann_testkit::gespann_bin())
}

pub struct Recording {
    pub child: Child,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Recording {
    /// Starts `gespann record` with extra args and waits until its probes are attached (the
    /// crash journal appears right after).
    pub fn start(extra: &[&str]) -> Recording {
        Recording::start_with_env(extra, &[])
    }

    /// [`Recording::start`] with extra environment variables (e.g. `RUST_LOG`).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Recording {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.parquet");
        let child = gespann()
            .args(["record", "--duration", "60s", "-q", "-o"])
            .arg(&path)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run gespann record");
        let journal = gespann_common::journal::journal_path(&path);
        let start = Instant::now();
        let mut rec = Recording { child, path, _dir: dir };
        while !journal.exists() {
            if let Some(status) = rec.child.try_wait().unwrap() {
                let mut err = String::new();
                rec.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("gespann record exited early ({status}): {err}");
            }
            assert!(start.elapsed() < Duration::from_secs(20), "gespann record did not start within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        rec
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Ends the window with SIGINT (Ctrl-C) and returns the rows, checking a clean exit.
    pub fn stop(&mut self) -> (Vec<Event>, gespann_common::RecordingMeta, String) {
        self.signal(libc::SIGINT);
        let out = self.wait_output();
        assert!(out.0.success(), "gespann record failed: {}", out.2);
        let r = RecordingReader::open(&self.path).expect("a valid recording");
        let meta = r.meta.clone();
        (r.read_all().unwrap(), meta, out.1)
    }

    /// [`Recording::stop`], returning the recorder's stderr (its log) instead of its stdout.
    pub fn stop_with_stderr(&mut self) -> (Vec<Event>, gespann_common::RecordingMeta, String) {
        self.signal(libc::SIGINT);
        let out = self.wait_output();
        assert!(out.0.success(), "gespann record failed: {}", out.2);
        let r = RecordingReader::open(&self.path).expect("a valid recording");
        let meta = r.meta.clone();
        (r.read_all().unwrap(), meta, out.2)
    }

    pub fn wait_output(&mut self) -> (std::process::ExitStatus, String, String) {
        let mut so = String::new();
        let mut se = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut so).unwrap();
        self.child.stderr.take().unwrap().read_to_string(&mut se).unwrap();
        (self.child.wait().unwrap(), so, se)
    }
}

/// A free TCP port (bound and released).
pub fn free_port(v6: bool) -> u16 {
    if v6 { gespann_testkit::free_port_v6() } else { gespann_testkit::free_port() }
}

/// An echo server in another process (python3), so the two ends have different owners.
pub struct EchoServer {
    pub child: Child,
    pub port: u16,
}

impl EchoServer {
    pub fn start(host: &str, port: u16) -> EchoServer {
        let script = r#"
import socket, sys, threading
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
l = socket.socket(fam); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2]))); l.listen(128)
print("ready", flush=True)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script, host, &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the echo server");
        let mut buf = [0u8; 6];
        child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        EchoServer { child, port }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ping-pong: each message is written with TCP_NODELAY and fully echoed before the next, so
/// each is exactly one data segment each way.
pub fn ping_pong(addr: SocketAddr, sizes: &[usize]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    for &n in sizes {
        let msg = vec![b'x'; n];
        s.write_all(&msg).unwrap();
        let mut got = vec![0u8; n];
        s.read_exact(&mut got).unwrap();
    }
    s
}

/// Tcp counters from /proc/net/snmp.
pub fn snmp_tcp() -> std::collections::HashMap<String, i64> {
    snmp_tcp_of(&std::fs::read_to_string("/proc/net/snmp").unwrap())
}

/// Tcp counters from the text of a /proc/net/snmp.
pub fn snmp_tcp_of(text: &str) -> std::collections::HashMap<String, i64> {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let names = lines[0].split_whitespace().skip(1);
    let values = lines[1].split_whitespace().skip(1);
    names.zip(values).map(|(n, v)| (n.to_owned(), v.parse().unwrap())).collect()
}

pub fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim().to_owned()
}

pub fn python() -> PathBuf {
    gespann_testkit::python()
}

/// Two network namespaces joined by a veth pair whose far end is down: what `near` sends
/// through it disappears, as into a silent network. `near` has 10.213.0.1/24 on its end, a
/// permanent neighbour entry for 10.213.0.2 (so no ARP is involved), and
/// `net.ipv4.tcp_syn_retries` = 1, so a connect to 10.213.0.2 gives up after one SYN
/// retransmission (about 3 s). Removed on drop.
pub struct SilentNet {
    pub near: String,
    far: String,
}

impl SilentNet {
    pub const PEER: &'static str = "10.213.0.2";

    pub fn create() -> SilentNet {
        let id = std::process::id();
        let (near, far) = (format!("gsp{id}n"), format!("gsp{id}f"));
        let net = SilentNet { near: near.clone(), far: far.clone() };
        let veth = format!("gsp{id}v");
        for cmd in [
            format!("ip netns add {near}"),
            format!("ip netns add {far}"),
            format!("ip link add {veth}a netns {near} type veth peer name {veth}b netns {far}"),
            format!("ip -n {near} link set lo up"),
            format!("ip -n {near} addr add 10.213.0.1/24 dev {veth}a"),
            format!("ip -n {near} link set {veth}a up"),
            format!("ip -n {near} neigh add {} lladdr 02:00:00:00:00:02 dev {veth}a nud permanent", Self::PEER),
            format!("ip netns exec {near} sysctl -qw net.ipv4.tcp_syn_retries=1"),
        ] {
            let args: Vec<&str> = cmd.split(' ').collect();
            let out = Command::new(args[0]).args(&args[1..]).output().expect("run ip (iproute2)");
            assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        net
    }

    /// Runs a command in the near namespace.
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.near]).args(args).output().expect("ip netns exec")
    }

    /// The near namespace's Tcp counters.
    pub fn snmp_tcp(&self) -> std::collections::HashMap<String, i64> {
        let out = self.exec(&["cat", "/proc/net/snmp"]);
        snmp_tcp_of(&String::from_utf8_lossy(&out.stdout))
    }
}

impl Drop for SilentNet {
    fn drop(&mut self) {
        for ns in [&self.near, &self.far] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Rows matching `f`, grouped by connection.
pub fn conns_where(rows: &[Event], f: impl Fn(&Event) -> bool) -> std::collections::BTreeMap<u64, Vec<Event>> {
    let mut m = std::collections::BTreeMap::<u64, Vec<Event>>::new();
    for r in rows.iter().filter(|r| f(r)) {
        m.entry(r.conn_id).or_default().push(r.clone());
    }
    m
}

/// A connection's last close, reset or failed row.
pub fn last_terminal(rows: &[Event]) -> &Event {
    rows.iter().rev().find(|r| r.kind.is_terminal()).unwrap_or_else(|| panic!("no close/reset/failed row: {rows:#?}"))
}
