//! `gespann record`: the window, the file, the progress bar and the closing summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gespann_common::journal::{journal_path, save_checkpoint};
use gespann_common::{Event, EventKind, Protocol, RecordingMeta, RecordingWriter, ResetBy};
use gespann_recorder::{RecordOptions, Recorder};
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
    /// Only connections owned by this process id (repeatable, up to 8).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only connections owned by processes with this command name (repeatable, up to 8; first 15 bytes).
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// Only connections with this local or remote port (repeatable, up to 16).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// How often live connections that moved get a `sample` row.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub sample_interval: Duration,
    /// Kernel ring buffer size in MiB (a power of two). Larger absorbs bigger bursts.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub buffer_mib: u32,
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

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// The recording and its crash checkpoints: about every second the rows so far are made
/// recoverable (see `gespann_common::journal`).
pub struct RecordingSink {
    path: PathBuf,
    journal: PathBuf,
    writer: RecordingWriter<std::fs::File>,
    last_checkpoint: Instant,
}

/// Recordings with more row groups than this (and not huge) are rewritten at the end.
const COMPACT_ROW_GROUPS: usize = 16;
const COMPACT_MAX_ROWS: u64 = 10_000_000;

impl RecordingSink {
    pub fn create(path: &Path, force: bool, meta: &RecordingMeta) -> Result<Self> {
        let writer = RecordingWriter::create(path, force, meta)?;
        let mut sink = RecordingSink {
            path: path.to_owned(),
            journal: journal_path(path),
            writer,
            last_checkpoint: Instant::now(),
        };
        sink.checkpoint(0)?;
        Ok(sink)
    }

    fn checkpoint(&mut self, events_lost: u64) -> Result<()> {
        let (len, footer) = self.writer.checkpoint(&rfc3339(SystemTime::now()), events_lost)?;
        save_checkpoint(&self.journal, self.writer.sink(), len, &footer)?;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    pub fn write(&mut self, events: &[Event], events_lost: u64) -> Result<()> {
        for e in events {
            self.writer.push(e)?;
        }
        if self.last_checkpoint.elapsed() >= Duration::from_secs(1) {
            self.checkpoint(events_lost)?;
        }
        Ok(())
    }

    /// Writes the footer, syncs, compacts small row groups, and drops the journal. Returns the
    /// file size.
    pub fn finish(mut self, events_lost: u64) -> Result<u64> {
        let ended = rfc3339(SystemTime::now());
        let summary = self.writer.finish(&ended, events_lost)?;
        self.writer.sink().sync_all().with_context(|| format!("cannot sync `{}`", self.path.display()))?;
        let mut bytes = summary.bytes;
        if summary.row_groups > COMPACT_ROW_GROUPS && summary.rows <= COMPACT_MAX_ROWS {
            bytes = gespann_common::recording::compact(&self.path)?.bytes;
        }
        std::fs::remove_file(&self.journal).with_context(|| format!("cannot remove `{}`", self.journal.display()))?;
        Ok(bytes)
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
    let ring = args
        .buffer_mib
        .checked_mul(1 << 20)
        .filter(|b| b.is_power_of_two())
        .context("--buffer-mib must be a power of two, at most 2048")?;
    let opts = RecordOptions {
        pids: args.pids.clone(),
        comms: args.comms.clone(),
        ports: args.ports.clone(),
        sample_interval: args.sample_interval,
        ring_buffer_bytes: ring,
    };
    let started = SystemTime::now();
    let mut rec = Recorder::start(&opts).context("cannot start recording")?;
    for m in rec.missing() {
        eprintln!(
            "gespann: warning: {} is unavailable here ({}); the recording will lack {}",
            m.what, m.error, m.effect
        );
    }
    let meta = RecordingMeta {
        schema_version: gespann_common::schema::SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        hostname: hostname(),
        kernel: kernel_release(),
        started_at: rfc3339(started),
        ended_at: String::new(),
        events_lost: 0,
        command_line,
        sample_interval_ms: Some(args.sample_interval.as_millis() as u64),
    };
    let mut sink = RecordingSink::create(&args.output, args.force, &meta)?;

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
    let deadline = tokio::time::Instant::now() + args.duration;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let start = Instant::now();
    let outcome: Result<()> = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break Ok(()),
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = sigterm.recv() => break Ok(()),
            batch = rec.next_events() => {
                let events = match batch {
                    Ok(e) => e,
                    Err(e) => break Err(anyhow::Error::from(e).context("recording failed")),
                };
                let stats = rec.stats();
                for e in &events {
                    totals.add(e);
                }
                if let Err(e) = sink.write(&events, stats.events_lost) {
                    break Err(e);
                }
                if let Some(b) = &bar {
                    b.set_position(start.elapsed().as_secs());
                    b.set_message(format!("{} events · {} open · {} lost", stats.events, stats.open_connections, stats.events_lost));
                }
            }
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Err(e) = outcome {
        return Err(e.context(format!(
            "the recording stopped early; `gespann recover {}` repairs it up to its last checkpoint",
            args.output.display()
        )));
    }

    let stats = rec.stats();
    let rest = rec.finish().context("cannot finish recording")?;
    for e in &rest {
        totals.add(e);
    }
    sink.write(&rest, stats.events_lost)?;
    let size = sink.finish(stats.events_lost)?;
    print_summary(&args.output, &totals, stats.events_lost, size, start.elapsed());
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

fn print_summary(path: &Path, t: &Totals, lost: u64, size: u64, took: Duration) {
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
    table.add_row(vec!["file".to_string(), format!("{} ({})", path.display(), human_bytes(size))]);
    println!("{table}");
    println!("next: gespann analyze {}", path.display());
}
