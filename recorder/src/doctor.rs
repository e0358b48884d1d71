//! `gespann doctor`: can a recording be made on this machine, and if not, why.
//!
//! Most checks read files anyone can read (kernel version, BTF, tracefs, cgroup v2, the
//! capabilities this process holds); with privileges it also loads and attaches the probes for
//! real, which is the only proof that counts.
//!
//! The container checks (which runtimes and API sockets are here, whether a Docker-API socket
//! answers, `/var/log/pods`, the cgroup layout) say which workload columns rows will get; they
//! never decide whether a recording can be made. They run over a [`ContainerProbe`] (the paths
//! and texts to look at), so tests point them at temporary directories instead of the host.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ebpf::{self, CGROUP_HOOKS, TRACEPOINTS};
use crate::kernel::Kernel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
    Check { name: name.into(), status, detail: detail.into() }
}

/// Capability numbers from `linux/capability.h`.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// True if this process may load the probes (CAP_BPF+CAP_PERFMON, or CAP_SYS_ADMIN).
pub fn privileged() -> bool {
    effective_caps().is_some_and(|c| {
        let has = |n: u32| c & (1 << n) != 0;
        has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
    })
}

/// Runs every check. With `try_load` and privileges, also loads and attaches the probes.
pub fn run(try_load: bool) -> (Vec<Check>, bool) {
    let mut out = Vec::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    out.push(check("kernel", Status::Ok, kernel));

    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    out.push(check(
        "BTF (/sys/kernel/btf/vmlinux)",
        if btf { Status::Ok } else { Status::Fail },
        if btf {
            "present: CO-RE relocations resolve against it"
        } else {
            "missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y"
        },
    ));

    let caps = effective_caps().unwrap_or(0);
    let has = |n: u32| caps & (1 << n) != 0;
    let priv_ok = privileged();
    out.push(check(
        "capabilities",
        if priv_ok { Status::Ok } else { Status::Fail },
        format!(
            "CAP_BPF={} CAP_PERFMON={} CAP_NET_ADMIN={} CAP_SYS_ADMIN={}{}",
            has(CAP_BPF),
            has(CAP_PERFMON),
            has(CAP_NET_ADMIN),
            has(CAP_SYS_ADMIN),
            if priv_ok { "" } else { " — run with sudo, or grant CAP_BPF and CAP_PERFMON (and CAP_NET_ADMIN)" }
        ),
    ));

    let tracefs =
        ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].into_iter().find(|d| Path::new(d).join("events").exists());
    out.push(match tracefs {
        Some(d) => check("tracefs", Status::Ok, format!("mounted at {d}")),
        None if priv_ok => {
            check("tracefs", Status::Warn, "not mounted: `gespann record` mounts it at /sys/kernel/tracing")
        }
        None => check("tracefs", Status::Unknown, "not mounted, and mounting it needs root"),
    });
    let mut essential_ok = true;
    for &(prog, cat, ev, effect) in TRACEPOINTS {
        let name = format!("tracepoint {cat}:{ev}");
        let st = match tracefs {
            Some(d) if Path::new(d).join("events").join(cat).join(ev).join("id").exists() => {
                check(name, Status::Ok, "available")
            }
            Some(_) => {
                if prog == "handle_set_state" {
                    essential_ok = false;
                }
                check(
                    name,
                    if prog == "handle_set_state" { Status::Fail } else { Status::Warn },
                    format!("missing: without it, no {effect}"),
                )
            }
            None => check(name, Status::Unknown, "tracefs not mounted"),
        };
        out.push(st);
    }
    match ebpf::cgroup2_root() {
        Some(root) => out.push(check(
            "cgroup v2",
            Status::Ok,
            format!("mounted at {}: UDP peer and close hooks attach there", root.display()),
        )),
        None => out.push(check(
            "cgroup v2",
            Status::Warn,
            format!("not mounted: without it, no {}", CGROUP_HOOKS.iter().map(|h| h.1).collect::<Vec<_>>().join("; ")),
        )),
    }

    let mut can_record = btf && priv_ok && essential_ok;
    if try_load && priv_ok {
        match crate::ebpf::Probes::load(&crate::filters::RecordOptions {
            ring_buffer_bytes: 1 << 16,
            connect_errors: true,
            ..Default::default()
        }) {
            Ok(probes) => {
                let rec = &probes;
                let missing = rec.missing().len();
                out.push(check(
                    "load and attach",
                    if missing == 0 { Status::Ok } else { Status::Warn },
                    if missing == 0 {
                        "every program loaded and attached".to_owned()
                    } else {
                        format!(
                            "{missing} programs could not attach: {}",
                            rec.missing().iter().map(|m| m.what.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    },
                ));
            }
            Err(e) => {
                can_record = false;
                out.push(check("load and attach", Status::Fail, format!("{e}: {}", error_chain(&e))));
            }
        }
    } else if !priv_ok {
        out.push(check("load and attach", Status::Unknown, "not tried: needs privileges"));
    }
    out.extend(container_checks(&ContainerProbe::host()));
    (out, can_record)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// Runtime sockets that speak CRI (gRPC), not the Docker API: their containers' ids still come
/// from cgroup paths, their names are not asked.
pub const CRI_SOCKETS: &[(&str, &str)] =
    &[("containerd", "/run/containerd/containerd.sock"), ("CRI-O", "/var/run/crio/crio.sock")];

/// Container runtimes and tools looked for on `PATH`.
pub const RUNTIME_BINARIES: &[&str] = &["docker", "podman", "runc", "crun", "containerd", "crio", "kubelet"];

/// How long a Docker-API socket has to answer `GET /_ping`.
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// What the container checks look at; [`ContainerProbe::host`] is this machine.
#[derive(Clone, Debug)]
pub struct ContainerProbe {
    /// Docker-API sockets the recorder asks for container names.
    pub api_sockets: Vec<PathBuf>,
    /// Where rootless podman sockets live: `<dir>/<uid>/podman/podman.sock`.
    pub user_runtime_dir: PathBuf,
    /// CRI sockets: (runtime, path).
    pub cri_sockets: Vec<(&'static str, PathBuf)>,
    /// The `PATH` searched for [`RUNTIME_BINARIES`].
    pub path: OsString,
    /// The kubelet's pod log directory.
    pub pods_dir: PathBuf,
    /// The text of `/proc/self/mounts`.
    pub mounts: String,
    pub ping_timeout: Duration,
}

impl ContainerProbe {
    /// This machine, with the recorder's own list of API sockets and pod directory (one list:
    /// what doctor probes is what the recorder asks).
    pub fn host() -> ContainerProbe {
        let recorder = crate::workload::WorkloadConfig::default();
        ContainerProbe {
            api_sockets: recorder.api_sockets,
            user_runtime_dir: PathBuf::from("/run/user"),
            cri_sockets: CRI_SOCKETS.iter().map(|(n, p)| (*n, PathBuf::from(p))).collect(),
            path: std::env::var_os("PATH").unwrap_or_default(),
            pods_dir: recorder.pods_dir,
            mounts: std::fs::read_to_string("/proc/self/mounts").unwrap_or_default(),
            ping_timeout: PING_TIMEOUT,
        }
    }
}

/// How the cgroup hierarchies are mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup2 only (at `/sys/fs/cgroup` on current distributions).
    Unified { root: PathBuf },
    /// cgroup2 beside v1 controller hierarchies (systemd's hybrid mode: `/sys/fs/cgroup/unified`).
    Hybrid { root: PathBuf, v1: Vec<String> },
    /// v1 hierarchies only.
    Legacy { v1: Vec<String> },
    /// No cgroup file system mounted at all.
    None,
}

/// The layout `/proc/self/mounts` (its text) describes. The first cgroup2 mount is the one the
/// recorder uses; v1 hierarchies are named by their controllers (`name=systemd` for systemd's).
pub fn cgroup_layout(mounts: &str) -> CgroupLayout {
    let mut root = None;
    let mut v1 = Vec::new();
    for l in mounts.lines() {
        let mut f = l.split_whitespace();
        let (Some(_dev), Some(path), Some(fstype), options) = (f.next(), f.next(), f.next(), f.next()) else {
            continue;
        };
        match fstype {
            "cgroup2" if root.is_none() => root = Some(PathBuf::from(path)),
            "cgroup" => {
                let controllers: Vec<&str> = options
                    .unwrap_or_default()
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"))
                    .collect();
                v1.push(if controllers.is_empty() { path.to_owned() } else { controllers.join(",") });
            }
            _ => {}
        }
    }
    match (root, v1.is_empty()) {
        (Some(root), true) => CgroupLayout::Unified { root },
        (Some(root), false) => CgroupLayout::Hybrid { root, v1 },
        (None, false) => CgroupLayout::Legacy { v1 },
        (None, true) => CgroupLayout::None,
    }
}

fn cgroup_check(layout: &CgroupLayout) -> Check {
    let name = "cgroup layout";
    match layout {
        CgroupLayout::Unified { root } => check(
            name,
            Status::Ok,
            format!(
                "unified (cgroup2 only, at {}): every process's cgroup path, and so its container, is known",
                root.display()
            ),
        ),
        CgroupLayout::Hybrid { root, v1 } => check(
            name,
            Status::Ok,
            format!(
                "hybrid: cgroup2 at {} beside {} v1 hierarchies ({}): rows carry the cgroup2 path, so a \
                 container is recognised when its runtime places it in cgroup2 too (systemd scopes are; \
                 runc mirrors its v1 paths there)",
                root.display(),
                v1.len(),
                v1.join(", ")
            ),
        ),
        CgroupLayout::Legacy { v1 } => check(
            name,
            Status::Warn,
            format!("legacy (v1 only: {}): no cgroup2, so rows get no cgroup path, container or pod", v1.join(", ")),
        ),
        CgroupLayout::None => {
            check(name, Status::Warn, "no cgroup file system mounted: rows get no cgroup path, container or pod")
        }
    }
}

/// `names` found as executable files on `path` (the first hit of each), in `names`' order.
pub fn find_on_path(names: &[&'static str], path: &OsString) -> Vec<(&'static str, PathBuf)> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
    names
        .iter()
        .filter_map(|n| {
            dirs.iter()
                .map(|d| d.join(n))
                .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
                .map(|p| (*n, p))
        })
        .collect()
}

/// Why a Docker-API socket did not answer `GET /_ping`.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("cannot connect to `{socket}`")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no complete answer from `{socket}` within {timeout:?}")]
    Io {
        socket: PathBuf,
        timeout: Duration,
        #[source]
        source: std::io::Error,
    },
    #[error("`{socket}` closed the connection without answering")]
    NoAnswer { socket: PathBuf },
    #[error("`{socket}` answered something that is not HTTP: {start:?}")]
    NotHttp { socket: PathBuf, start: String },
    #[error("`{socket}` answered HTTP {status} to GET /_ping")]
    Status { socket: PathBuf, status: u16 },
}

/// The status code and body of an HTTP/1.x reply, or `None` if it is not one.
pub fn parse_http_reply(reply: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut status_line = head.lines().next()?.split_whitespace();
    let version = status_line.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status = status_line.next()?.parse().ok()?;
    Some((status, body.trim().to_owned()))
}

/// The largest reply read (a `/_ping` body is `OK`).
const MAX_PING_REPLY: usize = 64 << 10;

/// `GET /_ping` (HTTP/1.0: the server closes after its reply) on a Docker-API socket; the body
/// (`OK`) on a 200.
pub fn ping(socket: &Path, timeout: Duration) -> Result<String, PingError> {
    let mut s =
        UnixStream::connect(socket).map_err(|source| PingError::Connect { socket: socket.to_owned(), source })?;
    let io = |source| PingError::Io { socket: socket.to_owned(), timeout, source };
    let deadline = Instant::now() + timeout;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(io)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io(std::io::ErrorKind::TimedOut.into()));
        }
        s.set_read_timeout(Some(left)).map_err(io)?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.len() > MAX_PING_REPLY {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    match parse_http_reply(&reply) {
        Some((200, body)) => Ok(body),
        Some((status, _)) => Err(PingError::Status { socket: socket.to_owned(), status }),
        None if reply.is_empty() => Err(PingError::NoAnswer { socket: socket.to_owned() }),
        None => Err(PingError::NotHttp {
            socket: socket.to_owned(),
            start: String::from_utf8_lossy(&reply[..reply.len().min(40)]).into_owned(),
        }),
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Rootless podman sockets: `<dir>/<uid>/podman/podman.sock`, sorted.
fn user_podman_sockets(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path().join("podman/podman.sock")).filter(|p| is_socket(p)).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The container checks over `probe`: cgroup layout, runtime binaries, each socket found (a
/// Docker-API one must answer `GET /_ping`), where container names come from, and pods.
pub fn container_checks(probe: &ContainerProbe) -> Vec<Check> {
    let mut out = vec![cgroup_check(&cgroup_layout(&probe.mounts))];

    let found = find_on_path(RUNTIME_BINARIES, &probe.path);
    let missing: Vec<&str> = RUNTIME_BINARIES.iter().copied().filter(|n| !found.iter().any(|(f, _)| f == n)).collect();
    out.push(check(
        "container runtimes on PATH",
        Status::Ok,
        if found.is_empty() {
            format!("none of {}", RUNTIME_BINARIES.join(", "))
        } else {
            let list: Vec<String> = found.iter().map(|(n, p)| format!("{n} ({})", p.display())).collect();
            let rest = if missing.is_empty() { String::new() } else { format!("; not found: {}", missing.join(", ")) };
            format!("{}{rest}", list.join(", "))
        },
    ));

    // Docker-API sockets: the recorder's, then rootless podman's (which it does not ask).
    let mut answering = Vec::new();
    let mut present = Vec::new();
    let rootless = user_podman_sockets(&probe.user_runtime_dir);
    for (sock, asked) in probe.api_sockets.iter().map(|p| (p, true)).chain(rootless.iter().map(|p| (p, false))) {
        if !sock.exists() {
            continue;
        }
        present.push(sock.clone());
        let name = format!("socket {}", sock.display());
        let started = Instant::now();
        let not_asked = if asked {
            ""
        } else {
            " (rootless podman: the recorder does not ask it, and that user's containers are not named)"
        };
        out.push(match ping(sock, probe.ping_timeout) {
            Ok(body) => {
                if asked {
                    answering.push(sock.clone());
                }
                check(
                    name,
                    if asked { Status::Ok } else { Status::Warn },
                    format!(
                        "Docker API: GET /_ping answered {body:?} in {:.1} ms{not_asked}",
                        started.elapsed().as_secs_f64() * 1e3
                    ),
                )
            }
            Err(e) => check(name, Status::Warn, format!("Docker API: {}{not_asked}", with_causes(&e))),
        });
    }
    for (runtime, sock) in &probe.cri_sockets {
        if sock.exists() {
            present.push(sock.clone());
            out.push(check(
                format!("socket {}", sock.display()),
                Status::Ok,
                format!("{runtime} (CRI, gRPC): not asked; its containers' ids come from their cgroup paths"),
            ));
        }
    }

    let can_serve = found.iter().any(|(n, _)| matches!(*n, "docker" | "podman"));
    let list = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    out.push(match (answering.is_empty(), can_serve || !present.is_empty()) {
        (false, _) => check("container names", Status::Ok, format!("from the Docker API at {}", list(&answering))),
        (true, true) => check(
            "container names",
            Status::Warn,
            format!(
                "no Docker-API socket answers (asked: {}): rows get container ids, not names; start one \
                 (`systemctl start docker`, or `podman system service --time=0 unix:///run/podman/podman.sock`)",
                list(&probe.api_sockets)
            ),
        ),
        (true, false) => check("container names", Status::Ok, "no container runtime found: none to name"),
    });

    let kubelet = found.iter().any(|(n, _)| *n == "kubelet");
    let pods_dir = probe.pods_dir.display();
    out.push(match std::fs::read_dir(&probe.pods_dir) {
        Ok(rd) => {
            let n = rd.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).count();
            check(
                format!("Kubernetes pods ({pods_dir})"),
                Status::Ok,
                format!("present, {n} pod directories: pods get their namespace and name"),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !kubelet => check(
            format!("Kubernetes pods ({pods_dir})"),
            Status::Ok,
            "absent, and no kubelet on PATH: not a Kubernetes node",
        ),
        Err(e) => check(
            format!("Kubernetes pods ({pods_dir})"),
            Status::Warn,
            format!(
                "cannot read it ({e}){}: pods get their uid only",
                if kubelet { " though kubelet is on PATH" } else { "" }
            ),
        ),
    });
    out
}

/// `e` and its causes, `: `-separated.
fn with_causes(e: &dyn std::error::Error) -> String {
    let chain = error_chain(e);
    if chain.is_empty() { e.to_string() } else { format!("{e}: {chain}") }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// This development machine's `/proc/self/mounts` (systemd's hybrid mode), trimmed.
    const HYBRID: &str = "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    #[test]
    fn cgroup_layout_tells_unified_hybrid_legacy_and_none_apart() {
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n";
        assert_eq!(cgroup_layout(unified), CgroupLayout::Unified { root: "/sys/fs/cgroup".into() });
        assert_eq!(
            cgroup_layout(HYBRID),
            CgroupLayout::Hybrid {
                root: "/sys/fs/cgroup/unified".into(),
                v1: vec!["cpu".into(), "memory".into(), "name=systemd".into()]
            }
        );
        let legacy: String = HYBRID.lines().filter(|l| !l.starts_with("cgroup2")).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            cgroup_layout(&legacy),
            CgroupLayout::Legacy { v1: vec!["cpu".into(), "memory".into(), "name=systemd".into()] }
        );
        assert_eq!(cgroup_layout("proc /proc proc rw 0 0\n"), CgroupLayout::None);
        assert_eq!(cgroup_layout(""), CgroupLayout::None);
        // The verdicts: without cgroup2 rows get no workload; hybrid names where cgroup2 is.
        assert_eq!(cgroup_check(&cgroup_layout(unified)).status, Status::Ok);
        let hybrid = cgroup_check(&cgroup_layout(HYBRID));
        assert_eq!(hybrid.status, Status::Ok);
        let want = "hybrid: cgroup2 at /sys/fs/cgroup/unified beside 3 v1 hierarchies (cpu, memory, name=systemd): ";
        assert!(hybrid.detail.starts_with(want), "{}", hybrid.detail);
        let legacy = cgroup_check(&cgroup_layout(&legacy));
        assert_eq!(legacy.status, Status::Warn);
        assert!(
            legacy.detail.starts_with("legacy (v1 only: cpu, memory, name=systemd): no cgroup2"),
            "{}",
            legacy.detail
        );
        assert_eq!(cgroup_check(&CgroupLayout::None).status, Status::Warn);
    }

    #[test]
    fn http_replies_are_parsed_and_anything_else_is_not() {
        let ok = b"HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK";
        assert_eq!(parse_http_reply(ok), Some((200, "OK".into())));
        assert_eq!(parse_http_reply(b"HTTP/1.1 404 Not Found\r\n\r\n"), Some((404, String::new())));
        assert_eq!(parse_http_reply(b"SSH-2.0-OpenSSH_9.2\r\n"), None);
        assert_eq!(parse_http_reply(b"\x00\x00\x18\x04"), None);
        assert_eq!(parse_http_reply(b""), None);
    }

    /// What the fake server does with one connection, after reading the request's head.
    enum Reply {
        Send(&'static str),
        /// Close without a word.
        Close,
        /// Keep the connection open, silent, for a second.
        Hold,
    }

    /// A unix-socket server that handles one connection per entry of `replies`, then stops.
    fn serve(path: &Path, replies: Vec<Reply>) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let mut requests = vec![];
            let mut held = vec![];
            for reply in replies {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = Vec::new();
                let mut b = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                    req.push(b[0]);
                }
                requests.push(String::from_utf8_lossy(&req).into_owned());
                match reply {
                    Reply::Send(r) => s.write_all(r.as_bytes()).unwrap(),
                    Reply::Close => drop(s),
                    Reply::Hold => held.push(s),
                }
            }
            if !held.is_empty() {
                std::thread::sleep(Duration::from_secs(1));
            }
            requests
        })
    }

    #[test]
    fn ping_says_ok_refused_wrong_status_and_silence_apart() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let server = serve(
            &sock,
            vec![
                Reply::Send("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK"),
                Reply::Send("HTTP/1.0 404 Not Found\r\n\r\n"),
                Reply::Send("RFB 003.008\n"),
                Reply::Close,
                Reply::Hold,
            ],
        );
        let t = Duration::from_millis(300);
        assert_eq!(ping(&sock, t).unwrap(), "OK");
        let e = ping(&sock, t).unwrap_err();
        assert!(matches!(e, PingError::Status { status: 404, .. }), "{e:?}");
        let e = ping(&sock, t).unwrap_err();
        assert!(matches!(&e, PingError::NotHttp { start, .. } if start == "RFB 003.008\n"), "{e:?}");
        let e = ping(&sock, t).unwrap_err();
        assert!(matches!(e, PingError::NoAnswer { .. }), "{e:?}");
        let started = Instant::now();
        let e = ping(&sock, t).unwrap_err();
        assert!(matches!(e, PingError::Io { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "the timeout held: {:?}", started.elapsed());
        assert_eq!(server.join().unwrap()[0], "GET /_ping HTTP/1.0\r\nHost: localhost\r\n\r\n");
        // A socket file nobody listens on any more.
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let e = ping(&stale, t).unwrap_err();
        assert!(matches!(e, PingError::Connect { .. }), "{e:?}");
        assert!(
            with_causes(&e).starts_with(&format!("cannot connect to `{}`: ", stale.display())),
            "{}",
            with_causes(&e)
        );
    }

    fn executable(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn binaries_are_found_only_as_executable_files_first_on_path_first() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("runc")).unwrap();
        executable(&a.join("podman"));
        executable(&b.join("podman"));
        std::fs::write(a.join("docker"), "not executable").unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_on_path(RUNTIME_BINARIES, &path), vec![("podman", a.join("podman"))]);
    }

    fn probe(dir: &Path) -> ContainerProbe {
        ContainerProbe {
            api_sockets: vec![dir.join("docker.sock"), dir.join("podman.sock")],
            user_runtime_dir: dir.join("user"),
            cri_sockets: vec![("containerd", dir.join("containerd.sock"))],
            path: dir.join("bin").into_os_string(),
            pods_dir: dir.join("pods"),
            mounts: HYBRID.into(),
            ping_timeout: Duration::from_millis(300),
        }
    }

    fn by_name<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name:?} in {checks:#?}"))
    }

    #[test]
    fn a_machine_without_containers_gets_plain_ok_lines() {
        let dir = tempfile::tempdir().unwrap();
        let checks = container_checks(&probe(dir.path()));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        let pods = format!("Kubernetes pods ({})", dir.path().join("pods").display());
        assert_eq!(names, ["cgroup layout", "container runtimes on PATH", "container names", pods.as_str()]);
        let runtimes = by_name(&checks, "container runtimes on PATH");
        assert_eq!(runtimes.detail, "none of docker, podman, runc, crun, containerd, crio, kubelet");
        let names = by_name(&checks, "container names");
        assert_eq!((names.status, names.detail.as_str()), (Status::Ok, "no container runtime found: none to name"));
        let pods = by_name(&checks, &pods);
        assert_eq!(pods.status, Status::Ok);
        assert_eq!(pods.detail, "absent, and no kubelet on PATH: not a Kubernetes node");
    }

    #[test]
    fn sockets_runtimes_and_pods_are_reported_as_found() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        for b in ["podman", "crun", "kubelet"] {
            executable(&d.join("bin").join(b));
        }
        // podman.sock answers; docker.sock is stale; a rootless podman socket answers too;
        // containerd's socket exists; two pods.
        let _podman =
            serve(&d.join("podman.sock"), vec![Reply::Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")]);
        drop(UnixListener::bind(d.join("docker.sock")).unwrap());
        std::fs::create_dir_all(d.join("user/1000/podman")).unwrap();
        let _rootless = serve(&d.join("user/1000/podman/podman.sock"), vec![Reply::Send("HTTP/1.0 200 OK\r\n\r\nOK")]);
        let _containerd = UnixListener::bind(d.join("containerd.sock")).unwrap();
        for p in ["prod_api-0_1234", "kube-system_dns-1_5678"] {
            std::fs::create_dir_all(d.join("pods").join(p)).unwrap();
        }

        let checks = container_checks(&probe(d));
        let bin = d.join("bin");
        assert_eq!(
            by_name(&checks, "container runtimes on PATH").detail,
            format!(
                "podman ({}), crun ({}), kubelet ({}); not found: docker, runc, containerd, crio",
                bin.join("podman").display(),
                bin.join("crun").display(),
                bin.join("kubelet").display()
            )
        );
        let docker = by_name(&checks, &format!("socket {}", d.join("docker.sock").display()));
        assert_eq!(docker.status, Status::Warn);
        assert!(docker.detail.starts_with("Docker API: cannot connect to"), "{}", docker.detail);
        let podman = by_name(&checks, &format!("socket {}", d.join("podman.sock").display()));
        assert_eq!(podman.status, Status::Ok);
        assert!(podman.detail.starts_with("Docker API: GET /_ping answered \"OK\" in "), "{}", podman.detail);
        let rootless = by_name(&checks, &format!("socket {}", d.join("user/1000/podman/podman.sock").display()));
        assert_eq!(rootless.status, Status::Warn);
        assert!(
            rootless
                .detail
                .ends_with("(rootless podman: the recorder does not ask it, and that user's containers are not named)")
        );
        let containerd = by_name(&checks, &format!("socket {}", d.join("containerd.sock").display()));
        assert_eq!(
            containerd.detail,
            "containerd (CRI, gRPC): not asked; its containers' ids come from their cgroup paths"
        );
        let names = by_name(&checks, "container names");
        assert_eq!(names.status, Status::Ok);
        assert_eq!(names.detail, format!("from the Docker API at {}", d.join("podman.sock").display()));
        let pods = by_name(&checks, &format!("Kubernetes pods ({})", d.join("pods").display()));
        assert_eq!(pods.detail, "present, 2 pod directories: pods get their namespace and name");
        assert!(by_name(&checks, "cgroup layout").detail.starts_with("hybrid: "));
    }

    #[test]
    fn a_runtime_without_an_answering_socket_is_a_warning_and_a_missing_pods_dir_on_a_kubelet_node_too() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        executable(&d.join("bin/podman"));
        executable(&d.join("bin/kubelet"));
        let checks = container_checks(&probe(d));
        let names = by_name(&checks, "container names");
        assert_eq!(names.status, Status::Warn);
        assert!(names.detail.starts_with("no Docker-API socket answers (asked: "), "{}", names.detail);
        assert!(names.detail.contains("podman system service --time=0 unix:///run/podman/podman.sock"));
        let pods = by_name(&checks, &format!("Kubernetes pods ({})", d.join("pods").display()));
        assert_eq!(pods.status, Status::Warn);
        assert!(pods.detail.contains("though kubelet is on PATH: pods get their uid only"), "{}", pods.detail);
    }
}
