//! Root test: the container image. It is built the way `cargo xtask image --debug` builds it
//! (the test build's binary, the libraries `ldd` names and the loader, `FROM scratch` in the
//! repository's Containerfile; nothing pulled), then `gespann record` runs in it as the README
//! says (privileged, host PID, network and cgroup namespaces, `/sys` and its cgroup mounts from the
//! host) while this
//! process makes connections on 127.0.0.1: the recording must hold exactly those, with their
//! exact bytes and this process as the owner of both ends (host pids: the host's /proc). Fails,
//! never skips, when podman or the probes are missing (`cargo xtask test` installs podman, runc).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gespann_common::{Event, EventKind, RecordingReader, Role};
use gespann_testkit::image;

/// `podman run` as these machines need it: runc (crun fails on hybrid cgroups), and limits
/// podman may set (it cannot raise them above the test's own).
const RUN: &[&str] =
    &["--runtime", "/usr/sbin/runc", "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];

/// Connections made while recording, and what each sends each way.
const CONNECTIONS: usize = 4;
fn request_len(i: usize) -> usize {
    1000 + 17 * i
}
fn reply_len(i: usize) -> usize {
    3000 + 29 * i
}

/// Removes the image (and a container left behind by a failure) on drop.
struct Cleanup {
    tag: String,
    container: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", &self.container]).output();
        let _ = Command::new("podman").args(["rmi", "-f", &self.tag]).output();
    }
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().expect("podman (apt-get install podman runc)");
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every regular file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The libraries and loader `ldd` names for `bin`, as paths relative to `/`.
fn ldd(bin: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    image::shared_objects(&text).iter().map(|p| p.strip_prefix("/").unwrap().display().to_string()).collect()
}

/// Serves `CONNECTIONS` clients: reads each request to its end, answers with its reply.
fn serve(l: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for i in 0..CONNECTIONS {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).unwrap();
            assert_eq!(req.len(), request_len(i));
            s.write_all(&vec![b'r'; reply_len(i)]).unwrap();
        }
    })
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn gespann_record_in_the_image_records_host_traffic_with_host_pids() {
    let _g = serial();
    let id = std::process::id();
    let cleanup = Cleanup { tag: format!("localhost/gespann-test:{id}"), container: format!("gsp-image-{id}") };
    let bin = gespann_testkit::gespann_bin();
    let ctx = tempfile::tempdir().unwrap();

    // The context: the binary, exactly what ldd names, the CA bundle, /tmp; nothing else.
    let copied = image::assemble(&bin, ctx.path()).unwrap();
    let rootfs = ctx.path().join("rootfs");
    let mut want: Vec<String> = vec![image::BIN_IN_IMAGE.to_owned()];
    want.extend(ldd(&bin));
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        want.push("etc/ssl/certs/ca-certificates.crt".to_owned());
    }
    assert!(want.iter().any(|f| f.contains("libc.so")), "a glibc binary links libc: {want:?}");
    assert!(want.iter().any(|f| f.contains("ld-linux")), "and its loader: {want:?}");
    assert_eq!(copied.len(), want.len());
    want.sort();
    assert_eq!(files_under(&rootfs), want);
    assert!(rootfs.join("tmp").is_dir());

    // No intermediate images (the cache of each step), so removing the tag removes everything.
    image::build("podman", ctx.path(), &cleanup.tag, &["--layers=false", "--quiet"]).unwrap();
    let labels = podman(&[
        "image",
        "inspect",
        "--format",
        "{{index .Labels \"org.opencontainers.image.version\"}} {{index .Labels \"org.opencontainers.image.title\"}} {{.Config.Entrypoint}}",
        &cleanup.tag,
    ]);
    assert_eq!(labels, format!("{} gespann [/usr/bin/gespann]", env!("CARGO_PKG_VERSION")));

    // The image's own --version: the binary and its libraries run in it.
    let version = podman(&[RUN, &[&cleanup.tag, "--version"]].concat());
    assert_eq!(version, format!("gespann {}", env!("CARGO_PKG_VERSION")));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new("podman")
        .args(RUN)
        .args(["--name", &cleanup.container])
        .args(["--privileged", "--pid=host", "--network=host", "--cgroupns=host", "-v", "/sys:/sys"])
        // The runtime mounts a cgroup tree of its own over /sys/fs/cgroup, hiding cgroup2 on a
        // hybrid host: the host's again, as the README and deploy/compose.yaml say.
        .args(["-v", "/sys/fs/cgroup:/sys/fs/cgroup", "-v"])
        .arg(format!("{}:/out", out.path().display()))
        .arg(&cleanup.tag)
        .args(["record", "--duration", "8s", "-q", "--port", &port.to_string(), "-o", "/out/x.parquet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podman (apt-get install podman runc)");
    let path = out.path().join("x.parquet");
    let journal = gespann_common::journal::journal_path(&path);
    let start = Instant::now();
    while !journal.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("gespann record in the image exited before recording ({status}): {err}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "gespann record in the image did not start within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let recording_started = start.elapsed();

    let server = serve(listener);
    for i in 0..CONNECTIONS {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&vec![b'q'; request_len(i)]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        assert_eq!(reply.len(), reply_len(i));
    }
    server.join().unwrap();

    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "gespann record in the image: {}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("unavailable here"), "every probe and hook attaches in the image: {stderr}");
    let rows = RecordingReader::open(&path).expect("a recording").read_all().unwrap();
    let (me, comm) = (id, comm_of(id));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let cgroup = cgroup.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line").to_owned();

    // Each end's last row per connection: its final counters.
    let mut ends: HashMap<(Role, u64), &Event> = HashMap::new();
    for r in rows.iter().filter(|r| r.local_port == port || r.remote_port == port) {
        assert_eq!((r.pid, &*r.comm), (me, comm.as_str()), "this process owns both ends (host pids): {r:#?}");
        assert_eq!(&*r.workload.cgroup, cgroup, "its cgroup, from the host's cgroup2 root: {r:#?}");
        ends.insert((r.role, r.conn_id), r);
    }
    for role in [Role::Client, Role::Server] {
        let mut got: Vec<(u64, u64)> = ends
            .iter()
            .filter(|((r, _), _)| *r == role)
            .map(|(_, e)| {
                assert_eq!(if role == Role::Client { e.remote_port } else { e.local_port }, port, "{e:#?}");
                assert_eq!(e.kind, EventKind::Close, "each connection ended: {e:#?}");
                (e.bytes_sent, e.bytes_received)
            })
            .collect();
        let mut want: Vec<(u64, u64)> = (0..CONNECTIONS)
            .map(|i| {
                let (req, rep) = (request_len(i) as u64, reply_len(i) as u64);
                if role == Role::Client { (req, rep) } else { (rep, req) }
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "{role:?} ends of the {CONNECTIONS} connections; recording started after {recording_started:?}"
        );
    }
}
