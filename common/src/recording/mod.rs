//! Reading and writing recordings: rows of [`Event`](crate::Event) in one Parquet file
//! (zstd-compressed once finished; LZ4 while `gespann record` writes it, see [`Pages`]).
//!
//! One file per job, each importing only the ones below it, never back:
//!
//! - `error`: [`FormatError`], what every other part returns;
//! - `meta`: [`RecordingMeta`] and its Parquet key-value pairs;
//! - `encode`: rows to Arrow batches ([`BatchBuilder`]) and the [`writer_properties`];
//! - `decode`: Arrow batches back to rows ([`events_from_batch`]);
//! - `files`: creating a recording with mode 0600 ([`create_private`]) and where its crash
//!   journal lives ([`journal_path`]);
//! - `reader`: [`inspect`] and [`RecordingReader`];
//! - `writer`: [`RecordingWriter`] with its checkpoints, and [`compact`] (which reads too).
//!
//! Their round-trip tests are in `common/tests/recording.rs`, on the test kit's rows.
//!
//! This file only re-exports them, so every caller keeps using `gespann_common::recording::*`.

mod decode;
mod encode;
mod error;
mod files;
mod meta;
mod reader;
mod writer;

pub use decode::events_from_batch;
pub use encode::{BatchBuilder, Pages, writer_properties};
pub use error::FormatError;
pub use files::{create_private, journal_path};
pub use meta::RecordingMeta;
pub use reader::{Footer, RecordingReader, check_footer, inspect, inspect_footer};
pub use writer::{RecordingWriter, WriteSummary, compact};
