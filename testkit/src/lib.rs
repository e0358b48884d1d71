//! The one test kit of the workspace (dev-only, never published): synthetic recordings, the
//! small fixtures tests build, and how a test finds what it runs.
//!
//! Shaped so that every test and tool that needs a recording it did not record gets it from one
//! place: [`synth`] is the generator behind `cargo xtask synth` (the analyzer's tests and the
//! benchmarks use the very same code, so a seed names one file), [`fixtures`] holds the
//! hand-made rows whose numbers tests assert, and [`env`] says where the `gespann` binary, the
//! Python interpreter and a free port are; [`cluster`] starts a Ballista cluster of the binary;
//! [`recordings`] holds real recordings of the earlier schema versions;
//! [`traffic`] makes realistic loopback traffic and reports exactly what its sockets did (`cargo
//! xtask traffic`, and the root test that records it).
//! The library crates depend on it only as a dev-dependency; xtask depends on it normally.

pub mod cluster;
pub mod env;
pub mod fixtures;
pub mod image;
pub mod podman;
pub mod recordings;
pub mod synth;
pub mod traffic;

pub use env::{free_port, free_port_v6, gespann_bin, python, without_package_env, workspace_root};
