//! `gespann analyze --html`: the page of the sample recordings has the seven charts, names no
//! URL (it must open offline), each chart plots exactly as many points as its query returns rows
//! when run on its own, and the report tables, the recordings' metadata and the lost-events
//! banner are there. No browser here: `html_chromium.rs` opens the page in one.

mod support;

use std::path::{Path, PathBuf};

use gespann_analyze::inputs;
use gespann_analyze::reports::{CHARTS, default_reports};
use gespann_analyze::session::{Analyzer, Options};
use support::*;

fn samples() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(workspace().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `gespann analyze INPUTS.. EXTRA.. --html OUT` and returns the page.
fn page(inputs: &[String], extra: &[&str], out: &Path) -> String {
    let mut a: Vec<&str> = inputs.iter().map(String::as_str).collect();
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--html", out.to_str().unwrap()]);
    let stdout = analyze(&a).unwrap_or_else(|e| panic!("analyze {a:?}: {e}"));
    assert!(stdout.is_empty(), "--html writes the page, not stdout: {stdout}");
    std::fs::read_to_string(out).unwrap()
}

/// The `<figure>` element with id `chart-<id>`.
fn figure<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!("<figure id=\"chart-{id}\"")).unwrap_or_else(|| panic!("no chart `{id}`"));
    let len = html[start..].find("</figure>").expect("figure closed");
    &html[start..start + len]
}

fn data_points(figure: &str) -> usize {
    let at = figure.find("data-points=\"").expect("data-points") + "data-points=\"".len();
    let end = figure[at..].find('"').unwrap();
    figure[at..at + end].parse().unwrap()
}

/// Nothing in the page is fetched: no URL of any scheme but `data:`, no script, no stylesheet
/// or font from elsewhere.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in ["http://", "https://", "//cdn", "@import", "<script", "<link", "<iframe", "<object", "<embed", "ftp://"]
    {
        assert!(!lower.contains(bad), "the page contains `{bad}`");
    }
    for attr in ["src=", "href=", "url("] {
        for (i, _) in lower.match_indices(attr) {
            let rest = lower[i + attr.len()..].trim_start_matches(['"', '\'', ' ']);
            assert!(
                rest.starts_with("data:") || rest.starts_with('#'),
                "`{}` names an external resource",
                &html[i..(i + 80).min(html.len())]
            );
        }
    }
}

/// Rows of every chart query run on its own, in a fresh session over `inputs`.
fn query_rows(inputs: &[String]) -> Vec<(&'static str, usize)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let recordings = inputs::open_all(inputs).await.unwrap();
        let analyzer = Analyzer::new(recordings, &Options::default()).await.unwrap();
        let mut out = Vec::new();
        for (name, sql) in CHARTS {
            let batches = analyzer.sql(name, sql).await.unwrap().collect().await.unwrap();
            out.push((*name, batches.iter().map(|b| b.num_rows()).sum()));
        }
        out
    })
}

#[test]
fn the_page_of_the_samples_has_seven_charts_each_plotting_one_point_per_row_of_its_query() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let inputs = samples();
    let t = std::time::Instant::now();
    let html = page(&inputs, &[], &out);
    eprintln!("page of {} samples written in {:?} ({} bytes)", inputs.len(), t.elapsed(), html.len());

    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_self_contained(&html);
    assert_eq!(html.matches("<figure ").count(), 7, "seven charts");
    assert_eq!(html.matches("<svg").count(), 7, "one SVG per chart");
    let rows = query_rows(&inputs);
    assert_eq!(rows.len(), 7);
    for (name, rows) in rows {
        let f = figure(&html, name);
        assert_eq!(data_points(f), rows, "chart `{name}`: data-points against its query's rows");
        if name != "top_talkers" {
            // Lines mark each point with one circle.
            assert_eq!(f.matches("<circle").count(), rows, "chart `{name}`: circles against its query's rows");
        }
        // No chart is an empty frame for the samples: a time chart has every bucket of each
        // window (zero or not; the samples have no retransmit, so that line is flat at zero),
        // and there are talkers and TCP destinations with an RTT.
        assert!(rows > 0, "chart `{name}` has no rows in the samples");
    }
    // The talkers chart: one bar per row, each in two segments (sent, received).
    let talkers = figure(&html, "top_talkers");
    assert!(talkers.matches("<rect").count() >= 2 * data_points(talkers), "{talkers}");

    // The default report's tables (with `containers`: a sample has containers) and the metadata.
    for r in default_reports(true) {
        assert!(html.contains(&format!("<h3 id=\"report-{r}\">")), "report `{r}` is on the page");
    }
    assert!(html.contains("<table id=\"table-summary\">") && html.contains("<table id=\"table-talkers\">"));
    let meta = &html[html.find("<table id=\"recordings\">").expect("the recordings' metadata")..];
    let meta = &meta[..meta.find("</table>").unwrap()];
    for input in &inputs {
        let name = Path::new(input).file_name().unwrap().to_string_lossy().into_owned();
        assert!(meta.contains(&name), "{name} in the metadata table");
    }
    let kernel = gespann_common::RecordingReader::open(Path::new(&inputs[0])).unwrap().meta.kernel;
    assert!(meta.contains(&format!("<td>{kernel}</td>")), "kernel {kernel} shown: {meta}");
    assert!(!html.contains("class=\"lost\""), "no events were lost in the samples");
}

#[test]
fn a_recording_that_lost_events_gets_the_banner_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let rec = synth_file(dir.path(), "lossy.parquet", 3_000, 3, 17);
    let html = page(&[rec.to_string_lossy().into_owned()], &[], &dir.path().join("r.html"));
    let banner = html.find("<div class=\"lost\" role=\"alert\">").expect("the lost-events banner");
    assert!(
        html[banner..].starts_with("<div class=\"lost\" role=\"alert\">WARNING: 17 events were LOST"),
        "{}",
        &html[banner..banner + 200]
    );
    assert!(banner < html.find("<figure").unwrap(), "the banner comes before the charts");
    assert_self_contained(&html);
}

#[test]
fn a_diff_page_has_the_comparison_and_each_sides_charts() {
    let dir = tempfile::tempdir().unwrap();
    let before: PathBuf = synth_file(dir.path(), "before.parquet", 4_000, 7, 0);
    let after: PathBuf = synth_file(dir.path(), "after.parquet", 4_000, 8, 0);
    let out = dir.path().join("diff.html");
    let html = page(&[], &["--diff", before.to_str().unwrap(), after.to_str().unwrap()], &out);
    assert_self_contained(&html);
    assert_eq!(html.matches("<figure ").count(), 14, "seven charts per side");
    for side in ["before", "after"] {
        let rows = query_rows(&[if side == "before" { &before } else { &after }.to_string_lossy().into_owned()]);
        for (name, rows) in rows {
            assert_eq!(data_points(figure(&html, &format!("{side}-{name}"))), rows, "{side} {name}");
        }
    }
    assert!(html.contains("<h3 id=\"report-summary\">") && html.contains("<h3 id=\"report-destinations\">"));
    let meta = &html[html.find("<table id=\"recordings\">").unwrap()..];
    assert!(meta.contains("<th>side</th>") && meta.contains("before.parquet") && meta.contains("after.parquet"));
}
