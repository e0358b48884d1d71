//! Real podman containers without an image registry: a root filesystem directory with a static
//! busybox, run with runc (crun fails on hybrid cgroups), named through podman's Docker Engine
//! API service. Shared by the container tests and `cargo xtask samples` (both need root and
//! Debian's `podman runc busybox-static`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where podman's API service listens (and where the recorder asks for names).
pub const API_SOCKET: &str = "/run/podman/podman.sock";

/// podman's Docker Engine API service on [`API_SOCKET`], started unless one answers there
/// already; stopped on drop if started here.
pub struct ApiService(Option<Child>);

impl ApiService {
    pub fn ensure() -> ApiService {
        if std::os::unix::net::UnixStream::connect(API_SOCKET).is_ok() {
            return ApiService(None);
        }
        let _ = std::fs::remove_file(API_SOCKET);
        std::fs::create_dir_all(Path::new(API_SOCKET).parent().expect("a directory")).expect("/run/podman");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0", &format!("unix://{API_SOCKET}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service (apt-get install podman)");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(API_SOCKET).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "podman's API service did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        ApiService(Some(child))
    }
}

impl Drop for ApiService {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A root filesystem under `dir` with a static busybox, the applets the containers use, and
/// `/www/index.html` for busybox httpd.
pub fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).expect("rootfs/bin");
    std::fs::create_dir_all(root.join("www")).expect("rootfs/www");
    std::fs::write(root.join("www/index.html"), "hello from a container\n").expect("index.html");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("/bin/busybox (apt-get install busybox-static)");
    for applet in ["sh", "httpd", "wget", "sleep", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet link");
    }
    root
}

/// A detached podman container running `sh -c script`; removed on drop.
pub struct Container {
    pub name: String,
    pub id: String,
}

impl Container {
    /// `network`: `none` (a namespace of its own with a loopback) or `host`.
    pub fn run(name: &str, network: &str, rootfs: &Path, script: &str) -> Container {
        let _ = Command::new("podman").args(["rm", "-f", name]).output();
        let out = Command::new("podman")
            .args(["--runtime", "/usr/sbin/runc", "run", "-d"])
            .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
            .arg(format!("--network={network}"))
            .args(["--name", name, "--rootfs"])
            .arg(rootfs)
            .args(["sh", "-c", script])
            .output()
            .expect("podman (apt-get install podman runc)");
        assert!(out.status.success(), "podman run {name}: {}", String::from_utf8_lossy(&out.stderr));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(id.len(), 64, "a full container id: {id}");
        Container { name: name.to_owned(), id }
    }

    /// The container's main process on the host.
    pub fn pid(&self) -> u32 {
        let out = Command::new("podman")
            .args(["inspect", "--format", "{{.State.Pid}}", &self.name])
            .output()
            .expect("podman inspect");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a running container's pid")
    }

    /// Waits for the container to exit; panics unless it exited with 0.
    pub fn wait(&self) {
        let out = Command::new("podman").args(["wait", &self.name]).output().expect("podman wait");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{} exited with an error", self.name);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", &self.name]).output();
    }
}
