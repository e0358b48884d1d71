//! One row of a recording: the user-space form of every event, whatever produced it (the live
//! recorder, a recording read back, the synthetic generator).

use std::net::IpAddr;
use std::sync::Arc;

/// The `kind` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Open,
    Close,
    Reset,
    Failed,
    Retransmit,
    Sample,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Open,
        EventKind::Close,
        EventKind::Reset,
        EventKind::Failed,
        EventKind::Retransmit,
        EventKind::Sample,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Close => "close",
            EventKind::Reset => "reset",
            EventKind::Failed => "failed",
            EventKind::Retransmit => "retransmit",
            EventKind::Sample => "sample",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// `close`, `reset` and `failed` end a connection.
    pub fn is_terminal(self) -> bool {
        matches!(self, EventKind::Close | EventKind::Reset | EventKind::Failed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "client" => Some(Role::Client),
            "server" => Some(Role::Server),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResetBy {
    Local,
    Remote,
}

impl ResetBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetBy::Local => "local",
            ResetBy::Remote => "remote",
        }
    }

    pub fn parse(s: &str) -> Option<ResetBy> {
        match s {
            "local" => Some(ResetBy::Local),
            "remote" => Some(ResetBy::Remote),
            _ => None,
        }
    }
}

/// Where a connection's owner runs: its cgroup v2 and, when the cgroup's path says so, the
/// container and Kubernetes pod it belongs to. Resolved once per cgroup while recording (a
/// container's cgroup is gone once it exits) and shared by every row of that cgroup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Workload {
    /// The cgroup v2 path relative to the cgroup2 root, as `/proc/PID/cgroup` shows it (`/` for
    /// the root); empty when unknown (no owner, or the cgroup was gone before it was resolved).
    pub cgroup: Arc<str>,
    /// The full container id (Docker, containerd, CRI-O, podman), parsed from the cgroup path.
    pub container_id: Option<Arc<str>>,
    /// The container's name, from the runtime's API socket.
    pub container_name: Option<Arc<str>>,
    /// The Kubernetes pod uid, from a `kubepods…pod<uid>…` cgroup path.
    pub pod_uid: Option<Arc<str>>,
    /// The pod's name and namespace, from the kubelet's `/var/log/pods/<ns>_<name>_<uid>/`.
    pub pod_name: Option<Arc<str>>,
    pub pod_namespace: Option<Arc<str>>,
}

impl Workload {
    /// The workload of a row with no owner.
    pub fn unknown() -> Arc<Workload> {
        static UNKNOWN: std::sync::OnceLock<Arc<Workload>> = std::sync::OnceLock::new();
        UNKNOWN.get_or_init(|| Arc::new(Workload::default())).clone()
    }
}

/// One row of a recording (schema version 2). Counters are cumulative for the connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Wall-clock nanoseconds since the Unix epoch (UTC).
    pub ts_ns: i64,
    pub kind: EventKind,
    pub conn_id: u64,
    pub protocol: Protocol,
    pub role: Role,
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    pub local_port: u16,
    pub remote_port: u16,
    pub pid: u32,
    pub comm: Arc<str>,
    pub cgroup_id: u64,
    /// Inode number of the connection's network namespace (`ls -l /proc/PID/ns/net`); 0 in a
    /// version 1 recording.
    pub netns: u32,
    /// The owner's cgroup, container and pod.
    pub workload: Arc<Workload>,
    pub state: Option<&'static str>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub retransmits: u32,
    pub rtt_us: Option<u32>,
    pub handshake_us: Option<u32>,
    pub duration_ns: Option<u64>,
    pub error: Option<&'static str>,
    pub reset_by: Option<ResetBy>,
    pub reset_reason: Option<Arc<str>>,
    pub preexisting: bool,
}

/// An `open` row of TCP client connection 0 between unspecified addresses, with every counter
/// zero and every optional column empty: a base for `Event { .., ..Event::default() }`.
impl Default for Event {
    fn default() -> Self {
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        Event {
            ts_ns: 0,
            kind: EventKind::Open,
            conn_id: 0,
            protocol: Protocol::Tcp,
            role: Role::Client,
            local_addr: unspecified,
            remote_addr: unspecified,
            local_port: 0,
            remote_port: 0,
            pid: 0,
            comm: Arc::from(""),
            cgroup_id: 0,
            netns: 0,
            workload: Workload::unknown(),
            state: None,
            bytes_sent: 0,
            bytes_received: 0,
            packets_sent: 0,
            packets_received: 0,
            retransmits: 0,
            rtt_us: None,
            handshake_us: None,
            duration_ns: None,
            error: None,
            reset_by: None,
            reset_reason: None,
            preexisting: false,
        }
    }
}

impl Event {
    /// The `family` column: 4 or 6.
    pub fn family(&self) -> u8 {
        if self.local_addr.is_ipv4() { 4 } else { 6 }
    }
}

/// Name of a TCP state number (`include/net/tcp_states.h`).
pub fn tcp_state_name(state: u8) -> Option<&'static str> {
    Some(match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => return None,
    })
}

/// Interns a TCP state name read back from a file, so `Event::state` can stay `&'static str`.
pub fn tcp_state_static(name: &str) -> Option<&'static str> {
    (1..=12).filter_map(tcp_state_name).find(|s| *s == name)
}

/// Name of an errno value as the kernel reports it in `sk_err` (Linux numbering).
pub fn errno_name(errno: u16) -> Option<&'static str> {
    ERRNOS.iter().find(|(n, _)| *n == errno).map(|(_, s)| *s)
}

/// Interns an errno name read back from a file.
pub fn errno_static(name: &str) -> Option<&'static str> {
    ERRNOS.iter().find(|(_, s)| *s == name).map(|(_, s)| *s)
}

const ERRNOS: &[(u16, &str)] = &[
    (1, "EPERM"),
    (4, "EINTR"),
    (5, "EIO"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (22, "EINVAL"),
    (32, "EPIPE"),
    (71, "EPROTO"),
    (90, "EMSGSIZE"),
    (92, "ENOPROTOOPT"),
    (97, "EAFNOSUPPORT"),
    (98, "EADDRINUSE"),
    (99, "EADDRNOTAVAIL"),
    (100, "ENETDOWN"),
    (101, "ENETUNREACH"),
    (102, "ENETRESET"),
    (103, "ECONNABORTED"),
    (104, "ECONNRESET"),
    (105, "ENOBUFS"),
    (107, "ENOTCONN"),
    (108, "ESHUTDOWN"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (112, "EHOSTDOWN"),
    (113, "EHOSTUNREACH"),
    (114, "EALREADY"),
    (115, "EINPROGRESS"),
    (125, "ECANCELED"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(errno_name(111), Some("ECONNREFUSED"));
        assert_eq!(errno_static("ETIMEDOUT"), errno_name(110));
        assert_eq!(tcp_state_name(7), Some("CLOSE"));
        assert_eq!(tcp_state_static("ESTABLISHED"), Some("ESTABLISHED"));
        assert_eq!(tcp_state_static("NOPE"), None);
    }
}
