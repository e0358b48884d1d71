//! Report numbers against DuckDB over the same synthetic recording, computed with SQL written
//! independently of the reports (terminal rows instead of maxima, `arg_max` instead of the
//! `connections` view, DuckDB's own quantiles).

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::*;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    doc: Value,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = synth_file(dir.path(), "synth.parquet", 30_000, 42, 123);
    let p = path.to_str().unwrap();
    let mut a = vec![p];
    for r in [
        "summary",
        "outcomes",
        "failures",
        "resets",
        "talkers",
        "latency",
        "udp",
        "timeline",
        "idle",
        "retransmits",
        "processes",
    ] {
        a.push("--report");
        a.push(r);
    }
    let doc = analyze_json(&a);
    Fixture { _dir: dir, path, doc }
}

fn rows<'a>(doc: &'a Value, name: &str) -> &'a Vec<Value> {
    doc[name].as_array().unwrap()
}

/// Asserts two maps are equal, showing only the keys that differ.
fn same<V: PartialEq + std::fmt::Debug>(what: &str, got: &BTreeMap<String, V>, want: &BTreeMap<String, V>) {
    let mut diffs = Vec::new();
    for k in got.keys().chain(want.keys()) {
        if got.get(k) != want.get(k) && !diffs.iter().any(|(d, _, _): &(String, _, _)| d == k) {
            diffs.push((k.clone(), got.get(k), want.get(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} of {} keys differ (gespann, duckdb): {:?}",
        diffs.len(),
        want.len(),
        &diffs[..diffs.len().min(10)]
    );
}

/// A connection's container or pod in DuckDB, from its own columns: what the reports call
/// `workload` (NULL on the host).
const WORKLOAD: &str =
    "coalesce(pod_namespace || '/' || pod_name, 'pod ' || pod_uid, container_name, container_id[1:12])";

/// A report row's `workload`, `null` when the report left the column out.
fn workload(r: &Value) -> String {
    s(r.get("workload").unwrap_or(&Value::Null))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f as u64))
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn reports_agree_with_duckdb() {
    let fx = fixture();
    let doc = &fx.doc;
    let file = &fx.path;

    // summary: events, connections, and the lost count from the file metadata.
    let d = duckdb(
        file,
        &format!(
            "SELECT (SELECT count(*) FROM events), (SELECT count(DISTINCT conn_id) FROM events), \
             (SELECT CAST(value AS VARCHAR) FROM parquet_kv_metadata('{}') \
              WHERE CAST(key AS VARCHAR) = 'gespann.events_lost')",
            file.display()
        ),
    );
    let sum = &rows(doc, "summary")[0];
    assert_eq!(u(&sum["events"]), u(&d[0][0]), "events");
    assert_eq!(u(&sum["connections"]), u(&d[0][1]), "connections");
    assert_eq!(u(&sum["events_lost"]), u(&d[0][2]), "events lost");
    assert_eq!(u(&sum["events_lost"]), 123);

    // outcomes: from the terminal rows; open at the end = connections without one.
    let d = duckdb(
        file,
        "WITH term AS (SELECT protocol, role, CASE kind WHEN 'close' THEN 'closed' ELSE kind END AS o, count(*) AS n \
           FROM events WHERE kind IN ('close','reset','failed') GROUP BY ALL), \
         ended AS (SELECT DISTINCT conn_id FROM events WHERE kind IN ('close','reset','failed')), \
         open_end AS (SELECT protocol, role, 'open_at_end' AS o, count(DISTINCT conn_id) AS n FROM events \
           WHERE conn_id NOT IN (SELECT conn_id FROM ended) GROUP BY ALL) \
         SELECT * FROM term UNION ALL SELECT * FROM open_end",
    );
    let want: BTreeMap<String, u64> =
        d.iter().map(|r| (format!("{}/{}/{}", s(&r[0]), s(&r[1]), s(&r[2])), u(&r[3]))).collect();
    let got: BTreeMap<String, u64> = rows(doc, "outcomes")
        .iter()
        .map(|r| (format!("{}/{}/{}", s(&r["protocol"]), s(&r["role"]), s(&r["outcome"])), u(&r["connections"])))
        .collect();
    same("outcomes", &got, &want);
    assert!(want.keys().any(|k| k.ends_with("failed")) && want.keys().any(|k| k.ends_with("reset")));

    // failures: failed rows per destination and errno, attempts per destination.
    let d = duckdb(
        file,
        &format!(
            "WITH w AS (SELECT *, {WORKLOAD} AS wk FROM events), \
             att AS (SELECT wk, remote_addr, remote_port, count(DISTINCT conn_id) AS a FROM w \
               WHERE protocol='tcp' AND role='client' GROUP BY ALL) \
             SELECT f.remote_addr, f.remote_port, f.error, count(*), any_value(att.a), f.wk FROM w f \
             JOIN att ON att.wk IS NOT DISTINCT FROM f.wk AND att.remote_addr = f.remote_addr \
             AND att.remote_port = f.remote_port WHERE f.kind='failed' GROUP BY ALL"
        ),
    );
    let want: BTreeMap<String, (u64, u64)> = d
        .iter()
        .map(|r| (format!("{} {}:{} {}", s(&r[5]), s(&r[0]), s(&r[1]), s(&r[2])), (u(&r[3]), u(&r[4]))))
        .collect();
    let got: BTreeMap<String, (u64, u64)> = rows(doc, "failures")
        .iter()
        .map(|r| {
            (
                format!("{} {}:{} {}", workload(r), s(&r["remote_addr"]), s(&r["remote_port"]), s(&r["error"])),
                (u(&r["failures"]), u(&r["attempts"])),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert!(want.keys().any(|k| k.starts_with("prod/")), "failures in pods");
    same("failures", &got, &want);

    // resets: reset rows per direction.
    let d = duckdb(file, "SELECT reset_by, count(*) FROM events WHERE kind='reset' GROUP BY ALL");
    let want: BTreeMap<String, u64> = d.iter().map(|r| (s(&r[0]), u(&r[1]))).collect();
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows(doc, "resets") {
        *got.entry(s(&r["reset_by"])).or_default() += u(&r["resets"]);
    }
    same("resets by direction", &got, &want);

    // talkers: totals from each connection's last row.
    let d = duckdb(
        file,
        &format!(
            "WITH c AS (SELECT conn_id, any_value(remote_addr) ra, CASE WHEN any_value(role) = 'server' THEN any_value(local_port) ELSE any_value(remote_port) END rp, any_value(role) rl, any_value(comm) cm, \
               any_value(protocol) p, arg_max(bytes_sent, ts) bs, arg_max(bytes_received, ts) br, any_value({WORKLOAD}) wk \
               FROM events GROUP BY conn_id) \
             SELECT ra, rp, rl, cm, p, count(*), sum(bs), sum(br), wk FROM c GROUP BY ALL"
        ),
    );
    let want: BTreeMap<String, (u64, u64, u64)> = d
        .iter()
        .map(|r| {
            let k = format!("{} {}:{} {} {} {}", s(&r[8]), s(&r[0]), s(&r[1]), s(&r[2]), s(&r[3]), s(&r[4]));
            (k, (u(&r[5]), u(&r[6]), u(&r[7])))
        })
        .collect();
    let got: BTreeMap<String, (u64, u64, u64)> = rows(doc, "talkers")
        .iter()
        .map(|r| {
            (
                format!(
                    "{} {}:{} {} {} {}",
                    workload(r),
                    s(&r["remote_addr"]),
                    s(&r["port"]),
                    s(&r["role"]),
                    s(&r["comm"]),
                    s(&r["protocol"])
                ),
                (u(&r["connections"]), u(&r["bytes_sent"]), u(&r["bytes_received"])),
            )
        })
        .collect();
    same("talkers", &got, &want);

    // latency: DuckDB's exact quantiles over per-connection mean RTT.
    let d = duckdb(
        file,
        &format!(
            "WITH c AS (SELECT conn_id, any_value(remote_addr) ra, any_value(remote_port) rp, avg(rtt_us) r, \
               max(handshake_us) h, any_value({WORKLOAD}) wk FROM events WHERE protocol='tcp' AND role='client' GROUP BY conn_id) \
             SELECT ra, rp, count(*), quantile_cont(r, 0.5), quantile_cont(r, 0.99), quantile_cont(h, 0.5), wk \
             FROM c WHERE r IS NOT NULL GROUP BY ALL"
        ),
    );
    let got: BTreeMap<String, &Value> = rows(doc, "latency")
        .iter()
        .map(|r| (format!("{} {}:{}", workload(r), s(&r["remote_addr"]), s(&r["remote_port"])), r))
        .collect();
    assert_eq!(got.len(), d.len(), "latency destinations");
    for r in &d {
        let k = format!("{} {}:{}", s(&r[6]), s(&r[0]), s(&r[1]));
        let g = got.get(&k).unwrap_or_else(|| panic!("latency: no {k}"));
        assert_eq!(u(&g["connections"]), u(&r[2]), "{k}");
        for (col, want) in [("rtt_p50_us", &r[3]), ("rtt_p99_us", &r[4]), ("handshake_p50_us", &r[5])] {
            if want.is_null() {
                assert!(g[col].is_null(), "{k} {col}");
                continue;
            }
            let (a, b) = (f(&g[col]), f(want));
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{k} {col}: {a} vs {b}");
        }
    }

    // udp: flows that never received a packet.
    let d = duckdb(
        file,
        "WITH c AS (SELECT conn_id, any_value(remote_addr) ra, CASE WHEN any_value(role) = 'server' THEN any_value(local_port) ELSE any_value(remote_port) END rp, any_value(role) rl, any_value(comm) cm, \
           max(packets_received) pr FROM events WHERE protocol='udp' GROUP BY conn_id) \
         SELECT ra, rp, rl, cm, count(*), count(*) FILTER (WHERE pr = 0) FROM c GROUP BY ALL",
    );
    let want: BTreeMap<String, (u64, u64)> = d
        .iter()
        .map(|r| (format!("{}:{} {} {}", s(&r[0]), s(&r[1]), s(&r[2]), s(&r[3])), (u(&r[4]), u(&r[5]))))
        .collect();
    let got: BTreeMap<String, (u64, u64)> = rows(doc, "udp")
        .iter()
        .map(|r| {
            (
                format!("{}:{} {} {}", s(&r["remote_addr"]), s(&r["port"]), s(&r["role"]), s(&r["comm"])),
                (u(&r["flows"]), u(&r["unanswered"])),
            )
        })
        .collect();
    assert!(want.values().any(|(_, n)| *n > 0), "the fixture has unanswered flows");
    same("udp", &got, &want);

    // timeline: totals of opens and ends inside the window.
    let d = duckdb(
        file,
        "SELECT kind, count(*) FROM events WHERE kind IN ('open','close','reset','failed') AND NOT preexisting GROUP BY ALL",
    );
    let want: BTreeMap<String, u64> = d.iter().map(|r| (s(&r[0]), u(&r[1]))).collect();
    let t = rows(doc, "timeline");
    assert!(t.len() <= 60 && t.len() > 1, "timeline buckets: {}", t.len());
    for (kind, col) in [("open", "opened"), ("close", "closed"), ("reset", "reset"), ("failed", "failed")] {
        let total: u64 = t.iter().map(|r| u(&r[col])).sum();
        assert_eq!(total, want.get(kind).copied().unwrap_or(0), "timeline {col}");
    }

    // retransmits: final retransmit counters per TCP peer.
    let d = duckdb(
        file,
        "WITH c AS (SELECT conn_id, any_value(remote_addr) ra, CASE WHEN any_value(role) = 'server' THEN any_value(local_port) ELSE any_value(remote_port) END rp, any_value(role) rl, \
           arg_max(retransmits, ts) r FROM events WHERE protocol='tcp' GROUP BY conn_id) \
         SELECT ra, rp, rl, sum(r) FROM c GROUP BY ALL HAVING sum(r) > 0",
    );
    let want: BTreeMap<String, u64> =
        d.iter().map(|r| (format!("{}:{} {}", s(&r[0]), s(&r[1]), s(&r[2])), u(&r[3]))).collect();
    let got: BTreeMap<String, u64> = rows(doc, "retransmits")
        .iter()
        .map(|r| (format!("{}:{} {}", s(&r["remote_addr"]), s(&r["port"]), s(&r["role"])), u(&r["retransmits"])))
        .collect();
    assert!(!want.is_empty());
    same("retransmits", &got, &want);

    // processes: distinct pids and connections per command.
    let d = duckdb(file, "SELECT comm, count(DISTINCT pid), count(DISTINCT conn_id) FROM events GROUP BY ALL");
    let want: BTreeMap<String, (u64, u64)> = d.iter().map(|r| (s(&r[0]), (u(&r[1]), u(&r[2])))).collect();
    let got: BTreeMap<String, (u64, u64)> =
        rows(doc, "processes").iter().map(|r| (s(&r["comm"]), (u(&r["pids"]), u(&r["connections"])))).collect();
    same("processes", &got, &want);

    // idle: the idlest connection's silence, from the last row whose counters changed.
    let top = &rows(doc, "idle")[0];
    let conn = u(&top["conn_id"]);
    let d = duckdb(
        file,
        &format!(
            "WITH e AS (SELECT ts, bytes_sent + bytes_received AS b FROM events WHERE conn_id = {conn}) \
             SELECT epoch_ns(max(ts)) - epoch_ns((SELECT min(ts) FROM e WHERE b = (SELECT max(b) FROM e))) FROM e"
        ),
    );
    // DuckDB reads the UTC timestamps at microsecond precision.
    let want = f(&d[0][0]);
    let got = f(&top["idle_ns"]);
    assert!((got - want).abs() < 2_000.0, "idle of conn {conn}: {got} vs {want}");
}
