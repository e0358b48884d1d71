//! The recorder: loads the kernel side, drains its ring buffer and turns raw kernel events into
//! recording rows ([`gespann_common::Event`]).
//!
//! API (stable for `gespann record` and `gespann replay --live`):
//! ```ignore
//! let mut rec = Recorder::start(&RecordOptions::default())?;   // needs root / CAP_BPF+CAP_PERFMON
//! loop { let events = rec.next_events().await?; /* in time order, may be empty */ }
//! let last = rec.finish()?;                                     // final samples of open connections
//! ```

use std::time::Duration;

use gespann_common::Event;

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub ports: Vec<u16>,
    pub sample_interval: Duration,
    pub ring_buffer_bytes: u32,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            pids: vec![],
            comms: vec![],
            ports: vec![],
            sample_interval: Duration::from_secs(1),
            ring_buffer_bytes: 16 << 20,
        }
    }
}

/// Running totals.
#[derive(Clone, Debug, Default)]
pub struct RecorderStats {
    pub events: u64,
    pub events_lost: u64,
    pub open_connections: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("not implemented yet")]
    NotYet,
}

pub struct Recorder {}

impl Recorder {
    pub fn start(_opts: &RecordOptions) -> Result<Recorder, RecorderError> {
        Err(RecorderError::NotYet)
    }

    /// Waits for the next events (at most about 200 ms) and returns them in time order.
    pub async fn next_events(&mut self) -> Result<Vec<Event>, RecorderError> {
        Err(RecorderError::NotYet)
    }

    pub fn stats(&self) -> RecorderStats {
        RecorderStats::default()
    }

    /// Ends the recording: drains the kernel, and returns the remaining events, including one
    /// final `sample` for every connection still open.
    pub fn finish(self) -> Result<Vec<Event>, RecorderError> {
        Err(RecorderError::NotYet)
    }
}
