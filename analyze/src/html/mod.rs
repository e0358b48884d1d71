//! `gespann analyze --html FILE`: the reports as one self-contained HTML page with charts.
//!
//! Shaped so that the page can say nothing the SQL does not: each chart's data is the result
//! of one query in `queries/charts/` run through the same [`Analyzer`] session as the reports
//! ([`charts`]: reading results, one point per row), drawn in Rust by plotters as SVG
//! ([`draw`]: pure, data in and text out) and placed inline in a page written by hand
//! ([`page`]: no script, no external style, font or image, every value escaped). So the file
//! needs nothing but a browser, works offline, and a chart can be checked against its query
//! (each figure carries `data-points`, its query's row count, and draws one `<circle>` per
//! point of a line). The tables below the charts are the report sections the terminal shows,
//! and the lost-events banner is the terminal's ([`crate::output::lost_banner`]).

pub mod charts;
mod draw;
pub mod page;

use std::path::Path;

use crate::AnalyzeError;
use crate::output::section_from;
use crate::render::Section;
use crate::session::Analyzer;
use charts::{Kind, SPECS};
use page::Figure;

/// The recordings' metadata shown at the top of the page.
const RECORDINGS_SQL: &str = "SELECT source, hostname, kernel, gespann_version, schema_version, started_at, ended_at, \
     events_lost, rows, file_bytes, sample_interval_ms, command_line FROM recordings ORDER BY source";

/// Whether any chart reads the `connections` view (the caller then computes it once first).
pub fn charts_use_connections() -> bool {
    SPECS.iter().any(|s| s.sql().contains("connections"))
}

/// Every chart of [`SPECS`], its data from `analyzer`.
pub async fn figures(analyzer: &Analyzer) -> Result<Vec<Figure>, AnalyzeError> {
    let mut out = Vec::with_capacity(SPECS.len());
    for spec in SPECS {
        let t = std::time::Instant::now();
        let data = charts::load(analyzer, spec).await?;
        let svg = draw::svg(spec, &data).map_err(|cause| AnalyzeError::Draw { chart: spec.name.to_string(), cause })?;
        tracing::debug!(chart = spec.name, points = data.points(), elapsed = ?t.elapsed(), "chart drawn");
        out.push(Figure {
            name: spec.name.to_string(),
            title: spec.title.to_string(),
            answers: spec.answers(),
            svg,
            points: data.points(),
            wide: spec.kind == Kind::Distribution,
        });
    }
    Ok(out)
}

/// The recordings' metadata as a section: `sql` over the `recordings` table (a diff adds each
/// file's side), by default its columns people read.
pub async fn recordings_section(analyzer: &Analyzer, sql: Option<&str>) -> Result<Section, AnalyzeError> {
    let query = "the recordings' metadata";
    let df = analyzer.sql(query, sql.unwrap_or(RECORDINGS_SQL)).await?;
    section_from(df, "recordings", "", 0, query).await
}

/// Writes the page to `path` (replacing a file there: the user named it).
pub fn write(path: &Path, html: &str) -> Result<(), AnalyzeError> {
    std::fs::write(path, html).map_err(|cause| AnalyzeError::Write { path: path.to_owned(), cause })
}
