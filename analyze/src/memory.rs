//! The engine's default memory limit: 80% of what this process may use, as DuckDB's default.
//!
//! "What it may use" is the machine's memory (`MemTotal`) or, in a container, its cgroup's
//! limit when lower (cgroup v2 `memory.max`, or the v1 memory controller's
//! `memory.limit_in_bytes`); a fixed limit would be too small for a big host and too big for a
//! small container. Read once per run; the parsing is apart from the reading so it is tested.

use std::path::Path;

/// The share of the available memory the engine gets by default.
const SHARE: f64 = 0.8;
/// When nothing can be read (not Linux, no /proc).
const FALLBACK: u64 = 2 << 30;

/// 80% of the smaller of the machine's memory and this process's cgroup memory limit.
pub fn default_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| mem_total(&m));
    let cgroup =
        std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|c| cgroup_limit(&c, Path::new("/sys/fs/cgroup")));
    limit_of(total, cgroup)
}

fn limit_of(total: Option<u64>, cgroup: Option<u64>) -> u64 {
    let usable = match (total, cgroup) {
        (Some(t), Some(c)) => t.min(c),
        (Some(t), None) => t,
        (None, Some(c)) => c,
        (None, None) => return FALLBACK,
    };
    ((usable as f64 * SHARE) as u64).max(16 << 20)
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of the cgroup /proc/self/cgroup names, under `root`: cgroup v2 at `root`
/// or `root/unified`, else the v1 memory controller. `None` when there is none ("max", or a
/// v1 "unlimited" value of 2^63 rounded to the page).
fn cgroup_limit(self_cgroup: &str, root: &Path) -> Option<u64> {
    let mut limits = Vec::new();
    for line in self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            for base in [root.to_path_buf(), root.join("unified")] {
                if let Some(v) = read_limit(&base.join(rel).join("memory.max")) {
                    limits.push(v);
                }
            }
        } else if controllers.split(',').any(|c| c == "memory")
            && let Some(v) = read_limit(&root.join("memory").join(rel).join("memory.limit_in_bytes"))
        {
            limits.push(v);
        }
    }
    limits.into_iter().min()
}

fn read_limit(path: &Path) -> Option<u64> {
    let v: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    // v1 reports "no limit" as the largest page-aligned i64.
    (v < (1 << 62)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_80_percent_of_the_smaller_of_machine_and_cgroup() {
        let gib = 1u64 << 30;
        assert_eq!(limit_of(Some(24 * gib), None), (24.0 * 0.8 * gib as f64) as u64);
        assert_eq!(limit_of(Some(24 * gib), Some(gib)), (0.8 * gib as f64) as u64);
        assert_eq!(limit_of(Some(gib), Some(24 * gib)), (0.8 * gib as f64) as u64);
        assert_eq!(limit_of(None, None), FALLBACK);
    }

    #[test]
    fn mem_total_is_read_in_kib() {
        assert_eq!(mem_total("MemTotal:       24568888 kB\nMemFree: 1 kB\n"), Some(24_568_888 * 1024));
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn cgroup_limits_of_v2_and_v1_and_none() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let v2 = root.join("unified/libpod_parent/c1");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.max"), "536870912\n").unwrap();
        let v1 = root.join("memory/libpod_parent/c1");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        let me = "12:memory:/libpod_parent/c1\n0::/libpod_parent/c1\n";
        assert_eq!(cgroup_limit(me, root), Some(512 << 20), "v2 limit; v1 says unlimited");
        std::fs::write(v1.join("memory.limit_in_bytes"), "268435456\n").unwrap();
        assert_eq!(cgroup_limit(me, root), Some(256 << 20), "the lower of the two");
        std::fs::write(v2.join("memory.max"), "max\n").unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(cgroup_limit(me, root), None);
    }
}
