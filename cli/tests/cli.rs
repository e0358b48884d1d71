//! The CLI's contracts: `--help` output (golden files; UPDATE_GOLDEN=1 accepts a deliberate
//! change), `gespann doctor`, and `gespann recover` on things that are not journals.

use std::process::Command;

fn gespann() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gespann"))
}

fn golden(name: &str, text: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, want, "{name} changed");
}

#[test]
fn help_texts_match_their_golden_files() {
    for (args, file) in [
        (&["--help"][..], "help.txt"),
        (&["record", "--help"][..], "record-help.txt"),
        (&["anonymize", "--help"][..], "anonymize-help.txt"),
        (&["scheduler", "--help"][..], "scheduler-help.txt"),
        (&["executor", "--help"][..], "executor-help.txt"),
    ] {
        let out = gespann().args(args).env("COLUMNS", "100").output().unwrap();
        assert!(out.status.success());
        golden(file, &String::from_utf8(out.stdout).unwrap());
    }
}

#[test]
fn usage_mistakes_exit_2() {
    let out = gespann().args(["record", "--duration", "soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration"));
}

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn doctor_reports_every_hook_and_whether_recording_is_possible() {
    let out = gespann().args(["doctor", "--format", "json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --format json is JSON");
    let checks = v["checks"].as_array().unwrap();
    for hook in [
        "tracepoint sock:inet_sock_set_state",
        "tracepoint tcp:tcp_send_reset",
        "BTF (/sys/kernel/btf/vmlinux)",
        "capabilities",
        "load and attach",
        "cgroup layout",
        "container runtimes on PATH",
        "container names",
        "Kubernetes pods (/var/log/pods)",
    ] {
        assert!(checks.iter().any(|c| c["check"] == hook), "doctor checks {hook}: {v}");
    }
    // The container checks inform; they never make a recording impossible.
    let container = |c: &&serde_json::Value| {
        let name = c["check"].as_str().unwrap_or_default();
        ["cgroup layout", "container runtimes", "container names", "Kubernetes pods", "socket "]
            .iter()
            .any(|p| name.starts_with(p))
    };
    assert!(checks.iter().filter(container).all(|c| c["status"] != "FAIL"), "{v}");
    // CI runs as root on a kernel with BTF: recording must be possible, and doctor must say so
    // by really loading the probes.
    assert_eq!(v["can_record"], true, "{v}");
    assert!(out.status.success());
    let load = checks.iter().find(|c| c["check"] == "load and attach").unwrap();
    assert_eq!(load["status"], "ok", "{load}");
}

#[test]
fn recover_refuses_what_is_not_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("x.parquet.journal");
    std::fs::write(&j, b"this is not a checkpoint journal at all").unwrap();
    let out = gespann().arg("recover").arg(&j).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a Gespann checkpoint journal") && err.lines().count() == 1, "{err}");
}

/// A panic in a library (here a DataFusion assertion that skipping partial aggregation hits in
/// `percentile_cont`, reached through DataFusion's own environment settings) ends the run with
/// a one-line account and exit 1, not a backtrace. Should DataFusion fix it, the query simply
/// succeeds.
#[test]
fn a_panic_in_a_library_is_one_line_not_a_backtrace() {
    let sample = format!("{}/../samples/web.parquet", env!("CARGO_MANIFEST_DIR"));
    let out = gespann()
        .args(["analyze", &sample, "--format", "csv", "--sql"])
        .arg("SELECT remote_addr, percentile_cont(0.99) WITHIN GROUP (ORDER BY rtt_us) FROM events GROUP BY 1 ORDER BY 1")
        .env_remove("RUST_BACKTRACE")
        .env("DATAFUSION_EXECUTION_SKIP_PARTIAL_AGGREGATION_PROBE_ROWS_THRESHOLD", "1")
        .env("DATAFUSION_EXECUTION_SKIP_PARTIAL_AGGREGATION_PROBE_RATIO_THRESHOLD", "0")
        .env("DATAFUSION_EXECUTION_BATCH_SIZE", "8")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 1);
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("panicked at"), "{stderr}");
    assert!(stderr.lines().count() <= 2, "{stderr}");
    assert!(stderr.contains("internal error (a bug)"), "{stderr}");
}
