//! The recorder: loads the kernel side, drains its ring buffer, turns raw kernel events into
//! recording rows ([`gespann_common::Event`]) and writes them.
//!
//! Shaped around one seam to the kernel, the [`Kernel`] trait, with pure logic behind it, so
//! everything but loading is tested without root:
//! - [`ebpf::Probes`] is the real kernel (aya, sock_diag, `/proc`); [`fake::FakeKernel`] an
//!   in-memory one for tests and `cargo xtask bench-drain`.
//! - [`tracker::Tracker`] turns records and snapshots into rows: identities, payload counters,
//!   amendments, the reorder buffer.
//! - [`Recorder`] is the control loop over a kernel: ticks, samples, the reorder watermark,
//!   UDP flow release, the final drain.
//! - [`Session`] is the one path that writes recordings (`gespann record`, `gespann replay
//!   --live --record`, bench-drain): a recorder and an [`output::Output`] with its checkpoints.
//!
//! The kernel reports lifecycle transitions (open, close, reset, failed, retransmit) with
//! counters read from the socket at that moment; user space adds what tracepoints cannot
//! give: connections already open at start and exact periodic samples (both from sock_diag,
//! the kernel's `ss` interface), and the time order of rows.
//!
//! ```text
//! let mut s = Session::open(&opts, Some(&output))?;   // needs root / CAP_BPF+CAP_PERFMON
//! let mut signals = StopSignals::new()?;
//! run_until(&mut s, Some(window), &mut signals, |rows, stats| { /* rows are written */ }).await?;
//! let ended = s.finish()?;                             // final samples, lost counters, footer
//! ```

pub mod addr;
pub mod doctor;
pub mod ebpf;
mod error;
pub mod fake;
mod filters;
pub mod kernel;
pub mod netns;
pub mod output;
mod recorder;
pub mod session;
pub mod sockdiag;
pub mod tracker;
pub mod workload;

pub use error::{RecorderError, caused_by_permission};
pub use filters::{Filters, OwnerView, RecordOptions, RecorderArgs};
pub use kernel::{Kernel, Lost, Missing};
pub use output::{FileSummary, OutputOptions};
pub use recorder::{Finished, REORDER_WINDOW, Recorder, RecorderStats, TICK};
pub use session::{Ended, Session, SessionError, Stop, StopSignals, run_until};
