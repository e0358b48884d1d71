//! Names replaced by keyed hashes (HMAC-SHA-256), in the shape analysts and the analyzer rely on.
//!
//! Each kind of name has its own label, so one key gives one mapping per kind and the same
//! name always gets the same replacement, in every recording: a process name becomes
//! `comm-<12 hex>`, a host `host-…`, a container name `ctr-…`, a pod `pod-…`, its namespace
//! `ns-…`. 48 bits make two distinct names meet with a chance of about n²/2⁴⁹ (one in 5·10⁶ for
//! 10,000 names), so groupings stay as they were. An empty name (unknown) stays empty.
//!
//! Ids keep their shape: a container id stays 64 lowercase hex digits (its first 12 still name
//! it in reports) and a pod uid stays a uid, dashes where they were. A cgroup path keeps its
//! layout: the layout's own directories (`system.slice`, `kubepods.slice`, `libpod_parent`, …)
//! stay, a container's or pod's directory keeps its runtime's prefix and suffix around the
//! replaced id (the same replacement as in `container_id` and `pod_uid`, so the id can still be
//! read from the path), and every other directory is replaced with its systemd unit type kept
//! (`sshd.service` becomes `cg-<12 hex>.service`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Directories of the standard cgroup layouts (systemd, Docker, podman, the kubelet), which say
/// nothing about this host: kept.
const LAYOUT: &[&str] = &[
    "system.slice",
    "user.slice",
    "machine.slice",
    "init.scope",
    "-.slice",
    "kubepods.slice",
    "kubepods-burstable.slice",
    "kubepods-besteffort.slice",
    "kubepods",
    "burstable",
    "besteffort",
    "libpod_parent",
    "docker",
    "container",
];

/// What runtimes put before a container id in its cgroup's name (the monitors' too: they carry
/// the container's id).
const RUNTIME_PREFIXES: &[&str] =
    &["docker-", "cri-containerd-", "crio-conmon-", "crio-", "libpod-conmon-", "libpod-", ""];

/// Kinds of systemd unit a cgroup can be, kept as the replaced directory's suffix.
const UNIT_SUFFIXES: &[&str] = &[".service", ".scope", ".slice", ".socket", ".mount", ".swap"];

/// The keyed hashes of one key.
#[derive(Clone)]
pub struct Names {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Names(..)")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A pod uid as the kubelet writes it: 32 to 36 hex digits and dashes (or underscores, in a
/// systemd slice name), with some digits.
fn is_uid(s: &str) -> bool {
    (32..=36).contains(&s.len())
        && s.bytes().all(|b| b == b'-' || b == b'_' || b.is_ascii_hexdigit())
        && s.bytes().any(|b| b.is_ascii_hexdigit())
}

impl Names {
    /// The hashes of a 32-byte names key.
    pub fn new(key: &[u8; 32]) -> Names {
        Names { mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length") }
    }

    /// HMAC(key, label ‖ 0 ‖ block ‖ value): `block` numbers the 32-byte blocks of a long output.
    fn digest(&self, label: &str, block: u8, value: &str) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(label.as_bytes());
        m.update(&[0, block]);
        m.update(value.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// `n` hex digits of the hash of `value` under `label`.
    fn hex(&self, label: &str, value: &str, n: usize) -> String {
        let mut out = String::with_capacity(n);
        let mut block = 0u8;
        while out.len() < n {
            for b in self.digest(label, block, value) {
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
            block = block.wrapping_add(1);
        }
        out.truncate(n);
        out
    }

    /// `tag-<12 hex>`; empty stays empty.
    fn tagged(&self, tag: &str, value: &str) -> String {
        if value.is_empty() { String::new() } else { format!("{tag}-{}", self.hex(tag, value, 12)) }
    }

    /// `shape` with every hex digit replaced by one of the hash of `canonical` under `label`
    /// (dashes and underscores stay where they are).
    fn hex_shaped(&self, label: &str, canonical: &str, shape: &str) -> String {
        let digits = self.hex(label, canonical, shape.len());
        shape.chars().zip(digits.chars()).map(|(c, d)| if c.is_ascii_hexdigit() { d } else { c }).collect()
    }

    pub fn comm(&self, comm: &str) -> String {
        self.tagged("comm", comm)
    }

    pub fn hostname(&self, host: &str) -> String {
        self.tagged("host", host)
    }

    pub fn container_name(&self, name: &str) -> String {
        self.tagged("ctr", name)
    }

    pub fn pod_name(&self, name: &str) -> String {
        self.tagged("pod", name)
    }

    pub fn pod_namespace(&self, namespace: &str) -> String {
        self.tagged("ns", namespace)
    }

    /// A container id: hex digits stay as many hex digits (a full id stays a full id); anything
    /// else (no runtime writes one) becomes `cid-<12 hex>`.
    pub fn container_id(&self, id: &str) -> String {
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            self.hex_shaped("container-id", id, id)
        } else {
            self.tagged("cid", id)
        }
    }

    /// A pod uid: the same shape, the same replacement whether written with dashes (the API,
    /// `pod_uid`) or underscores (a systemd slice name).
    pub fn pod_uid(&self, uid: &str) -> String {
        if is_uid(uid) {
            let canonical = uid.replace('_', "-").to_ascii_lowercase();
            self.hex_shaped("pod-uid", &canonical, uid)
        } else {
            self.tagged("uid", uid)
        }
    }

    /// A cgroup v2 path: `/` and the empty path (unknown) stay; each directory as the module
    /// documentation says.
    pub fn cgroup(&self, path: &str) -> String {
        path.split('/').map(|d| self.cgroup_dir(d)).collect::<Vec<_>>().join("/")
    }

    fn cgroup_dir(&self, dir: &str) -> String {
        if dir.is_empty() || LAYOUT.contains(&dir) {
            return dir.to_owned();
        }
        let unit = UNIT_SUFFIXES.iter().copied().find(|s| dir.len() > s.len() && dir.ends_with(s)).unwrap_or("");
        let body = &dir[..dir.len() - unit.len()];
        // A container's: [runtime-]<64 hex>[.scope]
        for p in RUNTIME_PREFIXES {
            if let Some(id) = body.strip_prefix(p)
                && is_hex_id(id, 64)
            {
                return format!("{p}{}{unit}", self.container_id(id));
            }
        }
        // A pod's: pod<uid> (cgroupfs) or kubepods[-<qos>]-pod<uid with _>.slice (systemd).
        if let Some(uid) = body.strip_prefix("pod")
            && is_uid(uid)
        {
            return format!("pod{}{unit}", self.pod_uid(uid));
        }
        if let Some((head, last)) = body.rsplit_once('-')
            && head.starts_with("kubepods")
            && let Some(uid) = last.strip_prefix("pod")
            && is_uid(uid)
        {
            return format!("{head}-pod{}{unit}", self.pod_uid(uid));
        }
        format!("cg-{}{unit}", self.hex("cgroup", dir, 12))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "5b0e1f6a-1c2d-4e3f-8a9b-0c1d2e3f4a5b";

    fn names(seed: u8) -> Names {
        Names::new(&[seed; 32])
    }

    #[test]
    fn names_become_tagged_hashes_the_same_for_the_same_key_and_empty_stays_empty() {
        let (n, m, other) = (names(1), names(1), names(2));
        let c = n.comm("nginx");
        assert!(c.starts_with("comm-") && c.len() == 17 && c[5..].bytes().all(|b| HEX.contains(&b)), "{c}");
        assert_eq!(c, m.comm("nginx"));
        assert_ne!(c, other.comm("nginx"));
        assert_ne!(c, n.comm("nginx "));
        // One mapping per kind: the same text as another kind of name gives another hash.
        assert_ne!(c[5..], n.container_name("nginx")[4..]);
        assert!(n.hostname("db1").starts_with("host-"));
        assert!(n.pod_name("api-7d9f").starts_with("pod-"));
        assert!(n.pod_namespace("prod").starts_with("ns-"));
        for f in [Names::comm, Names::hostname, Names::container_name, Names::pod_name, Names::pod_namespace] {
            assert_eq!(f(&n, ""), "");
        }
    }

    #[test]
    fn ids_keep_their_shape() {
        let n = names(1);
        let id = n.container_id(ID);
        assert!(is_hex_id(&id, 64) && id != ID, "{id}");
        assert_ne!(n.container_id(ID), names(2).container_id(ID));
        let uid = n.pod_uid(UID);
        assert_eq!(uid.len(), 36);
        assert_eq!(uid.match_indices('-').map(|(i, _)| i).collect::<Vec<_>>(), [8, 13, 18, 23], "{uid}");
        assert_ne!(uid, UID);
        // The systemd slice's spelling gets the same digits.
        assert_eq!(n.pod_uid(&UID.replace('-', "_")), uid.replace('-', "_"));
        assert!(n.container_id("not an id").starts_with("cid-"));
    }

    #[test]
    fn cgroup_paths_keep_their_layout_and_carry_the_replaced_ids() {
        let n = names(3);
        let id = n.container_id(ID);
        let uid_ = n.pod_uid(UID).replace('-', "_");
        let svc = n.cgroup("/system.slice/sshd.service");
        let table = [
            ("/".to_owned(), "/".to_owned()),
            (String::new(), String::new()),
            (format!("/libpod_parent/libpod-{ID}"), format!("/libpod_parent/libpod-{id}")),
            (format!("/libpod_parent/libpod-{ID}/sub"), format!("/libpod_parent/libpod-{id}/{}", n.cgroup_dir("sub"))),
            (format!("/system.slice/docker-{ID}.scope"), format!("/system.slice/docker-{id}.scope")),
            (format!("/docker/{ID}"), format!("/docker/{id}")),
            (format!("/machine.slice/libpod-conmon-{ID}.scope"), format!("/machine.slice/libpod-conmon-{id}.scope")),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
                    UID.replace('-', "_")
                ),
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{id}.scope"
                ),
            ),
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), format!("/kubepods/besteffort/pod{}/{id}", n.pod_uid(UID))),
        ];
        for (path, want) in &table {
            assert_eq!(&n.cgroup(path), want, "{path}");
        }
        assert!(svc.starts_with("/system.slice/cg-") && svc.ends_with(".service"), "{svc}");
        assert!(!svc.contains("sshd"));
        let user = n.cgroup("/user.slice/user-1000.slice/session-3.scope");
        assert!(!user.contains("1000") && !user.contains("session-3"), "{user}");
        assert!(user.starts_with("/user.slice/cg-") && user.ends_with(".scope"), "{user}");
        assert_eq!(n.cgroup("/system.slice/sshd.service"), svc, "deterministic");
    }
}
