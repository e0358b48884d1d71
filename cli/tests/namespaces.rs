//! Root tests: network namespaces made for the test (`ip netns`), each with its own loopback,
//! and the very same addresses and ports in use in two of them at once. Every row must carry
//! its own namespace and process, with exact byte counts. They fail, never skip, when the
//! probes cannot load.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use gespann_common::{Event, EventKind, Role};

/// A network namespace with its loopback up; removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(tag: &str) -> Netns {
        let name = format!("gsp{}{tag}", std::process::id());
        for args in [vec!["netns", "add", &name], vec!["-n", &name, "link", "set", "lo", "up"]] {
            let out = Command::new("ip").args(&args).output().expect("run ip (iproute2)");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Netns { name }
    }

    /// Its inode number, as `ls -l /proc/PID/ns/net` shows it for a process inside.
    fn inode(&self) -> u32 {
        std::fs::metadata(format!("/run/netns/{}", self.name)).unwrap().ino() as u32
    }

    /// Starts python3 running `script` inside; waits for its first line (`ready`).
    fn python(&self, script: &str, args: &[String]) -> Child {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(python())
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("ip netns exec python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "{script}");
        child
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Kills and reaps a child on drop.
struct Reaped(Child);

impl Reaped {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn wait(mut self) {
        let status = self.0.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Accepts one connection on 127.0.0.1:PORT, reads exactly N bytes, answers M bytes, waits for
/// the peer's close.
const SERVER: &str = r#"
import socket, sys
port, n, m = map(int, sys.argv[1:4])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', port)); l.listen(8)
print("ready", flush=True)
c, _ = l.accept()
got = 0
while got < n:
    d = c.recv(65536)
    if not d: raise SystemExit("short read")
    got += len(d)
c.sendall(b'y' * m)
while c.recv(65536): pass
c.close()
"#;

/// Listens on 127.0.0.1:PORT and never accepts, reads or writes.
const SILENT: &str = r#"
import socket, sys, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', int(sys.argv[1]))); l.listen(8)
print("ready", flush=True)
time.sleep(120)
"#;

/// From 127.0.0.1:SPORT to 127.0.0.1:PORT: sends N bytes, reads M, holds the connection for
/// HOLD seconds, closes; then connects to the silent listener on SILENT_PORT and closes.
const CLIENT: &str = r#"
import socket, sys, time
sport, port, n, m, silent_port = map(int, sys.argv[1:6]); hold = float(sys.argv[6])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', sport)); s.connect(('127.0.0.1', port))
print("ready", flush=True)
s.sendall(b'x' * n)
got = 0
while got < m:
    d = s.recv(65536)
    if not d: raise SystemExit("short read")
    got += len(d)
time.sleep(hold)
s.close()
q = socket.create_connection(('127.0.0.1', silent_port))
time.sleep(0.3)
q.close()
"#;

/// The same 4-tuple (127.0.0.1:45123 -> 127.0.0.1:7003) in two namespaces at once, with
/// different processes and byte counts: four connections, each exact, each with its own
/// namespace and process. Silent listeners on one port in both (one started before the
/// recording, one after): each server connection is credited to its own namespace's listener.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn the_same_four_tuple_in_two_namespaces_is_four_exact_connections() {
    let _g = serial();
    let (a, b) = (Netns::create("a"), Netns::create("b"));
    let (port, sport, silent_port) = (7003u16, 45123u16, 7004u16);
    let silent_a = Reaped(a.python(SILENT, &[silent_port.to_string()]));
    let mut rec = Recording::start(&["--port", &port.to_string(), "--port", &silent_port.to_string()]);
    let silent_b = Reaped(b.python(SILENT, &[silent_port.to_string()]));
    let s = |v: u64| v.to_string();
    let (na, ma, nb, mb) = (1000u64, 3000u64, 2000u64, 5000u64);
    let server_a = Reaped(a.python(SERVER, &[s(port.into()), s(na), s(ma)]));
    let server_b = Reaped(b.python(SERVER, &[s(port.into()), s(nb), s(mb)]));
    let hold = "1.0".to_owned();
    let client_a =
        Reaped(a.python(CLIENT, &[s(sport.into()), s(port.into()), s(na), s(ma), s(silent_port.into()), hold.clone()]));
    let client_b =
        Reaped(b.python(CLIENT, &[s(sport.into()), s(port.into()), s(nb), s(mb), s(silent_port.into()), hold]));
    let pids = (client_a.pid(), client_b.pid(), server_a.pid(), server_b.pid());
    let silent_pids = (silent_a.pid(), silent_b.pid());
    client_a.wait();
    client_b.wait();
    server_a.wait();
    server_b.wait();
    std::thread::sleep(Duration::from_millis(300));
    let (rows, meta, _) = rec.stop();
    drop((silent_a, silent_b));
    assert_eq!(meta.events_lost, 0);

    for (ns, client, server, n, m) in [(&a, pids.0, pids.2, na, ma), (&b, pids.1, pids.3, nb, mb)] {
        let inode = ns.inode();
        let clients = conns_where(&rows, |r| r.netns == inode && r.role == Role::Client && r.remote_port == port);
        let servers = conns_where(&rows, |r| r.netns == inode && r.role == Role::Server && r.local_port == port);
        assert_eq!((clients.len(), servers.len()), (1, 1), "netns {inode}: {rows:#?}");
        let c = clients.values().next().unwrap();
        assert_eq!(c[0].kind, EventKind::Open);
        assert!(c.iter().all(|r| r.pid == client && r.local_port == sport), "{c:#?}");
        let end = last_terminal(c);
        assert_eq!((end.kind, end.bytes_sent, end.bytes_received), (EventKind::Close, n, m), "{end:#?}");
        let sv = servers.values().next().unwrap();
        assert!(sv.iter().all(|r| r.pid == server && r.remote_port == sport), "{sv:#?}");
        let end = last_terminal(sv);
        assert_eq!((end.kind, end.bytes_sent, end.bytes_received), (EventKind::Close, m, n), "{end:#?}");
    }
    // At the same time: both opened before either ended.
    let tuple = |r: &Event| r.local_port == sport && r.remote_port == port;
    let last_open = rows.iter().filter(|r| tuple(r) && r.kind == EventKind::Open).map(|r| r.ts_ns).max().unwrap();
    let first_end = rows.iter().filter(|r| tuple(r) && r.kind.is_terminal()).map(|r| r.ts_ns).min().unwrap();
    assert!(last_open < first_end, "the two connections overlapped");

    for (ns, client, listener) in [(&a, pids.0, silent_pids.0), (&b, pids.1, silent_pids.1)] {
        let inode = ns.inode();
        let servers = conns_where(&rows, |r| r.netns == inode && r.role == Role::Server && r.local_port == silent_port);
        let clients =
            conns_where(&rows, |r| r.netns == inode && r.role == Role::Client && r.remote_port == silent_port);
        assert_eq!((clients.len(), servers.len()), (1, 1), "netns {inode}, silent port: {rows:#?}");
        let sv = servers.values().next().unwrap();
        assert!(sv.iter().all(|r| r.pid == listener && r.bytes_received == 0), "credited to {listener}: {sv:#?}");
        assert!(clients.values().next().unwrap().iter().all(|r| r.pid == client));
    }
    assert!(rows.iter().filter(|r| r.local_port == port || r.remote_port == port).all(|r| r.netns != 0));
}

/// Connects inside a namespace, sends 100 bytes, then waits for FILE to exist before sending
/// 900 more, holding the connection for HOLD seconds, and closing.
const PREEXISTING: &str = r#"
import os, socket, sys, threading, time
port, trigger, hold = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', port)); l.listen(8)
if os.fork() == 0:
    c, _ = l.accept()
    got = 0
    while True:
        d = c.recv(65536)
        if not d: break
        got += len(d)
    c.close()
    os._exit(0 if got == 1000 else 3)
l.close()
s = socket.create_connection(('127.0.0.1', port))
s.sendall(b'x' * 100)
time.sleep(0.3)
print("ready", flush=True)
while not os.path.exists(trigger): time.sleep(0.02)
s.sendall(b'x' * 900)
time.sleep(hold)
s.close()
os.wait()
"#;

/// A connection opened inside a namespace before the recording started: a preexisting `open`
/// row with its counters so far and its namespace, samples while it moves, and its end with
/// exact totals.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn a_connection_open_inside_a_namespace_before_recording_is_preexisting_sampled_and_ended() {
    let _g = serial();
    let ns = Netns::create("p");
    let port = 7005u16;
    let dir = tempfile::tempdir().unwrap();
    let trigger = dir.path().join("go");
    let pair = Reaped(ns.python(PREEXISTING, &[port.to_string(), trigger.display().to_string(), "2.5".into()]));
    let client_pid = pair.pid();
    let mut rec = Recording::start(&["--port", &port.to_string(), "--sample-interval", "500ms"]);
    std::fs::write(&trigger, b"").unwrap();
    pair.wait();
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let inode = ns.inode();
    let client = conns_where(&rows, |r| r.role == Role::Client && r.remote_port == port);
    let server = conns_where(&rows, |r| r.role == Role::Server && r.local_port == port);
    assert_eq!((client.len(), server.len()), (1, 1), "{rows:#?}");
    let c = client.values().next().unwrap();
    assert!(c[0].kind == EventKind::Open && c[0].preexisting, "{c:#?}");
    assert_eq!((c[0].bytes_sent, c[0].netns, c[0].pid), (100, inode, client_pid), "{:#?}", c[0]);
    assert!(c.iter().any(|r| r.kind == EventKind::Sample && r.bytes_sent == 1000), "samples: {c:#?}");
    let end = last_terminal(c);
    assert_eq!((end.kind, end.bytes_sent, end.netns), (EventKind::Close, 1000, inode), "{end:#?}");
    let sv = server.values().next().unwrap();
    assert!(sv[0].preexisting && sv[0].netns == inode, "{sv:#?}");
    assert_eq!(last_terminal(sv).bytes_received, 1000, "{sv:#?}");
    assert!(sv.iter().all(|r| r.pid != 0 && r.pid != client_pid), "the forked server owns its side: {sv:#?}");
}

/// Listens on ADDR:PORT (IPv6 only for an IPv6 address; SO_REUSEPORT if asked), never accepts;
/// closes the listener when a line arrives on stdin.
const LISTENER: &str = r#"
import socket, sys
addr, port, reuse = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "reuse"
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
l = socket.socket(fam)
if fam == socket.AF_INET6: l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
if reuse: l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
l.bind((addr, port)); l.listen(8)
print("ready", flush=True)
sys.stdin.readline()
l.close()
print("closed", flush=True)
sys.stdin.readline()
"#;

fn listener(addr: &str, port: u16, reuse: bool) -> Child {
    let mut child = Command::new(python())
        .args(["-c", LISTENER, addr, &port.to_string(), if reuse { "reuse" } else { "single" }])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// Listeners on one port are told apart: an IPv4 one and an IPv6-only one (different
/// processes) each get their own never-read connections, and when one of an SO_REUSEPORT pair
/// closes, the connections accepted afterwards still belong to the group (not to nobody).
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn listeners_on_one_port_are_told_apart_by_family_and_a_reuseport_group_outlives_a_member() {
    use std::io::Write as _;
    let _g = serial();
    let port = free_port(false);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    let v4 = Reaped(listener("127.0.0.1", port, false));
    let v6 = Reaped(listener("::1", port, false));
    let c4 = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let c6 = std::net::TcpStream::connect(("::1", port)).unwrap();
    // The IPv4 listener goes; an SO_REUSEPORT pair takes the port over, and its second member
    // closes before the last connection.
    let mut v4 = v4;
    v4.0.stdin.as_mut().unwrap().write_all(b"close\n").unwrap();
    let mut line = String::new();
    BufReader::new(v4.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let first = Reaped(listener("127.0.0.1", port, true));
    let mut second = Reaped(listener("127.0.0.1", port, true));
    second.0.stdin.as_mut().unwrap().write_all(b"close\n").unwrap();
    BufReader::new(second.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let c_group = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop((c4, c6, c_group));
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let servers = conns_where(&rows, |r| r.role == Role::Server && r.local_port == port);
    assert_eq!(servers.len(), 3, "{rows:#?}");
    let owners: Vec<(u8, u32)> = servers.values().map(|v| (v[0].family(), v[0].pid)).collect();
    assert_eq!(owners, vec![(4, v4.pid()), (6, v6.pid()), (4, first.pid())], "{rows:#?}");
    for v in servers.values() {
        assert!(v.iter().all(|r| r.pid == v[0].pid), "{v:#?}");
    }
}

/// `--netns INODE` keeps exactly one namespace's connections: the same traffic in a second
/// namespace and on the host is left out, in the kernel.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn the_netns_filter_keeps_exactly_one_namespaces_connections() {
    let _g = serial();
    let (a, b) = (Netns::create("x"), Netns::create("y"));
    let (port, silent_port) = (7006u16, 7007u16);
    let mut rec = Recording::start(&["--netns", &a.inode().to_string()]);
    let s = |v: u64| v.to_string();
    let mut children = Vec::new();
    for ns in [&a, &b] {
        let silent = Reaped(ns.python(SILENT, &[silent_port.to_string()]));
        let server = Reaped(ns.python(SERVER, &[s(port.into()), s(10), s(20)]));
        let client =
            Reaped(ns.python(CLIENT, &[s(0), s(port.into()), s(10), s(20), s(silent_port.into()), "0.1".into()]));
        children.push((silent, server, client));
    }
    for (silent, server, client) in children {
        client.wait();
        server.wait();
        drop(silent);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let conns = conns_where(&rows, |_| true);
    assert!(rows.iter().all(|r| r.netns == a.inode()), "{rows:#?}");
    // Its client and server sides of both connections, nothing else.
    assert_eq!(conns.len(), 4, "{rows:#?}");
}
