//! What every task needs: the workspace root, and running a command that must succeed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (xtask runs from anywhere inside it).
pub fn root() -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest.parent().context("xtask has no parent directory")?.to_path_buf())
}

/// A `cargo` command for a build started from an xtask: the cargo that runs xtask, in the
/// workspace root, without the package environment `cargo run` gave xtask. Left in, that
/// environment reaches the nested build's build scripts (ring's tracks `CARGO_MANIFEST_DIR`) and
/// the nested build redoes what a plain `cargo build --release -p gespann` had built: twenty
/// minutes here, before a benchmark measured anything.
pub fn cargo() -> Result<Command> {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root()?);
    gespann_testkit::without_package_env(&mut c);
    Ok(c)
}

/// Runs a command, failing with its name if it cannot start or exits non-zero.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
