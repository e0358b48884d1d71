//! One recording session: the one path every writer of recordings takes (`gespann record`,
//! `gespann replay --live --record`, `cargo xtask bench-drain`).
//!
//! A session is a [`Recorder`] and, optionally, an [`Output`]. Each batch the recorder releases
//! is written (with checkpoints) before anyone else sees it; at the end the recorder drains the
//! kernel first and the lost counters are read after that, so `gespann.events_lost` covers the
//! whole window. [`run_until`] is the record loop with its stop conditions, written once so
//! that a signal arriving while a batch is written is never missed.

use std::time::Duration;

use gespann_common::Event;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::ebpf::Probes;
use crate::error::RecorderError;
use crate::filters::RecordOptions;
use crate::kernel::{Kernel, Missing};
use crate::output::{FileSummary, Output, OutputError, OutputOptions};
use crate::recorder::{Recorder, RecorderStats};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot start recording")]
    Start(#[source] RecorderError),
    #[error("recording failed")]
    Recorder(#[source] RecorderError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("cannot listen for {0}")]
    Signal(&'static str, #[source] std::io::Error),
}

impl SessionError {
    /// True when the recorder could not start for lack of privileges.
    pub fn is_permission(&self) -> bool {
        matches!(self, SessionError::Start(e) if e.is_permission())
    }
}

/// What a finished session hands back.
#[derive(Debug)]
pub struct Ended {
    /// The last rows (final samples of connections still open), written already.
    pub events: Vec<Event>,
    /// Totals, read after the final drain.
    pub stats: RecorderStats,
    pub file: Option<FileSummary>,
}

pub struct Session<K: Kernel> {
    recorder: Recorder<K>,
    output: Option<Output>,
    /// The totals taken with the last batch: read once per tick.
    stats: RecorderStats,
}

impl Session<Probes> {
    /// Creates the output first (a bad path fails before any program is attached), then loads
    /// and attaches the kernel side. Must run inside a tokio runtime.
    pub fn open(opts: &RecordOptions, output: Option<&OutputOptions>) -> Result<Session<Probes>, SessionError> {
        let output = output.map(|o| Output::create(o, opts.sample_interval)).transpose()?;
        match Probes::load(opts) {
            Ok(kernel) => Session::with_kernel(kernel, opts, output),
            Err(e) => {
                if let Some(o) = output {
                    o.abandon();
                }
                Err(SessionError::Start(e))
            }
        }
    }
}

impl<K: Kernel> Session<K> {
    /// A session over an attached kernel (the real one, or a fake).
    pub fn with_kernel(kernel: K, opts: &RecordOptions, output: Option<Output>) -> Result<Session<K>, SessionError> {
        let recorder = match Recorder::new(kernel, opts) {
            Ok(r) => r,
            Err(e) => {
                if let Some(o) = output {
                    o.abandon();
                }
                return Err(SessionError::Start(e));
            }
        };
        let mut output = output;
        if let Some(mut out) = output.take() {
            if let Err(e) = out.begin(recorder.now_ns()) {
                out.abandon();
                return Err(e.into());
            }
            tracing::info!(path = %out.path().display(), "recording");
            output = Some(out);
        }
        Ok(Session { recorder, output, stats: RecorderStats::default() })
    }

    /// What could not be attached on this kernel, and what the recording lacks because of it.
    pub fn missing(&self) -> &[Missing] {
        self.recorder.missing()
    }

    pub fn stats(&self) -> RecorderStats {
        self.recorder.stats()
    }

    /// Waits for the next rows (at most about 100 ms), writes them, and returns them.
    pub async fn next_batch(&mut self) -> Result<Vec<Event>, SessionError> {
        let events = self.recorder.next_events().await.map_err(SessionError::Recorder)?;
        self.stats = self.recorder.stats();
        if let Some(out) = &mut self.output {
            out.write(&events, &self.stats, self.recorder.now_ns())?;
        }
        Ok(events)
    }

    /// The totals as of the last batch (what [`Session::stats`] reads anew).
    pub fn last_stats(&self) -> &RecorderStats {
        &self.stats
    }

    /// Ends the session: the final drain and samples, then the lost counters, then the footer.
    pub fn finish(self) -> Result<Ended, SessionError> {
        let Session { recorder, output, .. } = self;
        let finished = recorder.finish().map_err(SessionError::Recorder)?;
        let file = match output {
            Some(mut out) => {
                out.append(&finished.events)?;
                Some(out.finish(&finished.stats)?)
            }
            None => None,
        };
        Ok(Ended { events: finished.events, stats: finished.stats, file })
    }
}

/// Why [`run_until`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The window ended.
    Deadline,
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// SIGINT and SIGTERM, listened for from creation on: a signal that arrives while the loop is
/// busy is kept until the loop looks again.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Must run inside a tokio runtime.
    pub fn new() -> Result<StopSignals, SessionError> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).map_err(|e| SessionError::Signal("SIGINT", e))?,
            terminate: signal(SignalKind::terminate()).map_err(|e| SessionError::Signal("SIGTERM", e))?,
        })
    }

    /// Completes at the next signal.
    pub async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.interrupt.recv() => Stop::Interrupt,
            _ = self.terminate.recv() => Stop::Terminate,
        }
    }
}

/// Records until `window` has passed (forever if `None`) or a signal arrives, handing every
/// batch, once written, to `each` with the totals so far.
pub async fn run_until<K: Kernel>(
    session: &mut Session<K>,
    window: Option<Duration>,
    signals: &mut StopSignals,
    mut each: impl FnMut(&[Event], &RecorderStats),
) -> Result<Stop, SessionError> {
    let deadline = window.map(|w| tokio::time::Instant::now() + w);
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    loop {
        tokio::select! {
            biased;
            stop = signals.recv() => return Ok(stop),
            () = &mut until_deadline => return Ok(Stop::Deadline),
            batch = session.next_batch() => {
                let events = batch?;
                each(&events, session.last_stats());
            }
        }
    }
}
