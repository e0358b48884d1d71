//! [`Workloads`] over a temp-dir cgroup tree (inode numbers are the ids), a temp pods
//! directory and a fake Docker Engine API.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::api::tests::{Framing, fake_api, listing};
use super::*;

const WEB: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const DB: &str = "0123456789abcdefffffffffffffffffffffffffffffffffffffffffffffffff";
const LATE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const POD: &str = "5b0e1f6a-1c2d-4e3f-8a9b-0c1d2e3f4a5b";

struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: WorkloadConfig,
}

fn ino(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

/// A host with podman containers `web` and `db` (listed), `LATE` (only inspectable), and a
/// Kubernetes pod `shop/cart-0` with a containerd container.
fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cgroup");
    for p in [
        format!("libpod_parent/libpod-{WEB}/sub"),
        format!("libpod_parent/libpod-{DB}"),
        format!("libpod_parent/libpod-{LATE}"),
        format!("libpod_parent/libpod-conmon-{WEB}"),
        format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{WEB}.scope",
            POD.replace('-', "_")
        ),
        "system.slice/sshd.service".into(),
    ] {
        std::fs::create_dir_all(root.join(p)).unwrap();
    }
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(pods.join(format!("shop_cart-0_{POD}"))).unwrap();
    let sock = dir.path().join("podman.sock");
    let routes = vec![
        ("/containers/json?all=true".to_owned(), 200, listing(&[(WEB, "web"), (DB, "db")])),
        (format!("/containers/{LATE}/json"), 200, r#"{"Name":"/late"}"#.to_owned()),
    ];
    fake_api(&sock, Framing::Chunked, routes);
    let config = WorkloadConfig {
        cgroup2_root: Some(root.clone()),
        pods_dir: pods,
        api_sockets: vec![dir.path().join("docker.sock"), sock],
    };
    Host { _dir: dir, root, config }
}

#[test]
fn workloads_are_send() {
    fn send<T: Send>() {}
    send::<Workloads>();
}

#[test]
fn a_listed_containers_rows_are_named_from_the_first_row() {
    let h = host();
    let mut w = Workloads::new(h.config.clone());
    let id = ino(&h.root.join(format!("libpod_parent/libpod-{WEB}/sub")));
    w.note(id);
    let got = w.get(id);
    assert_eq!(&*got.cgroup, format!("/libpod_parent/libpod-{WEB}/sub"));
    assert_eq!(got.container_id.as_deref(), Some(WEB));
    assert_eq!(got.container_name.as_deref(), Some("web"));
    assert_eq!(got.pod_uid, None);
    assert!(Arc::ptr_eq(&got, &w.get(id)), "one Arc for every row of a cgroup");
    let root = w.get(ino(&h.root));
    assert_eq!((&*root.cgroup, &root.container_id), ("/", &None));
    assert!(Arc::ptr_eq(&w.get(id), &got), "still the same Arc after another cgroup");
    assert!(Arc::ptr_eq(&w.get(0), &Workload::unknown()));
    let s = w.summary();
    assert!(s.contains("podman.sock") && s.contains("2 containers named"), "{s}");
}

#[test]
fn an_unlisted_container_is_named_by_the_background_in_later_rows() {
    let h = host();
    let mut w = Workloads::new(h.config.clone());
    let id = ino(&h.root.join(format!("libpod_parent/libpod-{LATE}")));
    w.note(id);
    let first = w.get(id);
    assert_eq!(first.container_id.as_deref(), Some(LATE));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now = first.clone();
    while now.container_name.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        now = w.get(id);
    }
    assert_eq!(now.container_name.as_deref(), Some("late"));
    assert_eq!(now.cgroup, first.cgroup);
}

#[test]
fn a_pod_cgroup_gets_its_pod_uid_name_and_namespace() {
    let h = host();
    let mut w = Workloads::new(h.config.clone());
    let path = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{WEB}.scope",
        POD.replace('-', "_")
    );
    let got = w.get(ino(&h.root.join(&path)));
    assert_eq!(got.container_id.as_deref(), Some(WEB));
    assert_eq!(got.pod_uid.as_deref(), Some(POD));
    assert_eq!((got.pod_namespace.as_deref(), got.pod_name.as_deref()), (Some("shop"), Some("cart-0")));
}

#[test]
fn a_gone_cgroup_has_an_empty_path_and_no_container() {
    let h = host();
    let mut w = Workloads::new(h.config.clone());
    let dir = h.root.join(format!("libpod_parent/libpod-{DB}"));
    let id = ino(&dir);
    std::fs::remove_dir(&dir).unwrap();
    let got = w.get(id);
    assert_eq!((&*got.cgroup, &got.container_id), ("", &None));
}

#[test]
fn a_cgroup_made_just_after_a_walk_is_resolved_by_a_later_get() {
    let h = host();
    let mut w = Workloads::new(h.config.clone());
    w.note(ino(&h.root)); // walks the tree
    let dir = h.root.join(format!("libpod_parent/libpod-{LATE}/new"));
    std::fs::create_dir(&dir).unwrap();
    let id = ino(&dir);
    assert_eq!(&*w.get(id).cgroup, "", "not walked again within the rate limit");
    w.cgroups.as_mut().unwrap().forget_walk();
    let got = w.get(id);
    assert_eq!(&*got.cgroup, format!("/libpod_parent/libpod-{LATE}/new"));
    assert_eq!(got.container_id.as_deref(), Some(LATE));
    // its name was asked once the path was known
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = got;
    while got.container_name.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        got = w.get(id);
    }
    assert_eq!(got.container_name.as_deref(), Some("late"));
    assert!(Arc::ptr_eq(&got, &w.get(id)), "complete now, so cached");
}

#[test]
fn container_cgroups_match_by_id_prefix_or_name_with_descendants_and_not_conmon() {
    let h = host();
    let mut w = Workloads::new(h.config.clone());
    let web = |rel: &str| {
        let p = h.root.join(format!("libpod_parent/libpod-{WEB}{rel}"));
        (ino(&p), format!("/libpod_parent/libpod-{WEB}{rel}"))
    };
    let kube = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{WEB}.scope",
        POD.replace('-', "_")
    );
    let mut want = vec![web(""), web("/sub"), (ino(&h.root.join(&kube[1..])), kube)];
    want.sort();
    // WEB and DB share their first 16 digits
    for query in [WEB, &WEB[..17], "web", "/web"] {
        let mut got = w.container_cgroups(query);
        got.sort();
        assert_eq!(got, want, "{query}");
    }
    assert_eq!(w.container_cgroups(&WEB[..17].to_uppercase()).len(), 3);
    assert_eq!(w.container_cgroups(&WEB[..16]), [], "ambiguous prefix");
    assert_eq!(w.container_cgroups(&LATE[..11]), [], "too short a prefix");
    assert_eq!(w.container_cgroups(&LATE[..12]).len(), 1);
    assert_eq!(w.container_cgroups("nosuch"), []);
    let db = h.root.join(format!("libpod_parent/libpod-{DB}"));
    assert_eq!(w.container_cgroups("db"), [(ino(&db), format!("/libpod_parent/libpod-{DB}"))]);
}

#[test]
fn cgroup_ids_under_a_path_include_it_and_its_descendants() {
    let h = host();
    let w = Workloads::new(h.config.clone());
    let base = h.root.join("libpod_parent");
    let mut want: Vec<u64> = [
        base.clone(),
        base.join(format!("libpod-{WEB}")),
        base.join(format!("libpod-{WEB}/sub")),
        base.join(format!("libpod-{DB}")),
        base.join(format!("libpod-{LATE}")),
        base.join(format!("libpod-conmon-{WEB}")),
    ]
    .iter()
    .map(|p| ino(p))
    .collect();
    want.sort();
    for path in ["/libpod_parent", "libpod_parent/", base.to_str().unwrap()] {
        let mut got = w.cgroup_ids_under(path).unwrap();
        got.sort();
        assert_eq!(got, want, "{path}");
    }
    let e = w.cgroup_ids_under("/no/such").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert_eq!(crate::ebpf::error_chain(&e), "cannot read cgroup `/no/such`: No such file or directory (os error 2)");
}

#[test]
fn without_cgroup2_or_api_every_row_still_gets_a_workload() {
    let config = WorkloadConfig { cgroup2_root: None, pods_dir: "/nonexistent".into(), api_sockets: vec![] };
    let mut w = Workloads::new(config);
    w.note(42);
    assert_eq!(*w.get(42), Workload::default());
    assert!(w.cgroup_ids_under("/").is_err());
    assert_eq!(w.container_cgroups("web"), []);
    assert!(w.summary().contains("no API socket answered"), "{}", w.summary());
}

/// Against the real thing: two podman containers (one started after [`Workloads::new`]) and
/// podman's Docker-compatible service on a socket of its own. Prints the timings it measures.
#[test]
#[ignore = "needs root, podman, runc and busybox; starts containers and podman's API service"]
fn real_podman_containers_are_resolved_and_named() {
    use std::process::{Child, Command, Stdio};

    struct Cleanup(Vec<String>, Option<Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for name in &self.0 {
                let _ = Command::new("podman").args(["rm", "-f", "-t", "0", name]).stdout(Stdio::null()).status();
            }
            if let Some(child) = &mut self.1 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let tag = std::process::id();
    let (first, second) = (format!("gespann-wl-a-{tag}"), format!("gespann-wl-b-{tag}"));
    let mut cleanup = Cleanup(vec![first.clone(), second.clone()], None);
    let run = |name: &str| -> String {
        let out = Command::new("podman")
            .args(["--runtime", "/usr/sbin/runc", "run", "-d", "--ulimit", "nofile=1024:1024"])
            .args(["--ulimit", "nproc=1024:1024", "--network=host", "--name", name, "--rootfs"])
            .arg(&rootfs)
            .args(["sleep", "600"])
            .output()
            .unwrap();
        assert!(out.status.success(), "podman run: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let cgroup_of = |id: &str| -> u64 {
        let out = Command::new("podman").args(["inspect", "-f", "{{.State.Pid}}", id]).output().unwrap();
        let pid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let line = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let path = line.lines().find_map(|l| l.strip_prefix("0::")).unwrap().to_owned();
        ino(&crate::ebpf::cgroup2_root().unwrap().join(path.trim_start_matches('/')))
    };
    let a = run(&first);
    let sock = dir.path().join("podman.sock");
    let service = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", sock.display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cleanup.1 = Some(service);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    let config = WorkloadConfig { api_sockets: vec![sock], ..WorkloadConfig::default() };
    let t = Instant::now();
    let mut w = Workloads::new(config);
    eprintln!("new (initial listing): {:?}; {}", t.elapsed(), w.summary());
    let a_cgroup = cgroup_of(&a);
    let t = Instant::now();
    w.note(a_cgroup);
    let noted = t.elapsed();
    let t = Instant::now();
    let got = w.get(a_cgroup);
    eprintln!("first note of {a_cgroup}: {noted:?}; get: {:?}; {got:?}", t.elapsed());
    assert_eq!(&*got.cgroup, format!("/libpod_parent/libpod-{a}"));
    assert_eq!(got.container_id.as_deref(), Some(&*a));
    assert_eq!(got.container_name.as_deref(), Some(&*first));
    let t = Instant::now();
    for _ in 0..1_000_000 {
        std::hint::black_box(w.get(std::hint::black_box(a_cgroup)));
    }
    eprintln!("cached get: {:?} per call", t.elapsed() / 1_000_000);

    let b = run(&second);
    let b_cgroup = cgroup_of(&b);
    let t = Instant::now();
    w.note(b_cgroup);
    let mut got = w.get(b_cgroup);
    let unnamed = got.container_name.is_none();
    while got.container_name.is_none() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_micros(200));
        got = w.get(b_cgroup);
    }
    eprintln!("a container started later: named after {:?} (unnamed at first: {unnamed})", t.elapsed());
    assert_eq!(got.container_name.as_deref(), Some(&*second));

    let t = Instant::now();
    let by_name = w.container_cgroups(&second);
    eprintln!("container_cgroups by name: {:?} -> {by_name:?}", t.elapsed());
    assert_eq!(by_name, [(b_cgroup, format!("/libpod_parent/libpod-{b}"))]);
    assert_eq!(w.container_cgroups(&b[..12]), by_name);
    eprintln!("{}", w.summary());
}
