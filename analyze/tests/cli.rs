//! The real `gespann analyze` binary, as a user runs it: bad inputs give one line on stderr and
//! exit 1, good ones give results on stdout only.

mod support;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use support::*;

fn gespann(args: &[&str]) -> Output {
    Command::new(gespann_bin()).arg("analyze").args(args).env("RUST_LOG", "warn").output().expect("run gespann")
}

/// Asserts a failure: exit 1, nothing on stdout, one line on stderr containing every `needle`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = gespann(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?} printed results");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("gespann: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
    }
}

fn write_parquet(path: &Path, schema: Arc<Schema>, columns: Vec<ArrayRef>, kv: &[(&str, &str)]) {
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv.iter().map(|(k, v)| KeyValue::new((*k).into(), (*v).to_string())).collect()))
        .build();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_empty_truncated_and_non_parquet_files_fail_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing.parquet");
    fails_with(&[s(&missing)], &["missing.parquet", "No such file"]);

    let empty = d.join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    fails_with(&[s(&empty)], &["empty.parquet", "is empty"]);

    let text = d.join("notes.parquet");
    std::fs::write(&text, b"this is a text file, not a recording at all").unwrap();
    fails_with(&[s(&text)], &["notes.parquet", "not a Parquet file"]);

    let good = handcounted_file(d);
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    fails_with(&[s(&cut)], &["cut.parquet", "truncated"]);
    // One bad file among good ones still fails, naming the bad one.
    fails_with(&[s(&good), s(&cut)], &["cut.parquet"]);
}

#[test]
fn foreign_parquet_files_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    let col: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(vec![1, 2]))];
    let foreign = dir.path().join("foreign.parquet");
    write_parquet(&foreign, schema.clone(), col.clone(), &[]);
    fails_with(&[s(&foreign)], &["foreign.parquet", "not a Gespann recording", "gespann.schema_version"]);
    let half = dir.path().join("half.parquet");
    write_parquet(&half, schema, col, &[("gespann.schema_version", "1")]);
    fails_with(&[s(&half)], &["half.parquet", "no column `ts`"]);
}

#[test]
fn a_newer_schema_version_asks_for_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("future.parquet");
    let schema = gespann_common::schema::schema();
    let batch = gespann_common::recording::BatchBuilder::default().finish();
    let future = (gespann_common::schema::SCHEMA_VERSION + 1).to_string();
    write_parquet(&newer, schema, batch.columns().to_vec(), &[("gespann.schema_version", future.as_str())]);
    fails_with(&[s(&newer)], &["future.parquet", &format!("schema version {future}"), "upgrade"]);
}

#[test]
fn sql_errors_show_datafusions_message() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    fails_with(&[s(&f), "--sql", "SELECT no_such_column FROM events"], &["--sql failed", "no_such_column"]);
    fails_with(&[s(&f), "--sql", "SELEC 1"], &["--sql failed", "SELEC"]);
}

#[test]
fn unknown_reports_list_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    fails_with(&[s(&f), "--report", "nope"], &["unknown report `nope`", "default", "failures", "retransmits"]);
}

#[test]
fn globs_and_directories_that_match_nothing_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("{}/*.parquet", s(dir.path()));
    fails_with(&[&pattern], &["matches no file"]);
    fails_with(&[s(dir.path())], &["holds no `.parquet` file"]);
    fails_with(&[], &["no recordings given"]);
}

#[test]
fn a_broken_user_report_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    let q = dir.path().join("q");
    std::fs::create_dir(&q).unwrap();
    std::fs::write(q.join("bad.sql"), "-- name: bad\nSELECT nope FROM connections ORDER BY 1\n").unwrap();
    fails_with(&[s(&f), "--queries", s(&q), "--report", "bad"], &["report `bad`", "bad.sql", "nope"]);
}

#[test]
fn the_default_report_answers_every_incident_question_on_stdout_only() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    let out = gespann(&[s(&f)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for section in gespann_analyze::reports::DEFAULT {
        assert!(text.contains(&format!("== {section} ==")), "no {section} in:\n{text}");
    }
    assert!(text.starts_with("!!! WARNING: 7 events were LOST"));
    assert!(text.contains("ECONNREFUSED") && text.contains("TCP_ABORT_ON_CLOSE"));
    // Readable units: 1,000,700 bytes and 5 s durations.
    assert!(text.contains("977.2 KiB"), "{text}");
    // The loss is also logged on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("events were lost"), "{err}");
}

#[test]
fn json_csv_and_markdown_are_complete_documents() {
    let dir = tempfile::tempdir().unwrap();
    let f = handcounted_file(dir.path());
    let out = gespann(&[s(&f), "--format", "json", "-r", "failures", "-r", "udp"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failures"].as_array().unwrap().len(), 2);
    assert_eq!(v["udp"].as_array().unwrap().len(), 2);

    let out = gespann(&[
        s(&f),
        "--format",
        "json",
        "--sql",
        "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY kind",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr[0]["kind"], "close");
    assert_eq!(arr[0]["n"], 4);

    let out = gespann(&[s(&f), "--format", "csv", "--sql", "SELECT conn_id, comm FROM connections ORDER BY conn_id"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "conn_id,comm");
    assert_eq!(lines[1], "1,curl");
    assert_eq!(lines.len(), 11);

    let out = gespann(&[s(&f), "--format", "markdown", "-r", "resets"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("## resets"), "{text}");
    assert!(text.contains("| reset_by"), "{text}");
}

#[test]
fn several_inputs_by_glob_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("node2");
    std::fs::create_dir(&sub).unwrap();
    handcounted_file(dir.path());
    handcounted_file(&sub);
    let pattern = format!("{}/*.parquet", s(dir.path()));
    let out = gespann(&[
        &pattern,
        s(&sub),
        "--format",
        "csv",
        "--sql",
        "SELECT source, count(*) AS connections FROM connections GROUP BY source ORDER BY source",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].ends_with("handcounted.parquet,10"));
    assert!(lines[2].contains("node2") && lines[2].ends_with(",10"));
}

#[test]
fn list_reports_names_each_with_its_question() {
    let out = gespann(&["--list-reports"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let names: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(": ")).collect();
    for n in [
        "default",
        "summary",
        "failures",
        "resets",
        "talkers",
        "latency",
        "durations",
        "processes",
        "timeline",
        "udp",
        "retransmits",
    ] {
        assert!(names.get(n).is_some_and(|a| a.len() > 20), "{n} missing in:\n{text}");
    }
}

#[test]
fn diff_shows_new_vanished_and_worse_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before.parquet");
    let after = dir.path().join("after.parquet");
    let events = handcounted_events();
    write_recording(&before, &events, 0, T0, T0 + 8 * SEC);
    // After: the database destination recovered (no failures), the web destination resets
    // everything, and a new destination appears.
    let mut after_events: Vec<_> =
        events.iter().filter(|e| e.remote_addr.to_string() != "198.51.100.7").cloned().collect();
    for e in after_events.iter_mut() {
        if e.conn_id == 1 && e.kind == gespann_common::EventKind::Close {
            e.kind = gespann_common::EventKind::Reset;
            e.reset_by = Some(gespann_common::ResetBy::Remote);
        }
    }
    let mut new = Conn::tcp("192.0.2.99", 8443, "node", 900).at(gespann_common::EventKind::Open, 7.9, 99);
    new.rtt_us = Some(100);
    after_events.push(new);
    write_recording(&after, &after_events, 0, T0, T0 + 8 * SEC);
    let out = gespann(&["--diff", s(&before), s(&after), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum = v["summary"].as_array().unwrap();
    assert_eq!(sum[0]["side"], "before");
    assert_eq!(sum[0]["failed"], 3);
    assert_eq!(sum[1]["failed"], 1);
    assert_eq!(sum[1]["reset"], 3);
    let d = v["destinations"].as_array().unwrap();
    let find = |peer: &str| d.iter().find(|r| r["peer"] == peer).unwrap_or_else(|| panic!("{peer}"));
    assert_eq!(d[0]["change"], "new");
    assert_eq!(find("192.0.2.99")["change"], "new");
    assert_eq!(find("198.51.100.7")["change"], "vanished");
    assert_eq!(find("198.51.100.7")["failures_before"], 2);
    let web = find("192.0.2.10");
    assert_eq!(web["change"], "worse");
    assert_eq!(web["resets_before"], 2);
    assert_eq!(web["resets_after"], 3);
    assert_eq!(find("(clients)")["change"], "same");

    // The same file on both sides is refused.
    fails_with(&["--diff", s(&before), s(&before)], &["both sides"]);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth_file(dir.path(), "big.parquet", 20_000, 3, 0);
    for format in ["csv", "table"] {
        let mut child = Command::new(gespann_bin())
            .args(["analyze", s(&f), "--format", format, "--sql", "SELECT * FROM events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {err}");
        assert!(err.is_empty(), "{format}: {err}");
    }
}
