//! The recording format every part of Gespann shares.
//!
//! Shaped as the single place where an event is defined: [`raw`] mirrors the kernel's
//! `struct gsp_event` (the C header in `recorder-ebpf/` is the source of truth, checked by a
//! layout test), [`event::Event`] is the one user-space row type that the recorder writes, the
//! analyzer reads and the replay adapters consume, and [`schema`] and [`recording`] pin schema
//! version 2 of the Parquet file (and what version 1 lacked). [`journal`] makes recordings survive a crash. Nothing here needs root or the kernel, so everything that
//! handles recordings can be tested on byte fixtures.

pub mod event;
pub mod journal;
pub mod raw;
pub mod recording;
pub mod schema;

pub use event::{Event, EventKind, Protocol, ResetBy, Role, Workload};
pub use recording::{FormatError, RecordingMeta, RecordingReader, RecordingWriter};
