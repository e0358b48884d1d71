//! Building the kernel side. The object is committed (as cilium/ebpf's bpf2go does) so that
//! `cargo build` needs no clang; CI rebuilds it and proves the committed bytes match the source.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{root, run_cmd};

pub const OBJECT: &str = "recorder-ebpf/gespann.bpf.o";
const SOURCE: &str = "src/gespann.bpf.c";
const CLANG: &str = "clang-19";

/// Compiles the BPF object into `out`. Run from `recorder-ebpf/` with relative paths and a
/// prefix map, so the BTF line info holds no absolute path and the bytes are reproducible.
pub fn build(out: &Path) -> Result<()> {
    // Written next to `out` and renamed over it once complete: a failed compile leaves the
    // committed object in place (the recorder crate embeds it, so without it nothing builds).
    let partial = out.with_extension("o.partial");
    compile(&partial)?;
    std::fs::rename(&partial, out).with_context(|| format!("cannot move the object to {}", out.display()))?;
    eprintln!("xtask: wrote {}", out.display());
    Ok(())
}

fn compile(out: &Path) -> Result<()> {
    let dir = root()?.join("recorder-ebpf");
    run_cmd(
        Command::new(CLANG)
            .current_dir(&dir)
            .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Werror"])
            .args(["-I", "src", "-I", "/usr/include/x86_64-linux-gnu"])
            .arg(format!("-fdebug-prefix-map={}=.", dir.display()))
            .args(["-c", SOURCE, "-o"])
            .arg(out),
    )
    .with_context(|| format!("{CLANG} is needed to build the BPF object (apt-get install clang-19 libbpf-dev)"))?;
    // Drop DWARF (BTF and BTF.ext stay): smaller, and free of build-machine detail.
    run_cmd(Command::new("llvm-strip-19").arg("--strip-debug").arg(out))?;
    Ok(())
}

pub fn check() -> Result<()> {
    let committed = root()?.join(OBJECT);
    let fresh = std::env::temp_dir().join(format!("gespann-check-{}.bpf.o", std::process::id()));
    build(&fresh)?;
    let a = std::fs::read(&committed).with_context(|| format!("cannot read {}", committed.display()))?;
    let b = std::fs::read(&fresh)?;
    let _ = std::fs::remove_file(&fresh);
    if a != b {
        bail!(
            "{OBJECT} is stale: it differs from a fresh build of recorder-ebpf/src (run `cargo xtask build-ebpf` and commit)"
        );
    }
    eprintln!("xtask: {OBJECT} matches its source");
    Ok(())
}
