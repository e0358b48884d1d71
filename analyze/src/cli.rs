//! `gespann analyze`: arguments, and the run from arguments to results on stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use datafusion::prelude::DataFrame;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use crate::AnalyzeError;
use crate::inputs::{self, Recording};
pub use crate::render::Format;
use crate::render::{self, Section};
use crate::reports::{Catalog, DEFAULT, DEFAULT_NAME, Report};
use crate::session::{Analyzer, Options};

/// Arguments of `gespann analyze`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  gespann analyze capture.parquet                     # the default report
  gespann analyze capture.parquet --report failures --report latency
  gespann analyze 'captures/*.parquet' node2/         # several recordings
  gespann analyze capture.parquet --sql \"SELECT remote_addr, count(*) FROM connections GROUP BY 1 ORDER BY 2 DESC\"
  gespann analyze --diff before.parquet after.parquet # what changed
  gespann analyze --list-reports

SQL sees the table `events` (every row of every input, with a `source` column naming its file),
the view `connections` (one row per (source, conn_id)), the table `recordings` (file metadata)
and the function epoch_ns(timestamp).")]
pub struct AnalyzeArgs {
    /// Recordings: files, globs (quote them) or directories (every `*.parquet` inside).
    #[arg(value_name = "RECORDING")]
    pub inputs: Vec<String>,

    /// Report to run (repeatable); `default` is the incident overview. See --list-reports.
    #[arg(long = "report", short = 'r', value_name = "NAME")]
    pub reports: Vec<String>,

    /// Run this SQL instead of reports.
    #[arg(long, value_name = "QUERY", conflicts_with = "reports")]
    pub sql: Option<String>,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// List the reports and what each answers, then exit.
    #[arg(long)]
    pub list_reports: bool,

    /// Also load the reports in this directory (`*.sql`, header `-- name:` / `-- answers:`).
    #[arg(long, value_name = "DIR")]
    pub queries: Vec<PathBuf>,

    /// Compare two recordings (each may also be a glob or a directory): new and vanished
    /// destinations, failures, resets, RTT and bytes per destination, side by side.
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], conflicts_with_all = ["sql", "reports"])]
    pub diff: Option<Vec<String>>,

    /// Rows per report (0: all). Does not apply to --sql.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// Memory the query engine may use (e.g. 512MiB, 4GiB). Sorts and aggregations spill to
    /// disk beyond it, and connections that do not fit are computed in several passes.
    #[arg(long, default_value = "2GiB", value_parser = parse_size, value_name = "SIZE")]
    pub memory_limit: u64,

    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Parses `2GiB`, `512MiB`, `1.5G`, `100000000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("`{s}` is not a size (e.g. 512MiB, 2GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit `{other}` in `{s}`")),
    };
    let v = (n * mult as f64) as u64;
    if v < (16 << 20) {
        return Err(format!("`{s}` is too small: the engine needs at least 16MiB"));
    }
    Ok(v)
}

/// Runs `gespann analyze`, writing the results to stdout.
pub fn run(args: AnalyzeArgs) -> Result<(), AnalyzeError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let interactive = std::io::stderr().is_terminal();
    run_with(args, &mut out, interactive)
}

/// Runs `gespann analyze`, writing the results to `out`. `progress`: show a progress indicator
/// on stderr when work takes longer than a moment.
pub fn run_with(args: AnalyzeArgs, out: &mut dyn Write, progress: bool) -> Result<(), AnalyzeError> {
    let mut catalog = Catalog::builtin();
    for dir in &args.queries {
        catalog.add_dir(dir)?;
    }
    if args.list_reports {
        return ok_if_pipe_closed(list_reports(out, &catalog));
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let rt = builder.build().map_err(|e| AnalyzeError::Engine(e.to_string()))?;
    rt.block_on(run_async(&args, &catalog, out, progress))
}

fn ok_if_pipe_closed(r: std::io::Result<()>) -> Result<(), AnalyzeError> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AnalyzeError::Output(e)),
        Ok(()) => Ok(()),
    }
}

fn list_reports(out: &mut dyn Write, catalog: &Catalog) -> std::io::Result<()> {
    writeln!(out, "{DEFAULT_NAME}: the incident overview, all of: {}", DEFAULT.join(", "))?;
    for r in catalog.all() {
        let origin = match &r.file {
            Some(p) => format!(" [{}]", p.display()),
            None => String::new(),
        };
        writeln!(out, "{}{origin}: {}", r.name, r.answers)?;
    }
    Ok(())
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

async fn run_async(
    args: &AnalyzeArgs,
    catalog: &Catalog,
    out: &mut dyn Write,
    progress: bool,
) -> Result<(), AnalyzeError> {
    let opts =
        Options { memory_limit: usize::try_from(args.memory_limit).unwrap_or(usize::MAX), threads: args.threads };
    if let Some(sides) = &args.diff {
        if !args.inputs.is_empty() {
            return Err(AnalyzeError::Diff(format!(
                "takes exactly two recordings (BEFORE AFTER); also got {}",
                args.inputs.join(" ")
            )));
        }
        return crate::diff::run(sides, &opts, args, out, progress).await;
    }
    let recordings = inputs::open_all(&args.inputs)?;
    let what = describe(&recordings);
    let banner = lost_banner(&recordings);
    let reports = if args.sql.is_some() { Vec::new() } else { catalog.resolve(&args.reports)? };
    let mut analyzer = Analyzer::new(recordings, &opts).await?;

    if let Some(sql) = &args.sql {
        let p = Progress::start(progress, 1, format!("--sql over {what}"));
        // A query over `connections` too large for one pass gets them computed first, in
        // as many passes as the memory limit needs.
        if sql.to_ascii_lowercase().contains("connections") && analyzer.connections_need_passes().await? {
            p.step(format!("computing connections ({what})"));
            analyzer.materialize_connections().await?;
        }
        let df = analyzer.sql("--sql", sql).await?;
        log_lost(&analyzer.recordings);
        let r = stream_sql(df, args.format, out).await;
        drop(p);
        return r;
    }

    let p = Progress::start(progress, reports.len() as u64 + 1, what.clone());
    let uses_connections = reports.iter().filter(|r| r.sql.contains("connections")).count();
    if uses_connections >= 2 || (uses_connections == 1 && analyzer.connections_need_passes().await?) {
        p.step(format!("computing connections ({what})"));
        let t = std::time::Instant::now();
        let passes = analyzer.materialize_connections().await?;
        tracing::debug!(elapsed = ?t.elapsed(), passes, "connections computed");
    }
    p.inc();
    let mut sections = Vec::with_capacity(reports.len());
    for r in reports {
        p.step(format!("report {} ({what})", r.name));
        let t = std::time::Instant::now();
        sections.push(run_report(&analyzer, r, args.top).await?);
        tracing::debug!(report = %r.name, elapsed = ?t.elapsed(), "report done");
        p.inc();
    }
    drop(p);
    log_lost(&analyzer.recordings);
    ok_if_pipe_closed(write_report_output(out, args.format, &banner, &sections))
}

/// Writes report sections, after the lost-events banner for people-facing formats.
pub(crate) fn write_report_output(
    out: &mut dyn Write,
    format: Format,
    banner: &[String],
    sections: &[Section],
) -> std::io::Result<()> {
    if matches!(format, Format::Table | Format::Markdown) {
        for line in banner {
            writeln!(out, "{line}")?;
        }
        if !banner.is_empty() {
            writeln!(out)?;
        }
    }
    render::write_sections(out, format, sections, false, None)?;
    out.flush()
}

/// Runs one report, keeping at most `top` rows (0: all).
pub async fn run_report(analyzer: &Analyzer, report: &Report, top: usize) -> Result<Section, AnalyzeError> {
    let query = match &report.file {
        Some(p) => format!("report `{}` ({})", report.name, p.display()),
        None => format!("report `{}`", report.name),
    };
    let df = analyzer.sql(&query, &report.sql).await?;
    section_from(df, &report.name, &report.answers, top, &query).await
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

/// Runs `--sql`, streaming rows to `out` for JSON and CSV so large results need no memory.
async fn stream_sql(df: DataFrame, format: Format, out: &mut dyn Write) -> Result<(), AnalyzeError> {
    let q = "--sql";
    match format {
        Format::Table | Format::Markdown => {
            let section = section_from(df, "sql", "", 0, q).await?;
            ok_if_pipe_closed(render::write_sections(out, format, &[section], true, None).and_then(|_| out.flush()))
        }
        Format::Csv | Format::Json => {
            let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(|e| AnalyzeError::query(q, e))?;
            let io = |r: std::io::Result<()>| -> Result<Option<()>, AnalyzeError> {
                match r {
                    Ok(()) => Ok(Some(())),
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
                    Err(e) => Err(AnalyzeError::Output(e)),
                }
            };
            let mut first = true;
            let head =
                if format == Format::Csv { render::write_csv_header(out, &schema) } else { out.write_all(b"[\n") };
            if io(head)?.is_none() {
                return Ok(());
            }
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| AnalyzeError::query(q, e))?;
                let w = if format == Format::Csv {
                    render::write_csv_rows(out, &batch)
                } else {
                    render::write_json_rows(out, &batch, &mut first)
                };
                if io(w)?.is_none() {
                    return Ok(());
                }
            }
            if format == Format::Json && io(out.write_all(b"\n]\n"))?.is_none() {
                return Ok(());
            }
            ok_if_pipe_closed(out.flush())
        }
    }
}
