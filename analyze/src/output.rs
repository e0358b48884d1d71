//! What every analyzer run shares on its way out: the progress indicator, the lost-events
//! banner, report sections collected from DataFrames, and writing them.
//!
//! Shaped as its own module so that both runs that print reports, the report run in [`crate::cli`]
//! and the comparison in [`crate::diff`], depend on it and neither depends on the other.

use std::io::Write;
use std::time::Duration;

use datafusion::prelude::DataFrame;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::AnalyzeError;
use crate::inputs::Recording;
use crate::render::{self, Format, Layout, Section};
use crate::reports::Report;
use crate::session::Analyzer;

/// A write that stopped because the reader of stdout went away (`| head`) is a success.
pub(crate) fn ok_if_pipe_closed(r: std::io::Result<()>) -> Result<(), AnalyzeError> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AnalyzeError::Output(e)),
        Ok(()) => Ok(()),
    }
}

/// A progress indicator on stderr that appears only when work takes longer than a moment.
pub(crate) struct Progress {
    bar: ProgressBar,
    reveal: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(enabled: bool, steps: u64, what: String) -> Self {
        let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what);
        let reveal = enabled.then(|| {
            let b = bar.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(600)).await;
                b.set_draw_target(ProgressDrawTarget::stderr());
                b.enable_steady_tick(Duration::from_millis(120));
            })
        });
        Progress { bar, reveal }
    }

    pub(crate) fn step(&self, msg: String) {
        self.bar.set_message(msg);
    }

    pub(crate) fn inc(&self) {
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(h) = self.reveal.take() {
            h.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// How results are shown: `--format`, `--wide`, `--width`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Look {
    pub(crate) format: Format,
    pub(crate) wide: bool,
    pub(crate) width: Option<u16>,
}

impl Look {
    /// The layout of people's tables of these inputs.
    pub(crate) fn layout(&self, recs: &[Recording]) -> Layout {
        Layout { width: self.width, wide: self.wide, sources: recs.iter().map(|r| r.source.clone()).collect() }
    }
}

pub(crate) fn describe(recs: &[Recording]) -> String {
    let rows: u64 = recs.iter().map(|r| r.rows).sum();
    format!("{rows} events in {} recording{}", recs.len(), if recs.len() == 1 { "" } else { "s" })
}

/// The loud lines about lost events for people-facing output (empty when nothing was lost).
pub(crate) fn lost_banner(recs: &[Recording]) -> Vec<String> {
    recs.iter()
        .filter(|r| r.meta.events_lost > 0)
        .map(|r| {
            format!(
                "!!! WARNING: {} events were LOST while recording `{}` (the kernel ring buffer was full): every count below is a lower bound !!!",
                r.meta.events_lost, r.source
            )
        })
        .collect()
}

/// Logs lost events on stderr; called once results are in, so that a failing run prints only its
/// error.
pub(crate) fn log_lost(recs: &[Recording]) {
    for r in recs.iter().filter(|r| r.meta.events_lost > 0) {
        tracing::warn!(
            file = %r.source,
            events_lost = r.meta.events_lost,
            "events were lost while recording; counts are lower bounds"
        );
    }
}

/// Writes report sections, after the lost-events banner for people-facing formats.
pub(crate) fn write_report_output(
    out: &mut dyn Write,
    format: Format,
    layout: &Layout,
    banner: &[String],
    sections: &[Section],
) -> std::io::Result<()> {
    if matches!(format, Format::Table | Format::Markdown) {
        let width = layout.width.filter(|_| format == Format::Table);
        for line in banner.iter().flat_map(|l| crate::tables::wrap(l, width)) {
            writeln!(out, "{line}")?;
        }
        if !banner.is_empty() {
            writeln!(out)?;
        }
    }
    render::write_sections(out, format, sections, false, layout)?;
    out.flush()
}

/// Runs one report, keeping at most `top` rows (0: all), without the optional columns no row
/// has a value in ([`render::drop_unset_optional`]).
pub async fn run_report(analyzer: &Analyzer, report: &Report, top: usize) -> Result<Section, AnalyzeError> {
    let query = match &report.file {
        Some(p) => format!("report `{}` ({})", report.name, p.display()),
        None => format!("report `{}`", report.name),
    };
    let df = analyzer.sql(&query, &report.sql).await?;
    Ok(render::drop_unset_optional(section_from(df, &report.name, &report.answers, top, &query).await?))
}

/// Collects a DataFrame into a section of at most `top` rows (0: all).
pub async fn section_from(
    df: DataFrame,
    name: &str,
    answers: &str,
    top: usize,
    query: &str,
) -> Result<Section, AnalyzeError> {
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let df = if top > 0 { df.limit(0, Some(top + 1)).map_err(|e| AnalyzeError::query(query, e))? } else { df };
    let mut batches = df.collect().await.map_err(|e| AnalyzeError::query(query, e))?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let truncated = top > 0 && rows > top;
    if truncated {
        let mut keep = top;
        let mut cut = Vec::new();
        for b in batches {
            if keep == 0 {
                break;
            }
            let n = b.num_rows().min(keep);
            cut.push(b.slice(0, n));
            keep -= n;
        }
        batches = cut;
    }
    Ok(Section { name: name.to_string(), answers: answers.to_string(), schema, batches, truncated })
}
