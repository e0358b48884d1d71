//! NETLINK_SOCK_DIAG dumps of TCP sockets: the kernel's own view of live connections (`ss -ti`).
//!
//! Used for what tracepoints cannot give: connections already open when recording starts
//! (with their counters so far), exact periodic samples (`tcp_info`: bytes acked/received, data
//! segments, retransmits, smoothed RTT), and the owners of listening sockets.
//!
//! sock_diag answers for one network namespace: the one its netlink socket was made in. So
//! [`DiagSockets`] keeps one socket per namespace on the host, made in each by a thread that
//! enters it (`setns`), and dumps them all; every [`TcpSocket`] says which namespace it is in.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_INFO: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;

/// One TCP socket as sock_diag reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpSocket {
    /// Inode number of the socket's network namespace.
    pub netns: u32,
    /// 4 or 6: the socket's family (an IPv6 socket may hold IPv4 addresses, mapped).
    pub family: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub state: u8,
    pub inode: u64,
    pub info: Option<TcpInfo>,
}

/// The `struct tcp_info` fields Gespann records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub rtt_us: u32,
    pub total_retrans: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
}

impl TcpInfo {
    /// Decodes the leading part of `struct tcp_info` (offsets from `linux/tcp.h`, append-only ABI).
    pub fn parse(b: &[u8]) -> Option<TcpInfo> {
        let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_ne_bytes(s.try_into().unwrap()));
        let u64_at = |o: usize| b.get(o..o + 8).map(|s| u64::from_ne_bytes(s.try_into().unwrap()));
        Some(TcpInfo {
            rtt_us: u32_at(68)?,
            total_retrans: u32_at(100)?,
            bytes_acked: u64_at(120)?,
            bytes_received: u64_at(128)?,
            data_segs_in: u32_at(152)?,
            data_segs_out: u32_at(156)?,
        })
    }
}

/// `1 << state` masks for `idiag_states`.
pub const ESTABLISHED_LIKE: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 11);
pub const LISTEN: u32 = 1 << 10;

/// Dumps TCP sockets of both families whose state is in `states`, in this thread's network
/// namespace (tagged `netns`).
pub fn dump_tcp(states: u32, with_info: bool) -> io::Result<Vec<TcpSocket>> {
    let fd = diag_socket()?;
    let mut out = Vec::new();
    dump_tcp_on(&fd, crate::netns::current().unwrap_or(0), states, with_info, &mut out)?;
    Ok(out)
}

/// A NETLINK_SOCK_DIAG socket, in the calling thread's network namespace.
pub(crate) fn diag_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Dumps the TCP sockets of the namespace `fd` was made in (`netns`) into `out`.
pub(crate) fn dump_tcp_on(
    fd: &OwnedFd,
    netns: u32,
    states: u32,
    with_info: bool,
    out: &mut Vec<TcpSocket>,
) -> io::Result<()> {
    let start = out.len();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        dump_family(fd.as_raw_fd(), family, states, with_info, out)?;
    }
    for s in &mut out[start..] {
        s.netns = netns;
    }
    Ok(())
}

fn dump_family(fd: libc::c_int, family: u8, states: u32, with_info: bool, out: &mut Vec<TcpSocket>) -> io::Result<()> {
    // nlmsghdr + inet_diag_req_v2
    let mut req = [0u8; NLMSG_HDRLEN + 56];
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let r = &mut req[NLMSG_HDRLEN..];
    r[0] = family;
    r[1] = libc::IPPROTO_TCP as u8;
    r[2] = if with_info { 1 << (INET_DIAG_INFO - 1) } else { 0 };
    r[4..8].copy_from_slice(&states.to_ne_bytes());
    // SAFETY: req is a valid buffer of len bytes.
    let sent = unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }

    let mut buf = vec![0u8; 256 * 1024];
    loop {
        // SAFETY: buf is a valid writable buffer.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut end = None;
        for_each_message(&buf[..n as usize], |mtype, body| match mtype {
            NLMSG_DONE => end = Some(Ok(())),
            NLMSG_ERROR => {
                let errno = body.get(..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                end = Some(if errno == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-errno)) });
            }
            _ if end.is_none() => out.extend(parse_diag_msg(body)),
            _ => {}
        })?;
        if let Some(r) = end {
            return r;
        }
    }
}

/// Calls `each(type, body)` for every netlink message in `buf` (one `recv`'s worth).
fn for_each_message(mut buf: &[u8], mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
    while buf.len() >= NLMSG_HDRLEN {
        let mlen = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        let mtype = u16::from_ne_bytes(buf[4..6].try_into().unwrap());
        if mlen < NLMSG_HDRLEN || mlen > buf.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed netlink message"));
        }
        each(mtype, &buf[NLMSG_HDRLEN..mlen]);
        let aligned = (mlen + 3) & !3;
        buf = &buf[aligned.min(buf.len())..];
    }
    Ok(())
}

/// Network namespace, local address and port, remote address and port: a connection's
/// endpoints. The same addresses and ports can be in use in any number of namespaces at once
/// (every pod has its loopback).
pub type Tuple = (u32, IpAddr, u16, IpAddr, u16);

/// A connection's endpoints as a sock_diag exact query names them (addresses unmapped: an IPv6
/// socket talking IPv4 is found by its IPv4 endpoints, as the kernel hashes it).
pub type Endpoints = (IpAddr, u16, IpAddr, u16);

/// How many exact queries go in one `send`: the kernel answers each as it handles it, into this
/// socket's receive queue, which must hold every answer of a batch (about 1 KiB each with
/// `tcp_info`, well inside the default 208 KiB).
const QUERY_BATCH: usize = 64;

/// The TCP sockets with exactly these endpoints, with `tcp_info`, in the namespace `fd` was made
/// in (`netns`), into `out`; endpoints without a socket are left out. One lookup in the kernel's
/// socket hash per connection: unlike a dump, which walks every bucket of the table (262,144 on
/// a 24 GiB machine) and every TIME_WAIT socket, it costs nothing for the sockets not asked about.
pub(crate) fn query_tcp_on(fd: &OwnedFd, netns: u32, wanted: &[Endpoints], out: &mut Vec<TcpSocket>) -> io::Result<()> {
    const REQ: usize = NLMSG_HDRLEN + 56;
    let start = out.len();
    let mut buf = vec![0u8; 256 * 1024];
    for batch in wanted.chunks(QUERY_BATCH) {
        let mut reqs = vec![0u8; REQ * batch.len()];
        for (i, (req, &(local, lport, remote, rport))) in reqs.chunks_exact_mut(REQ).zip(batch).enumerate() {
            req[0..4].copy_from_slice(&(REQ as u32).to_ne_bytes());
            req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
            req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
            req[8..12].copy_from_slice(&(i as u32 + 1).to_ne_bytes());
            let r = &mut req[NLMSG_HDRLEN..];
            let v4 = matches!((local, remote), (IpAddr::V4(_), IpAddr::V4(_)));
            r[0] = if v4 { libc::AF_INET as u8 } else { libc::AF_INET6 as u8 };
            r[1] = libc::IPPROTO_TCP as u8;
            r[2] = 1 << (INET_DIAG_INFO - 1);
            r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
            // inet_diag_sockid: sport, dport (network order), src[4], dst[4], if, cookie[2].
            r[8..10].copy_from_slice(&lport.to_be_bytes());
            r[10..12].copy_from_slice(&rport.to_be_bytes());
            let put = |dst: &mut [u8], a: IpAddr| match a {
                IpAddr::V4(a) if v4 => dst[..4].copy_from_slice(&a.octets()),
                IpAddr::V4(a) => dst.copy_from_slice(&a.to_ipv6_mapped().octets()),
                IpAddr::V6(a) => dst.copy_from_slice(&a.octets()),
            };
            put(&mut r[12..28], local);
            put(&mut r[28..44], remote);
            r[48..56].copy_from_slice(&[0xff; 8]);
        }
        // SAFETY: reqs is a valid buffer of its length.
        let sent = unsafe { libc::send(fd.as_raw_fd(), reqs.as_ptr().cast(), reqs.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        // The kernel answered every request of the batch before send returned: read until empty.
        loop {
            // SAFETY: buf is a valid writable buffer.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => break,
                    _ => return Err(e),
                }
            }
            // NLMSG_ERROR here is "no such socket" (ENOENT) for one request: not an error.
            for_each_message(&buf[..n as usize], |mtype, body| {
                if mtype == SOCK_DIAG_BY_FAMILY {
                    out.extend(parse_diag_msg(body));
                }
            })?;
        }
    }
    for s in &mut out[start..] {
        s.netns = netns;
    }
    Ok(())
}

fn parse_diag_msg(m: &[u8]) -> Option<TcpSocket> {
    if m.len() < 72 {
        return None;
    }
    let family = m[0];
    let state = m[1];
    let sport = u16::from_be_bytes([m[4], m[5]]);
    let dport = u16::from_be_bytes([m[6], m[7]]);
    let (local, remote) = if family == libc::AF_INET as u8 {
        (IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11])), IpAddr::V4(Ipv4Addr::new(m[24], m[25], m[26], m[27])))
    } else {
        let a: [u8; 16] = m[8..24].try_into().ok()?;
        let b: [u8; 16] = m[24..40].try_into().ok()?;
        (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
    };
    let inode = u32::from_ne_bytes(m[68..72].try_into().ok()?) as u64;
    let mut info = None;
    let mut attrs = &m[72..];
    while attrs.len() >= 4 {
        let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let atype = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if alen < 4 || alen > attrs.len() {
            break;
        }
        if atype == INET_DIAG_INFO {
            info = TcpInfo::parse(&attrs[4..alen]);
        }
        let aligned = (alen + 3) & !3;
        attrs = &attrs[aligned.min(attrs.len())..];
    }
    Some(TcpSocket {
        netns: 0,
        family: if family == libc::AF_INET as u8 { 4 } else { 6 },
        local: crate::addr::unmap(local),
        local_port: sport,
        remote: crate::addr::unmap(remote),
        remote_port: dport,
        state,
        inode,
        info,
    })
}

/// A process that holds a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcOwner {
    pub pid: u32,
    pub comm: String,
    pub cgroup_id: u64,
}

/// Socket inode -> owning process, by scanning `/proc/*/fd` (what `ss -p` does). The first
/// process found wins when a socket is shared (fork).
pub fn socket_owners(cgroup2_root: Option<&std::path::Path>) -> HashMap<u64, ProcOwner> {
    let mut owners = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let mut owner: Option<ProcOwner> = None;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).and_then(|s| s.parse().ok())
            else {
                continue;
            };
            if owners.contains_key(&inode) {
                continue;
            }
            let o = owner.get_or_insert_with(|| ProcOwner {
                pid,
                comm: std::fs::read_to_string(p.path().join("comm"))
                    .map(|s| s.trim_end().to_owned())
                    .unwrap_or_default(),
                cgroup_id: cgroup2_root.map(|r| cgroup_id_of(pid, r)).unwrap_or(0),
            });
            owners.insert(inode, o.clone());
        }
    }
    owners
}

/// The cgroup v2 id of a process: the inode number of its cgroup directory.
pub fn cgroup_id_of(pid: u32, cgroup2_root: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return 0;
    };
    let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return 0;
    };
    std::fs::metadata(cgroup2_root.join(path.trim_start_matches('/'))).map(|m| m.ino()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_offsets_match_linux_tcp_h() {
        let mut b = vec![0u8; 232];
        b[68..72].copy_from_slice(&1234u32.to_ne_bytes());
        b[100..104].copy_from_slice(&7u32.to_ne_bytes());
        b[120..128].copy_from_slice(&1_000_000u64.to_ne_bytes());
        b[128..136].copy_from_slice(&2_000_000u64.to_ne_bytes());
        b[152..156].copy_from_slice(&11u32.to_ne_bytes());
        b[156..160].copy_from_slice(&22u32.to_ne_bytes());
        let i = TcpInfo::parse(&b).unwrap();
        assert_eq!(
            i,
            TcpInfo {
                rtt_us: 1234,
                total_retrans: 7,
                bytes_acked: 1_000_000,
                bytes_received: 2_000_000,
                data_segs_in: 11,
                data_segs_out: 22
            }
        );
        assert!(TcpInfo::parse(&b[..100]).is_none());
    }

    /// A connection from 127.0.0.1 to a listener bound to `bind`: (client, server side,
    /// listening port, client port).
    fn loopback_connection(bind: &str) -> (std::net::TcpStream, std::net::TcpStream, u16, u16) {
        let l = std::net::TcpListener::bind(bind).unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, _) = l.accept().unwrap();
        let cport = c.local_addr().unwrap().port();
        (c, s, port, cport)
    }

    #[test]
    fn dumps_a_live_loopback_connection() {
        let (_c, _s, port, cport) = loopback_connection("127.0.0.1:0");
        let socks = dump_tcp(ESTABLISHED_LIKE, true).unwrap();
        let mine =
            socks.iter().find(|s| s.local_port == cport && s.remote_port == port).expect("client socket in dump");
        assert_eq!(mine.state, 1);
        assert!(mine.info.is_some());
        assert!(mine.inode != 0);
        let asked = [
            (mine.local, mine.local_port, mine.remote, mine.remote_port),
            (mine.local, mine.local_port, mine.remote, 1),
        ];
        let mut found = Vec::new();
        query_tcp_on(&diag_socket().unwrap(), 7, &asked, &mut found).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].netns, found[0].inode, found[0].state), (7, mine.inode, 1));
        assert!(found[0].info.is_some());
        let owners = socket_owners(None);
        assert_eq!(owners.get(&mine.inode).map(|o| o.pid), Some(std::process::id()));
    }

    #[test]
    fn an_ipv6_socket_talking_ipv4_is_found_by_its_ipv4_endpoints() {
        // A dual-stack listener: the accepted socket is AF_INET6 with mapped addresses.
        let (_c, _s, port, cport) = loopback_connection("[::]:0");
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mut found = Vec::new();
        query_tcp_on(&diag_socket().unwrap(), 0, &[(lo, port, lo, cport), (lo, cport, lo, port)], &mut found).unwrap();
        let mut families: Vec<u8> = found.iter().map(|s| s.family).collect();
        families.sort_unstable();
        assert_eq!(families, vec![4, 6], "{found:?}");
        assert!(found.iter().all(|s| s.local == lo && s.remote == lo && s.info.is_some()));
    }
}
