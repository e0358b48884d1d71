//! Tables for people at a terminal's width: every sample recording's default report (and the
//! reports outside it) rendered at 80 and 120 columns, against the snapshots in
//! `tests/snapshots/tables/` (UPDATE_SNAPSHOTS=1 rewrites them; review the diff), no line wider
//! than the width, times as `HH:MM:SS.mmm` with the date said once, IPv6 endpoints bracketed,
//! and `--wide` with every column of the SQL. The width is given with `--width`, so nothing
//! depends on the terminal the tests run in.

mod support;

use std::path::{Path, PathBuf};

use gespann_analyze::reports::BUILTIN;
use gespann_analyze::tables::header;
use support::*;

const REPORTS: &[&str] = &["default", "containers", "processes", "retransmits"];

fn samples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(workspace().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    v.sort();
    v
}

/// The tables of `inputs` at `width` (`--wide` too when `wide`), with the workspace's path cut
/// from the file names.
fn tables(inputs: &[&Path], width: u16, wide: bool, reports: &[&str]) -> String {
    // Named relative to the workspace, as a user in it would: the heading is wrapped with the
    // names it shows, so an absolute path would make the wrapping depend on the checkout's place.
    // Every test here changes to the same directory.
    std::env::set_current_dir(workspace()).unwrap();
    let rel: Vec<&Path> = inputs.iter().map(|p| p.strip_prefix(workspace()).unwrap_or(p)).collect();
    let w = width.to_string();
    let mut a: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
    a.extend(["--width", &w]);
    for r in reports {
        a.extend(["--report", r]);
    }
    if wide {
        a.push("--wide");
    }
    let out = analyze(&a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
    out.replace(&format!("{}/", workspace().display()), "")
}

fn check_snapshot(name: &str, got: &str, failures: &mut Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/tables").join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(want) if want == got => {}
        Ok(want) => failures.push(format!("{} differs:\n--- want\n{want}\n--- got\n{got}", path.display())),
        Err(_) => failures.push(format!("no snapshot {} (UPDATE_SNAPSHOTS=1 writes it)", path.display())),
    }
}

fn too_long(text: &str, width: usize) -> Vec<&str> {
    text.lines().filter(|l| l.chars().count() > width).collect()
}

/// The cells of a table line (`│ a ┆ b │`).
fn cells(line: &str) -> Vec<String> {
    line.trim_matches('│').split('┆').map(|c| c.trim().to_string()).collect()
}

/// The header and rows of report `name`'s table in `text`.
fn table_of(text: &str, name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let start = text.find(&format!("== {name} ==")).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    let rest = &text[start..];
    let end = rest[1..].find("\n== ").map_or(rest.len(), |i| i + 1);
    let lines: Vec<&str> = rest[..end].lines().filter(|l| l.starts_with('│')).collect();
    match lines.split_first() {
        Some((h, rows)) => (cells(h), rows.iter().map(|r| cells(r)).collect()),
        None => (Vec::new(), Vec::new()),
    }
}

fn is_clock(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn every_samples_tables_match_their_snapshots_at_80_and_120_columns() {
    let mut failures = Vec::new();
    let all = samples();
    let mut runs: Vec<(String, Vec<&Path>)> =
        all.iter().map(|s| (s.file_stem().unwrap().to_string_lossy().into_owned(), vec![s.as_path()])).collect();
    runs.push(("all-samples".into(), all.iter().map(PathBuf::as_path).collect()));
    for (name, inputs) in &runs {
        for width in [80u16, 120] {
            let text = tables(inputs, width, false, REPORTS);
            let long = too_long(&text, usize::from(width));
            assert!(long.is_empty(), "{name} at {width}: lines wider than {width}:\n{}", long.join("\n"));
            check_snapshot(&format!("{name}-{width}"), &text, &mut failures);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn times_are_clock_times_on_the_day_said_above_the_reports() {
    let f = workspace().join("samples/refused.parquet");
    let doc = analyze_json(&[f.to_str().unwrap(), "--report", "failures"]);
    let first_at = doc["failures"][0]["first_at"].as_str().unwrap().to_string();
    // RFC 3339 in JSON, unchanged: 2026-12-04T18:07:42.953...Z
    let (day, time) = first_at.split_once('T').unwrap();
    let clock = &time[..12];
    for width in [80, 120] {
        let text = tables(&[&f], width, false, &["default"]);
        assert!(text.starts_with(&format!("Recording samples/refused.parquet; times are UTC, on {day}.\n")), "{text}");
        assert!(!text.contains(&format!("{day} ")), "the date is said once, not in cells:\n{text}");
        let (head, rows) = table_of(&text, "failures");
        let at = head.iter().position(|h| h == "first_at").unwrap_or_else(|| panic!("first_at at {width}: {head:?}"));
        assert_eq!(rows[0][at], clock, "{text}");
        for (report, column) in [("summary", "started_at"), ("durations", "opened_at"), ("timeline", "bucket_start")] {
            let (head, rows) = table_of(&text, report);
            let j = head.iter().position(|h| h == column).unwrap_or_else(|| panic!("{report}.{column}: {head:?}"));
            assert!(!rows.is_empty() && rows.iter().all(|r| is_clock(&r[j])), "{report}.{column}:\n{text}");
        }
    }
    // Recordings of two days keep the date in each time (the version 1 recording is of an
    // earlier day than every sample).
    let v1 = gespann_testkit::recordings::v1_web();
    let text = tables(&[&f, &v1], 120, false, &["summary"]);
    assert!(text.starts_with("2 recordings; times are UTC.\n"), "{text}");
    let (head, rows) = table_of(&text, "summary");
    let j = head.iter().position(|h| h == "started_at").unwrap();
    assert!(rows.iter().all(|r| r[j].len() == 23 && is_clock(&r[j][11..])), "{text}");
}

#[test]
fn addresses_and_ports_are_one_column_with_ipv6_in_brackets() {
    let f = workspace().join("samples/refused.parquet");
    let doc = analyze_json(&[f.to_str().unwrap(), "--report", "failures"]);
    let want: Vec<String> = doc["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let (a, p) = (r["remote_addr"].as_str().unwrap(), r["remote_port"].as_u64().unwrap());
            if a.contains(':') { format!("[{a}]:{p}") } else { format!("{a}:{p}") }
        })
        .collect();
    assert!(want.iter().any(|e| e.starts_with("[::1]:")), "the sample has an IPv6 failure: {want:?}");
    for width in [80, 120] {
        let (head, rows) = table_of(&tables(&[&f], width, false, &["failures"]), "failures");
        let j = head.iter().position(|h| h == "remote").unwrap();
        assert!(!head.iter().any(|h| h == "remote_addr" || h == "remote_port"), "{head:?}");
        assert_eq!(rows.iter().map(|r| r[j].clone()).collect::<Vec<_>>(), want);
    }
}

#[test]
fn the_source_column_is_shown_only_for_several_inputs() {
    let all = samples();
    let web = workspace().join("samples/web.parquet");
    let (one, _) = table_of(&tables(&[&web], 120, false, &["durations"]), "durations");
    assert!(!one.contains(&"source".to_string()), "{one:?}");
    let text = tables(&all.iter().map(PathBuf::as_path).collect::<Vec<_>>(), 120, false, &["durations"]);
    let (head, rows) = table_of(&text, "durations");
    assert_eq!(head[0], "source");
    // Named below the directory the line above the reports names.
    assert!(rows.iter().all(|r| r[0].ends_with(".parquet") && !r[0].contains('/')), "{text}");
    assert!(rows.iter().any(|r| r[0] == "web.parquet"), "{text}");
}

#[test]
fn columns_that_do_not_fit_are_named_and_wide_shows_every_column() {
    let web = workspace().join("samples/web.parquet");
    let text = tables(&[&web], 80, false, &["durations"]);
    assert!(text.contains("(left out at 80 columns: conn_id, pid,"), "{text}");
    let all: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    for sample in samples() {
        let s = sample.to_str().unwrap();
        let mut a = vec![s, "--format", "csv"];
        for r in &all {
            a.extend(["--report", r]);
        }
        let csv = analyze(&a).unwrap();
        let text = tables(&[&sample], 80, true, &all);
        assert!(!text.contains("(left out at") && !text.contains('…'), "{s} --wide:\n{text}");
        for (report, _) in BUILTIN {
            // `# report` then the CSV header: the SQL's columns (the optional ones without a
            // value already left out, in every format).
            let at = csv.find(&format!("# {report}\n")).unwrap() + report.len() + 3;
            let names: Vec<String> = csv[at..].lines().next().unwrap().split(',').map(header).collect();
            let (head, rows) = table_of(&text, report);
            if rows.is_empty() {
                continue;
            }
            assert_eq!(head, names, "{report} of {s} --wide");
        }
    }
}

#[test]
fn the_readmes_example_is_what_the_command_prints() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let command = "$ gespann analyze samples/resets.parquet --report resets --width 120\n";
    let at = readme.find(command).expect("the README's example of the resets sample") + command.len();
    let shown = &readme[at..at + readme[at..].find("```").unwrap()];
    let printed = tables(&[&workspace().join("samples/resets.parquet")], 120, false, &["resets"]);
    assert_eq!(shown, printed, "README.md's example differs from what the command prints now");
}
