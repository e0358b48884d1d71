//! Snapshot tests: every report (and the diff) over every recording in `samples/`, the
//! recordings of earlier schema versions (`testkit/recordings/`: their snapshots change only
//! when a report or the reading of old versions does, never by re-recording), a synthetic recording, the hand-counted one and the container
//! host, as CSV, against the files in `tests/snapshots/`.
//! `UPDATE_SNAPSHOTS=1 cargo test -p gespann-analyze --test snapshots` rewrites them; review the
//! diff before committing.

mod support;

use std::path::{Path, PathBuf};

use gespann_analyze::reports::BUILTIN;
use support::*;

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// Compares (or, with UPDATE_SNAPSHOTS=1, writes) one snapshot; returns a failure message.
fn check(name: &str, report: &str, got: &str) -> Option<String> {
    let path = snapshot_dir().join(name).join(format!("{report}.csv"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(want) if same_csv(got, &want) => None,
        Ok(want) => Some(format!("{} differs:\n--- want\n{want}\n--- got\n{got}", path.display())),
        Err(_) => Some(format!(
            "no snapshot {} (run UPDATE_SNAPSHOTS=1 cargo test -p gespann-analyze --test snapshots)",
            path.display()
        )),
    }
}

/// Source names are paths; snapshots must not depend on where the file sits.
fn relative(csv: &str, dir: &Path) -> String {
    csv.replace(&format!("{}/", dir.display()), "")
}

fn snapshot_reports(name: &str, file: &Path, failures: &mut Vec<String>) {
    let dir = file.parent().unwrap();
    for (report, _) in BUILTIN {
        let out = analyze(&[file.to_str().unwrap(), "--report", report, "--format", "csv"])
            .unwrap_or_else(|e| panic!("{name} {report}: {e}"));
        failures.extend(check(name, report, &relative(&out, dir)));
    }
}

fn samples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(workspace().join("samples"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_report_matches_its_snapshot_over_every_recording() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for s in samples() {
        let stem = s.file_stem().unwrap().to_string_lossy().into_owned();
        snapshot_reports(&format!("sample-{stem}"), &s, &mut failures);
    }
    for (name, file) in gespann_testkit::recordings::earlier_versions() {
        snapshot_reports(name, &file, &mut failures);
    }
    let synth = synth_file(dir.path(), "synth.parquet", 8_000, 7, 0);
    snapshot_reports("synth-8k-seed7", &synth, &mut failures);
    let hand = handcounted_file(dir.path());
    snapshot_reports("handcounted", &hand, &mut failures);
    let containers = containers_file(dir.path());
    snapshot_reports("containers", &containers, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn diff_matches_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let before = synth_file(dir.path(), "before.parquet", 8_000, 7, 0);
    let after = synth_file(dir.path(), "after.parquet", 8_000, 8, 25);
    let out = analyze(&["--diff", before.to_str().unwrap(), after.to_str().unwrap(), "--format", "csv"]).unwrap();
    let failures: Vec<String> =
        check("diff-synth-seed7-seed8", "diff", &relative(&out, dir.path())).into_iter().collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn snapshots_have_no_stale_files() {
    // Every snapshot directory belongs to an input this test suite still produces (`tables`:
    // the people-format renderings of `tests/tables.rs`).
    let mut expected: Vec<String> =
        samples().iter().map(|s| format!("sample-{}", s.file_stem().unwrap().to_string_lossy())).collect();
    expected.extend(gespann_testkit::recordings::earlier_versions().into_iter().map(|(name, _)| name.to_string()));
    expected
        .extend(["synth-8k-seed7", "handcounted", "containers", "diff-synth-seed7-seed8", "tables"].map(String::from));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        return;
    }
    for e in std::fs::read_dir(snapshot_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(expected.contains(&name), "stale snapshot directory tests/snapshots/{name}");
    }
}

#[test]
fn connections_kept_on_disk_give_the_same_reports_as_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth_file(dir.path(), "synth.parquet", 8_000, 7, 0);
    let inputs = [f.to_str().unwrap().to_string()];
    let render = |to_disk: bool| reports_as_csv(&inputs, &[], to_disk.then_some(1));
    let mem = render(false);
    let disk = render(true);
    assert_eq!(mem.len(), BUILTIN.len());
    for (m, d) in mem.iter().zip(&disk) {
        assert!(same_csv(m, d), "memory:\n{m}\ndisk:\n{d}");
    }
}
