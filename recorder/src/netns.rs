//! The network namespaces on the host, and a sock_diag socket in each.
//!
//! A namespace is found through the processes that live in it (`/proc/*/ns/net`) and through
//! the names `ip netns` gives (`/run/netns/*`), which keep a namespace alive with no process in
//! it. Its identity is the inode number of that file, what `ls -l /proc/PID/ns/net` shows and
//! what the kernel side reads from a socket (`sk->__sk_common.skc_net.net->ns.inum`).
//!
//! A netlink socket answers for the namespace it was made in, wherever it is used from, so
//! [`DiagSockets`] makes one per namespace on a short-lived thread that enters each new one with
//! `setns` (a thread's namespace is its own: the recorder's other threads stay where they are)
//! and keeps it. A socket holds its namespace alive, so the socket of a namespace no longer found
//! is closed at the next [`DiagSockets::refresh`].

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::sockdiag::{Endpoints, TcpSocket, Tuple, diag_socket, dump_tcp_on, query_tcp_on};

/// The inode number of the namespace file at `path` (`/proc/PID/ns/net`, `/run/netns/NAME`).
pub fn inode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().and_then(|m| u32::try_from(m.ino()).ok())
}

/// The calling thread's network namespace.
pub fn current() -> Option<u32> {
    inode_of(Path::new("/proc/thread-self/ns/net"))
}

/// The network namespace of process `pid`.
pub fn of_pid(pid: u32) -> Option<u32> {
    inode_of(&PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// Every network namespace found on the host: inode -> a file that opens it.
pub fn host_namespaces(proc_root: &Path, named_dirs: &[&Path]) -> BTreeMap<u32, PathBuf> {
    let mut found = BTreeMap::new();
    for dir in named_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if let Some(ino) = inode_of(&p) {
                found.entry(ino).or_insert(p);
            }
        }
    }
    let Ok(procs) = std::fs::read_dir(proc_root) else { return found };
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.to_str().is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let path = p.path().join("ns/net");
        // readlink is cheaper than stat and says the same: `net:[4026531840]`.
        let ino = std::fs::read_link(&path)
            .ok()
            .and_then(|t| t.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse::<u32>().ok());
        if let Some(ino) = ino {
            found.entry(ino).or_insert(path);
        }
    }
    found
}

/// One sock_diag socket per network namespace on the host.
#[derive(Default)]
pub struct DiagSockets {
    by_ns: HashMap<u32, OwnedFd>,
    /// Namespaces that could not be entered, with why (reported once each).
    failed: HashMap<u32, String>,
}

impl DiagSockets {
    /// Finds the host's namespaces: opens a socket in each new one, closes those of the ones gone.
    pub fn refresh(&mut self) {
        let found = host_namespaces(Path::new("/proc"), &[Path::new("/run/netns"), Path::new("/var/run/netns")]);
        self.by_ns.retain(|ino, _| found.contains_key(ino));
        self.failed.retain(|ino, _| found.contains_key(ino));
        let own = current();
        let new: Vec<(u32, PathBuf)> = found
            .into_iter()
            .filter(|(ino, _)| !self.by_ns.contains_key(ino) && !self.failed.contains_key(ino))
            .collect();
        if new.is_empty() {
            return;
        }
        let mut made = Vec::new();
        if let Some(own) = own
            && new.iter().any(|(ino, _)| *ino == own)
        {
            made.push((own, diag_socket().map_err(|e| e.to_string())));
        }
        let others: Vec<(u32, PathBuf)> = new.into_iter().filter(|(ino, _)| Some(*ino) != own).collect();
        if !others.is_empty() {
            // A thread of its own: setns changes the namespace of the calling thread only, and
            // this one ends afterwards rather than going back.
            let entered = std::thread::scope(|s| {
                s.spawn(|| others.iter().map(|(ino, path)| (*ino, socket_in(path))).collect::<Vec<_>>())
                    .join()
                    .unwrap_or_default()
            });
            made.extend(entered);
        }
        for (ino, r) in made {
            match r {
                Ok(fd) => {
                    self.by_ns.insert(ino, fd);
                }
                Err(why) => {
                    tracing::warn!(netns = ino, "cannot ask sock_diag in network namespace {ino}: {why}");
                    self.failed.insert(ino, why);
                }
            }
        }
    }

    /// The namespaces a socket is held for.
    pub fn namespaces(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.by_ns.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// TCP sockets in `states` in every namespace. A namespace whose dump fails (it went away
    /// since the last refresh) is skipped and its socket closed; the recorder's own one failing
    /// is an error.
    pub fn dump_tcp(&mut self, states: u32, with_info: bool) -> io::Result<Vec<TcpSocket>> {
        let own = current();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (&ino, fd) in &self.by_ns {
            if let Err(e) = dump_tcp_on(fd, ino, states, with_info, &mut out) {
                if Some(ino) == own {
                    return Err(e);
                }
                tracing::debug!(netns = ino, fd = fd.as_raw_fd(), "sock_diag dump failed: {e}");
                gone.push(ino);
            }
        }
        for ino in gone {
            self.by_ns.remove(&ino);
        }
        Ok(out)
    }
}

impl DiagSockets {
    /// The TCP sockets with exactly the endpoints of `wanted` (namespace first), with
    /// `tcp_info`: one exact query each, in its namespace. Namespaces without a socket here are
    /// looked for once more (a container that started since the last refresh).
    pub fn query_tcp(&mut self, wanted: &[Tuple]) -> io::Result<Vec<TcpSocket>> {
        let mut by_ns: HashMap<u32, Vec<Endpoints>> = HashMap::new();
        for &(ns, local, lport, remote, rport) in wanted {
            by_ns.entry(ns).or_default().push((local, lport, remote, rport));
        }
        if by_ns.keys().any(|ns| !self.by_ns.contains_key(ns) && !self.failed.contains_key(ns)) {
            self.refresh();
        }
        let own = current();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (ns, endpoints) in &by_ns {
            let Some(fd) = self.by_ns.get(ns) else { continue };
            if let Err(e) = query_tcp_on(fd, *ns, endpoints, &mut out) {
                if Some(*ns) == own {
                    return Err(e);
                }
                tracing::debug!(netns = ns, "sock_diag query failed: {e}");
                gone.push(*ns);
            }
        }
        for ns in gone {
            self.by_ns.remove(&ns);
        }
        Ok(out)
    }
}

/// A sock_diag socket made inside the namespace that `path` opens; run on a thread that may be
/// left in that namespace.
fn socket_in(path: &Path) -> Result<OwnedFd, String> {
    let ns = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: setns(2) on a file descriptor this function owns; the result is checked.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {}: {}", path.display(), io::Error::last_os_error()));
    }
    diag_socket().map_err(|e| format!("sock_diag socket: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_namespace() {
        let own = current().expect("own netns");
        assert_eq!(of_pid(std::process::id()), Some(own));
        let all = host_namespaces(Path::new("/proc"), &[]);
        assert!(all.contains_key(&own), "{all:?}");
    }

    #[test]
    fn dumps_in_the_own_namespace_without_privileges() {
        let mut d = DiagSockets::default();
        d.refresh();
        let own = current().unwrap();
        assert!(d.namespaces().contains(&own));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let socks = d.dump_tcp(crate::sockdiag::LISTEN, false).unwrap();
        let mine = socks.iter().find(|s| s.local_port == port).expect("listener in the dump");
        assert_eq!((mine.netns, mine.family), (own, 4));
    }
}
