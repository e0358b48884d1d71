//! What a test runs, found one way for every crate: the `gespann` binary, the Python
//! interpreter (DuckDB and pyarrow cross-checks, helper servers) and a free loopback port.

use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the directory holding `testkit/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ has a parent").to_path_buf()
}

/// The `gespann` binary of this build. Cargo names it in `CARGO_BIN_EXE_gespann` for the
/// integration tests of the `gespann` package; every other test gets it built once per test
/// process with `cargo build --workspace --tests` (a no-op when it is up to date, so a test
/// never runs a stale binary), in the target directory of the workspace (`CARGO_TARGET_DIR` if
/// set). That is the build `cargo test --workspace` (the README's test command) has just made,
/// with the same features: `cargo build -p gespann` would resolve features without the
/// dev-dependencies, rebuild half the dependency tree (DataFusion among it: ten minutes here)
/// and overwrite the binary, and the next test build would rebuild it back.
pub fn gespann_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CARGO_BIN_EXE_gespann") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--workspace", "--tests", "--quiet"]).current_dir(workspace_root());
        let st = without_package_env(&mut build).status().expect("run cargo build");
        assert!(st.success(), "cargo build --workspace --tests failed");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
        let bin = target.join("debug/gespann");
        assert!(bin.exists(), "no binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Clears from `cmd`'s environment what cargo sets for the package it builds or runs
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...), for a cargo started from a test or an xtask. Left in,
/// they reach the build scripts of that cargo: ring's tracks `CARGO_MANIFEST_DIR`, so every test
/// package (each with its own directory) made the nested build rerun it and rebuild all that
/// depends on ring, DataFusion among it: seven minutes per test package in CI.
pub fn without_package_env(cmd: &mut Command) -> &mut Command {
    const SET_BY_CARGO: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| SET_BY_CARGO.iter().any(|p| n.starts_with(p))) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// The Python to run: `GESPANN_PYTHON`, else `<workspace>/.venv/bin/python` when it exists, else
/// `python3` from `PATH`. The DuckDB cross-checks need `duckdb` and `pyarrow` in it
/// (`python3 -m venv .venv && .venv/bin/pip install duckdb pyarrow` in the workspace).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("GESPANN_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    port_of(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
}

/// A TCP port on ::1 that was free a moment ago (bound, then released).
pub fn free_port_v6() -> u16 {
    port_of(TcpListener::bind((Ipv6Addr::LOCALHOST, 0)))
}

fn port_of(l: std::io::Result<TcpListener>) -> u16 {
    l.and_then(|l| l.local_addr()).expect("bind an ephemeral port").port()
}
