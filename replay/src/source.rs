//! Where events come from: a recording (read through [`RecordingReader`], paced by its
//! timestamps) or the live recorder (the same [`gespann_recorder::Recorder`] that `gespann
//! record` uses). Both hand the processor the same [`gespann_common::Event`] rows.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use gespann_common::FormatError;
use gespann_common::recording::RecordingReader;
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

/// What a replay read.
#[derive(Clone, Debug, Default)]
pub struct ReplayStats {
    pub events: u64,
    pub elapsed: Duration,
    /// False if it was stopped before the end.
    pub complete: bool,
}

/// Replays `reader` into `metrics`, pacing by timestamps unless `Speed::Max`; returns early
/// when `stop` is set. Blocking: run it on a blocking thread.
pub fn replay_recording(
    mut reader: RecordingReader,
    metrics: &MetricsHandle,
    speed: Speed,
    stop: &AtomicBool,
) -> Result<ReplayStats, FormatError> {
    let started = Instant::now();
    let mut first_ts: Option<i64> = None;
    let mut stats = ReplayStats::default();
    metrics.lock().set_events_lost(reader.meta.events_lost);
    while let Some(batch) = reader.next_events() {
        let batch = batch?;
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
                metrics.lock().process_all(chunk);
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
        let stats = replay_recording(RecordingReader::open(path).unwrap(), &m, speed, stop).unwrap();
        let n = m.lock().totals().connections;
        (stats, n)
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
