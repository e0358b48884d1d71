//! Pod names and namespaces from the kubelet's log directories.
//!
//! The kubelet makes `/var/log/pods/<namespace>_<name>_<uid>/` for every pod it runs, before
//! the pod's containers start, and neither part can contain `_` (namespaces and pod names are
//! DNS names). Reading that directory needs no API credentials and works on every node; it is
//! read once and again on a miss, at most once per [`RESCAN_EVERY`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// The shortest time between two reads of the pods directory.
pub const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// A pod's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodName {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

/// Pod uid to name, from the kubelet's log directory.
#[derive(Debug)]
pub struct Pods {
    dir: PathBuf,
    by_uid: FxHashMap<String, PodName>,
    scanned: Option<Instant>,
}

/// `<namespace>_<name>_<uid>` split into its parts.
fn parse_dir_name(name: &str) -> Option<(&str, &str, &str)> {
    let (rest, uid) = name.rsplit_once('_')?;
    let (namespace, pod) = rest.split_once('_')?;
    (!namespace.is_empty() && !pod.is_empty() && !uid.is_empty()).then_some((namespace, pod, uid))
}

impl Pods {
    pub fn new(dir: PathBuf) -> Pods {
        Pods { dir, by_uid: FxHashMap::default(), scanned: None }
    }

    /// The pod with `uid`, rereading the directory on a miss unless it was read within
    /// [`RESCAN_EVERY`].
    pub fn lookup(&mut self, uid: &str) -> Option<PodName> {
        if let Some(p) = self.by_uid.get(uid) {
            return Some(p.clone());
        }
        if self.scanned.is_some_and(|t| t.elapsed() < RESCAN_EVERY) {
            return None;
        }
        self.rescan();
        self.by_uid.get(uid).cloned()
    }

    /// How many pods are known.
    pub fn count(&self) -> usize {
        self.by_uid.len()
    }

    fn rescan(&mut self) {
        self.scanned = Some(Instant::now());
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::trace!(dir = %self.dir.display(), error = %e, "no pods directory");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((namespace, pod, uid)) = name.to_str().and_then(parse_dir_name) else { continue };
            if !self.by_uid.contains_key(uid) {
                let p = PodName { namespace: namespace.into(), name: pod.into() };
                self.by_uid.insert(uid.to_owned(), p);
            }
        }
        tracing::debug!(dir = %self.dir.display(), pods = self.by_uid.len(), "read pod directories");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_split_into_namespace_name_uid() {
        assert_eq!(
            parse_dir_name("kube-system_coredns-5d78c9869d-abcde_5b0e1f6a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"),
            Some(("kube-system", "coredns-5d78c9869d-abcde", "5b0e1f6a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"))
        );
        assert_eq!(parse_dir_name("default_web_"), None);
        assert_eq!(parse_dir_name("nounderscore"), None);
        assert_eq!(parse_dir_name("one_underscore"), None);
    }

    #[test]
    fn a_pod_created_after_the_first_read_is_found_on_a_later_miss() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("default_web-0_uid-1")).unwrap();
        let mut pods = Pods::new(dir.path().to_owned());
        let web = pods.lookup("uid-1").unwrap();
        assert_eq!((&*web.namespace, &*web.name), ("default", "web-0"));

        std::fs::create_dir(dir.path().join("prod_db-0_uid-2")).unwrap();
        // within the rate limit the directory is not reread
        assert_eq!(pods.lookup("uid-2"), None);
        pods.scanned = Some(Instant::now() - RESCAN_EVERY);
        assert_eq!(pods.lookup("uid-2").map(|p| p.name), Some("db-0".into()));
        assert_eq!(pods.count(), 2);
    }
}
