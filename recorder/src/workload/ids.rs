//! Container ids and Kubernetes pod uids, read from a cgroup v2 path alone.
//!
//! Every runtime names the cgroup it makes after the container's 64-hex id, with a
//! runtime-specific prefix under systemd (`docker-<id>.scope`, `cri-containerd-<id>.scope`,
//! `crio-<id>.scope`, `libpod-<id>.scope`) and the bare id under cgroupfs (`/docker/<id>`,
//! `/kubepods/burstable/pod<uid>/<id>`); podman's cgroupfs manager uses `libpod-<id>`. Helper
//! processes (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) carry the id too but are not
//! the container, and are not matched because `conmon-…` is not hex. The kubelet names pod cgroups
//! `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid with _ for ->.slice` (systemd driver).

/// The container id of one path segment, if the segment is a container's cgroup.
fn segment_container_id(segment: &str) -> Option<&str> {
    let s = segment.strip_suffix(".scope").unwrap_or(segment);
    let s = ["docker-", "cri-containerd-", "crio-", "libpod-"].iter().find_map(|p| s.strip_prefix(p)).unwrap_or(s);
    is_container_id(s).then_some(s)
}

/// A full container id: 64 lowercase hex digits.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every container id in `path`, outermost first (a container nested in another's cgroup, as
/// with Docker-in-Docker, gives two).
pub fn container_ids(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(segment_container_id)
}

/// The container `path` belongs to: the innermost container id in it.
pub fn container_id(path: &str) -> Option<&str> {
    container_ids(path).last()
}

/// The pod uid of one segment below a `kubepods` segment, with dashes.
fn segment_pod_uid(segment: &str) -> Option<String> {
    let uid = match segment.strip_suffix(".slice") {
        // systemd driver: kubepods-burstable-pod<uid_>.slice, kubepods-pod<uid_>.slice
        Some(slice) => slice.rsplit_once('-')?.1.strip_prefix("pod")?.replace('_', "-"),
        None => segment.strip_prefix("pod")?.to_owned(),
    };
    // A UUID (36 chars with dashes), or a static pod's 32-hex hash of its manifest.
    let ok = (32..=36).contains(&uid.len())
        && uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        && uid.bytes().any(|b| b != b'-');
    ok.then_some(uid)
}

/// The Kubernetes pod uid of `path` (with dashes, as the API shows it), if the path is inside
/// the kubelet's `kubepods` hierarchy.
pub fn pod_uid(path: &str) -> Option<String> {
    let mut segments = path.split('/').skip_while(|s| !s.starts_with("kubepods"));
    segments.next()?;
    segments.filter_map(segment_pod_uid).last()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ID2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn container_id_from_each_runtimes_cgroup_layout() {
        let table: &[(&str, Option<&str>)] = &[
            ("/", None),
            ("/system.slice/sshd.service", None),
            ("/user.slice/user-1000.slice/session-3.scope", None),
            // Docker, systemd and cgroupfs drivers
            (&format!("/system.slice/docker-{ID}.scope"), Some(ID)),
            (&format!("/docker/{ID}"), Some(ID)),
            // containerd (CRI), systemd and cgroupfs
            (
                &format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{ID}.scope"
                ),
                Some(ID),
            ),
            (&format!("/kubepods/besteffort/pod5b0e1f6a-0000-4000-8000-000000000001/{ID}"), Some(ID)),
            // CRI-O, and its monitor which is not the container
            (&format!("/kubepods.slice/crio-{ID}.scope"), Some(ID)),
            (&format!("/kubepods.slice/crio-conmon-{ID}.scope"), None),
            // podman: cgroupfs manager, systemd manager, and conmon
            (&format!("/libpod_parent/libpod-{ID}"), Some(ID)),
            (&format!("/machine.slice/libpod-{ID}.scope"), Some(ID)),
            (&format!("/machine.slice/libpod-{ID}.scope/container"), Some(ID)),
            (&format!("/machine.slice/libpod-conmon-{ID}.scope"), None),
            // near misses
            (&format!("/system.slice/docker-{}.scope", &ID[1..]), None),
            (&format!("/docker/{}", ID.to_uppercase()), None),
            (&format!("/system.slice/docker-{ID}.service"), None),
            // nested: the innermost wins
            (&format!("/system.slice/docker-{ID}.scope/docker/{ID2}"), Some(ID2)),
        ];
        for (path, want) in table {
            assert_eq!(container_id(path), *want, "{path}");
        }
    }

    #[test]
    fn every_container_id_outermost_first() {
        let path = format!("/system.slice/docker-{ID}.scope/docker/{ID2}/init");
        assert_eq!(container_ids(&path).collect::<Vec<_>>(), [ID, ID2]);
    }

    #[test]
    fn pod_uid_from_systemd_and_cgroupfs_kubelet_drivers() {
        let uid = "5b0e1f6a-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
        let uid_ = uid.replace('-', "_");
        let table: &[(String, Option<&str>)] = &[
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"
                ),
                Some(uid),
            ),
            (format!("/kubepods.slice/kubepods-pod{uid_}.slice/crio-{ID}.scope"), Some(uid)),
            (format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice"), Some(uid)),
            (format!("/kubepods/burstable/pod{uid}/{ID}"), Some(uid)),
            (format!("/kubepods/pod{uid}/{ID}"), Some(uid)),
            // static pods: the uid is a hash of the manifest
            (
                "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/x".into(),
                Some("0123456789abcdef0123456789abcdef"),
            ),
            // QoS slices are not pods; neither is a pod-looking name outside kubepods
            ("/kubepods.slice/kubepods-burstable.slice".into(), None),
            (format!("/system.slice/pod{uid}"), None),
            ("/kubepods/burstable/podnotauid".into(), None),
            (format!("/system.slice/docker-{ID}.scope"), None),
        ];
        for (path, want) in table {
            assert_eq!(pod_uid(path).as_deref(), *want, "{path}");
        }
    }
}
