//! Report numbers against a recording whose every figure was counted by hand
//! (see `support::handcounted_events`).

mod support;

use serde_json::{Value, json};
use support::*;

fn rows<'a>(doc: &'a Value, report: &str) -> &'a Vec<Value> {
    doc[report].as_array().unwrap_or_else(|| panic!("no report `{report}` in {doc}"))
}

fn reports(names: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    let f = f.to_str().unwrap();
    let mut a = vec![f];
    for n in names {
        a.push("--report");
        a.push(n);
    }
    analyze_json(&a)
}

#[test]
fn summary_gives_window_counts_and_lost_events() {
    let doc = reports(&["summary"]);
    let r = &rows(&doc, "summary")[0];
    assert_eq!(r["events"], json!(handcounted_events().len()));
    assert_eq!(r["connections"], json!(10));
    assert_eq!(r["window_ns"], json!(8_000_000_000i64));
    assert_eq!(r["events_lost"], json!(7));
    assert!(r["loss"].as_str().unwrap().starts_with("EVENTS LOST: 7"));
    assert_eq!(r["started_at"], json!("2026-01-01T00:00:00.000000000Z"));
    assert_eq!(r["hostname"], json!("testhost"));
}

#[test]
fn outcomes_count_connections_by_protocol_role_and_outcome() {
    let doc = reports(&["outcomes"]);
    let got: Vec<(String, String, String, u64)> = rows(&doc, "outcomes")
        .iter()
        .map(|r| {
            (
                r["protocol"].as_str().unwrap().into(),
                r["role"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
                r["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("tcp", "client", "failed", 3),
        ("tcp", "client", "reset", 2),
        ("tcp", "client", "closed", 1),
        ("tcp", "client", "open_at_end", 1),
        ("tcp", "server", "closed", 1),
        ("udp", "client", "closed", 2),
    ];
    let want: Vec<(String, String, String, u64)> =
        want.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), *d)).collect();
    assert_eq!(got, want);
}

#[test]
fn failures_name_destinations_errno_and_share_of_attempts() {
    let doc = reports(&["failures"]);
    let f = rows(&doc, "failures");
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["remote_addr"], json!("198.51.100.7"));
    assert_eq!(f[0]["remote_port"], json!(5432));
    assert_eq!(f[0]["error"], json!("ECONNREFUSED"));
    assert_eq!(f[0]["failures"], json!(2));
    assert_eq!(f[0]["attempts"], json!(2));
    assert_eq!(f[0]["failed_pct"], json!(100.0));
    assert_eq!(f[0]["avg_attempt_ns"], json!(2_000_000));
    assert_eq!(f[0]["first_process"], json!("python3"));
    assert_eq!(f[1]["remote_addr"], json!("198.51.100.8"));
    assert_eq!(f[1]["error"], json!("ETIMEDOUT"));
    assert_eq!(f[1]["failures"], json!(1));
}

#[test]
fn resets_say_who_reset_whom() {
    let doc = reports(&["resets"]);
    let r = rows(&doc, "resets");
    assert_eq!(r.len(), 2);
    // Equal counts: ordered by reset_by.
    assert_eq!(r[0]["reset_by"], json!("local"));
    assert_eq!(r[0]["direction"], json!("curl -> 192.0.2.10:443"));
    assert_eq!(r[0]["reason"], json!("TCP_ABORT_ON_CLOSE"));
    assert_eq!(r[1]["reset_by"], json!("remote"));
    assert_eq!(r[1]["direction"], json!("192.0.2.10:443 -> curl"));
    assert_eq!(r[1]["error"], json!("ECONNRESET"));
    assert_eq!(r[1]["bytes_before_reset"], json!(50));
}

#[test]
fn talkers_rank_by_total_bytes() {
    let doc = reports(&["talkers"]);
    let t = rows(&doc, "talkers");
    assert_eq!(t[0]["remote_addr"], json!("203.0.113.5"));
    assert_eq!(t[0]["comm"], json!("nginx"));
    assert_eq!(t[0]["bytes_total"], json!(1_000_700));
    // A server connection groups by this host's listening port, not the client's ephemeral one.
    assert_eq!(t[0]["port"], json!(443));
    assert_eq!(t[0]["role"], json!("server"));
    assert_eq!(t[1]["remote_addr"], json!("192.0.2.10"));
    assert_eq!(t[1]["connections"], json!(3));
    assert_eq!(t[1]["bytes_total"], json!(200 + 10_000 + 50));
}

#[test]
fn latency_takes_percentiles_over_connections() {
    let doc = reports(&["latency"]);
    let l = rows(&doc, "latency");
    let web = l.iter().find(|r| r["remote_addr"] == json!("192.0.2.10")).expect("web destination");
    // Per-connection mean RTTs 2000 (1000, 3000, 2000), 2000 (2000, 2000), 4000.
    assert_eq!(web["connections"], json!(3));
    assert_eq!(web["rtt_p50_us"].as_f64().unwrap(), 2000.0);
    assert_eq!(web["rtt_max_us"], json!(4000));
    assert_eq!(web["handshake_p50_us"].as_f64().unwrap(), 2500.0);
    // p99 interpolates between 2500 and 3000 at 0.98 of the way.
    assert!((web["handshake_p99_us"].as_f64().unwrap() - 2990.0).abs() < 1.0);
    // The slowest first: 192.0.2.10 (p99 near 4000) before 10.0.0.5 (mean 400).
    assert_eq!(l[0]["remote_addr"], json!("192.0.2.10"));
    assert_eq!(l[1]["remote_addr"], json!("10.0.0.5"));
}

#[test]
fn durations_and_idle_measure_lifetime_and_silence() {
    let doc = reports(&["durations", "idle"]);
    let d = rows(&doc, "durations");
    assert_eq!(d[0]["conn_id"], json!(7));
    assert_eq!(d[0]["duration_ns"], json!(8_000_000_000i64));
    assert_eq!(d[0]["outcome"], json!("open_at_end"));
    assert_eq!(d[0]["preexisting"], json!(true));
    assert_eq!(d[1]["conn_id"], json!(6));
    assert_eq!(d[1]["duration_ns"], json!(5_000_000_000i64));
    // Failed attempts are not connections that lived.
    assert!(d.iter().all(|r| r["outcome"] != json!("failed")));
    let i = rows(&doc, "idle");
    assert_eq!(i[0]["conn_id"], json!(7));
    assert_eq!(i[0]["idle_ns"], json!(5_000_000_000i64));
    // conn 10 never moved a byte: idle from its open (7.2 s) to its reset (7.5 s).
    assert_eq!(i[1]["conn_id"], json!(10));
    assert_eq!(i[1]["idle_ns"], json!(300_000_000));
}

#[test]
fn timeline_counts_opens_and_ends_per_bucket() {
    let doc = reports(&["timeline"]);
    let t = rows(&doc, "timeline");
    let sum = |k: &str| t.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    // Preexisting conn 7 is not an open inside the window.
    assert_eq!(sum("opened"), 6);
    assert_eq!(sum("closed"), 4);
    assert_eq!(sum("reset"), 2);
    assert_eq!(sum("failed"), 3);
    // 1 s buckets from the first mark (t=1): [1 s, 2 s) holds the opens of conns 1, 8 and 2.
    assert_eq!(t[0]["bucket_ns"], json!(1_000_000_000i64));
    assert_eq!(t[0]["bucket_start"], json!("2026-01-01T00:00:01.000000000Z"));
    assert_eq!(t[0]["opened"], json!(3));
    assert_eq!(t[0]["closed"], json!(1));
}

#[test]
fn udp_shows_unanswered_flows() {
    let doc = reports(&["udp"]);
    let u = rows(&doc, "udp");
    assert_eq!(u.len(), 2);
    let cf = u.iter().find(|r| r["remote_addr"] == json!("1.1.1.1")).unwrap();
    assert_eq!(cf["unanswered"], json!(1));
    assert_eq!(cf["unanswered_pct"], json!(100.0));
    assert_eq!(cf["packets_sent"], json!(2));
    let ok = u.iter().find(|r| r["remote_addr"] == json!("10.0.0.2")).unwrap();
    assert_eq!(ok["unanswered"], json!(0));
    assert_eq!(ok["bytes_received"], json!(120));
}

#[test]
fn processes_and_retransmits_add_up() {
    let doc = reports(&["processes", "retransmits"]);
    let p = rows(&doc, "processes");
    let curl = p.iter().find(|r| r["comm"] == json!("curl")).unwrap();
    assert_eq!(curl["pids"], json!(3));
    assert_eq!(curl["connections"], json!(3));
    assert_eq!(curl["reset"], json!(2));
    let java = p.iter().find(|r| r["comm"] == json!("java")).unwrap();
    assert_eq!(java["failed"], json!(1));
    assert_eq!(java["open_at_end"], json!(1));
    let r = rows(&doc, "retransmits");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["remote_addr"], json!("203.0.113.5"));
    assert_eq!(r[0]["retransmits"], json!(2));
    assert_eq!(r[0]["packets_sent"], json!(700));
}

#[test]
fn connections_view_has_one_row_per_connection_with_final_totals() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    let out = analyze(&[
        f.to_str().unwrap(),
        "--format",
        "json",
        "--sql",
        "SELECT conn_id, outcome, bytes_sent, bytes_received, rtt_min_us, rtt_max_us, handshake_us, \
         error, reset_by, duration_ns, ended_at FROM connections ORDER BY conn_id",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 10);
    assert_eq!(v[0]["conn_id"], json!(1));
    assert_eq!(v[0]["outcome"], json!("closed"));
    assert_eq!(v[0]["bytes_received"], json!(10_000));
    assert_eq!(v[0]["rtt_min_us"], json!(1000));
    assert_eq!(v[0]["rtt_max_us"], json!(3000));
    assert_eq!(v[0]["handshake_us"], json!(1500));
    assert_eq!(v[0]["duration_ns"], json!(2_000_000_000i64));
    assert_eq!(v[1]["reset_by"], json!("remote"));
    assert_eq!(v[2]["error"], json!("ECONNREFUSED"));
    assert_eq!(v[6]["outcome"], json!("open_at_end"));
    assert_eq!(v[6]["ended_at"], Value::Null);
}

#[test]
fn several_inputs_keep_connections_apart_by_source() {
    let dir = tempfile::tempdir().unwrap();
    let a = handcounted_file(dir.path());
    let b = dir.path().join("copy.parquet");
    std::fs::copy(&a, &b).unwrap();
    let doc = analyze_json(&[dir.path().to_str().unwrap(), "--report", "summary", "--report", "outcomes"]);
    let s = rows(&doc, "summary");
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|r| r["connections"] == json!(10)));
    let total: u64 = rows(&doc, "outcomes").iter().map(|r| r["connections"].as_u64().unwrap()).sum();
    assert_eq!(total, 20, "same conn_ids in two files are different connections");
}

#[test]
fn table_output_warns_loudly_about_lost_events() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    let out = analyze(&[f.to_str().unwrap(), "--report", "summary"]).unwrap();
    assert!(out.starts_with("!!! WARNING: 7 events were LOST"), "{out}");
    assert!(out.contains("== summary =="));
    assert!(out.contains("8.00 s"), "window shown in human units: {out}");
}

#[test]
fn an_empty_recording_gives_empty_reports_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty-window.parquet");
    write_recording(&f, &[], 0, T0, T0 + SEC);
    let doc = analyze_json(&[f.to_str().unwrap(), "--report", "default", "--report", "processes"]);
    let s = &rows(&doc, "summary")[0];
    assert_eq!(s["events"], json!(0));
    assert_eq!(s["connections"], json!(0));
    assert_eq!(s["window_ns"], json!(1_000_000_000));
    for r in ["outcomes", "failures", "resets", "talkers", "latency", "durations", "idle", "timeline", "udp"] {
        assert!(rows(&doc, r).is_empty(), "{r}");
    }
    let text = analyze(&[f.to_str().unwrap()]).unwrap();
    assert!(text.contains("(no rows)"), "{text}");
}

#[test]
fn a_small_memory_limit_gives_the_same_reports() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth_file(dir.path(), "s.parquet", 20_000, 11, 0);
    let f = f.to_str().unwrap();
    let small = analyze(&[f, "--memory-limit", "24MiB", "--format", "csv"]).unwrap();
    let large = analyze(&[f, "--format", "csv"]).unwrap();
    assert_eq!(small, large);
    assert!(gespann_analyze::cli::parse_size("1MiB").unwrap_err().contains("too small"));
    assert_eq!(gespann_analyze::cli::parse_size("1.5GiB").unwrap(), 3 << 29);
}
