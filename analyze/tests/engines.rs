//! The format every engine reads: pyarrow, DuckDB, Polars, ClickHouse (chdb) and Spark each
//! read one recording (zstd pages, and again with LZ4 pages) with no options and must see the rows written, their times to the
//! microsecond, the totals and the rows per kind; pyarrow must also find the `gespann.*`
//! metadata in the Arrow schema. The readers are in `engines/read.py`; the `.venv` that
//! `cargo xtask test` sets up has all five.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use gespann_common::recording::Pages;
use gespann_testkit::fixtures::{mixed_connections, write_mixed_with};
use serde_json::{Value, json};
use support::*;

#[test]
fn five_engines_read_a_recording_without_options_and_agree_with_what_was_written() {
    engines_agree(Pages::Small);
}

/// The pages `gespann record` writes while it records (LZ4), which a recording rebuilt by
/// `gespann recover`, or one too large to compact, keeps.
#[test]
fn five_engines_read_a_recording_with_lz4_pages_too() {
    engines_agree(Pages::Fast);
}

fn engines_agree(pages: Pages) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.parquet");
    let rows = mixed_connections(3_000, Duration::from_secs(600), 7);
    // Sub-microsecond parts on the first and last rows: stored truncated to the microsecond.
    assert!(rows.first().unwrap().ts_ns % 1_000 != 0 || rows.last().unwrap().ts_ns % 1_000 != 0);
    write_mixed_with(&path, &rows, pages);

    let mut kinds = BTreeMap::new();
    for e in &rows {
        *kinds.entry(e.kind.as_str().to_owned()).or_insert(0u64) += 1;
    }
    let sum = |f: fn(&gespann_common::Event) -> u64| rows.iter().map(f).sum::<u64>();
    let want = json!({
        "rows": rows.len(),
        "first_us": rows.iter().map(|e| e.ts_ns).min().unwrap().div_euclid(1_000),
        "last_us": rows.iter().map(|e| e.ts_ns).max().unwrap().div_euclid(1_000),
        "bytes_sent": sum(|e| e.bytes_sent),
        "bytes_received": sum(|e| e.bytes_received),
        "packets_sent": sum(|e| e.packets_sent),
        "conn_id_sum": sum(|e| e.conn_id),
        "kinds": kinds,
        "cgroups": 1,
    });

    let out = std::process::Command::new(python())
        .arg(workspace().join("analyze/tests/engines/read.py"))
        .arg(&path)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()
        .expect("run python (cargo xtask test sets up .venv)");
    assert!(out.status.success(), "read.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).expect("read.py prints JSON");

    let mut wrong = Vec::new();
    for engine in ["pyarrow", "duckdb", "polars", "clickhouse", "spark"] {
        let mut saw = got[engine].clone();
        if let Some(e) = saw.get("error") {
            wrong.push(format!("{engine} cannot read it: {e}"));
            continue;
        }
        let o = saw.as_object_mut().unwrap();
        let metadata = o.remove("metadata");
        let unit = o.remove("ts_unit");
        if saw != want {
            wrong.push(format!("{engine} saw {saw}\n  written {want}"));
        }
        if engine == "pyarrow" {
            assert_eq!(unit, Some(json!("us")), "ts is stored in microseconds");
            let m = metadata.unwrap_or_default();
            assert_eq!(m["gespann.schema_version"], json!(gespann_common::schema::SCHEMA_VERSION.to_string()));
            assert_eq!(m["gespann.ended_at"], json!("2025-11-24T16:10:00Z"), "closing metadata too: {m}");
            assert_eq!(m["gespann.events_lost"], json!("0"));
            assert_eq!(m["gespann.hostname"], json!("test"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
