//! Reports over a container host (schema version 2), every number counted by hand from
//! `support::containers_events`, and recordings of both schema versions read together.

mod support;

use serde_json::{Value, json};
use support::*;

fn rows<'a>(doc: &'a Value, report: &str) -> &'a Vec<Value> {
    doc[report].as_array().unwrap_or_else(|| panic!("no report `{report}` in {doc}"))
}

fn reports(files: &[&str], names: &[&str]) -> Value {
    let mut a = files.to_vec();
    for n in names {
        a.push("--report");
        a.push(n);
    }
    analyze_json(&a)
}

/// A version 1 recording (web request bursts on loopback).
fn web_sample() -> String {
    gespann_testkit::recordings::v1_web().to_string_lossy().into_owned()
}

/// The columns of one report row.
fn columns(row: &Value) -> Vec<String> {
    row.as_object().unwrap().keys().cloned().collect()
}

/// The CSV header of `report` over `file`.
fn csv_header(file: &str, report: &str) -> String {
    let csv = analyze(&[file, "--report", report, "--format", "csv"]).unwrap();
    csv.lines().nth(1).unwrap().to_string()
}

#[test]
fn containers_report_counts_outcomes_errnos_resets_bytes_and_destinations_per_pod_and_container() {
    let dir = tempfile::tempdir().unwrap();
    let f = containers_file(dir.path());
    let doc = reports(&[f.to_str().unwrap()], &["containers"]);
    let r = rows(&doc, "containers");
    let want = [
        json!({"workload": "prod/api-7d9f", "kind": "pod", "containers": 1, "connections": 6,
               "closed": 2, "reset": 1, "failed": 3, "open_at_end": 0, "reset_local": 0, "reset_remote": 1,
               "top_errors": "ECONNREFUSED 2, ETIMEDOUT 1", "bytes_sent": 1600, "bytes_received": 23000,
               "top_destinations": "10.96.0.10:5432 (3), 10.96.0.20:8080 (2), 10.96.0.30:443 (1)"}),
        // Ties (one failed or reset, two connections) in name order: `(host)` sorts first.
        json!({"workload": "(host)", "kind": "host", "containers": 0, "connections": 2,
               "closed": 1, "reset": 0, "failed": 1, "open_at_end": 0, "reset_local": 0, "reset_remote": 0,
               "top_errors": "EHOSTUNREACH 1", "bytes_sent": 2000, "bytes_received": 1000,
               "top_destinations": "192.0.2.10:443 (1)"}),
        json!({"workload": "redis-cache", "kind": "container", "containers": 1, "connections": 2,
               "closed": 1, "reset": 1, "failed": 0, "open_at_end": 0, "reset_local": 1, "reset_remote": 0,
               "top_errors": "", "bytes_sent": 300, "bytes_received": 50, "top_destinations": ""}),
        // No name from the runtime: the id's first 12 digits.
        json!({"workload": "c0ffee012345", "kind": "container", "containers": 1, "connections": 2,
               "closed": 1, "reset": 0, "failed": 0, "open_at_end": 1, "reset_local": 0, "reset_remote": 0,
               "top_errors": "", "bytes_sent": 50, "bytes_received": 130,
               "top_destinations": "10.0.0.2:53 (1), [2001:db8::1]:443 (1)"}),
    ];
    assert_eq!(r.len(), want.len(), "{r:#?}");
    for (got, want) in r.iter().zip(&want) {
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "{k} of {}", want["workload"]);
        }
    }
}

#[test]
fn connections_carry_netns_cgroup_container_and_pod() {
    let dir = tempfile::tempdir().unwrap();
    let f = containers_file(dir.path());
    let out = analyze(&[
        f.to_str().unwrap(),
        "--format",
        "json",
        "--sql",
        "SELECT conn_id, netns, cgroup, container_id, container_name, pod_uid, pod_name, pod_namespace, workload \
         FROM connections WHERE conn_id IN (3, 7, 10, 11) ORDER BY conn_id",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let r = v.as_array().unwrap();
    // A failed attempt has only its terminal row: the identity comes from it.
    assert_eq!(r[0]["netns"], json!(4026532100u32));
    assert_eq!(r[0]["pod_uid"], json!("1b2c3d4e-0000-4000-8000-00000000abcd"));
    assert_eq!(r[0]["pod_namespace"], json!("prod"));
    assert_eq!(r[0]["pod_name"], json!("api-7d9f"));
    assert_eq!(r[0]["container_name"], Value::Null);
    assert!(r[0]["cgroup"].as_str().unwrap().ends_with(&format!("cri-containerd-{}.scope", "a1".repeat(32))));
    assert_eq!(r[0]["workload"], json!("prod/api-7d9f"));
    assert_eq!(r[1]["container_id"], json!("b2".repeat(32)));
    assert_eq!(r[1]["container_name"], json!("redis-cache"));
    assert_eq!(r[1]["cgroup"], json!(format!("/system.slice/docker-{}.scope", "b2".repeat(32))));
    assert_eq!(r[1]["workload"], json!("redis-cache"));
    assert_eq!(r[1]["pod_uid"], Value::Null);
    // Still open at the end: the identity comes from its open row.
    assert_eq!(r[2]["netns"], json!(4026532300u32));
    assert_eq!(r[2]["workload"], json!("c0ffee012345"));
    assert_eq!(r[3]["netns"], json!(HOST_NETNS));
    assert_eq!(r[3]["cgroup"], json!("/system.slice/sshd.service"));
    assert_eq!(r[3]["container_id"], Value::Null);
    assert_eq!(r[3]["workload"], Value::Null);
}

#[test]
fn talkers_failures_resets_and_latency_carry_the_workload() {
    let dir = tempfile::tempdir().unwrap();
    let f = containers_file(dir.path());
    let doc = reports(&[f.to_str().unwrap()], &["talkers", "failures", "resets", "latency"]);
    for report in ["talkers", "failures", "resets", "latency"] {
        assert!(csv_header(f.to_str().unwrap(), report).starts_with("workload,"), "{report}");
    }
    let t = rows(&doc, "talkers");
    // The most bytes: api's two closed queries and its reset one, to postgres.
    assert_eq!(t[0]["workload"], json!("prod/api-7d9f"));
    assert_eq!(t[0]["remote_addr"], json!("10.96.0.10"));
    assert_eq!(t[0]["connections"], json!(3));
    assert_eq!(t[0]["bytes_total"], json!(24600));
    assert_eq!(t[1]["workload"], Value::Null);
    assert_eq!(t[1]["comm"], json!("sshd"));
    assert_eq!(t[1]["port"], json!(22));
    assert_eq!(t[1]["bytes_total"], json!(3000));

    let f = rows(&doc, "failures");
    let got: Vec<(Value, Value, Value, Value, Value)> = f
        .iter()
        .map(|r| {
            (
                r["workload"].clone(),
                r["remote_addr"].clone(),
                r["error"].clone(),
                r["failures"].clone(),
                r["attempts"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!("prod/api-7d9f"), json!("10.96.0.20"), json!("ECONNREFUSED"), json!(2), json!(2)),
            (json!("prod/api-7d9f"), json!("10.96.0.30"), json!("ETIMEDOUT"), json!(1), json!(1)),
            (Value::Null, json!("192.0.2.10"), json!("EHOSTUNREACH"), json!(1), json!(1)),
        ]
    );

    let r = rows(&doc, "resets");
    assert_eq!(r.len(), 2);
    assert_eq!((&r[0]["workload"], &r[0]["reset_by"]), (&json!("redis-cache"), &json!("local")));
    assert_eq!(r[0]["direction"], json!("redis-server:6379 -> 172.17.0.1"));
    assert_eq!((&r[1]["workload"], &r[1]["reset_by"]), (&json!("prod/api-7d9f"), &json!("remote")));
    assert_eq!(r[1]["direction"], json!("10.96.0.10:5432 -> node"));

    // api's three postgres connections (mean RTT 1, 3 and 2 ms), and the podman container's IPv6.
    let l = rows(&doc, "latency");
    assert_eq!(l.len(), 2, "{l:#?}");
    assert_eq!((&l[0]["workload"], &l[0]["connections"]), (&json!("prod/api-7d9f"), &json!(3)));
    assert_eq!(l[0]["rtt_p50_us"], json!(2000.0));
    assert_eq!((&l[1]["workload"], &l[1]["remote_addr"]), (&json!("c0ffee012345"), &json!("2001:db8::1")));
}

#[test]
fn a_host_without_containers_gets_no_workload_column_in_any_format() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    let doc = reports(&[f.to_str().unwrap()], &["talkers", "failures", "resets", "latency"]);
    for report in ["talkers", "failures", "resets", "latency"] {
        let r = rows(&doc, report);
        assert!(!r.is_empty(), "{report}");
        assert!(!columns(&r[0]).contains(&"workload".to_string()), "{report}: {:?}", columns(&r[0]));
    }
    assert!(csv_header(f.to_str().unwrap(), "talkers").starts_with("remote_addr,port,"));
    // `--sql` gets the columns it asks for, all NULL or not.
    let sql = analyze(&[f.to_str().unwrap(), "--format", "csv", "--sql", "SELECT workload FROM connections LIMIT 1"])
        .unwrap();
    assert_eq!(sql, "workload\n\n");
}

#[test]
fn the_default_report_has_containers_only_when_a_recording_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let c = containers_file(dir.path());
    let h = handcounted_file(dir.path());
    let with = analyze(&[c.to_str().unwrap(), "--format", "json"]).unwrap();
    let at = |name: &str| with.find(&format!("\"{name}\": [")).unwrap_or_else(|| panic!("no {name}"));
    assert!(at("summary") < at("outcomes") && at("outcomes") < at("containers") && at("containers") < at("failures"));
    let without: Value = serde_json::from_str(&analyze(&[h.to_str().unwrap(), "--format", "json"]).unwrap()).unwrap();
    assert!(without.get("containers").is_none());
    assert_eq!(without.as_object().unwrap().len(), gespann_analyze::reports::DEFAULT.len());
    let v1: Value = serde_json::from_str(&analyze(&[&web_sample(), "--format", "json"]).unwrap()).unwrap();
    assert!(v1.get("containers").is_none());
}

#[test]
fn version_1_and_version_2_recordings_are_read_together() {
    let dir = tempfile::tempdir().unwrap();
    let c = containers_file(dir.path());
    let web = web_sample();
    let recs = futures::executor::block_on(gespann_analyze::inputs::open_all(std::slice::from_ref(&web))).unwrap();
    assert_eq!(recs[0].meta.schema_version, 1, "testkit/recordings/v1-web.parquet is a version 1 recording");
    let web_connections = |sql: &str| -> Value {
        let out = analyze(&[&web, "--format", "json", "--sql", sql]).unwrap();
        serde_json::from_str::<Value>(&out).unwrap()[0]["n"].clone()
    };
    let n_web = web_connections("SELECT count(*) AS n FROM connections");
    let out = analyze(&[
        &web,
        c.to_str().unwrap(),
        "--format",
        "json",
        "--sql",
        "SELECT source LIKE '%v1-web.parquet' AS v1, count(*) AS n, count(netns) AS with_netns, count(cgroup) AS with_cgroup, \
         count(workload) AS in_containers FROM connections GROUP BY 1 ORDER BY 1",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0], json!({"v1": false, "n": 12, "with_netns": 12, "with_cgroup": 12, "in_containers": 10}));
    assert_eq!(v[1], json!({"v1": true, "n": n_web, "with_netns": 0, "with_cgroup": 0, "in_containers": 0}));
    // The events too: a version 1 file's added columns are NULLs of their types.
    let out = analyze(&[
        &web,
        c.to_str().unwrap(),
        "--format",
        "csv",
        "--sql",
        "SELECT arrow_typeof(netns) AS netns, arrow_typeof(cgroup) AS cgroup, count(*) FILTER (WHERE netns IS NULL) > 0 AS some_null \
         FROM events GROUP BY 1, 2",
    ])
    .unwrap();
    assert_eq!(out, "netns,cgroup,some_null\nUInt32,\"Dictionary(Int32, Utf8)\",true\n");

    // Every report and the diff run over both at once; the v1 connections are `(unknown)`.
    let doc = reports(&[&web, c.to_str().unwrap()], &["default", "containers"]);
    let unknown = rows(&doc, "containers").iter().find(|r| r["workload"] == json!("(unknown)")).unwrap();
    assert_eq!(unknown["kind"], json!("unknown"));
    assert_eq!(unknown["connections"], n_web);
    assert!(rows(&doc, "containers").iter().any(|r| r["workload"] == json!("prod/api-7d9f")));
    let diff = analyze(&["--diff", &web, c.to_str().unwrap(), "--format", "json"]).unwrap();
    let diff: Value = serde_json::from_str(&diff).unwrap();
    let d = diff["destinations"].as_array().unwrap();
    assert!(d.iter().any(|r| r["workload"] == json!("prod/api-7d9f") && r["change"] == json!("new")), "{d:#?}");
    assert!(d.iter().any(|r| r["workload"].is_null() && r["change"] == json!("vanished")), "{d:#?}");
}

#[test]
fn both_versions_split_into_passes_give_the_reports_computed_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let c = containers_file(dir.path());
    let inputs = [web_sample(), c.to_string_lossy().into_owned()];
    let render = |passes| reports_as_csv(&inputs, &["containers", "talkers", "failures"], passes);
    let mem = render(None);
    assert!(mem[0].contains("(unknown)") && mem[0].contains("prod/api-7d9f"), "{}", mem[0]);
    assert_eq!(render(Some(3)), mem);
}

/// Regression: a version 2 recording of several row groups (each with a `cgroup` dictionary of
/// its own) split by connection onto disk, where an Arrow IPC file holds one dictionary per
/// column; the multi-pass path failed with "Dictionary replacement detected".
#[test]
fn a_recording_of_many_row_groups_splits_into_passes() {
    use gespann_analyze::session::{Analyzer, Options};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.parquet");
    let meta = gespann_testkit::fixtures::mixed_meta();
    let mut w = gespann_common::RecordingWriter::create(&path, true, &meta).unwrap();
    for (i, e) in containers_events().iter().enumerate() {
        w.push(e).unwrap();
        if i % 4 == 3 {
            w.flush_row_group().unwrap();
        }
    }
    assert!(w.finish("2025-11-24T16:10:00Z", 0).unwrap().row_groups >= 5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let count = |passes: usize| -> String {
        rt.block_on(async {
            let recs = gespann_analyze::inputs::open_all(&[path.to_string_lossy().into_owned()]).await.unwrap();
            let mut a = Analyzer::new(recs, &Options { threads: Some(1), ..Options::default() }).await.unwrap();
            a.connections_to_disk(passes).await.unwrap();
            let sql = "SELECT count(*) AS n, count(DISTINCT cgroup) AS cgroups, count(workload) AS w FROM connections";
            let b = a.sql("q", sql).await.unwrap().collect().await.unwrap();
            arrow::util::pretty::pretty_format_batches(&b).unwrap().to_string()
        })
    };
    let one = count(1);
    assert!(one.contains("| 12 | 4       | 10 |"), "{one}");
    assert_eq!(count(2), one);
}
