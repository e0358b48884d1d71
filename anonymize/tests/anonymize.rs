//! The real `gespann anonymize`, as a user runs it: every report of an anonymized recording
//! gives the numbers of the original (names and addresses mapped), nothing of the original's
//! names or addresses is left in it, two recordings anonymized with one key still compare
//! (`--diff`), and every mistake is one line naming the thing, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use gespann_anonymize::{Anonymizer, COMMAND_LINE, Key, METHOD};
use gespann_common::{Event, RecordingMeta, RecordingReader, RecordingWriter, Workload};
use gespann_testkit::fixtures::{mixed_connections, mixed_meta};
use serde_json::Value;

const SECRET: [u8; 32] = *b"an anonymization key for tests!!";
const OTHER_SECRET: &[u8] = b"another key, longer than thirty-two bytes";

fn gespann(args: &[&str]) -> Output {
    gespann_in(Path::new("."), args)
}

/// Runs `gespann` in `dir` (the reports name an input by the path it was given).
fn gespann_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(gespann_testkit::gespann_bin())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run gespann")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Where each process of the fixture runs: on the host, in a Kubernetes pod, in a named Docker
/// container, in an unnamed podman container, and somewhere unknown (cgroup gone).
fn workload_of(pid: u32) -> (Arc<Workload>, u32) {
    let id = |c: &str| c.repeat(32);
    let uid = "1b2c3d4e-0000-4000-8000-00000000abcd";
    let w = match pid {
        100 => Workload { cgroup: Arc::from("/system.slice/billing-api.service"), ..Workload::default() },
        101 => Workload {
            cgroup: Arc::from(format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
                uid.replace('-', "_"),
                id("a1")
            )),
            container_id: Some(Arc::from(id("a1"))),
            pod_uid: Some(Arc::from(uid)),
            pod_name: Some(Arc::from("checkout-7d9f")),
            pod_namespace: Some(Arc::from("payments")),
            ..Workload::default()
        },
        102 => Workload {
            cgroup: Arc::from(format!("/system.slice/docker-{}.scope", id("b2"))),
            container_id: Some(Arc::from(id("b2"))),
            container_name: Some(Arc::from("redis-cache")),
            ..Workload::default()
        },
        103 => Workload {
            cgroup: Arc::from(format!("/libpod_parent/libpod-{}", id("c3"))),
            container_id: Some(Arc::from(id("c3"))),
            ..Workload::default()
        },
        _ => Workload::default(),
    };
    (Arc::new(w), 4026531840 + pid)
}

/// The test kit's mixed connections (TCP and UDP, both roles, IPv4 and IPv6, every outcome),
/// placed in workloads, with destinations spread over several prefixes and the kept addresses.
fn fixture(seed: u64) -> Vec<Event> {
    let mut rows = mixed_connections(400, Duration::from_secs(60), seed);
    for e in &mut rows {
        (e.workload, e.netns) = workload_of(e.pid);
        let n = (e.conn_id % 4) as u8;
        let addr = |s: String| s.parse::<IpAddr>().unwrap();
        match (e.conn_id % 10, e.remote_addr.is_ipv4()) {
            (0, true) => e.remote_addr = addr("127.0.0.53".into()),
            (1, true) => e.remote_addr = addr(format!("192.0.2.{}", 10 + n)),
            (2, true) => e.remote_addr = addr(format!("198.51.100.{}", 7 + n)),
            (3, true) => e.local_addr = addr("0.0.0.0".into()),
            (4, false) => e.remote_addr = addr("::1".into()),
            (5, false) => e.remote_addr = addr(format!("2001:db8:1::{}", 1 + n)),
            _ => {}
        }
    }
    rows
}

/// A recording of `rows` on a host with a telling name and command line, with closing counts.
fn write(path: &Path, rows: &[Event]) {
    let meta = RecordingMeta {
        hostname: "db-primary-1.corp.example".into(),
        command_line: "gespann record --comm postgres --container billing -o /home/alice/db.parquet".into(),
        ..mixed_meta()
    };
    let mut w = RecordingWriter::create(path, true, &meta).unwrap();
    w.set_counts(&[("gespann.late_rows", 3), ("gespann.udp_ends_inferred", 2)]);
    for e in rows {
        w.push(e).unwrap();
    }
    w.finish("2025-11-24T16:10:00Z", 5).unwrap();
}

fn key_file(dir: &Path, name: &str, secret: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, secret).unwrap();
    p
}

fn anonymize_ok(input: &Path, output: &Path, key: &Path) {
    let out = gespann(&["anonymize", s(input), s(output), "--key", s(key)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gespann anonymize failed: {err}");
    assert!(err.contains("wrote") && !err.contains("panicked"), "{err}");
}

fn analyze(args: &[&str]) -> Value {
    analyze_in(Path::new("."), args)
}

fn analyze_in(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["analyze"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "json", "--top", "0"]);
    let out = gespann_in(dir, &a);
    assert!(out.status.success(), "gespann {a:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}) from {a:?}"))
}

/// Every named report, as `--list-reports` names them (so a report added later is checked too).
fn report_names() -> Vec<String> {
    let out = gespann(&["analyze", "--list-reports"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
        .filter(|n| n != "default" && !n.contains(' '))
        .collect();
    assert!(names.len() >= 13 && names.iter().any(|n| n == "containers"), "{text}");
    names
}

/// Every original address and name of `rows` with its replacement under `key`, for mapping
/// report cells; identities (kept addresses, empty names) are left out.
fn replacements(rows: &[Event], meta: &RecordingMeta, key: &Key) -> HashMap<String, String> {
    let mut a = Anonymizer::new(key);
    let mut m = HashMap::new();
    let mut add = |from: &str, to: &str| {
        if from != to && !from.is_empty() {
            m.insert(from.to_owned(), to.to_owned());
        }
    };
    add(&meta.hostname, &a.names().hostname(&meta.hostname));
    for e in rows {
        let x = a.event(e);
        add(&e.local_addr.to_string(), &x.local_addr.to_string());
        add(&e.remote_addr.to_string(), &x.remote_addr.to_string());
        add(&e.comm, &x.comm);
        let (w, y) = (&e.workload, &x.workload);
        let pairs = [
            (&w.container_id, &y.container_id),
            (&w.container_name, &y.container_name),
            (&w.pod_uid, &y.pod_uid),
            (&w.pod_name, &y.pod_name),
            (&w.pod_namespace, &y.pod_namespace),
        ];
        for (from, to) in pairs {
            if let (Some(f), Some(t)) = (from, to) {
                add(f, t);
            }
        }
        if let (Some(f), Some(t)) = (&w.container_id, &y.container_id) {
            // `workload` shows an unnamed container by its id's first 12 digits.
            add(&f[..12], &t[..12]);
        }
        add(&w.cgroup, &y.cgroup);
    }
    m
}

/// `text` with every whole occurrence of a key of `map` replaced, longest first, in one pass
/// (a match must not continue a word or number on either side: `10.0.1.1` is not in
/// `10.0.1.10`).
fn map_text(text: &str, map: &HashMap<String, String>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let b = text.as_bytes();
    let word = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::new();
    let mut i = 0;
    'outer: while i < text.len() {
        if i == 0 || !word(i - 1) {
            for k in &keys {
                if text[i..].starts_with(k.as_str()) && !word(i + k.len()) {
                    out.push_str(&map[*k]);
                    i += k.len();
                    continue 'outer;
                }
            }
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// A report row in a form two runs can be compared in: strings mapped through `map`, floats
/// to 12 significant digits (sums in another order), and a `top_destinations` list as the
/// sorted counts it gives (among tied destinations, the cut at three may pick others once
/// their names change).
fn canonical(row: &Value, map: &HashMap<String, String>) -> String {
    let obj = row.as_object().expect("a report row is an object");
    let cells: BTreeMap<&String, Value> = obj
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(t) if k == "top_destinations" => {
                    let mut counts: Vec<&str> = t
                        .split(", ")
                        .filter_map(|d| d.rsplit_once(" (").map(|(_, n)| n.trim_end_matches(')')))
                        .collect();
                    counts.sort();
                    Value::String(counts.join(","))
                }
                Value::String(t) => Value::String(map_text(t, map)),
                Value::Number(n) if n.is_f64() => Value::String(format!("{:.11e}", n.as_f64().unwrap())),
                v => v.clone(),
            };
            (k, v)
        })
        .collect();
    serde_json::to_string(&cells).unwrap()
}

/// Asserts that every section of `anon` has the rows of `orig` with names and addresses
/// mapped (in any order: reports break ties by name), and returns how many rows were compared.
fn assert_same_numbers(orig: &Value, anon: &Value, map: &HashMap<String, String>) -> usize {
    let (o, a) = (orig.as_object().unwrap(), anon.as_object().unwrap());
    assert_eq!(o.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
    let mut compared = 0;
    for (name, rows) in o {
        let mut want: Vec<String> = rows.as_array().unwrap().iter().map(|r| canonical(r, map)).collect();
        let mut got: Vec<String> = a[name].as_array().unwrap().iter().map(|r| canonical(r, &HashMap::new())).collect();
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "report {name}: row count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "report {name}");
        }
        compared += got.len();
    }
    compared
}

#[test]
fn every_report_gives_the_same_numbers_and_no_original_name_or_address_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let (orig_dir, anon_dir) = (dir.path().join("orig"), dir.path().join("anon"));
    std::fs::create_dir_all(&orig_dir).unwrap();
    std::fs::create_dir_all(&anon_dir).unwrap();
    let (orig, anon) = (orig_dir.join("rec.parquet"), anon_dir.join("rec.parquet"));
    let rows = fixture(1);
    write(&orig, &rows);
    let key = key_file(dir.path(), "anon.key", &SECRET);
    anonymize_ok(&orig, &anon, &key);

    let reports = report_names();
    let mut args = Vec::new();
    for r in &reports {
        args.extend(["--report", r.as_str()]);
    }
    // Each run names its input `rec.parquet`, so the reports' `source` columns agree.
    let run = |dir: &Path| {
        let mut a = vec!["rec.parquet"];
        a.extend_from_slice(&args);
        analyze_in(dir, &a)
    };
    let (before, after) = (run(&orig_dir), run(&anon_dir));
    let meta = RecordingReader::open(&orig).unwrap().meta;
    let map = replacements(&rows, &meta, &Key::from_secret(&SECRET).unwrap());
    let compared = assert_same_numbers(&before, &after, &map);
    assert!(compared > 300, "only {compared} report rows compared");
    // The reports did change where they name something (the mapping is not the identity).
    assert_ne!(before["talkers"], after["talkers"]);
    assert_ne!(before["containers"], after["containers"]);

    // Nothing of the original's names or addresses is in the anonymized rows or metadata.
    let r = RecordingReader::open(&anon).unwrap();
    let anon_meta = r.meta.clone();
    let anon_rows = r.read_all().unwrap();
    assert_eq!(anon_rows.len(), rows.len());
    let layout = ["", "system.slice", "kubepods.slice", "kubepods-burstable.slice", "libpod_parent"];
    let mut secrets: Vec<String> = vec![meta.hostname.clone(), "postgres".into(), "alice".into()];
    let mut addresses = Vec::new();
    for e in &rows {
        for a in [e.local_addr, e.remote_addr] {
            if !(a.is_loopback() || a.is_unspecified()) {
                addresses.push(a);
            }
        }
        secrets.push(e.comm.to_string());
        let w = &e.workload;
        for v in [&w.container_id, &w.container_name, &w.pod_uid, &w.pod_name, &w.pod_namespace].into_iter().flatten() {
            secrets.push(v.to_string());
        }
        if let Some(uid) = &w.pod_uid {
            secrets.push(uid.replace('-', "_"));
        }
        secrets.extend(w.cgroup.split('/').filter(|d| !layout.contains(d)).map(|d| d.to_owned()));
    }
    for (i, x) in anon_rows.iter().enumerate() {
        let e = &rows[i];
        assert!(!addresses.contains(&x.local_addr) && !addresses.contains(&x.remote_addr), "row {i}: {x:?}");
        let w = &x.workload;
        let texts = [Some(&x.comm), Some(&w.cgroup), w.container_id.as_ref(), w.container_name.as_ref()]
            .into_iter()
            .chain([w.pod_uid.as_ref(), w.pod_name.as_ref(), w.pod_namespace.as_ref()])
            .flatten();
        for t in texts {
            for secret in &secrets {
                assert!(!t.contains(secret.as_str()), "row {i}: `{secret}` in `{t}`");
            }
        }
        // Every other column is the original's.
        let restored = Event {
            local_addr: e.local_addr,
            remote_addr: e.remote_addr,
            comm: e.comm.clone(),
            workload: e.workload.clone(),
            ts_ns: e.ts_ns,
            ..x.clone()
        };
        assert_eq!(&restored, e, "row {i}");
        assert_eq!(x.ts_ns / 1000, e.ts_ns / 1000, "row {i}: the time, to the microsecond a recording keeps");
        // Kept addresses are kept; unset workload columns stay unset.
        for (a, b) in [(e.local_addr, x.local_addr), (e.remote_addr, x.remote_addr)] {
            assert_eq!(a.is_loopback() || a.is_unspecified(), a == b, "{a} -> {b}");
        }
        assert_eq!(e.workload.container_id.is_some(), w.container_id.is_some());
        assert_eq!(e.workload.pod_name.is_some(), w.pod_name.is_some());
        assert_eq!(e.workload.cgroup.is_empty(), w.cgroup.is_empty());
    }
    for secret in &secrets {
        assert!(!anon_meta.hostname.contains(secret.as_str()) && !anon_meta.command_line.contains(secret.as_str()));
    }
    assert_eq!(anon_meta.command_line, COMMAND_LINE);
    assert_eq!(anon_meta.anonymized.as_deref(), Some(METHOD), "the file says it was anonymized, and how");
    assert!(anon_meta.hostname.starts_with("host-"), "{}", anon_meta.hostname);
    let same = |m: &RecordingMeta| {
        (
            m.version.clone(),
            m.kernel.clone(),
            m.started_at.clone(),
            m.ended_at.clone(),
            m.events_lost,
            m.sample_interval_ms,
        )
    };
    assert_eq!(same(&anon_meta), same(&meta));
    // The closing counts are copied.
    let (_, _, schema) = gespann_common::recording::inspect(&anon).unwrap();
    assert_eq!(schema.metadata().get("gespann.late_rows").map(String::as_str), Some("3"));
    assert_eq!(schema.metadata().get("gespann.udp_ends_inferred").map(String::as_str), Some("2"));
}

#[test]
fn two_recordings_anonymized_with_one_key_diff_as_the_originals_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["orig", "anon", "other"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let (rows_a, rows_b) = (fixture(1), fixture(2));
    let (a, b) = (d.join("orig/before.parquet"), d.join("orig/after.parquet"));
    write(&a, &rows_a);
    write(&b, &rows_b);
    let key = key_file(d, "anon.key", &SECRET);
    let other = key_file(d, "other.key", OTHER_SECRET);
    let (xa, xb, yb) = (d.join("anon/before.parquet"), d.join("anon/after.parquet"), d.join("other/after.parquet"));
    anonymize_ok(&a, &xa, &key);
    anonymize_ok(&b, &xb, &key);
    anonymize_ok(&b, &yb, &other);

    let orig = analyze(&["--diff", s(&a), s(&b)]);
    let same_key = analyze(&["--diff", s(&xa), s(&xb)]);
    let meta = RecordingReader::open(&a).unwrap().meta;
    let k = Key::from_secret(&SECRET).unwrap();
    let mut map = replacements(&rows_a, &meta, &k);
    map.extend(replacements(&rows_b, &meta, &k));
    let compared = assert_same_numbers(&orig, &same_key, &map);
    let changes = |doc: &Value, what: &str| {
        doc["destinations"].as_array().unwrap().iter().filter(|r| r["change"] == what).count()
    };
    assert!(changes(&orig, "same") + changes(&orig, "worse") + changes(&orig, "better") >= 10, "{orig}");
    assert!(compared >= 12, "{compared}");
    // With another key for one side, nothing named matches any more: a diff that says little.
    let mixed = analyze(&["--diff", s(&xa), s(&yb)]);
    assert!(changes(&mixed, "new") > changes(&orig, "new") + 10, "{mixed}");
}

/// Asserts a failure: exit 1, one line on stderr, naming every `needle`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = gespann(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("gespann: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
    }
}

#[test]
fn mistakes_are_one_line_naming_the_thing_and_leave_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.parquet");
    write(&input, &fixture(3));
    let input_bytes = std::fs::read(&input).unwrap();
    let key = key_file(d, "anon.key", &SECRET);
    let short = key_file(d, "short.key", b"0123456789");
    let out = d.join("out.parquet");
    let (i, o, k) = (s(&input), s(&out), s(&key));

    fails_with(&["anonymize", i, o, "--key", s(&d.join("missing.key"))], &["missing.key", "No such file"]);
    fails_with(&["anonymize", i, o, "--key", s(&short)], &["short.key", "10 bytes", "head -c 32 /dev/urandom"]);
    fails_with(&["anonymize", s(&d.join("nothing.parquet")), o, "--key", k], &["nothing.parquet", "No such file"]);
    fails_with(&["anonymize", k, o, "--key", k], &["anon.key", "not a Parquet file"]);
    fails_with(&["anonymize", i, s(&d.join("no/such/dir/out.parquet")), "--key", k], &["no/such/dir", "No such file"]);
    assert!(!out.exists(), "nothing written");
    // The input is never the output, even with --force.
    fails_with(&["anonymize", i, i, "--key", k, "--force"], &["in.parquet", "same file"]);
    assert_eq!(std::fs::read(&input).unwrap(), input_bytes);

    std::fs::write(&out, b"keep me").unwrap();
    fails_with(&["anonymize", i, o, "--key", k], &["out.parquet", "already exists", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let done = gespann(&["anonymize", i, o, "--key", k, "--force"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(RecordingReader::open(&out).unwrap().rows, RecordingReader::open(&input).unwrap().rows);
    // No temporary file is left beside it.
    let names: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with(".gespann-anonymize")), "{names:?}");

    // A schema version 1 recording (no workload columns) is anonymized too, with a note.
    let v1 = gespann_testkit::recordings::v1_web();
    assert_eq!(RecordingReader::open(&v1).unwrap().meta.schema_version, 1);
    let v1_out = d.join("web.parquet");
    let done = gespann(&["anonymize", s(&v1), s(&v1_out), "--key", k]);
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success() && err.contains("schema version 1"), "{err}");
    let r = RecordingReader::open(&v1_out).unwrap();
    assert_eq!(r.meta.schema_version, gespann_common::schema::SCHEMA_VERSION);
    assert_eq!(r.rows, RecordingReader::open(&v1).unwrap().rows);

    // Anonymizing twice with one key gives the same rows.
    let again = d.join("again.parquet");
    anonymize_ok(&input, &again, &key);
    assert_eq!(
        RecordingReader::open(&again).unwrap().read_all().unwrap(),
        RecordingReader::open(&out).unwrap().read_all().unwrap()
    );
}
