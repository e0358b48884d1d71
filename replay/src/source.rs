//! Where events come from: recordings (files or objects, merged in time order by [`Merged`],
//! paced by their timestamps) or the live recorder (the same [`gespann_recorder::Recorder`] that `gespann
//! record` uses). Both hand the processor the same [`gespann_common::Event`] rows.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use futures::stream::BoxStream;
use gespann_common::recording::events_from_batch;
use gespann_common::{Event, FormatError};
use gespann_inputs::{Input, InputError};
use gespann_recorder::ebpf::Probes;
use gespann_recorder::{OutputOptions, RecordOptions, RecorderError, Session, SessionError};

use crate::adapters::MetricsHandle;

/// How fast a recording is replayed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// `N` times the original pacing (1 = as recorded).
    Factor(f64),
    /// As fast as possible.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.trim_end_matches(['x', 'X']).parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!("`{s}` is not a speed: give a factor above 0 (1, 20, 0.5) or `max`")),
        }
    }
}

/// Rows processed per hold of the processor's lock.
const LOCK_CHUNK: usize = 1024;

/// Rows handed on at most per run of one input (see [`Merged::next_run`]).
const RUN_ROWS: usize = 8192;

/// What a replay read.
#[derive(Clone, Debug, Default)]
pub struct ReplayStats {
    pub events: u64,
    pub elapsed: Duration,
    /// False if it was stopped before the end.
    pub complete: bool,
}

/// One input's rows as they are read: a batch of events at a time.
struct Cursor {
    path: PathBuf,
    batches: BoxStream<'static, Result<RecordBatch, FormatError>>,
    buf: Vec<Event>,
    pos: usize,
    done: bool,
    /// Its host's processor (see [`crate::hosts::Hosts::for_inputs`]).
    host: usize,
}

impl Cursor {
    /// The time of its next row, reading the next batch when needed; `None` at its end.
    fn head(&mut self, rt: &tokio::runtime::Handle) -> Result<Option<i64>, FormatError> {
        while self.pos == self.buf.len() && !self.done {
            match rt.block_on(self.batches.next()) {
                Some(batch) => {
                    self.buf = events_from_batch(&self.path, &batch?)?;
                    self.pos = 0;
                }
                None => self.done = true,
            }
        }
        Ok(self.buf.get(self.pos).map(|e| e.ts_ns))
    }
}

/// The rows of several recordings merged in time order (each recording is in time order
/// already: the recorder writes it so), read a batch at a time from files or object stores.
pub struct Merged {
    cursors: Vec<Cursor>,
    rt: tokio::runtime::Handle,
}

impl Merged {
    /// Starts reading `inputs` (checked already), the rows of input `i` counted by host
    /// `hosts[i]`. Blocking reads go through `rt`, so [`Merged::next_run`] must be called off
    /// its worker threads (on a blocking thread).
    pub async fn open(inputs: &[Input], hosts: &[usize], rt: tokio::runtime::Handle) -> Result<Self, InputError> {
        let mut cursors = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            cursors.push(Cursor {
                path: input.path(),
                batches: input.batches().await?,
                buf: Vec::new(),
                pos: 0,
                done: false,
                host: hosts.get(i).copied().unwrap_or(0),
            });
        }
        Ok(Merged { cursors, rt })
    }

    /// The next rows in time order, all from one input: the input whose next row is earliest
    /// gives its rows up to the next row of any other (at least one, at most [`RUN_ROWS`]).
    /// Returns the host of those rows with them; `None` at the end of every input.
    pub fn next_run(&mut self) -> Option<Result<(usize, Vec<Event>), FormatError>> {
        let mut heads = Vec::with_capacity(self.cursors.len());
        for c in &mut self.cursors {
            match c.head(&self.rt) {
                Ok(h) => heads.push(h),
                Err(e) => return Some(Err(e)),
            }
        }
        let (i, _) = heads.iter().enumerate().filter_map(|(i, h)| h.map(|t| (i, t))).min_by_key(|&(i, t)| (t, i))?;
        // The earliest next row of any other input, and that input.
        let bound = heads.iter().enumerate().filter(|&(j, _)| j != i).filter_map(|(j, h)| h.map(|t| (t, j))).min();
        let c = &mut self.cursors[i];
        let rest = &c.buf[c.pos..c.buf.len().min(c.pos + RUN_ROWS)];
        // Rows at the same time as another input's next row go first only when their input
        // comes first in the arguments: a stable merge.
        let n = match bound {
            None => rest.len(),
            Some((b, j)) => rest.partition_point(|e| e.ts_ns < b || (e.ts_ns == b && i < j)),
        }
        .max(1);
        let run = rest[..n].to_vec();
        c.pos += n;
        Some(Ok((c.host, run)))
    }
}

/// Recordings opened for a replay: a processor per host (see [`crate::hosts`]) with each
/// host's lost-event count, and their rows merged in time order.
pub struct Recordings {
    pub hosts: crate::hosts::Hosts,
    pub rows: Merged,
    /// Rows in all the recordings.
    pub total_rows: u64,
    /// Their names, comma-separated (for the log).
    pub names: String,
}

/// Expands and checks `args` (files, globs, directories, URLs) and starts reading them.
pub async fn open_recordings(
    args: &[String],
    opts: &crate::processor::ProcessorOptions,
) -> Result<Recordings, InputError> {
    let opened = gespann_inputs::open_all(args).await?;
    let names: Vec<(&str, u64)> = opened.iter().map(|(_, f)| (f.meta.hostname.as_str(), f.rows)).collect();
    let (mut hosts, index) = crate::hosts::Hosts::for_inputs(opts, &names);
    let mut lost = vec![0u64; index.iter().max().map_or(1, |m| m + 1)];
    for ((_, f), &h) in opened.iter().zip(&index) {
        lost[h] += f.meta.events_lost;
    }
    for (h, n) in lost.into_iter().enumerate() {
        hosts.host(h).set_events_lost(n);
    }
    let inputs: Vec<Input> = opened.iter().map(|(i, _)| i.clone()).collect();
    let rows = Merged::open(&inputs, &index, tokio::runtime::Handle::current()).await?;
    Ok(Recordings {
        hosts,
        rows,
        total_rows: opened.iter().map(|(_, f)| f.rows).sum(),
        names: opened.iter().map(|(i, _)| i.name.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// Replays `rows` into `metrics`, pacing by timestamps unless `Speed::Max`; returns early
/// when `stop` is set. Blocking: run it on a blocking thread.
pub fn replay_recordings(
    mut rows: Merged,
    metrics: &MetricsHandle,
    speed: Speed,
    stop: &AtomicBool,
) -> Result<ReplayStats, FormatError> {
    let started = Instant::now();
    let mut first_ts: Option<i64> = None;
    let mut stats = ReplayStats::default();
    while let Some(run) = rows.next_run() {
        let (host, batch) = run?;
        let mut i = 0;
        while i < batch.len() {
            if stop.load(Ordering::Relaxed) {
                stats.elapsed = started.elapsed();
                return Ok(stats);
            }
            let j = match speed {
                Speed::Max => batch.len(),
                Speed::Factor(f) => {
                    let t0 = *first_ts.get_or_insert(batch[i].ts_ns);
                    // The recording time reached now.
                    let virtual_now = t0 + (started.elapsed().as_nanos() as f64 * f) as i64;
                    let due = batch[i].ts_ns;
                    if due > virtual_now {
                        let wait = Duration::from_nanos(((due - virtual_now) as f64 / f) as u64);
                        std::thread::sleep(wait.min(Duration::from_millis(100)));
                        metrics.lock().advance_clock(virtual_now);
                        continue;
                    }
                    i + batch[i..].partition_point(|e| e.ts_ns <= virtual_now).max(1)
                }
            };
            // Small chunks: a scrape never waits for more than ~1000 rows.
            for chunk in batch[i..j].chunks(LOCK_CHUNK) {
                metrics.lock().host(host).process_all(chunk);
            }
            stats.events += (j - i) as u64;
            i = j;
        }
    }
    stats.elapsed = started.elapsed();
    stats.complete = true;
    Ok(stats)
}

/// Options of `--live`.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub recorder: RecordOptions,
    /// `--record FILE`: also write what is seen.
    pub record: Option<PathBuf>,
    pub force: bool,
}

/// Live events: the recording session `gespann record` uses (so `--record` gets the same
/// file, checkpoints and crash recovery), whose rows also feed the metrics.
pub struct Live {
    session: Session<Probes>,
}

/// A problem of the live source, naming the part that failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("--live")]
    Options(#[source] RecorderError),
    #[error("--live")]
    Session(#[source] SessionError),
}

impl Live {
    /// Creates the `--record` file first (so a bad path fails before the probes are attached),
    /// then starts the recorder.
    pub fn start(opts: &LiveOptions) -> Result<Live, LiveError> {
        let output = opts.record.as_ref().map(|path| OutputOptions {
            path: path.clone(),
            force: opts.force,
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
        });
        let session = Session::open(&opts.recorder, output.as_ref()).map_err(LiveError::Session)?;
        for m in session.missing() {
            tracing::warn!(missing = %m.what, effect = m.effect, error = %m.error, "recording without it");
        }
        Ok(Live { session })
    }

    /// Waits (at most about 100 ms) for the next events, records them if asked, and feeds them
    /// to `metrics`.
    pub async fn step(&mut self, metrics: &MetricsHandle) -> Result<usize, LiveError> {
        let events = self.session.next_batch().await.map_err(LiveError::Session)?;
        feed(metrics, &events, self.session.last_stats().events_lost());
        Ok(events.len())
    }

    /// Stops the recorder, feeds its last events (final samples of open connections) and
    /// closes the recording.
    pub fn finish(self, metrics: &MetricsHandle) -> Result<(), LiveError> {
        let ended = self.session.finish().map_err(LiveError::Session)?;
        feed(metrics, &ended.events, ended.stats.events_lost());
        if let Some(f) = ended.file {
            tracing::info!(path = %f.path.display(), rows = f.rows, bytes = f.bytes, "recording written");
        }
        Ok(())
    }
}

fn feed(metrics: &MetricsHandle, events: &[gespann_common::Event], events_lost: u64) {
    let mut p = metrics.lock();
    p.process_all(events);
    p.set_events_lost(events_lost);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    p.advance_clock(now);
}

/// A flag the blocking replay thread polls.
pub type StopFlag = Arc<AtomicBool>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::{Processor, ProcessorOptions};
    use crate::testutil::ev;
    use gespann_common::{EventKind, RecordingMeta, RecordingWriter};

    #[test]
    fn speeds() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("20".parse::<Speed>(), Ok(Speed::Factor(20.0)));
        assert_eq!("20x".parse::<Speed>(), Ok(Speed::Factor(20.0)));
        assert_eq!("0.5".parse::<Speed>(), Ok(Speed::Factor(0.5)));
        for bad in ["0", "-1", "fast", "inf", "NaN", ""] {
            assert!(bad.parse::<Speed>().is_err(), "{bad}");
        }
    }

    fn recording(dir: &std::path::Path, span_s: f64) -> std::path::PathBuf {
        let path = dir.join("r.parquet");
        let mut w = RecordingWriter::create(&path, true, &RecordingMeta::default()).unwrap();
        for i in 0..=20u64 {
            w.push(&ev(span_s * i as f64 / 20.0, EventKind::Open, i + 1)).unwrap();
        }
        w.finish("", 0).unwrap();
        path
    }

    fn replay(path: &std::path::Path, speed: Speed, stop: &AtomicBool) -> (ReplayStats, u64) {
        let m = MetricsHandle::new(Processor::new(ProcessorOptions::default()));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let inputs = rt.block_on(gespann_inputs::expand(&[path.display().to_string()])).unwrap();
        let rows = rt.block_on(Merged::open(&inputs, &[0], rt.handle().clone())).unwrap();
        let stats = replay_recordings(rows, &m, speed, stop).unwrap();
        let n = m.lock().totals().connections;
        (stats, n)
    }

    /// A recording of `host` with an open at each of `times` (seconds), connection ids from
    /// `first_id`.
    fn host_recording(path: &std::path::Path, host: &str, times: &[f64], first_id: u64, lost: u64) {
        let meta = RecordingMeta { hostname: host.into(), ..RecordingMeta::default() };
        let mut w = RecordingWriter::create(path, true, &meta).unwrap();
        for (i, t) in times.iter().enumerate() {
            w.push(&ev(*t, EventKind::Open, first_id + i as u64)).unwrap();
        }
        w.finish("", lost).unwrap();
    }

    /// Runs `inputs` through what `gespann replay FILES…` runs; returns the runs of rows
    /// (host, connection ids) in the order processed, and the metrics.
    fn replay_many(inputs: &[String]) -> (Vec<(usize, Vec<u64>)>, MetricsHandle) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let opts = ProcessorOptions::default();
        let mut seen = rt.block_on(open_recordings(inputs, &opts)).unwrap();
        let runs = std::iter::from_fn(|| seen.rows.next_run())
            .map(|r| r.map(|(h, evs)| (h, evs.iter().map(|e| e.conn_id).collect())))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let r = rt.block_on(open_recordings(inputs, &opts)).unwrap();
        let m = MetricsHandle::of_hosts(r.hosts);
        let rows = r.rows;
        std::thread::spawn(move || replay_recordings(rows, &m, Speed::Max, &AtomicBool::new(false)).map(|_| m))
            .join()
            .unwrap()
            .map(|m| (runs, m))
            .unwrap()
    }

    #[test]
    fn recordings_of_two_hosts_merge_in_time_order_and_each_series_names_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        host_recording(&a, "node-a", &[1.0, 2.0, 2.0, 5.0], 1, 3);
        host_recording(&b, "node-b", &[0.5, 2.0, 3.0], 101, 4);
        let (runs, m) = replay_many(&[a.display().to_string(), b.display().to_string()]);
        // Time order; at 2.0 s both have a row: the first argument's goes first.
        assert_eq!(
            runs,
            vec![(1, vec![101]), (0, vec![1, 2, 3]), (1, vec![102, 103]), (0, vec![4])],
            "(host, conn ids) in the order processed"
        );
        let s = m.snapshot();
        assert_eq!(s.value("gespann_tcp_connections_total", &[]), None, "every series has a host");
        let total = s.family("gespann_tcp_connections_total").unwrap();
        let per_host: Vec<(String, f64)> = total
            .series
            .iter()
            .map(|sr| match &sr.value {
                crate::model::Value::Counter(v) => (sr.labels.last().unwrap().clone(), *v as f64),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(per_host, vec![("node-a".into(), 4.0), ("node-b".into(), 3.0)]);
        assert_eq!(s.value("gespann_events_lost_total", &["node-a"]), Some(3.0));
        assert_eq!(s.value("gespann_events_lost_total", &["node-b"]), Some(4.0));
        assert_eq!(m.lock().totals().connections, 7);
    }

    #[test]
    fn recordings_of_one_host_have_no_host_label() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        host_recording(&a, "node-a", &[1.0, 2.0], 1, 0);
        host_recording(&b, "node-a", &[3.0], 11, 0);
        let (runs, m) = replay_many(&[a.display().to_string(), b.display().to_string()]);
        assert_eq!(runs, vec![(0, vec![1, 2]), (0, vec![11])]);
        let s = m.snapshot();
        assert_eq!(s.value("gespann_tcp_connections_total", &[]), Some(3.0));
        for f in &s.families {
            for sr in &f.series {
                assert_eq!(sr.labels.last().map(String::as_str), Some(""), "{}: {sr:?}", f.def().name);
                assert_eq!(sr.labels.len(), f.def().all_labels().count(), "{}", f.def().name);
            }
        }
    }

    #[test]
    fn hosts_beyond_the_bound_share_the_other_label() {
        let opts = ProcessorOptions { top_n: 2, ..ProcessorOptions::default() };
        let (mut hosts, index) =
            crate::hosts::Hosts::for_inputs(&opts, &[("c", 10), ("a", 50), ("b", 20), ("a", 1), ("d", 5)]);
        // a (51 rows) and b (20) keep their names; c and d become `other`.
        assert_eq!(index, vec![2, 0, 1, 0, 2]);
        hosts.host(2).process(&ev(1.0, EventKind::Open, 1));
        let s = hosts.snapshot();
        let hosts_seen: Vec<String> = s
            .family("gespann_tcp_connections_total")
            .unwrap()
            .series
            .iter()
            .map(|sr| sr.labels.last().unwrap().clone())
            .collect();
        assert_eq!(hosts_seen, ["a", "b", crate::hosts::OTHER]);
    }

    #[test]
    fn pacing_follows_timestamps_divided_by_speed() {
        let dir = tempfile::tempdir().unwrap();
        let path = recording(dir.path(), 2.0);
        let no = AtomicBool::new(false);
        // 2 s of recording at 4x: about half a second.
        let (s, n) = replay(&path, Speed::Factor(4.0), &no);
        assert!(s.complete && n == 21);
        assert!(s.elapsed >= Duration::from_millis(450), "{:?}", s.elapsed);
        assert!(s.elapsed < Duration::from_millis(1500), "{:?}", s.elapsed);
        let (s, n) = replay(&path, Speed::Max, &no);
        assert!(s.complete && n == 21);
        assert!(s.elapsed < Duration::from_millis(400), "{:?}", s.elapsed);
    }

    #[test]
    fn a_stop_request_ends_a_paced_replay_early() {
        let dir = tempfile::tempdir().unwrap();
        let path = recording(dir.path(), 3600.0);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            s2.store(true, Ordering::Relaxed);
        });
        let (s, n) = replay(&path, Speed::Factor(1.0), &stop);
        t.join().unwrap();
        assert!(!s.complete);
        assert_eq!(n, 1, "only the first event is due in the first 300 ms");
        assert!(s.elapsed < Duration::from_secs(2), "{:?}", s.elapsed);
    }
}
