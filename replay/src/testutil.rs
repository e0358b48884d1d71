//! The unit tests' names (the processor's, the source's and the adapters') for the test kit's
//! hand-fed rows.

pub use gespann_testkit::fixtures::{row as ev, with_bytes as bytes};
