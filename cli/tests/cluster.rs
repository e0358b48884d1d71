//! `gespann analyze --cluster` on a real Ballista cluster made of the gespann binary: one
//! `gespann scheduler` and two `gespann executor` processes on loopback. Every report, the
//! default one, `--format json`, `--sql` (over `events` and over `recordings`), `--diff` and
//! `--html` must give output byte for byte equal to the same command run in-process, and both
//! executors must have run tasks (each logs `Finished task` for them). A scheduler that is not
//! there is one line and exit 1.

use std::process::{Command, Output};

use gespann_testkit::cluster::Cluster;
use gespann_testkit::{gespann_bin, workspace_root};

fn analyze(args: &[&str]) -> Output {
    Command::new(gespann_bin())
        .arg("analyze")
        .args(args)
        .current_dir(workspace_root())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run gespann analyze")
}

/// The command's stdout in-process and on the cluster, which must succeed and be equal.
fn same_on_cluster(c: &Cluster, args: &[&str]) -> String {
    let local = analyze(args);
    assert!(local.status.success(), "{args:?} locally: {}", String::from_utf8_lossy(&local.stderr));
    let mut remote_args = vec!["--cluster", &c.url];
    remote_args.extend_from_slice(args);
    let remote = analyze(&remote_args);
    assert!(remote.status.success(), "{args:?} on the cluster: {}", String::from_utf8_lossy(&remote.stderr));
    let (l, r) = (String::from_utf8_lossy(&local.stdout), String::from_utf8_lossy(&remote.stdout));
    assert!(!l.trim().is_empty(), "{args:?}: no output");
    if l != r {
        let first = l.lines().zip(r.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{args:?}: the cluster's output differs, first at line {}:\nlocal:   {}\ncluster: {}",
            first + 1,
            l.lines().nth(first).unwrap_or(""),
            r.lines().nth(first).unwrap_or("")
        );
    }
    l.into_owned()
}

#[test]
fn every_report_on_a_scheduler_and_two_executors_equals_the_local_run() {
    let c = Cluster::start(&[]);
    let all = "samples/";
    let default = same_on_cluster(&c, &[all]);
    // Recordings of every schema version at once (the earlier ones are views on the executors).
    same_on_cluster(&c, &[all, "testkit/recordings/"]);
    assert!(default.contains("== summary ==") && default.contains("== containers =="), "{default}");
    same_on_cluster(&c, &[all, "--format", "json"]);
    same_on_cluster(&c, &["samples/web.parquet"]);
    let list = analyze(&["--list-reports"]);
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split(':').next().map(str::to_string))
        .collect();
    assert!(names.len() >= 12, "{names:?}");
    for name in &names {
        same_on_cluster(&c, &[all, "--report", name, "--top", "0"]);
    }
    let sql = "SELECT source, kind, count(*) AS n, sum(bytes_sent) AS sent FROM events GROUP BY 1, 2 ORDER BY 1, 2";
    same_on_cluster(&c, &[all, "--sql", sql, "--format", "csv"]);
    same_on_cluster(&c, &[all, "--sql", "SELECT * FROM recordings ORDER BY source"]);
    same_on_cluster(&c, &["--diff", "samples/web.parquet", "samples/resets.parquet"]);

    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local.html"), dir.path().join("cluster.html"));
    for (path, cluster) in [(&local, None), (&remote, Some(c.url.as_str()))] {
        let mut args = vec!["samples/containers.parquet", "--html", path.to_str().unwrap()];
        if let Some(url) = cluster {
            args.extend(["--cluster", url]);
        }
        let out = analyze(&args);
        assert!(out.status.success(), "--html {cluster:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(std::fs::read(&local).unwrap() == std::fs::read(&remote).unwrap(), "the HTML pages differ");

    // Both executors ran tasks.
    let tasks = c.tasks_run();
    assert!(tasks.iter().all(|&n| n > 0), "tasks per executor: {tasks:?}");
}

#[test]
fn a_scheduler_that_is_not_there_is_one_line() {
    // Port 1 (tcpmux): nothing listens there on these machines.
    let url = "df://127.0.0.1:1".to_string();
    let out = analyze(&["--cluster", &url, "samples/web.parquet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&url) && err.contains("cannot reach the scheduler"), "{err}");
    let out = analyze(&["--cluster", "127.0.0.1:50050", "samples/web.parquet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("df://HOST:PORT"), "{err}");
}
