//! Root tests: the real `gespann record` against real loopback traffic, with exact expected
//! values and /proc/net/snmp as a second witness. They need CAP_BPF/CAP_PERFMON (CI is root)
//! and fail — never skip — when the probes cannot load.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use gespann_common::{Event, EventKind, Protocol, ResetBy, Role};

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn exact_bytes_packets_and_owners_on_both_ends_over_ipv4_and_ipv6() {
    let _g = serial();
    let p4 = free_port(false);
    let p6 = free_port(true);
    let s4 = EchoServer::start("127.0.0.1", p4);
    let s6 = EchoServer::start("::1", p6);
    let mut rec = Recording::start(&["--port", &p4.to_string(), "--port", &p6.to_string()]);
    let before = snmp_tcp();
    let sizes = [100usize, 1000, 1400];
    for _ in 0..5 {
        for addr in [SocketAddr::from(([127, 0, 0, 1], p4)), format!("[::1]:{p6}").parse().unwrap()] {
            let mut s = ping_pong(addr, &sizes);
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = snmp_tcp();
    let (rows, meta, _) = rec.stop();
    assert_eq!(meta.events_lost, 0);

    let me = std::process::id();
    let my_comm = comm_of(me);
    let total: u64 = sizes.iter().map(|&n| n as u64).sum();
    for (port, server, family) in [(p4, &s4, 4u8), (p6, &s6, 6u8)] {
        let clients = conns_where(&rows, |r| r.role == Role::Client && r.remote_port == port);
        let servers = conns_where(&rows, |r| r.role == Role::Server && r.local_port == port);
        assert_eq!(clients.len(), 5, "client connections to port {port}");
        assert_eq!(servers.len(), 5, "server connections on port {port}");
        for rows in clients.values() {
            assert_eq!(rows.iter().filter(|r| r.kind == EventKind::Open).count(), 1);
            assert!(rows[0].kind == EventKind::Open && !rows[0].preexisting);
            assert!(rows[0].handshake_us.is_some(), "client open has a handshake time");
            let end = last_terminal(rows);
            assert_eq!(end.kind, EventKind::Close, "{end:?}");
            assert_eq!((end.bytes_sent, end.bytes_received), (total, total), "{end:?}");
            assert_eq!((end.packets_sent, end.packets_received), (3, 3), "{end:?}");
            assert_eq!((end.pid, &*end.comm), (me, my_comm.as_str()));
            assert_eq!(end.family(), family);
            assert_eq!(end.remote_addr.to_string(), if family == 4 { "127.0.0.1" } else { "::1" });
            assert!(end.duration_ns.unwrap() > 0);
            assert!(end.rtt_us.is_some());
        }
        for rows in servers.values() {
            assert!(rows[0].kind == EventKind::Open && rows[0].handshake_us.is_some(), "server open: {rows:?}");
            let end = last_terminal(rows);
            assert_eq!(end.kind, EventKind::Close, "{end:?}");
            assert_eq!((end.bytes_sent, end.bytes_received), (total, total), "{end:?}");
            assert_eq!((end.packets_sent, end.packets_received), (3, 3), "{end:?}");
            assert!(rows.iter().all(|r| r.pid == server.child.id() && &*r.comm == "python3"), "{rows:?}");
        }
    }
    // The kernel's own counters agree: 10 active and 10 passive opens in the window.
    assert_eq!(after["ActiveOpens"] - before["ActiveOpens"], 10);
    assert_eq!(after["PassiveOpens"] - before["PassiveOpens"], 10);
    // Rows are in time order.
    assert!(rows.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn refused_connects_are_failed_rows_and_agree_with_snmp() {
    let _g = serial();
    let port = free_port(false);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    let before = snmp_tcp();
    for i in 0..10 {
        let addr: SocketAddr =
            if i < 7 { ([127, 0, 0, 1], port).into() } else { format!("[::1]:{port}").parse().unwrap() };
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = snmp_tcp();
    let (rows, _, _) = rec.stop();
    let failed: Vec<_> = rows.iter().filter(|r| r.kind == EventKind::Failed).collect();
    assert_eq!(failed.len(), 10, "{rows:#?}");
    assert!(failed.iter().all(|r| r.error == Some("ECONNREFUSED") && r.remote_port == port && r.local_port != 0));
    assert_eq!(failed.iter().filter(|r| r.family() == 6).count(), 3);
    assert!(rows.iter().all(|r| r.kind != EventKind::Open), "no open row for a refused attempt");
    assert_eq!(after["AttemptFails"] - before["AttemptFails"], 10);
}

/// Connects into a network that never answers (a network namespace whose link leads nowhere;
/// no packet leaves the host): each attempt is a `failed` row with ETIMEDOUT, its SYN
/// retransmissions counted, no RTT, and the connecting process named, as the namespace's own
/// /proc/net/snmp counts them.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn connects_into_silence_time_out_with_their_syn_retransmissions_counted() {
    let _g = serial();
    let net = SilentNet::create();
    let port = 40_000 + (std::process::id() % 20_000) as u16;
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    let before = net.snmp_tcp();
    // Two attempts at once, from one python3 process that prints its pid and each errno (one
    // write(2) each: two threads' print() calls can interleave).
    let script = format!(
        "import errno, os, socket, threading\n\
         print(os.getpid(), flush=True)\n\
         def go():\n\
         \x20   s = socket.socket()\n\
         \x20   try:\n\
         \x20       s.connect(('{}', {port}))\n\
         \x20       os.write(1, b'connected\\n')\n\
         \x20   except OSError as e:\n\
         \x20       os.write(1, errno.errorcode[e.errno].encode() + b'\\n')\n\
         ts = [threading.Thread(target=go) for _ in range(2)]\n\
         [t.start() for t in ts]\n\
         [t.join() for t in ts]\n",
        SilentNet::PEER
    );
    let out = net.exec(&["python3", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = text.lines();
    let pid: u32 = lines.next().and_then(|l| l.trim().parse().ok()).expect("python3 prints its pid");
    assert_eq!(lines.collect::<Vec<_>>(), ["ETIMEDOUT", "ETIMEDOUT"], "{text}");
    std::thread::sleep(Duration::from_millis(200));
    let after = net.snmp_tcp();
    let (rows, meta, _) = rec.stop();
    assert_eq!(meta.events_lost, 0);

    let failed: Vec<_> = rows.iter().filter(|r| r.kind == EventKind::Failed).collect();
    assert_eq!(failed.len(), 2, "{rows:#?}");
    for r in &failed {
        assert_eq!(r.error, Some("ETIMEDOUT"), "{r:?}");
        assert_eq!((r.remote_addr.to_string(), r.remote_port), (SilentNet::PEER.to_string(), port));
        assert_eq!(r.local_addr.to_string(), "10.213.0.1");
        assert_eq!((r.pid, &*r.comm, r.role), (pid, "python3", Role::Client));
        // tcp_syn_retries = 1, and the first tcp_syn_linear_timeouts (4) retransmissions come
        // 1 s apart: the SYN at 0 s, again at 1 s and 2 s, given up at 3 s (or, should the
        // timer run a hair early for the 3 s deadline, once more).
        assert!((2..=3).contains(&r.retransmits), "{r:?}");
        assert_eq!(r.rtt_us, None, "no RTT was ever measured: {r:?}");
        assert_eq!((r.bytes_sent, r.bytes_received), (0, 0));
        let d = r.duration_ns.expect("a duration");
        assert!((2_500_000_000..5_000_000_000).contains(&d), "{d} ns");
        assert!(r.handshake_us.is_none());
    }
    assert!(rows.iter().all(|r| r.kind != EventKind::Open), "no open row for an attempt: {rows:#?}");
    // The namespace's own counters agree: 2 attempts, 2 failed, and every retransmission.
    assert_eq!(after["ActiveOpens"] - before["ActiveOpens"], 2);
    assert_eq!(after["AttemptFails"] - before["AttemptFails"], 2);
    let retransmitted: u32 = failed.iter().map(|r| r.retransmits).sum();
    assert_eq!(after["RetransSegs"] - before["RetransSegs"], i64::from(retransmitted));
}

/// Connects the kernel refuses before any packet leaves, so no socket state changes and no
/// counter in /proc/net/snmp moves: no route (an `unreachable` route), a `prohibit` route, and
/// no free local port (a port range of two, both in use). Each is one `failed` row with the
/// errno connect() returned to the application (which prints it), TCP and UDP alike. These need
/// `--connect-errors` (off by default for its cost).
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn connects_refused_before_any_packet_are_failed_rows_with_connects_errno() {
    let _g = serial();
    let net = SilentNet::create();
    for argv in [
        &["ip", "route", "add", "unreachable", "10.77.0.0/16"][..],
        &["ip", "route", "add", "prohibit", "10.78.0.0/16"],
        &["sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40001"],
    ] {
        let out = net.exec(argv);
        assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let port = 40_000 + (std::process::id() % 20_000) as u16 + 1;
    let mut rec = Recording::start(&["--connect-errors", "--port", &port.to_string()]);
    let script = format!(
        "import errno, os, socket\n\
         print(os.getpid(), flush=True)\n\
         def attempt(addr, kind=socket.SOCK_STREAM):\n\
         \x20   s = socket.socket(socket.AF_INET, kind)\n\
         \x20   try:\n\
         \x20       s.connect(addr)\n\
         \x20       print('ok')\n\
         \x20   except OSError as e:\n\
         \x20       print(errno.errorcode[e.errno])\n\
         \x20   return s\n\
         attempt(('10.77.0.1', {port}))\n\
         attempt(('10.77.0.1', {port}), socket.SOCK_DGRAM)\n\
         attempt(('10.78.0.1', {port}))\n\
         l = socket.socket()\n\
         l.bind(('127.0.0.1', {port}))\n\
         l.listen(8)\n\
         keep = [attempt(('127.0.0.1', {port})) for _ in range(3)]\n"
    );
    let out = net.exec(&["python3", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = text.lines();
    let pid: u32 = lines.next().and_then(|l| l.trim().parse().ok()).expect("python3 prints its pid");
    let said: Vec<&str> = lines.collect();
    assert_eq!(said, ["EHOSTUNREACH", "EHOSTUNREACH", "EACCES", "ok", "ok", "EADDRNOTAVAIL"], "{text}");
    std::thread::sleep(Duration::from_millis(200));
    let (rows, meta, _) = rec.stop();
    assert_eq!(meta.events_lost, 0);

    let failed: Vec<_> = rows.iter().filter(|r| r.kind == EventKind::Failed).collect();
    let got: Vec<(Protocol, String, u16, Option<&str>)> =
        failed.iter().map(|r| (r.protocol, r.remote_addr.to_string(), r.remote_port, r.error)).collect();
    let want = [
        (Protocol::Tcp, "10.77.0.1".to_string(), port, Some("EHOSTUNREACH")),
        (Protocol::Udp, "10.77.0.1".to_string(), port, Some("EHOSTUNREACH")),
        (Protocol::Tcp, "10.78.0.1".to_string(), port, Some("EACCES")),
        (Protocol::Tcp, "127.0.0.1".to_string(), port, Some("EADDRNOTAVAIL")),
    ];
    assert_eq!(got, want, "{rows:#?}");
    for r in &failed {
        assert_eq!((r.pid, &*r.comm, r.role), (pid, "python3", Role::Client), "{r:?}");
        assert_eq!((r.bytes_sent, r.bytes_received, r.retransmits, r.rtt_us), (0, 0, 0, None), "{r:?}");
        assert!(r.duration_ns.is_some_and(|d| d < 1_000_000_000), "{r:?}");
    }
    // The two connects that got a local port are ordinary connections.
    let opens = rows.iter().filter(|r| r.kind == EventKind::Open && r.role == Role::Client).count();
    assert_eq!(opens, 2, "{rows:#?}");
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: valid fd and option struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn linger_zero_close_gives_reset_rows_on_both_ends() {
    let _g = serial();
    let port = free_port(false);
    let server = EchoServer::start("127.0.0.1", port);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    let before = snmp_tcp();
    for _ in 0..3 {
        let s = ping_pong(([127, 0, 0, 1], port).into(), &[500]);
        set_linger_zero(&s);
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = snmp_tcp();
    let (rows, _, _) = rec.stop();
    let clients = conns_where(&rows, |r| r.role == Role::Client);
    let servers = conns_where(&rows, |r| r.role == Role::Server);
    assert_eq!((clients.len(), servers.len()), (3, 3));
    for rows in clients.values() {
        let end = last_terminal(rows);
        assert_eq!(end.kind, EventKind::Reset, "{end:?}");
        assert_eq!(end.reset_by, Some(ResetBy::Local));
        assert!(end.reset_reason.is_some(), "the kernel gives a reason for RSTs it sends");
        assert_eq!(end.bytes_sent, 500);
    }
    for rows in servers.values() {
        let end = last_terminal(rows);
        assert_eq!(end.kind, EventKind::Reset, "{end:?}");
        assert_eq!(end.reset_by, Some(ResetBy::Remote));
        assert_eq!(end.error, Some("ECONNRESET"));
        assert_eq!(end.bytes_received, 500);
        assert_eq!(end.pid, server.child.id());
    }
    assert_eq!(after["OutRsts"] - before["OutRsts"], 3);
    assert_eq!(after["EstabResets"] - before["EstabResets"], 6, "both ends of 3 connections");
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn bulk_transfer_shows_increasing_samples_and_exact_totals() {
    let _g = serial();
    let port = free_port(false);
    let _server = EchoServer::start("127.0.0.1", port);
    let mut rec = Recording::start(&["--port", &port.to_string(), "--sample-interval", "250ms"]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut r = s.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf).unwrap() {
                0 => return n,
                k => n += k as u64,
            }
        }
    });
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        s.write_all(&chunk).unwrap();
        written += chunk.len() as u64;
        std::thread::sleep(Duration::from_millis(20));
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let echoed = reader.join().unwrap();
    assert_eq!(echoed, written);
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let client = conns_where(&rows, |r| r.role == Role::Client);
    assert_eq!(client.len(), 1);
    let rows = client.values().next().unwrap();
    let samples: Vec<u64> = rows.iter().filter(|r| r.kind == EventKind::Sample).map(|r| r.bytes_sent).collect();
    assert!(samples.len() >= 6, "a 3 s transfer sampled every 250 ms: {samples:?}");
    assert!(samples.windows(2).all(|w| w[0] < w[1]), "samples increase: {samples:?}");
    let end = last_terminal(rows);
    assert_eq!(end.kind, EventKind::Close);
    assert_eq!((end.bytes_sent, end.bytes_received), (written, written));
    assert!(samples.last().copied().unwrap() <= written);
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn udp_flows_of_connected_and_unconnected_sockets_with_exact_counts() {
    let _g = serial();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let server6 = UdpSocket::bind(format!("[::1]:{port}")).unwrap();
    let mut rec = Recording::start(&["--port", &port.to_string()]);

    // Unconnected client (sendto/recvfrom, like a resolver).
    let c1 = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in [10usize, 20, 30] {
        c1.send_to(&vec![1u8; n], ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 64];
        let (_, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(b"ok", from).unwrap();
        c1.recv_from(&mut buf).unwrap();
    }
    // Connected client.
    let c2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    c2.connect(("127.0.0.1", port)).unwrap();
    for _ in 0..5 {
        c2.send(&[2u8; 7]).unwrap();
        let mut buf = [0u8; 64];
        let (_, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(b"!", from).unwrap();
        c2.recv(&mut buf).unwrap();
    }
    // IPv6, unconnected.
    let c3 = UdpSocket::bind("[::1]:0").unwrap();
    c3.send_to(&[3u8; 33], format!("[::1]:{port}")).unwrap();
    let mut buf = [0u8; 64];
    server6.recv_from(&mut buf).unwrap();
    let (p1, p2, p3) =
        (c1.local_addr().unwrap().port(), c2.local_addr().unwrap().port(), c3.local_addr().unwrap().port());
    drop((c1, c2, c3, server, server6));
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let udp: Vec<_> = rows.iter().filter(|r| r.protocol == Protocol::Udp).cloned().collect();
    let flows = conns_where(&udp, |_| true);
    let find = |role: Role, lport: u16, rport: u16| {
        flows
            .values()
            .find(|rows| rows[0].role == role && rows[0].local_port == lport && rows[0].remote_port == rport)
            .unwrap_or_else(|| panic!("no {role:?} flow {lport}->{rport} in {udp:#?}"))
    };
    let check = |rows: &Vec<Event>, sent: (u64, u64), received: (u64, u64)| {
        let end = last_terminal(rows);
        assert_eq!(end.kind, EventKind::Close, "{rows:?}");
        assert_eq!((end.bytes_sent, end.packets_sent), sent, "{rows:?}");
        assert_eq!((end.bytes_received, end.packets_received), received, "{rows:?}");
        assert_eq!(end.pid, std::process::id());
    };
    check(find(Role::Client, p1, port), (60, 3), (6, 3));
    check(find(Role::Server, port, p1), (6, 3), (60, 3));
    check(find(Role::Client, p2, port), (35, 5), (5, 5));
    check(find(Role::Server, port, p2), (5, 5), (35, 5));
    check(find(Role::Client, p3, port), (33, 1), (0, 0));
    let s3 = find(Role::Server, port, p3);
    check(s3, (0, 0), (33, 1));
    assert_eq!(s3[0].remote_addr.to_string(), "::1");
    assert_eq!(flows.len(), 6, "{udp:#?}");
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn connections_open_before_the_recording_get_preexisting_open_rows() {
    let _g = serial();
    let port = free_port(false);
    let server = EchoServer::start("127.0.0.1", port);
    let mut s = ping_pong(([127, 0, 0, 1], port).into(), &[123]);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    s.write_all(&[9u8; 77]).unwrap();
    let mut buf = [0u8; 77];
    s.read_exact(&mut buf).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let client = conns_where(&rows, |r| r.role == Role::Client);
    let server_rows = conns_where(&rows, |r| r.role == Role::Server);
    assert_eq!((client.len(), server_rows.len()), (1, 1), "{rows:#?}");
    let c = client.values().next().unwrap();
    assert!(c[0].kind == EventKind::Open && c[0].preexisting);
    assert_eq!(c[0].bytes_sent, 123);
    assert_eq!(c[0].pid, std::process::id());
    assert_eq!(last_terminal(c).bytes_sent, 200);
    let sv = server_rows.values().next().unwrap();
    assert!(sv[0].preexisting);
    assert_eq!(sv[0].pid, server.child.id());
    assert_eq!(last_terminal(sv).bytes_received, 200);
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn sigterm_ends_the_window_with_a_complete_file() {
    let _g = serial();
    let port = free_port(false);
    let _server = EchoServer::start("127.0.0.1", port);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    drop(ping_pong(([127, 0, 0, 1], port).into(), &[10]));
    std::thread::sleep(Duration::from_millis(300));
    rec.signal(libc::SIGTERM);
    let (status, stdout, _) = rec.wait_output();
    assert!(status.success());
    assert!(stdout.contains("gespann analyze"), "the summary says what to run next: {stdout}");
    let rows = gespann_common::RecordingReader::open(&rec.path).unwrap().read_all().unwrap();
    assert!(rows.iter().any(|r| r.kind == EventKind::Close));
    assert!(!gespann_common::journal::journal_path(&rec.path).exists(), "journal removed after a clean end");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&rec.path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn sigkill_loses_at_most_the_last_seconds_and_recover_rebuilds_the_file() {
    let _g = serial();
    let port = free_port(false);
    let _server = EchoServer::start("127.0.0.1", port);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    for _ in 0..4 {
        drop(ping_pong(([127, 0, 0, 1], port).into(), &[10]));
    }
    // Everything captured more than about 2 s before the kill must survive it.
    std::thread::sleep(Duration::from_millis(2500));
    rec.signal(libc::SIGKILL);
    let _ = rec.wait_output();
    let err = gespann_common::RecordingReader::open(&rec.path).err().expect("no footer after SIGKILL").to_string();
    assert!(err.contains("gespann recover"), "{err}");
    let journal = gespann_common::journal::journal_path(&rec.path);
    let out = gespann().arg("recover").arg(&journal).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = gespann_common::RecordingReader::open(&rec.path).unwrap().read_all().unwrap();
    let closes = rows.iter().filter(|r| r.kind == EventKind::Close && r.role == Role::Client).count();
    assert_eq!(closes, 4, "{rows:#?}");
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn bad_output_paths_and_missing_privileges_are_one_clear_line() {
    let _g = serial();
    let out = gespann().args(["record", "-d", "1s", "-o", "/proc/nonexistent/x.parquet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/proc/nonexistent/x.parquet") && !err.contains("panicked"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("x.parquet");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = gespann().args(["record", "-d", "1s", "-o"]).arg(&existing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_gespann"))
        .args(["record", "-d", "1s", "-o", "/tmp/gespann-nobody.parquet"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CAP_BPF") && err.contains("CAP_PERFMON") && err.lines().count() == 1, "{err}");
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn duckdb_and_pyarrow_read_recordings_with_the_documented_types() {
    let _g = serial();
    let port = free_port(false);
    let _server = EchoServer::start("127.0.0.1", port);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    drop(ping_pong(([127, 0, 0, 1], port).into(), &[42]));
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let copy = rec.path.clone();
    let script = r#"
import sys, duckdb, pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
want = {"ts": pa.timestamp("us", tz="UTC"), "kind": pa.string(), "conn_id": pa.uint64(), "protocol": pa.string(),
  "role": pa.string(), "family": pa.uint8(), "local_addr": pa.string(), "local_port": pa.uint16(),
  "remote_addr": pa.string(), "remote_port": pa.uint16(), "pid": pa.uint32(), "comm": pa.string(),
  "cgroup_id": pa.uint64(), "netns": pa.uint32(), "cgroup": pa.dictionary(pa.int32(), pa.string()),
  "container_id": pa.string(), "container_name": pa.string(), "pod_uid": pa.string(), "pod_name": pa.string(),
  "pod_namespace": pa.string(), "state": pa.string(), "bytes_sent": pa.uint64(), "bytes_received": pa.uint64(),
  "packets_sent": pa.uint64(), "packets_received": pa.uint64(), "retransmits": pa.uint32(), "rtt_us": pa.uint32(),
  "handshake_us": pa.uint32(), "duration_ns": pa.uint64(), "error": pa.string(), "reset_by": pa.string(),
  "reset_reason": pa.string(), "preexisting": pa.bool_()}
got = {f.name: f.type for f in t.schema}
assert got == want, (got, want)
md = pq.read_metadata(sys.argv[1]).metadata
assert md[b"gespann.schema_version"] == b"3", md
# The same facts in the Arrow schema's metadata, closing ones included.
sm = pq.read_schema(sys.argv[1]).metadata
assert all(sm.get(k) == v for k, v in md.items() if k.startswith(b"gespann.")), (sm, md)
assert b"gespann.ended_at" in sm and b"gespann.events_lost" in sm, sm
n, b, ns, cg = duckdb.connect().execute(f"select count(*), sum(bytes_sent) filter (where kind='close'), count(distinct netns), min(cgroup) from read_parquet('{sys.argv[1]}')").fetchone()
print(n, b, ns, cg)
"#;
    let out = std::process::Command::new(python())
        .args(["-c", script])
        .arg(&copy)
        .output()
        .expect("the venv's python (see README)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let closes: u64 = rows.iter().filter(|r| r.kind == EventKind::Close).map(|r| r.bytes_sent).sum();
    // Every row is in this host's namespace; the cgroup column holds the processes' own paths.
    let cgroup = rows.iter().map(|r| r.workload.cgroup.to_string()).min().unwrap();
    assert!(rows.iter().all(|r| r.netns != 0 && !r.workload.cgroup.is_empty()), "{rows:#?}");
    assert_eq!(text.trim(), format!("{} {} 1 {cgroup}", rows.len(), closes));
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn a_full_disk_is_one_clear_error_and_recover_keeps_what_was_checkpointed() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=600k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount a small tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let out = mnt.join("x.parquet");
    let port = free_port(false);
    let mut child = gespann()
        .args(["record", "-d", "60s", "-q", "--port", &port.to_string(), "-o"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let journal = gespann_common::journal::journal_path(&out);
    while !journal.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Many short UDP flows fill 600 KiB in a few seconds.
    let start = Instant::now();
    let mut i = 0u32;
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(40), "the disk never filled");
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.send_to(&[1u8; 10], ("127.0.0.1", port)).unwrap();
        i += 1;
        if i.is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains("gespann recover") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!err.contains("panicked"));
    assert_eq!(err.matches("os error 28").count(), 1, "the cause is said once: {err}");

    let r = gespann().arg("recover").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rows = gespann_common::RecordingReader::open(&out).unwrap().read_all().unwrap();
    assert!(rows.len() > 1000, "checkpointed rows survive: {}", rows.len());
    assert!(rows.iter().all(|r| r.protocol == Protocol::Udp && r.remote_port == port));
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn ring_buffer_overflow_is_counted_exactly_in_events_lost() {
    let _g = serial();
    let port = free_port(false);
    // A 1 MiB ring holds about 6,500 events; stop the reader and make 20,000 one-event attempts.
    let mut rec = Recording::start(&["--port", &port.to_string(), "--buffer-mib", "1"]);
    rec.signal(libc::SIGSTOP);
    let n = 20_000u64;
    for _ in 0..n {
        let _ = TcpStream::connect(("127.0.0.1", port));
    }
    rec.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    let (rows, meta, stdout) = rec.stop();
    let failed = rows.iter().filter(|r| r.kind == EventKind::Failed).count() as u64;
    assert!(meta.events_lost > 0, "the ring overflowed");
    assert!(failed > 0, "what fitted was recorded");
    assert_eq!(failed + meta.events_lost, n, "every attempt is either a row or counted as lost");
    assert!(stdout.contains(&meta.events_lost.to_string()), "the summary shows the loss: {stdout}");
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn pid_and_comm_filters_keep_only_the_chosen_process() {
    let _g = serial();
    let port = free_port(false);
    let server = EchoServer::start("127.0.0.1", port);
    for filter in
        [vec!["--comm".to_string(), "python3".to_string()], vec!["--pid".to_string(), server.child.id().to_string()]]
    {
        let args: Vec<&str> = filter.iter().map(String::as_str).collect();
        let mut rec = Recording::start(&args);
        for _ in 0..3 {
            drop(ping_pong(([127, 0, 0, 1], port).into(), &[50]));
        }
        std::thread::sleep(Duration::from_millis(300));
        let (rows, _, _) = rec.stop();
        assert!(!rows.is_empty(), "{filter:?}");
        assert!(rows.iter().all(|r| r.pid == server.child.id() && &*r.comm == "python3"), "{filter:?}: {rows:#?}");
        let servers = conns_where(&rows, |r| r.role == Role::Server && r.local_port == port);
        assert_eq!(servers.len(), 3, "{filter:?}");
        assert!(rows.iter().all(|r| r.role == Role::Server), "the client (this test) is filtered out: {filter:?}");
    }
}

/// An IPv6 socket sending to an IPv4-mapped address takes the kernel's IPv4 path (the cgroup
/// sendmsg4 hook sees a 4-byte address) while its replies arrive through recvmsg6 in the mapped
/// form: still one flow, recorded as IPv4, with exact counts both ways.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn udp_from_an_ipv6_socket_to_an_ipv4_mapped_address_is_one_ipv4_flow() {
    let _g = serial();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    let c = UdpSocket::bind("[::]:0").unwrap();
    let cport = c.local_addr().unwrap().port();
    for n in [11usize, 22, 33] {
        c.send_to(&vec![1u8; n], format!("[::ffff:127.0.0.1]:{port}")).unwrap();
        let mut buf = [0u8; 64];
        let (_, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(b"pong!", from).unwrap();
        let (_, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from.to_string(), format!("[::ffff:127.0.0.1]:{port}"));
    }
    drop((c, server));
    std::thread::sleep(Duration::from_millis(300));
    let (rows, meta, _) = rec.stop();
    assert_eq!(meta.events_lost, 0);
    let client = conns_where(&rows, |r| r.protocol == Protocol::Udp && r.local_port == cport);
    assert_eq!(client.len(), 1, "one flow: {client:#?}");
    let rows = client.values().next().unwrap();
    assert_eq!((rows[0].kind, rows[0].role), (EventKind::Open, Role::Client), "{rows:?}");
    let end = last_terminal(rows);
    assert_eq!(end.kind, EventKind::Close, "{rows:?}");
    assert_eq!((end.remote_addr.to_string(), end.remote_port), ("127.0.0.1".to_string(), port), "{end:?}");
    assert_eq!((end.local_addr.to_string(), end.family()), ("0.0.0.0".to_string(), 4), "{end:?}");
    assert_eq!((end.bytes_sent, end.packets_sent), (66, 3), "{end:?}");
    assert_eq!((end.bytes_received, end.packets_received), (15, 3), "{end:?}");
}

/// `raw event` trace lines of the recorder whose local or remote port is `port`.
fn raw_events_on_port(stderr: &str, port: u16) -> Vec<String> {
    let (sport, dport) = (format!("sport={port}"), format!("dport={port}"));
    stderr
        .lines()
        .map(strip_ansi)
        .filter(|l| l.contains("raw event") && l.split_whitespace().any(|w| w == sport || w == dport))
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// With `--pid`, connections of other processes are dropped in the kernel: their closes (and
/// retransmits) never reach the ring buffer, while a connection of the chosen process that
/// predates the recording still gets its close.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn owner_filters_drop_other_processes_closes_in_the_kernel() {
    let _g = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A python3 process that owns one connection opened before the recording, and closes it
    // when told.
    let script = format!(
        "import socket, sys\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         print(s.getsockname()[1], flush=True)\n\
         sys.stdin.read(1)\n\
         s.close()\n\
         print('closed', flush=True)\n\
         sys.stdin.read()\n"
    );
    let mut py = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let py_port: u16 = line.trim().parse().unwrap();
    let (mut accepted, _) = listener.accept().unwrap();

    let pid = py.id().to_string();
    let mut rec = Recording::start_with_env(&["--pid", &pid], &[("RUST_LOG", "gespann_recorder=trace")]);
    // Churn from this process, which the filter leaves out: 20 connections, both ends here.
    for _ in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        drop((c, s));
    }
    // The chosen process closes its old connection; this end follows.
    py.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "closed");
    let mut rest = Vec::new();
    accepted.read_to_end(&mut rest).unwrap();
    drop(accepted);
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, stderr) = rec.stop_with_stderr();
    let _ = py.kill();
    let _ = py.wait();

    let on_port: Vec<_> = rows.iter().filter(|r| r.local_port == port || r.remote_port == port).collect();
    assert_eq!(on_port.len(), 2, "the old connection's open and close: {on_port:#?}");
    assert!(on_port[0].kind == EventKind::Open && on_port[0].preexisting, "{on_port:#?}");
    assert_eq!(on_port[1].kind, EventKind::Close, "{on_port:#?}");
    assert!(on_port.iter().all(|r| r.pid == py.id() && r.local_port == py_port), "{on_port:#?}");
    // What the ring buffer carried for that port: that one close, nothing of the churn, nothing
    // of the old connection's other end.
    let raw = raw_events_on_port(&stderr, port);
    assert_eq!(raw.len(), 1, "records of filtered-out connections reached user space: {raw:#?}");
    assert!(raw[0].contains(&format!("sport={py_port}")), "{raw:#?}");
}

/// The ids of the BPF maps a process holds, by map name (from /proc/PID/fdinfo).
fn bpf_maps_of(pid: u32) -> std::collections::HashMap<String, u32> {
    let mut out = std::collections::HashMap::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap().flatten() {
        let Ok(info) = std::fs::read_to_string(fd.path()) else { continue };
        let Some(id) = info.lines().find_map(|l| l.strip_prefix("map_id:")).and_then(|v| v.trim().parse().ok()) else {
            continue;
        };
        let Ok(map) = aya::maps::MapData::from_id(id) else { continue };
        if let Some(name) = map.info().ok().and_then(|i| i.name_as_str().map(str::to_owned)) {
            out.insert(name, id);
        }
    }
    out
}

/// Fills a `udp_socks` table (socket -> struct udp_sock, 40 bytes) with entries for sockets that
/// do not exist, until the kernel refuses one more.
fn fill_udp_socks(id: u32, next_key: &mut u64) {
    let data = aya::maps::MapData::from_id(id).unwrap();
    let mut map = aya::maps::HashMap::<_, u64, [u8; 40]>::try_from(aya::maps::Map::HashMap(data)).unwrap();
    loop {
        *next_key += 1;
        if map.insert(*next_key, [0u8; 40], 0).is_err() {
            return;
        }
    }
}

/// A UDP flow whose socket cannot be entered in the full `udp_socks` table would never be ended
/// by sock_release: it is taken out of `udp_flows` at once and counted in `events_lost`.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn a_full_udp_socket_table_leaves_no_flow_behind_and_is_counted_lost() {
    let _g = serial();
    let port = free_port(false);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    let maps = bpf_maps_of(rec.child.id());
    let (socks, flows) = (maps["udp_socks"], maps["udp_flows"]);
    let mut key = 0u64;
    for _ in 0..3 {
        fill_udp_socks(socks, &mut key);
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.send_to(&[1u8; 10], ("127.0.0.1", port)).unwrap();
        drop(u);
    }
    std::thread::sleep(Duration::from_millis(300));
    let data = aya::maps::MapData::from_id(flows).unwrap();
    let flow_map = aya::maps::HashMap::<_, [u8; 32], [u8; 88]>::try_from(aya::maps::Map::HashMap(data)).unwrap();
    let left = flow_map.keys().filter_map(Result::ok).filter(|k| u16::from_ne_bytes([k[24], k[25]]) == port).count();
    let (rows, meta, _) = rec.stop();
    assert_eq!(left, 0, "flows left in udp_flows that no sock_release will end");
    assert!(rows.iter().all(|r| r.remote_port != port), "{rows:#?}");
    assert_eq!(meta.events_lost, 3, "each flow the table had no room for is counted");
}

/// With the kernel's connection table capped at 40 (`--tcp-table 40`), 50 loopback connections
/// held open at once are 100 sockets to track: each one the table has no room for is counted in
/// `events_lost` (and gets no row), none vanishes silently.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn connections_the_kernel_table_has_no_room_for_are_counted_as_lost() {
    let _g = serial();
    let port = free_port(false);
    let mut rec = Recording::start(&["--tcp-table", "40", "--port", &port.to_string()]);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut held = Vec::new();
    for _ in 0..50 {
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, _) = listener.accept().unwrap();
        held.push((c, s));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (rows, meta, _) = rec.stop();
    drop(held);
    let opens = rows.iter().filter(|r| r.kind == EventKind::Open && r.protocol == Protocol::Tcp).count();
    assert!(opens <= 40, "{opens} opens with room for 40");
    // Other processes' connects may take entries too (and be counted): at least ours are.
    assert!(opens as u64 + meta.events_lost >= 100, "{opens} opens + {} lost < 100 sockets", meta.events_lost);
    assert!(meta.events_lost >= 60, "{}", meta.events_lost);
}
