//! Cgroup v2 id to path.
//!
//! A cgroup v2 id is the kernfs node id of the cgroup's directory, which is also its inode
//! number and the payload of its kernfs file handle. So the kernel resolves an id directly:
//! `open_by_handle_at(<cgroup2 mount>, {FILEID_KERNFS, id})` opens the directory (as systemd and
//! bpftool do) and `/proc/self/fd/N` names it, in microseconds. That needs CAP_DAC_READ_SEARCH
//! and a real cgroup2 mount; without them (or for a test tree in a temp dir) the tree is walked
//! once into an inode index and walked again on a miss, at most once per [`RESCAN_EVERY`].

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// The shortest time between two walks of the tree on a miss.
pub const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// `FILEID_KERNFS` from `include/linux/exportfs.h`: a kernfs handle is the node's 64-bit id.
const FILEID_KERNFS: i32 = 0xfe;

/// What became of an id.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The path relative to the cgroup2 root (`/` for the root).
    Path(String),
    /// No such cgroup now: it was removed (ids are never reused).
    Gone,
    /// Not found, and the tree was walked too recently to look again: ask later.
    Later,
}

/// How ids are turned into paths.
#[derive(Debug)]
enum Method {
    /// `open_by_handle_at` on the mount (its directory fd).
    Handles(File),
    /// Walking the tree into an inode index.
    Walk,
}

/// Resolves cgroup ids under one cgroup2 root.
#[derive(Debug)]
pub struct Cgroups {
    root: PathBuf,
    method: Method,
    index: FxHashMap<u64, String>,
    walked: Option<Instant>,
}

/// The kernfs handle as `struct file_handle` with its 8-byte payload.
#[repr(C)]
struct KernfsHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    id: u64,
}

fn is_cgroup2(dir: &File) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `dir` is an open fd and `st` is writable memory of the right size.
    let rc = unsafe { libc::fstatfs(dir.as_raw_fd(), st.as_mut_ptr()) };
    // SAFETY: fstatfs filled it in when it returned 0.
    rc == 0 && unsafe { st.assume_init() }.f_type == libc::CGROUP2_SUPER_MAGIC
}

/// Opens the cgroup with `id` through its kernfs file handle.
fn open_by_id(mount: &File, id: u64) -> io::Result<OwnedFd> {
    let mut handle = KernfsHandle { handle_bytes: 8, handle_type: FILEID_KERNFS, id };
    // SAFETY: `handle` is a valid `struct file_handle` whose `handle_bytes` says how many bytes
    // follow the header; the kernel only reads it. The fd returned is ours to own.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            (&raw mut handle).cast::<libc::file_handle>(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `full` relative to `root`, as `/proc/PID/cgroup` shows it (`/` for the root itself).
fn relative(root: &Path, full: &Path) -> Option<String> {
    let rest = full.strip_prefix(root).ok()?.to_str()?;
    Some(format!("/{rest}"))
}

/// Every cgroup at or below `dir` as (id, path relative to `root`), parents before children.
/// Cgroups removed during the walk are skipped.
pub fn walk(root: &Path, dir: &Path) -> io::Result<Vec<(u64, String)>> {
    let top = std::fs::metadata(dir)?;
    if !top.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a cgroup", dir.display())));
    }
    let mut found = vec![(top.ino(), relative(root, dir).unwrap_or_default())];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let (Ok(meta), path) = (entry.metadata(), entry.path()) else { continue };
            if let Some(rel) = relative(root, &path) {
                found.push((meta.ino(), rel));
                stack.push(path);
            }
        }
    }
    Ok(found)
}

impl Cgroups {
    /// Resolver for the cgroup2 tree mounted (or laid out, for tests) at `root`.
    pub fn new(root: PathBuf) -> Cgroups {
        let method = match File::open(&root) {
            Ok(dir) if is_cgroup2(&dir) => match open_by_id(&dir, 1) {
                // The root cgroup's id is 1: a cheap probe that handles work here.
                Ok(_) => Method::Handles(dir),
                Err(e) => {
                    tracing::debug!(root = %root.display(), error = %e, "cgroup file handles unavailable, walking the tree");
                    Method::Walk
                }
            },
            _ => Method::Walk,
        };
        Cgroups { root, method, index: FxHashMap::default(), walked: None }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether ids are resolved through file handles (else by walking the tree).
    pub fn uses_handles(&self) -> bool {
        matches!(self.method, Method::Handles(_))
    }

    /// The path of cgroup `id`.
    pub fn resolve(&mut self, id: u64) -> Resolved {
        if let Method::Handles(mount) = &self.method {
            match self.by_handle(mount, id) {
                Ok(path) => return Resolved::Path(path),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ESTALE | libc::ENOENT)) => return Resolved::Gone,
                Err(e) => {
                    tracing::debug!(id, error = %e, "cgroup file handle failed, walking the tree from now on");
                    self.method = Method::Walk;
                }
            }
        }
        if let Some(p) = self.index.get(&id) {
            return Resolved::Path(p.clone());
        }
        if self.walked.is_some_and(|t| t.elapsed() < RESCAN_EVERY) {
            return Resolved::Later;
        }
        self.rewalk();
        match self.index.get(&id) {
            Some(p) => Resolved::Path(p.clone()),
            None => Resolved::Gone,
        }
    }

    fn by_handle(&self, mount: &File, id: u64) -> io::Result<String> {
        let fd = open_by_id(mount, id)?;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        // Removed between the open and the readlink: still the path it had.
        let link = match link.to_str().and_then(|l| l.strip_suffix(" (deleted)")) {
            Some(l) => PathBuf::from(l),
            None => link,
        };
        relative(&self.root, &link).ok_or_else(|| {
            io::Error::other(format!("cgroup {id} opened as {}, outside {}", link.display(), self.root.display()))
        })
    }

    /// Walks the whole tree into the index (and returns what it found).
    pub fn rewalk(&mut self) -> Vec<(u64, String)> {
        self.walked = Some(Instant::now());
        match walk(&self.root, &self.root) {
            Ok(all) => {
                self.index = all.iter().cloned().collect();
                tracing::debug!(root = %self.root.display(), cgroups = all.len(), "walked the cgroup tree");
                all
            }
            Err(e) => {
                tracing::debug!(root = %self.root.display(), error = %e, "cannot walk the cgroup tree");
                Vec::new()
            }
        }
    }

    /// Lets the next miss walk the tree again (tests stand in for a second passing).
    #[cfg(test)]
    pub(super) fn forget_walk(&mut self) {
        self.walked = None;
    }

    /// The directory of cgroup `path`: relative to the root (`/system.slice`), or already under
    /// the mount (`/sys/fs/cgroup/system.slice`).
    pub fn dir_of(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.starts_with(&self.root) {
            return p.to_path_buf();
        }
        self.root.join(path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn a_temp_tree_is_walked_into_paths_like_proc_pid_cgroup() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("system.slice/a.service");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(t.path().join("system.slice/cgroup.procs"), "").unwrap();
        let mut cg = Cgroups::new(t.path().to_owned());
        assert!(!cg.uses_handles(), "a temp dir is not a cgroup2 mount");
        assert_eq!(cg.resolve(ino(t.path())), Resolved::Path("/".into()));
        assert_eq!(cg.resolve(ino(&a)), Resolved::Path("/system.slice/a.service".into()));

        let mut all = walk(t.path(), t.path()).unwrap();
        all.sort();
        let mut want = vec![
            (ino(t.path()), "/".to_owned()),
            (ino(&t.path().join("system.slice")), "/system.slice".into()),
            (ino(&a), "/system.slice/a.service".into()),
        ];
        want.sort();
        assert_eq!(all, want, "directories only, files skipped");
    }

    #[test]
    fn a_miss_rewalks_only_after_the_rate_limit() {
        let t = tempfile::tempdir().unwrap();
        let mut cg = Cgroups::new(t.path().to_owned());
        assert_eq!(cg.resolve(u64::MAX), Resolved::Gone, "the first miss walks");
        let b = t.path().join("b");
        std::fs::create_dir(&b).unwrap();
        assert_eq!(cg.resolve(ino(&b)), Resolved::Later, "walked just now");
        cg.walked = Some(Instant::now() - RESCAN_EVERY);
        assert_eq!(cg.resolve(ino(&b)), Resolved::Path("/b".into()));
    }

    #[test]
    fn cgroup_paths_are_taken_relative_or_under_the_mount() {
        let cg = Cgroups::new(PathBuf::from("/nonexistent/cgroup"));
        assert_eq!(cg.dir_of("/a/b"), Path::new("/nonexistent/cgroup/a/b"));
        assert_eq!(cg.dir_of("a"), Path::new("/nonexistent/cgroup/a"));
        assert_eq!(cg.dir_of("/nonexistent/cgroup/a"), Path::new("/nonexistent/cgroup/a"));
        assert_eq!(cg.dir_of("/"), Path::new("/nonexistent/cgroup/"));
    }

    /// On a real cgroup2 mount with CAP_DAC_READ_SEARCH, handles and the walk agree.
    #[test]
    #[ignore = "needs root and a cgroup2 mount"]
    fn file_handles_agree_with_the_walk_on_the_real_tree() {
        let root = crate::ebpf::cgroup2_root().expect("a cgroup2 mount");
        let mut cg = Cgroups::new(root.clone());
        assert!(cg.uses_handles(), "needs CAP_DAC_READ_SEARCH");
        let mut walker = Cgroups { method: Method::Walk, ..Cgroups::new(root.clone()) };
        let all = walk(&root, &root).unwrap();
        assert!(!all.is_empty());
        for (id, path) in all.iter().take(200) {
            assert_eq!(cg.resolve(*id), Resolved::Path(path.clone()));
            assert_eq!(walker.resolve(*id), Resolved::Path(path.clone()));
        }
        assert_eq!(cg.resolve(1), Resolved::Path("/".into()));
        assert_eq!(cg.resolve(u64::MAX - 1), Resolved::Gone);
        assert!(cg.uses_handles(), "a gone id is no reason to stop using handles");
    }
}
