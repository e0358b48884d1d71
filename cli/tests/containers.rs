//! Root tests: real podman containers (runc, a busybox root filesystem made by the test, names
//! through podman's Docker-compatible API service) and a Kubernetes-shaped cgroup layout made by
//! the test. Every row of a container's connection must name its container, cgroup and network
//! namespace; a host process's rows none. They fail, never skip, when the probes cannot load or
//! podman is missing (`cargo xtask test` installs podman, runc and busybox-static).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use gespann_common::{Event, Role};
use gespann_testkit::podman::{ApiService, Container, rootfs};

fn netns_of(pid: u32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap().ino() as u32
}

/// A process's cgroup v2 path, as /proc/PID/cgroup shows it.
fn cgroup_of(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line").to_owned()
}

fn assert_container(rows: &[Event], c: &Container, cgroup: &str, netns: u32) {
    for r in rows {
        let w = &r.workload;
        assert_eq!(w.container_id.as_deref(), Some(c.id.as_str()), "{r:#?}");
        assert_eq!(w.container_name.as_deref(), Some(c.name.as_str()), "{r:#?}");
        assert_eq!(&*w.cgroup, cgroup, "{r:#?}");
        assert_eq!(r.netns, netns, "{r:#?}");
        assert!(w.pod_uid.is_none(), "{r:#?}");
    }
}

/// One HTTP GET; returns the bytes sent and received.
fn http_get(port: u16) -> (u64, u64) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n";
    s.write_all(req).unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    assert!(
        body.starts_with(b"HTTP/1.1 200") || body.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    (req.len() as u64, body.len() as u64)
}

/// One container in its own network namespace serving itself over its loopback (busybox httpd
/// and wget), one on the host network serving a host client: exact container id, name (through
/// podman's API service), cgroup and namespace on every row of both ends; the host client's
/// rows have no container.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn podman_containers_are_named_on_every_row_of_both_ends() {
    let _g = serial();
    let _api = ApiService::ensure();
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let host_port = free_port(false);
    let mut rec = Recording::start(&["--port", "8080", "--port", &host_port.to_string()]);
    let own = Container::run(
        &format!("gsp-own-{}", std::process::id()),
        "none",
        &root,
        "httpd -p 127.0.0.1:8080 -h /www && sleep 1 && wget -q -O /dev/null http://127.0.0.1:8080/index.html \
         && wget -q -O /dev/null http://127.0.0.1:8080/index.html && sleep 2",
    );
    let own_pid = own.pid();
    let (own_netns, own_cgroup) = (netns_of(own_pid), cgroup_of(own_pid));
    let hosted = Container::run(
        &format!("gsp-hostnet-{}", std::process::id()),
        "host",
        &root,
        &format!("httpd -f -p 127.0.0.1:{host_port} -h /www"),
    );
    let hosted_pid = hosted.pid();
    let hosted_cgroup = cgroup_of(hosted_pid);
    std::thread::sleep(Duration::from_millis(500));
    let (sent, received) = http_get(host_port);
    own.wait();
    std::thread::sleep(Duration::from_millis(300));
    let (rows, meta, _) = rec.stop();
    assert_eq!(meta.events_lost, 0);
    assert_eq!(meta.schema_version, gespann_common::schema::SCHEMA_VERSION);

    assert_eq!(own_cgroup, format!("/libpod_parent/libpod-{}", own.id), "podman's cgroup layout");
    assert_ne!(own_netns, netns_of(std::process::id()), "--network=none is a namespace of its own");
    let clients = conns_where(&rows, |r| r.role == Role::Client && r.remote_port == 8080);
    let servers = conns_where(&rows, |r| r.role == Role::Server && r.local_port == 8080);
    assert_eq!((clients.len(), servers.len()), (2, 2), "two wget requests: {rows:#?}");
    for conn in clients.values().chain(servers.values()) {
        assert_container(conn, &own, &own_cgroup, own_netns);
    }
    // Both ends of each loopback connection agree on the bytes.
    let mut up: Vec<_> =
        clients.values().map(|c| (last_terminal(c).bytes_sent, last_terminal(c).bytes_received)).collect();
    let mut down: Vec<_> =
        servers.values().map(|s| (last_terminal(s).bytes_received, last_terminal(s).bytes_sent)).collect();
    up.sort();
    down.sort();
    assert_eq!(up, down);
    assert!(up.iter().all(|&(s, r)| s > 0 && r > 0), "{up:?}");

    let host_netns = netns_of(std::process::id());
    let served = conns_where(&rows, |r| r.role == Role::Server && r.local_port == host_port);
    let asked = conns_where(&rows, |r| r.role == Role::Client && r.remote_port == host_port);
    assert_eq!((served.len(), asked.len()), (1, 1), "{rows:#?}");
    let s = served.values().next().unwrap();
    assert_container(s, &hosted, &hosted_cgroup, host_netns);
    assert_eq!((last_terminal(s).bytes_received, last_terminal(s).bytes_sent), (sent, received));
    let c = asked.values().next().unwrap();
    let my_cgroup = cgroup_of(std::process::id());
    for r in c {
        assert_eq!((r.pid, r.netns, &*r.workload.cgroup), (std::process::id(), host_netns, my_cgroup.as_str()));
        assert!(r.workload.container_id.is_none() && r.workload.container_name.is_none(), "{r:#?}");
    }
    assert_eq!((last_terminal(c).bytes_sent, last_terminal(c).bytes_received), (sent, received));
}

/// `--container NAME` keeps exactly that container's connections: one named container that
/// runs before the recording starts and one that starts during it (found while recording), and
/// none of a third container's or of the host server's.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn the_container_filter_keeps_exactly_the_named_containers_connections() {
    let _g = serial();
    let _api = ApiService::ensure();
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let port = free_port(false);
    let mut server = Command::new("busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(root.join("www"))
        .spawn()
        .expect("busybox httpd on the host");
    let fetch = |n: usize, delay: &str| {
        let gets = vec![format!("wget -q -O /dev/null http://127.0.0.1:{port}/index.html"); n].join(" && ");
        format!("sleep {delay} && {gets} && sleep 1")
    };
    let early = Container::run(&format!("gsp-early-{}", std::process::id()), "host", &root, &fetch(3, "2.5"));
    let other = Container::run(&format!("gsp-other-{}", std::process::id()), "host", &root, &fetch(4, "2.5"));
    let late_name = format!("gsp-late-{}", std::process::id());
    let mut rec = Recording::start(&[
        "--container",
        &early.name,
        "--container",
        &late_name,
        "--port",
        &port.to_string(),
        "--sample-interval",
        "300ms",
    ]);
    let late = Container::run(&late_name, "host", &root, &fetch(2, "2"));
    for c in [&early, &other, &late] {
        c.wait();
    }
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let _ = server.kill();
    let _ = server.wait();
    let conns = conns_where(&rows, |_| true);
    let named = |c: &Container| conns.values().filter(|v| v[0].workload.container_id.as_deref() == Some(&c.id)).count();
    assert_eq!((named(&early), named(&late), named(&other)), (3, 2, 0), "{rows:#?}");
    assert_eq!(conns.len(), 5, "only the two containers' client connections: {rows:#?}");
    assert!(rows.iter().all(|r| r.role == Role::Client && r.remote_port == port));
}

/// A Kubernetes node's layout, made by the test: a containerd container's cgroup in a pod's
/// slice under the cgroup2 root, a traffic process moved into it, and the kubelet's log
/// directory for the pod. Its rows carry the pod's uid, name and namespace and the container id.
#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn a_kubernetes_pod_layout_gives_pod_uid_name_namespace_and_container_id() {
    let _g = serial();
    let root = gespann_recorder::ebpf::cgroup2_root().expect("a cgroup2 mount");
    let uid = format!("5e1f0c2a-7b3d-4e8f-9a6b-{:012x}", std::process::id());
    let cid = format!("{:0>64}", format!("c0ffee{:x}", std::process::id()));
    let slices = [
        "kubepods.slice".to_owned(),
        "kubepods-burstable.slice".to_owned(),
        format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_")),
        format!("cri-containerd-{cid}.scope"),
    ];
    let mut layout = Layout { made: Vec::new() };
    let mut dir = root.clone();
    for s in &slices {
        dir = dir.join(s);
        if !dir.exists() {
            std::fs::create_dir(&dir).unwrap();
            layout.made.push(dir.clone());
        }
    }
    let pods = Path::new("/var/log/pods");
    if !pods.exists() {
        std::fs::create_dir_all(pods).unwrap();
        layout.made.insert(0, pods.to_owned());
    }
    let pod_dir = pods.join(format!("shop_checkout-7d4f9_{uid}"));
    std::fs::create_dir(&pod_dir).unwrap();
    layout.made.push(pod_dir.clone());

    let port = free_port(false);
    let _echo = EchoServer::start("127.0.0.1", port);
    let mut proc_ = Command::new(python())
        .args(["-c", "import socket, sys\nprint('ready', flush=True)\nsys.stdin.readline()\ns = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\ns.sendall(b'x' * 321)\ngot = 0\nwhile got < 321: got += len(s.recv(65536))\ns.close()\n", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(proc_.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    std::fs::write(dir.join("cgroup.procs"), proc_.id().to_string()).unwrap();
    let relative = format!("/{}", slices.join("/"));
    assert_eq!(cgroup_of(proc_.id()), relative);
    let mut rec = Recording::start(&["--port", &port.to_string()]);
    proc_.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    assert!(proc_.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    let (rows, _, _) = rec.stop();
    let client = conns_where(&rows, |r| r.role == Role::Client && r.remote_port == port);
    assert_eq!(client.len(), 1, "{rows:#?}");
    let c = client.values().next().unwrap();
    for r in c {
        let w = &r.workload;
        assert_eq!(&*w.cgroup, relative.as_str(), "{r:#?}");
        assert_eq!(w.pod_uid.as_deref(), Some(uid.as_str()), "{r:#?}");
        assert_eq!(w.pod_name.as_deref(), Some("checkout-7d4f9"), "{r:#?}");
        assert_eq!(w.pod_namespace.as_deref(), Some("shop"), "{r:#?}");
        assert_eq!(w.container_id.as_deref(), Some(cid.as_str()), "{r:#?}");
    }
    assert_eq!(last_terminal(c).bytes_sent, 321);
    let server = conns_where(&rows, |r| r.role == Role::Server && r.local_port == port);
    assert!(server.values().flatten().all(|r| r.workload.pod_uid.is_none() && r.workload.container_id.is_none()));
}

/// What the Kubernetes test made, removed on drop (deepest first).
struct Layout {
    made: Vec<PathBuf>,
}

impl Drop for Layout {
    fn drop(&mut self) {
        for p in self.made.iter().rev() {
            // A cgroup can be removed once empty: its process has exited.
            let _ = std::fs::remove_dir(p);
        }
    }
}
