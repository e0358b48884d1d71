//! Which workload a connection belongs to: cgroup path, container and Kubernetes pod, from the
//! cgroup v2 id the kernel puts on every record.
//!
//! Shaped by the hot path: the recorder asks for a workload once per row, so everything is
//! resolved once per cgroup id and shared as one `Arc<Workload>` (ids are never reused, so a
//! cached answer never goes stale). Each source of facts has its own file and its own cost:
//! - [`cgroup`]: id → path, synchronously in microseconds (kernfs file handles), or from an index
//!   of the tree walked at most once per second on a miss;
//! - [`ids`]: container id and pod uid parsed from the path, pure and table-tested;
//! - [`pods`]: pod name and namespace from the kubelet's `/var/log/pods` directory names;
//! - [`api`]: container names from the Docker Engine API (dockerd, podman), the one source that
//!   can be slow, so it runs on a background thread and names arrive in later rows.
//!
//! Only the cgroup path needs privileges (CAP_DAC_READ_SEARCH for file handles, else read
//! access to the tree); without any source the workload has fewer fields, never an error.

pub mod api;
pub mod cgroup;
mod http;
pub mod ids;
pub mod pods;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gespann_common::Workload;
use rustc_hash::{FxHashMap, FxHashSet};

use cgroup::{Cgroups, Resolved};

/// How long the initial container listing may delay [`Workloads::new`].
pub const LISTING_TIMEOUT: Duration = Duration::from_secs(1);
/// How long after a cgroup is first seen its pod's name is still looked for (the kubelet makes
/// the log directory before the containers start, so this only covers races).
pub const POD_GRACE: Duration = Duration::from_secs(30);

/// Where the facts come from; [`Default`] is the real host.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// The cgroup2 mount (`None`: no cgroup v2, paths stay empty).
    pub cgroup2_root: Option<PathBuf>,
    /// The kubelet's pod log directory.
    pub pods_dir: PathBuf,
    /// Docker Engine API sockets, all asked.
    pub api_sockets: Vec<PathBuf>,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            cgroup2_root: crate::ebpf::cgroup2_root(),
            pods_dir: PathBuf::from("/var/log/pods"),
            api_sockets: ["/var/run/docker.sock", "/run/docker.sock", "/run/podman/podman.sock"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
        }
    }
}

/// A cgroup `--cgroup PATH` named that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read cgroup `{path}`")]
struct CgroupDirError {
    path: String,
    #[source]
    source: io::Error,
}

/// One cgroup's workload and what may still be filled in.
#[derive(Debug)]
struct Entry {
    workload: Arc<Workload>,
    /// The path was not resolved yet (the tree was walked too recently to look again).
    path_later: bool,
    /// The pod's name is still missing, and is looked for until this time.
    pod_until: Option<Instant>,
}

impl Entry {
    fn incomplete(&self) -> bool {
        self.path_later || self.pod_until.is_some()
    }
}

/// Cgroup id → workload, for the rows of one recording. Send, not Sync: one owner.
#[derive(Debug)]
pub struct Workloads {
    cgroups: Option<Cgroups>,
    pods: pods::Pods,
    names: api::Names,
    entries: FxHashMap<u64, Entry>,
    /// The last answer of [`Workloads::get`]: rows come in runs from one owner.
    last: (u64, Arc<Workload>),
    /// Containers in the cgroup tree that a synchronous listing was made for (the `--container`
    /// filters look again at every sample: one listing per new container, not per sample).
    relisted_for: FxHashSet<Arc<str>>,
}

impl Workloads {
    /// Starts the name thread and lists the containers that exist (waiting at most
    /// [`LISTING_TIMEOUT`]), so that they are named from the first row.
    pub fn new(config: WorkloadConfig) -> Workloads {
        let mut names = api::Names::start(config.api_sockets);
        names.list_now(LISTING_TIMEOUT);
        let w = Workloads {
            cgroups: config.cgroup2_root.map(Cgroups::new),
            pods: pods::Pods::new(config.pods_dir),
            names,
            entries: FxHashMap::default(),
            last: (0, Workload::unknown()),
            relisted_for: FxHashSet::default(),
        };
        tracing::debug!(summary = %w.summary(), "workloads");
        w
    }

    /// Called once per kernel record's cgroup id: a hash lookup when the id is known; on a new
    /// id the path is resolved now and its container's name asked in the background.
    pub fn note(&mut self, cgroup_id: u64) {
        if cgroup_id == 0 {
            return;
        }
        match self.entries.get(&cgroup_id) {
            Some(e) if !e.incomplete() => {}
            Some(_) => self.refresh(cgroup_id),
            None => {
                let entry = self.resolve(cgroup_id);
                self.entries.insert(cgroup_id, entry);
            }
        }
    }

    /// The workload for a row about to be written: shared by every row of the cgroup, with
    /// container names filled in as soon as the background answers; [`Workload::unknown`] for
    /// id 0.
    pub fn get(&mut self, cgroup_id: u64) -> Arc<Workload> {
        if cgroup_id == 0 {
            return Workload::unknown();
        }
        if self.names.pending() {
            self.take_names();
        }
        if self.last.0 == cgroup_id {
            return self.last.1.clone();
        }
        // Also looks again for what an incomplete entry misses (rate-limited), for callers
        // that stop noting an id whose rows are still being written.
        self.note(cgroup_id);
        let Some(e) = self.entries.get(&cgroup_id) else { return Workload::unknown() };
        if !e.incomplete() {
            self.last = (cgroup_id, e.workload.clone());
        }
        e.workload.clone()
    }

    /// A new id's entry.
    fn resolve(&mut self, id: u64) -> Entry {
        let resolved = match &mut self.cgroups {
            Some(cg) => cg.resolve(id),
            None => Resolved::Gone,
        };
        let (path, path_later) = match resolved {
            Resolved::Path(p) => (p, false),
            Resolved::Gone => (String::new(), false),
            Resolved::Later => (String::new(), true),
        };
        let container_id: Option<Arc<str>> = ids::container_id(&path).map(Arc::from);
        let container_name = container_id.as_ref().and_then(|c| self.names.name(c));
        let pod_uid = ids::pod_uid(&path);
        let pod = pod_uid.as_deref().and_then(|u| self.pods.lookup(u));
        let pod_until = (pod_uid.is_some() && pod.is_none()).then(|| Instant::now() + POD_GRACE);
        let (pod_namespace, pod_name) = pod.map(|p| (p.namespace, p.name)).unzip();
        let workload = Arc::new(Workload {
            cgroup: path.into(),
            container_id,
            container_name,
            pod_uid: pod_uid.map(Arc::from),
            pod_name,
            pod_namespace,
        });
        Entry { workload, path_later, pod_until }
    }

    /// Looks again for what an entry is missing (each source is rate-limited).
    fn refresh(&mut self, id: u64) {
        let Some(e) = self.entries.get_mut(&id) else { return };
        if e.path_later {
            let fresh = self.resolve(id);
            if !fresh.path_later {
                self.replace(id, fresh);
            }
            return;
        }
        let Some(until) = e.pod_until else { return };
        let found = e.workload.pod_uid.as_deref().and_then(|u| self.pods.lookup(u));
        let e = self.entries.get_mut(&id).expect("looked up above");
        match found {
            Some(p) => {
                let mut w = (*e.workload).clone();
                (w.pod_namespace, w.pod_name) = (Some(p.namespace), Some(p.name));
                let fresh = Entry { workload: Arc::new(w), path_later: false, pod_until: None };
                self.replace(id, fresh);
            }
            None if Instant::now() >= until => {
                tracing::debug!(cgroup = %e.workload.cgroup, "no pod directory for this pod; recording it without a name");
                e.pod_until = None;
            }
            None => {}
        }
    }

    fn replace(&mut self, id: u64, entry: Entry) {
        if self.last.0 == id {
            self.last = (0, Workload::unknown());
        }
        self.entries.insert(id, entry);
    }

    /// Puts the names that arrived into the entries of their containers.
    fn take_names(&mut self) {
        let named = self.names.poll();
        if named.is_empty() {
            return;
        }
        let named: FxHashSet<Arc<str>> = named.into_iter().collect();
        for e in self.entries.values_mut() {
            let Some(id) = e.workload.container_id.as_ref().filter(|c| named.contains(*c)) else { continue };
            let name = self.names.name(id);
            if name != e.workload.container_name {
                let mut w = (*e.workload).clone();
                w.container_name = name;
                e.workload = Arc::new(w);
            }
        }
        self.last = (0, Workload::unknown());
    }

    /// For `--container ID|NAME`: every cgroup (id, path) on the host now whose container is
    /// `want` (full id, unique id prefix of at least 12 hex digits, or name), with the cgroups
    /// below the container's.
    pub fn container_cgroups(&mut self, want: &str) -> Vec<(u64, String)> {
        let Some(cg) = &mut self.cgroups else { return Vec::new() };
        let all = cg.rewalk();
        self.take_names();
        let present: FxHashSet<&str> = all.iter().flat_map(|(_, p)| ids::container_ids(p)).collect();
        let mut matched: Vec<Arc<str>> = Vec::new();
        if want.len() >= 12 && want.bytes().all(|b| b.is_ascii_hexdigit()) {
            let want = want.to_ascii_lowercase();
            let by_id: Vec<&str> = present.iter().copied().filter(|c| c.starts_with(&want)).collect();
            match by_id.as_slice() {
                [one] => matched.push(Arc::from(*one)),
                [] => {}
                many => tracing::warn!(prefix = want, matches = many.len(), "container id prefix is ambiguous"),
            }
        }
        if matched.is_empty() {
            let named_present = |names: &api::Names| -> Vec<Arc<str>> {
                names.ids_named(want).into_iter().filter(|id| present.contains(&**id)).collect()
            };
            matched = named_present(&self.names);
            // A container started (or was recreated under the name) since the last listing: list
            // again, once per container the tree shows and no listing has named yet.
            let unnamed: Vec<Arc<str>> = present
                .iter()
                .filter(|id| !self.names.knows(id) && !self.relisted_for.contains(**id))
                .map(|id| Arc::from(*id))
                .collect();
            if matched.is_empty() && !unnamed.is_empty() {
                self.relisted_for.extend(unnamed);
                self.names.list_now(LISTING_TIMEOUT);
                matched = named_present(&self.names);
            }
        }
        all.into_iter().filter(|(_, p)| ids::container_ids(p).any(|c| matched.iter().any(|m| &**m == c))).collect()
    }

    /// For `--cgroup PATH` (relative to the cgroup2 root, or under its mount): the ids of that
    /// cgroup and of every cgroup below it.
    pub fn cgroup_ids_under(&self, path: &str) -> io::Result<Vec<u64>> {
        let Some(cg) = &self.cgroups else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no cgroup v2 mount in /proc/self/mounts"));
        };
        match cgroup::walk(cg.root(), &cg.dir_of(path)) {
            Ok(all) => Ok(all.into_iter().map(|(id, _)| id).collect()),
            Err(source) => Err(io::Error::new(source.kind(), CgroupDirError { path: path.to_owned(), source })),
        }
    }

    /// What was found, for `doctor` and debug logs.
    pub fn summary(&self) -> String {
        let cgroups = match &self.cgroups {
            Some(cg) if cg.uses_handles() => format!("{} (ids by file handle)", cg.root().display()),
            Some(cg) => format!("{} (ids by walking the tree)", cg.root().display()),
            None => "none (no cgroup v2 mount)".into(),
        };
        let api = match self.names.answered() {
            [] if self.names.listed() => "no API socket answered".to_owned(),
            [] => "container listing not answered yet".to_owned(),
            sockets => sockets.iter().map(|s| s.display().to_string()).collect::<Vec<_>>().join(", "),
        };
        format!(
            "cgroups: {cgroups}; container API: {api}; {} containers named; {} pods known; {} cgroups seen",
            self.names.count(),
            self.pods.count(),
            self.entries.len()
        )
    }
}

#[cfg(test)]
mod tests;
