//! `gespann record`: the window, the file, the progress bar and the closing summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gespann_common::{Event, EventKind, Protocol, ResetBy};
use gespann_recorder::{OutputOptions, RecorderArgs, RecorderStats, Session, StopSignals, run_until};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `gespann record`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo gespann record --duration 5m       # everything on the host -> capture.parquet
  sudo gespann record -d 30s -o web.parquet --port 443 --comm nginx
  gespann analyze capture.parquet         # then read it

Filters are applied in the kernel, before events reach user space; repeat them to allow several
values. A connection is kept if it matches every kind of filter given (any value within a kind).
Needs root, or CAP_BPF + CAP_PERFMON (+ CAP_NET_ADMIN for the UDP cgroup hooks).
Ctrl-C or SIGTERM ends the window early and still writes a complete file. If the recorder is
killed, `gespann recover FILE` repairs it up to about a second before the kill.")]
pub struct RecordArgs {
    /// How long to record: 90s, 5m, 1h, ...
    #[arg(short, long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Where to write the recording.
    #[arg(short, long, default_value = "capture.parquet")]
    pub output: PathBuf,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub recorder: RecorderArgs,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Totals for the closing summary, folded from the rows as they stream past. Only open
/// connections are held; an ended one is added to the sums and forgotten.
#[derive(Default)]
struct Totals {
    rows: u64,
    open: rustc_hash::FxHashMap<u64, (u64, u64)>,
    tcp: u64,
    udp: u64,
    sent: u64,
    received: u64,
    failed: u64,
    reset_local: u64,
    reset_remote: u64,
}

impl Totals {
    fn add(&mut self, e: &Event) {
        self.rows += 1;
        match e.kind {
            EventKind::Failed => {
                self.failed += 1;
                return;
            }
            EventKind::Reset => match e.reset_by {
                Some(ResetBy::Remote) => self.reset_remote += 1,
                _ => self.reset_local += 1,
            },
            _ => {}
        }
        if self.open.insert(e.conn_id, (e.bytes_sent, e.bytes_received)).is_none() {
            match e.protocol {
                Protocol::Tcp => self.tcp += 1,
                Protocol::Udp => self.udp += 1,
            }
        }
        if e.kind.is_terminal() {
            self.open.remove(&e.conn_id);
            self.sent += e.bytes_sent;
            self.received += e.bytes_received;
        }
    }

    /// Bytes each way: ended connections plus the last values of those still open.
    fn bytes(&self) -> (u64, u64) {
        self.open.values().fold((self.sent, self.received), |(s, r), c| (s + c.0, r + c.1))
    }
}

pub async fn run(args: RecordArgs, command_line: String) -> Result<()> {
    if args.output.exists() && !args.force {
        bail!("`{}` already exists (use --force to overwrite it)", args.output.display());
    }
    if !gespann_recorder::doctor::privileged() {
        bail!(
            "recording needs root or CAP_BPF + CAP_PERFMON (and CAP_NET_ADMIN for the UDP hooks): run it with sudo; `gespann doctor` checks the rest"
        );
    }
    let opts = args.recorder.options()?;
    let output = OutputOptions { path: args.output.clone(), force: args.force, command_line };
    let mut signals = StopSignals::new()?;
    let mut session = Session::open(&opts, Some(&output))?;
    for m in session.missing() {
        eprintln!(
            "gespann: warning: {} is unavailable here ({}); the recording will lack {}",
            m.what, m.error, m.effect
        );
    }

    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(args.duration.as_secs().max(1));
        b.set_style(
            ProgressStyle::with_template("{spinner} recording {elapsed_precise} [{bar:30}] {eta} left · {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });

    let mut totals = Totals::default();
    let start = Instant::now();
    let outcome = run_until(&mut session, Some(args.duration), &mut signals, |events, stats| {
        for e in events {
            totals.add(e);
        }
        if let Some(b) = &bar {
            b.set_position(start.elapsed().as_secs());
            b.set_message(format!(
                "{} events · {} open · {} lost",
                stats.events(),
                stats.open_connections,
                stats.events_lost()
            ));
        }
    })
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let stopped_early = |e: anyhow::Error| {
        e.context(format!(
            "the recording stopped early; `gespann recover {}` repairs it up to its last checkpoint",
            args.output.display()
        ))
    };
    outcome.map_err(|e| stopped_early(e.into()))?;
    let ended = session.finish().map_err(|e| stopped_early(e.into()))?;
    for e in &ended.events {
        totals.add(e);
    }
    let size = ended.file.as_ref().map_or(0, |f| f.bytes);
    print_summary(&args.output, &totals, &ended.stats, size, start.elapsed());
    Ok(())
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

fn print_summary(path: &Path, t: &Totals, stats: &RecorderStats, size: u64, took: Duration) {
    let lost = stats.events_lost();
    let (sent, recv) = t.bytes();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["recorded", "value"]);
    table.add_row(vec![
        "window".to_string(),
        humantime::format_duration(Duration::from_secs(took.as_secs())).to_string(),
    ]);
    table.add_row(vec!["TCP connections".to_string(), t.tcp.to_string()]);
    table.add_row(vec!["UDP flows".to_string(), t.udp.to_string()]);
    table.add_row(vec!["failed attempts".to_string(), t.failed.to_string()]);
    table.add_row(vec!["resets (sent / received)".to_string(), format!("{} / {}", t.reset_local, t.reset_remote)]);
    table.add_row(vec!["bytes sent / received".to_string(), format!("{} / {}", human_bytes(sent), human_bytes(recv))]);
    table.add_row(vec!["events".to_string(), t.rows.to_string()]);
    table.add_row(vec![
        "events lost".to_string(),
        if lost == 0 {
            "0".to_string()
        } else {
            format!("{lost}  (!) the ring buffer overflowed: try --buffer-mib 64 or filters")
        },
    ]);
    let late = (stats.tracker.late_rows, stats.tracker.late_amends);
    table.add_row(vec![
        "late rows / amendments".to_string(),
        if late == (0, 0) {
            "0 / 0".to_string()
        } else {
            format!("{} / {}  (!) the file is out of time order by that many rows", late.0, late.1)
        },
    ]);
    let inferred = (stats.tracker.tcp_ends_inferred, stats.tracker.udp_ends_inferred);
    if inferred != (0, 0) {
        table.add_row(vec![
            "ends inferred (TCP / UDP)".to_string(),
            format!(
                "{} / {}  (!) ended without the kernel's record: closed at the last sample",
                inferred.0, inferred.1
            ),
        ]);
    }
    if stats.unknown_records > 0 {
        table.add_row(vec![
            "unknown kernel records".to_string(),
            format!("{}  (!) dropped: this build does not match its BPF object", stats.unknown_records),
        ]);
    }
    table.add_row(vec!["file".to_string(), format!("{} ({})", path.display(), human_bytes(size))]);
    println!("{table}");
    println!("next: gespann analyze {}", path.display());
}
