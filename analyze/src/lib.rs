//! `gespann analyze`: SQL reports over Gespann recordings, on Apache DataFusion.
//!
//! Shaped like `datafusion-cli`: a thin shell over a [`datafusion::prelude::SessionContext`].
//! [`session::Analyzer`] registers the recordings (table `events`, every input unioned with a
//! `source` column naming its file), the file metadata (table `recordings`), the view
//! `connections` (one row per `(source, conn_id)`) and one function (`epoch_ns`, named and
//! behaving as DuckDB's so the same report SQL runs in both engines), then runs SQL. Everything
//! the analyzer answers is SQL in `queries/` at the workspace root, embedded in the binary
//! ([`reports`]); the Rust around it only finds the inputs ([`inputs`]), renders results
//! ([`render`]; reports' tables for people are fitted to the terminal by [`tables`]) and
//! compares two sets of recordings ([`diff`]). What the report run and the comparison share
//! on the way out (progress, the lost-events banner, sections) lives in one module, `output`,
//! that imports neither of them. Keeping the answers in SQL means a user can
//! read, copy and extend every report (`--queries DIR`), and each report has a snapshot
//! test over the sample recordings. `--html` ([`html`]) draws charts from more SQL of the same
//! kind (`queries/charts/`) into one self-contained page with the report tables.
//!
//! Recordings of schema version 1 and 2 are read together: each file is a table of its own, and
//! one that lacks the columns version 2 added is presented through a view that adds them as
//! typed NULLs (a projection, nothing cast), so every input has the same columns. Reports show
//! a container or pod in a `workload` column that is left out when no row has one
//! ([`render::drop_unset_optional`]), so a host without containers gets the reports it got before.
//!
//! Speed and memory shape the rest. `connections` is built per file and grouped by `conn_id`
//! alone (grouping by a string `source` was several times slower), with string columns taken
//! from each connection's terminal or open row (two hash joins) rather than aggregated over
//! every row (string min/max aggregates were twice as slow). A run of several reports computes it
//! once, in memory when it fits well within the limit. The session runs with a fair spilling
//! memory pool (`--memory-limit`), so sorts and aggregations spill to disk instead of growing
//! without bound; hash joins cannot spill, so their size is planned instead: the connections
//! are counted first (the span of `conn_id` in the files' statistics, or, when that is too
//! many, a HyperLogLog estimate), and when they would not fit, [`split`] writes the events to
//! disk sliced by `conn_id` and `connections` is computed one slice per pass into temporary
//! Parquet files. A pass that still runs out of memory doubles the number of slices.

pub mod cli;
pub mod cluster;
pub mod diff;
mod error;
pub mod html;
pub mod inputs;
mod memory;
mod output;
pub mod render;
pub mod reports;
pub mod session;
pub mod split;
pub mod tables;

pub use error::{AnalyzeError, EngineCause};
