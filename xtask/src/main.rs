//! Project chores cargo cannot do, as `cargo xtask <task>` (alias in `.cargo/config.toml`):
//! rebuild and check the committed BPF object, make the sample recordings, generate synthetic
//! recordings, run the benchmarks. Everything here shells out to real tools; nothing is faked.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod ebpf;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  build-ebpf       recompile recorder-ebpf/src/*.c into recorder-ebpf/gespann.bpf.o (needs clang-19)
  check-ebpf       fail if the committed object differs from a fresh build of its source
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some(task) = args.first() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let rest = &args[1..];
    match task.as_str() {
        "build-ebpf" => ebpf::build(&root()?.join(ebpf::OBJECT)),
        "check-ebpf" => ebpf::check(),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!(
            "unknown task `{other}` (with {} more arguments)\n{USAGE}",
            rest.len()
        ),
    }
}

/// The workspace root (xtask runs from anywhere inside it).
pub fn root() -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf())
}

/// Runs a command, failing with its name if it cannot start or exits non-zero.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
