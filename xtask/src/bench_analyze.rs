//! `cargo xtask bench-analyze`: the analyzer against DuckDB on the same synthetic recording.
//!
//! Runs the default report and a few ad-hoc queries with the release `gespann analyze` binary
//! and with DuckDB (the workspace venv's Python), in one run, and prints the time of each and the
//! ratio. Both engines run the same SQL: the report files from `queries/`, with DuckDB given the
//! same `events`/`recordings`/`connections` definitions (and, as gespann does for a multi-report
//! run, `connections` computed once). gespann's time is the whole command as a user runs it
//! (process start, file checks, planning, output); DuckDB's is measured inside Python from
//! `connect()` to the last fetched row, without the interpreter's start. Each figure is the best
//! of `--runs` runs. The default report runs twice: with each engine's default memory, and with
//! both held to 256 MiB (gespann then computes `connections` in several passes).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::synth;

const USAGE: &str =
    "usage: cargo xtask bench-analyze [--events 10M] [--file FILE] [--seed N] [--runs N] [--bin PATH] [--python PATH]";

/// Ad-hoc queries: `(name, SQL)`, run unchanged by both engines.
const QUERIES: &[(&str, &str)] = &[
    (
        "top destinations (connections view)",
        "SELECT remote_addr, count(*) AS n FROM connections GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
    ),
    ("events by kind", "SELECT kind, count(*) AS n, sum(bytes_sent) AS bytes FROM events GROUP BY kind ORDER BY kind"),
    (
        "peers and bytes per process",
        "SELECT comm, count(DISTINCT remote_addr) AS peers, sum(bytes_received) AS rx FROM events \
         WHERE kind = 'close' GROUP BY comm ORDER BY rx DESC, comm",
    ),
    (
        "p99 RTT per destination",
        "SELECT remote_addr, remote_port, percentile_cont(0.99) WITHIN GROUP (ORDER BY rtt_us) AS p99 \
         FROM events WHERE rtt_us IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 20",
    ),
    (
        "failures by errno",
        "SELECT remote_addr, error, count(*) AS n FROM events WHERE kind = 'failed' \
         GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 20",
    ),
];

/// The DuckDB side: prints a JSON list of seconds per run.
const DUCKDB_SCRIPT: &str = r#"
import duckdb, json, re, sys, time
file, queries_dir, mode, payload, runs, top, memory = sys.argv[1:8]
runs = int(runs); top = int(top)
q = lambda s: "'" + s.replace("'", "''") + "'"

def strip_comments(sql):
    return "\n".join(l.split("--")[0] for l in sql.splitlines()).strip().rstrip(";")

def to_duckdb(sql):
    # The one spelling that differs: DataFusion's ordered first_value aggregate.
    sql = re.sub(r"\bfirst_value\(", "first(", sql)
    return sql

def setup(con):
    con.execute("SET TimeZone='UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE VIEW events AS SELECT *, {q(file)} AS source FROM read_parquet({q(file)})")
    kv = lambda k: f"max(CASE WHEN decode(key) = '{k}' THEN decode(value) END)"
    con.execute(f"""CREATE TABLE recordings AS SELECT {q(file)} AS source,
        {kv('gespann.hostname')} AS hostname, {kv('gespann.kernel')} AS kernel,
        CAST({kv('gespann.started_at')} AS TIMESTAMPTZ) AS started_at,
        CAST({kv('gespann.ended_at')} AS TIMESTAMPTZ) AS ended_at,
        CAST({kv('gespann.events_lost')} AS UBIGINT) AS events_lost,
        (SELECT count(*) FROM read_parquet({q(file)})) AS rows
        FROM parquet_kv_metadata({q(file)})""")
    view = open(f"{queries_dir}/views/connections.sql").read()
    view = view.replace("{events}", "events").replace("{source}", q(file))
    return to_duckdb(strip_comments(view))

times = []
for _ in range(runs):
    t = time.perf_counter()
    con = duckdb.connect()
    if memory:
        con.execute(f"SET memory_limit = '{memory}'")
    view = setup(con)
    if mode == "sql":
        con.execute(f"CREATE VIEW connections AS {view}")
        con.execute(payload).fetchall()
    else:
        con.execute(f"CREATE TEMP TABLE connections AS {view}")
        for name in payload.split(","):
            sql = to_duckdb(strip_comments(open(f"{queries_dir}/{name}.sql").read()))
            con.execute(f"{sql} LIMIT {top + 1}").fetchall()
    times.append(time.perf_counter() - t)
    con.close()
print(json.dumps(times))
"#;

struct Opts {
    events: u64,
    file: Option<PathBuf>,
    seed: u64,
    runs: usize,
    bin: Option<PathBuf>,
    python: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Opts> {
    let mut o = Opts { events: 10_000_000, file: None, seed: 1, runs: 3, bin: None, python: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--events" => o.events = synth::parse_count(&val("--events")?)?,
            "--file" => o.file = Some(val("--file")?.into()),
            "--seed" => o.seed = val("--seed")?.parse().context("--seed")?,
            "--runs" => o.runs = val("--runs")?.parse().context("--runs")?,
            "--bin" => o.bin = Some(val("--bin")?.into()),
            "--python" => o.python = Some(val("--python")?.into()),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(o)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Best wall time of `runs` runs of `gespann analyze <args>`, output discarded.
fn time_gespann(bin: &Path, args: &[&str], runs: usize) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(bin)
            .arg("analyze")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running `{}`", bin.display()))?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!("`gespann analyze {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        best = best.min(secs);
    }
    Ok(best)
}

/// Best wall time of `runs` runs in DuckDB; `memory`: its `memory_limit` (empty: its default).
fn time_duckdb(
    python: &Path,
    file: &Path,
    (mode, payload): (&str, &str),
    runs: usize,
    top: usize,
    memory: &str,
) -> anyhow::Result<f64> {
    let queries = workspace().join("queries");
    let out = Command::new(python)
        .arg("-c")
        .arg(DUCKDB_SCRIPT)
        .arg(file)
        .arg(&queries)
        .arg(mode)
        .arg(payload)
        .arg(runs.to_string())
        .arg(top.to_string())
        .arg(memory)
        .output()
        .with_context(|| format!("running `{}`", python.display()))?;
    if !out.status.success() {
        bail!("DuckDB failed on {mode} `{payload}`: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let times: Vec<f64> = text
        .rsplit_once('[')
        .and_then(|(_, s)| s.trim().trim_end_matches(']').split(',').map(|x| x.trim().parse().ok()).collect())
        .with_context(|| format!("DuckDB timings are not a list of numbers: {text}"))?;
    times.into_iter().reduce(f64::min).context("DuckDB returned no timing")
}

/// `cargo xtask bench-analyze [--events 10M] [--file FILE] [--seed N] [--runs N] [--bin PATH]`
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    let root = workspace();
    let bin = o.bin.clone().unwrap_or_else(|| root.join("target/release/gespann"));
    if !bin.exists() {
        bail!("no release binary at `{}`: run `cargo build --release -p gespann` first", bin.display());
    }
    let python = o
        .python
        .clone()
        .or_else(|| std::env::var_os("GESPANN_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let check =
        Command::new(&python).args(["-c", "import duckdb; print(duckdb.__version__)"]).output().with_context(|| {
            format!(
                "no Python at `{}`: python3 -m venv .venv && .venv/bin/pip install duckdb pyarrow",
                python.display()
            )
        })?;
    if !check.status.success() {
        bail!("`{}` cannot import duckdb", python.display());
    }
    let duckdb_version = String::from_utf8_lossy(&check.stdout).trim().to_string();

    let file = match &o.file {
        Some(f) => f.clone(),
        None => {
            let dir = root.join("target/bench");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(format!("synth-{}-seed{}.parquet", o.events, o.seed))
        }
    };
    if !file.exists() {
        eprintln!("bench-analyze: generating {} events into {}", o.events, file.display());
        let cfg = synth::SynthConfig::new(o.events, o.seed);
        synth::write(&cfg, &file, false)?;
    }
    let file_s = file.to_string_lossy().into_owned();

    // The default report's parts, as the binary lists them.
    let list =
        Command::new(&bin).args(["analyze", "--list-reports"]).output().context("gespann analyze --list-reports")?;
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    let default_parts = listing
        .lines()
        .find_map(|l| l.split_once("all of: ").map(|(_, v)| v.to_string()))
        .context("--list-reports names no default report")?
        .replace(' ', "");

    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "bench-analyze: {} ({:.0} MiB), {} cores, best of {} runs, DuckDB {duckdb_version}",
        file.display(),
        size as f64 / 1048576.0,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        o.runs
    );
    let top = 20;
    // DuckDB's time, or why it gave none (it can run out of memory within a small limit): a
    // failure of the other engine is a figure of the comparison, not the end of the benchmark.
    let duckdb = |what: (&str, &str), memory: &str| -> Result<f64, String> {
        time_duckdb(&python, &file, what, o.runs, top, memory).map_err(|e| {
            let text = format!("{e:#}");
            let why = text.lines().rev().find(|l| l.contains("Error")).unwrap_or("failed").trim().to_string();
            eprintln!("  DuckDB failed: {why}");
            why
        })
    };
    let shown = |d: &Result<f64, String>| d.as_ref().map_or_else(|e| format!("failed ({e})"), |d| format!("{d:.2}s"));
    let mut rows: Vec<(String, f64, Result<f64, String>)> = Vec::new();
    let g = time_gespann(&bin, &[&file_s, "--format", "csv"], o.runs)?;
    let d = duckdb(("report", &default_parts), "");
    eprintln!("  default report: gespann {g:.2}s, duckdb {}", shown(&d));
    rows.push(("default report".into(), g, d));
    // Both engines held to the same small memory limit: gespann computes `connections` in
    // several passes, DuckDB spills its joins.
    let g = time_gespann(&bin, &[&file_s, "--format", "csv", "--memory-limit", "256MiB"], o.runs)?;
    let d = duckdb(("report", &default_parts), "256MiB");
    eprintln!("  default report within 256 MiB: gespann {g:.2}s, duckdb {}", shown(&d));
    rows.push(("default report, memory limit 256 MiB".into(), g, d));
    let mut ratios = Vec::new();
    for (name, sql) in QUERIES {
        let g = time_gespann(&bin, &[&file_s, "--format", "csv", "--sql", sql], o.runs)?;
        let d = duckdb(("sql", sql), "");
        eprintln!("  {name}: gespann {g:.2}s, duckdb {}", shown(&d));
        if let Ok(d) = d {
            ratios.push(g / d);
        }
        rows.push(((*name).into(), g, d));
    }
    println!("| query | gespann (s) | DuckDB (s) | gespann / DuckDB |");
    println!("|---|---:|---:|---:|");
    for (name, g, d) in &rows {
        match d {
            Ok(d) => println!("| {name} | {g:.2} | {d:.2} | {:.2}x |", g / d),
            Err(why) => println!("| {name} | {g:.2} | failed: {why} | |"),
        }
    }
    if !ratios.is_empty() {
        let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let worst = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "\n--sql queries: geometric mean {geomean:.2}x of DuckDB's time, worst {worst:.2}x ({} of {})",
            ratios.len(),
            QUERIES.len()
        );
    }
    Ok(())
}
