//! `gespann analyze`: arguments, and the run from arguments to results on stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use datafusion::prelude::DataFrame;
use futures::StreamExt;

pub use crate::AnalyzeError;
use crate::inputs;
use crate::output::{Look, Progress, describe, log_lost, lost_banner, ok_if_pipe_closed, write_report_output};
/// Kept at their old path: the tests and callers outside the crate run single reports with them.
pub use crate::output::{run_report, section_from};
use crate::render;
pub use crate::render::Format;
use crate::reports::{Catalog, DEFAULT, DEFAULT_NAME, DEFAULT_WITH_WORKLOADS};
use crate::session::{Analyzer, Options};

/// Arguments of `gespann analyze`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  gespann analyze capture.parquet                     # the default report
  gespann analyze capture.parquet --report failures --report latency
  gespann analyze 'captures/*.parquet' node2/         # several recordings
  gespann analyze s3://bucket/2026-12-01/             # every recording under a prefix
  gespann analyze capture.parquet --sql \"SELECT remote_addr, count(*) FROM connections GROUP BY 1 ORDER BY 2 DESC\"
  gespann analyze --diff before.parquet after.parquet # what changed
  gespann analyze capture.parquet --html report.html  # charts and tables in one offline page
  gespann analyze --list-reports

SQL sees the table `events` (every row of every input, with a `source` column naming its file),
the view `connections` (one row per (source, conn_id)), the table `recordings` (file metadata)
and the function epoch_ns(timestamp).")]
pub struct AnalyzeArgs {
    /// Recordings: files, globs (quote them) or directories (every `*.parquet` inside), or
    /// object-store URLs: `s3://`, `gs://`, `az://`, `http(s)://`, one object, a prefix (every
    /// `*.parquet` under it) or a glob. Stores are configured by the standard environment
    /// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint; GOOGLE_*, AZURE_*).
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

    /// Tables: every column of every report, whole: address and port apart, `source` even for
    /// one recording, nothing left out or cut with `…` to fit the width. Without it a table
    /// fits --width: address and port as one `addr:port` column, `source` only for several
    /// recordings, and when it is still too wide, long text cut with `…` and the least needed
    /// columns (connection and process ids, packet counts, ...) left out, named under the table.
    #[arg(long)]
    pub wide: bool,

    /// Lay tables out for N columns. Default: $COLUMNS, or the width of the terminal stdout is;
    /// no limit when stdout is a file or a pipe.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(20..))]
    pub width: Option<u16>,

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

    /// Write the reports (or the --diff) as one self-contained HTML page with charts to FILE
    /// instead of stdout. It opens offline: no script, and nothing fetched from anywhere.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["sql", "list_reports"])]
    pub html: Option<PathBuf>,

    /// Rows per report (0: all). Does not apply to --sql.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// Memory the query engine may use (e.g. 512MiB, 4GiB). Sorts and aggregations spill to
    /// disk beyond it, and connections that do not fit are computed in several passes.
    /// Default: 80% of this machine's memory, or of this cgroup's memory limit if lower (as
    /// DuckDB's default).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub memory_limit: Option<u64>,

    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Run the queries on an Apache DataFusion Ballista cluster: `gespann scheduler` at
    /// df://HOST:PORT with `gespann executor`s registered to it. Every input must resolve to
    /// the same file or object on the scheduler and each executor (object stores, or paths
    /// they all see); the output is the same as run here. The executors' memory is their own
    /// (`gespann executor --memory-limit`); --threads here sets the queries' partitions.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
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
pub fn run(mut args: AnalyzeArgs) -> Result<(), AnalyzeError> {
    if args.width.is_none() {
        args.width = render::Layout::detect_width();
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let interactive = std::io::stderr().is_terminal();
    run_with(args, &mut out, interactive)
}

/// Runs `gespann analyze`, writing the results to `out`. `progress`: show a progress indicator
/// on stderr when work takes longer than a moment. Tables are laid out for `args.width` only
/// (not the terminal's: [`run`] asks for that).
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
    let rt = builder.build().map_err(|e| AnalyzeError::engine("cannot start the query engine", e))?;
    rt.block_on(run_async(&args, &catalog, out, progress))
}

fn list_reports(out: &mut dyn Write, catalog: &Catalog) -> std::io::Result<()> {
    // The list after `all of: ` stays one comma-separated line: `cargo xtask bench-analyze` reads it.
    writeln!(
        out,
        "{DEFAULT_NAME}: the incident overview (with `{DEFAULT_WITH_WORKLOADS}` after `outcomes` when a recording \
         has containers or pods), all of: {}",
        DEFAULT.join(", ")
    )?;
    for r in catalog.all() {
        let origin = match &r.file {
            Some(p) => format!(" [{}]", p.display()),
            None => String::new(),
        };
        writeln!(out, "{}{origin}: {}", r.name, r.answers)?;
    }
    Ok(())
}

async fn run_async(
    args: &AnalyzeArgs,
    catalog: &Catalog,
    out: &mut dyn Write,
    progress: bool,
) -> Result<(), AnalyzeError> {
    let opts = Options {
        memory_limit: usize::try_from(args.memory_limit.unwrap_or_else(crate::memory::default_limit))
            .unwrap_or(usize::MAX),
        threads: args.threads,
        cluster: args.cluster.clone(),
    };
    let look = Look { format: args.format, wide: args.wide, width: args.width };
    if let Some(sides) = &args.diff {
        if !args.inputs.is_empty() {
            return Err(AnalyzeError::Diff(format!(
                "takes exactly two recordings (BEFORE AFTER); also got {}",
                args.inputs.join(" ")
            )));
        }
        return crate::diff::run(sides, &opts, look, args.top, args.html.as_deref(), out, progress).await;
    }
    let recordings = inputs::open_all(&args.inputs).await?;
    let what = describe(&recordings);
    let banner = lost_banner(&recordings);
    let layout = look.layout(&recordings);
    let workloads = recordings.iter().any(|r| r.has_workloads);
    let reports = if args.sql.is_some() { Vec::new() } else { catalog.resolve(&args.reports, workloads)? };
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
        let r = stream_sql(df, args.format, &layout, out).await;
        drop(p);
        return r;
    }

    let charts = usize::from(args.html.is_some());
    let p = Progress::start(progress, (reports.len() + charts) as u64 + 1, what.clone());
    let uses_connections = reports.iter().filter(|r| r.sql.contains("connections")).count()
        + 2 * usize::from(args.html.is_some() && crate::html::charts_use_connections());
    // (On a cluster nothing is computed ahead: each report computes the view there.)
    if !analyzer.is_remote()
        && (uses_connections >= 2 || (uses_connections == 1 && analyzer.connections_need_passes().await?))
    {
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
    if let Some(path) = &args.html {
        p.step(format!("charts ({what})"));
        let t = std::time::Instant::now();
        let figures = crate::html::figures(&analyzer).await?;
        let recordings = crate::html::recordings_section(&analyzer, None).await?;
        let page = crate::html::page::Page {
            title: format!("gespann analyze: {what}"),
            banner: &banner,
            recordings: &recordings,
            charts: vec![crate::html::page::ChartGroup { heading: None, key: None, figures }],
            sections: &sections,
            tables_heading: "Reports",
        };
        crate::html::write(path, &crate::html::page::render(&page))?;
        tracing::debug!(elapsed = ?t.elapsed(), file = %path.display(), "HTML page written");
        drop(p);
        log_lost(&analyzer.recordings);
        return Ok(());
    }
    drop(p);
    log_lost(&analyzer.recordings);
    ok_if_pipe_closed(write_report_output(out, args.format, &layout, &banner, &sections))
}

/// Runs `--sql`, streaming rows to `out` for JSON and CSV so large results need no memory.
async fn stream_sql(
    df: DataFrame,
    format: Format,
    layout: &render::Layout,
    out: &mut dyn Write,
) -> Result<(), AnalyzeError> {
    let q = "--sql";
    match format {
        Format::Table | Format::Markdown => {
            let section = section_from(df, "sql", "", 0, q).await?;
            ok_if_pipe_closed(render::write_sections(out, format, &[section], true, layout).and_then(|_| out.flush()))
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
