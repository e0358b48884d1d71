//! `gespann analyze --diff BEFORE AFTER`: what changed between two (sets of) recordings.
//!
//! Both sides go into one session, with a table `sides(source, side)` saying which file is on
//! which side; the comparison itself is SQL (`queries/diff/`), like every report. With
//! `--html`, the page holds the comparison's tables and each side's charts, from a session of
//! that side's recordings alone (each side's time axis is its own window).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::AnalyzeError;
use crate::inputs;
use crate::output::{
    Look, Progress, describe, log_lost, lost_banner, ok_if_pipe_closed, section_from, write_report_output,
};
use crate::reports::{DIFF_DESTINATIONS, DIFF_SUMMARY, parse_header};
use crate::session::{Analyzer, Options};

/// Runs the diff of `sides` (`[before, after]`), keeping `top` destinations (0: all), shown as
/// `look` says; with `html`, writes the page there instead of the results to `out`.
pub(crate) async fn run(
    sides: &[String],
    opts: &Options,
    look: Look,
    top: usize,
    html: Option<&Path>,
    out: &mut dyn Write,
    progress: bool,
) -> Result<(), AnalyzeError> {
    let [before, after] = sides else {
        return Err(AnalyzeError::Diff("takes exactly two recordings (BEFORE AFTER)".into()));
    };
    let before = inputs::open_all(std::slice::from_ref(before)).await?;
    let after = inputs::open_all(std::slice::from_ref(after)).await?;
    let b_paths: BTreeSet<_> = before.iter().filter_map(|r| std::fs::canonicalize(&r.path).ok()).collect();
    if let Some(both) = after.iter().find(|r| std::fs::canonicalize(&r.path).ok().is_some_and(|p| b_paths.contains(&p)))
    {
        return Err(AnalyzeError::Diff(format!(
            "`{}` is on both sides; compare two different recordings",
            both.source
        )));
    }
    let mut side_of = Vec::new();
    side_of.extend(before.iter().map(|r| (r.source.clone(), "before")));
    side_of.extend(after.iter().map(|r| (r.source.clone(), "after")));
    // Each side's own session draws its charts (`--html`).
    let side_recordings = html.map(|_| [before.clone(), after.clone()]);
    let mut all = before;
    all.extend(after);
    let what = describe(&all);
    let banner = lost_banner(&all);
    let layout = look.layout(&all);
    let mut analyzer = Analyzer::new(all, opts).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("side", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(side_of.iter().map(|(s, _)| s.as_str()))),
            Arc::new(StringArray::from_iter_values(side_of.iter().map(|(_, s)| *s))),
        ],
    )
    .map_err(|e| AnalyzeError::query("the `sides` table", e.into()))?;
    analyzer.register_batch("sides", batch)?;

    let p = Progress::start(progress, 3, format!("diff over {what}"));
    analyzer.materialize_connections().await?;
    p.inc();
    let mut sections = Vec::new();
    for (name, sql, top) in [("summary", DIFF_SUMMARY, 0), ("destinations", DIFF_DESTINATIONS, top)] {
        p.step(format!("diff: {name}"));
        let (_, answers) = parse_header(sql);
        let query = format!("diff query `{name}`");
        let df = analyzer.sql(&query, sql).await?;
        let section = section_from(df, name, &answers.unwrap_or_default(), top, &query).await?;
        sections.push(crate::render::drop_unset_optional(section));
        p.inc();
    }
    drop(p);
    log_lost(&analyzer.recordings);
    match (html, side_recordings) {
        (Some(path), Some(side_recordings)) => {
            write_html(path, analyzer, side_recordings, opts, &what, &banner, &sections, progress).await
        }
        _ => ok_if_pipe_closed(write_report_output(out, look.format, &layout, &banner, &sections)),
    }
}

/// The page of a diff: the recordings with their side, each side's charts, the comparison.
#[expect(clippy::too_many_arguments, reason = "one caller, which has each of them at hand")]
async fn write_html(
    path: &Path,
    analyzer: Analyzer,
    side_recordings: [Vec<inputs::Recording>; 2],
    opts: &Options,
    what: &str,
    banner: &[String],
    sections: &[crate::render::Section],
    progress: bool,
) -> Result<(), AnalyzeError> {
    let recordings = crate::html::recordings_section(
        &analyzer,
        Some(
            "SELECT s.side, r.source, r.hostname, r.kernel, r.gespann_version, r.schema_version, r.started_at, \
             r.ended_at, r.events_lost, r.rows, r.file_bytes, r.sample_interval_ms, r.command_line \
             FROM recordings r JOIN sides s ON s.source = r.source ORDER BY s.side DESC, r.source",
        ),
    )
    .await?;
    // One session at a time: each may use the whole memory limit.
    drop(analyzer);
    let mut charts = Vec::with_capacity(2);
    for (side, recs) in ["before", "after"].into_iter().zip(side_recordings) {
        let p = Progress::start(progress, 1, format!("charts of {side}: {}", describe(&recs)));
        let heading =
            format!("Charts: {side} ({})", recs.iter().map(|r| r.source.as_str()).collect::<Vec<_>>().join(", "));
        let mut side_analyzer = Analyzer::new(recs, opts).await?;
        side_analyzer.materialize_connections().await?;
        let figures = crate::html::figures(&side_analyzer).await?;
        charts.push(crate::html::page::ChartGroup { heading: Some(heading), key: Some(side.to_string()), figures });
        drop(p);
    }
    let page = crate::html::page::Page {
        title: format!("gespann analyze --diff: {what}"),
        banner,
        recordings: &recordings,
        charts,
        sections,
        tables_heading: "What changed",
    };
    crate::html::write(path, &crate::html::page::render(&page))
}
