//! The file a recording session writes: host metadata at the start, rows as they are released
//! (LZ4 pages, cheap to write: `Pages::Fast`), a crash checkpoint about every second (see
//! `gespann_common::journal`), and at the end the closing metadata, an fsync, compaction (the
//! checkpoints' small row groups into large ones, the pages into zstd), and the journal's removal.
//! Every write and sync failure is fatal: a recording that cannot be made durable says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gespann_common::journal::{JournalError, journal_path, save_checkpoint};
use gespann_common::recording::Pages;
use gespann_common::schema::meta;
use gespann_common::{Event, FormatError, RecordingMeta, RecordingWriter};

use crate::recorder::RecorderStats;

/// Where and how to write a recording.
#[derive(Clone, Debug)]
pub struct OutputOptions {
    pub path: PathBuf,
    /// Replace an existing file.
    pub force: bool,
    /// Stored as `gespann.command_line`.
    pub command_line: String,
}

/// What a finished recording holds.
#[derive(Clone, Debug)]
pub struct FileSummary {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot sync `{path}`")]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove the checkpoint journal `{path}`")]
    RemoveJournal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How often the rows so far are made recoverable.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Recordings of up to this many rows are rewritten at the end (zstd pages, large row groups);
/// a larger one keeps its LZ4 pages and one row group a second, rather than spend minutes after
/// the window on it.
const COMPACT_MAX_ROWS: u64 = 10_000_000;

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// The metadata a recording starts with: this host, this kernel, now.
pub fn host_meta(command_line: &str, sample_interval: Duration) -> RecordingMeta {
    RecordingMeta {
        schema_version: gespann_common::schema::SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        started_at: rfc3339(SystemTime::now()),
        ended_at: String::new(),
        events_lost: 0,
        command_line: command_line.to_owned(),
        sample_interval_ms: Some(sample_interval.as_millis() as u64),
        anonymized: None,
    }
}

/// The counts a recording's metadata carries besides `gespann.events_lost`.
fn counts(stats: &RecorderStats) -> [(&'static str, u64); 5] {
    [
        (meta::LATE_ROWS, stats.tracker.late_rows),
        (meta::LATE_AMENDMENTS, stats.tracker.late_amends),
        (meta::UNKNOWN_RECORDS, stats.unknown_records),
        (meta::UDP_ENDS_INFERRED, stats.tracker.udp_ends_inferred),
        (meta::TCP_ENDS_INFERRED, stats.tracker.tcp_ends_inferred),
    ]
}

/// A recording being written, with its checkpoint journal.
pub struct Output {
    path: PathBuf,
    journal: PathBuf,
    writer: RecordingWriter<std::fs::File>,
    /// When the last checkpoint was taken, on the session's (the kernel's monotonic) clock.
    last_checkpoint_ns: u64,
}

impl Output {
    /// Creates the file (mode 0600; an existing one only with `force`). Its journal appears at
    /// [`Output::begin`], once the recording has really started.
    pub fn create(opts: &OutputOptions, sample_interval: Duration) -> Result<Output, OutputError> {
        let meta = host_meta(&opts.command_line, sample_interval);
        let writer = RecordingWriter::create_with(&opts.path, opts.force, &meta, Pages::Fast)?;
        Ok(Output { path: opts.path.clone(), journal: journal_path(&opts.path), writer, last_checkpoint_ns: 0 })
    }

    /// The first checkpoint: from now on a crash leaves a recoverable file. Called when the
    /// probes are attached, so the journal's existence says the recording runs. `now_ns`: the
    /// session's clock (monotonic), which paces the checkpoints.
    pub fn begin(&mut self, now_ns: u64) -> Result<(), OutputError> {
        self.checkpoint(&RecorderStats::default(), now_ns)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes what [`Output::create`] made (the recording could not start).
    pub fn abandon(self) {
        for p in [&self.path, &self.journal] {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::debug!(path = %p.display(), error = %e, "cannot remove");
            }
        }
    }

    fn checkpoint(&mut self, stats: &RecorderStats, now_ns: u64) -> Result<(), OutputError> {
        self.writer.set_counts(&counts(stats));
        let (len, footer) = self.writer.checkpoint(&rfc3339(SystemTime::now()), stats.events_lost())?;
        save_checkpoint(&self.journal, self.writer.sink(), len, &footer)?;
        self.last_checkpoint_ns = now_ns;
        Ok(())
    }

    /// Appends rows; about every second (of `now_ns`, the session's clock) also a checkpoint
    /// with `stats`.
    pub fn write(&mut self, events: &[Event], stats: &RecorderStats, now_ns: u64) -> Result<(), OutputError> {
        self.append(events)?;
        if now_ns.saturating_sub(self.last_checkpoint_ns) >= CHECKPOINT_EVERY.as_nanos() as u64 {
            self.checkpoint(stats, now_ns)?;
        }
        Ok(())
    }

    /// Appends rows, without a checkpoint (the last ones, before [`Output::finish`]).
    pub fn append(&mut self, events: &[Event]) -> Result<(), OutputError> {
        for e in events {
            self.writer.push(e)?;
        }
        Ok(())
    }

    /// Writes the footer with the final `stats`, syncs, compacts (unless the recording is
    /// huge), and drops the journal.
    pub fn finish(mut self, stats: &RecorderStats) -> Result<FileSummary, OutputError> {
        self.writer.set_counts(&counts(stats));
        let summary = self.writer.finish(&rfc3339(SystemTime::now()), stats.events_lost())?;
        self.writer.sink().sync_all().map_err(|source| OutputError::Sync { path: self.path.clone(), source })?;
        let mut bytes = summary.bytes;
        if summary.rows <= COMPACT_MAX_ROWS {
            bytes = gespann_common::recording::compact(&self.path)?.bytes;
        }
        std::fs::remove_file(&self.journal)
            .map_err(|source| OutputError::RemoveJournal { path: self.journal.clone(), source })?;
        Ok(FileSummary { path: self.path, rows: summary.rows, bytes })
    }
}
