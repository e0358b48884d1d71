//! `cargo xtask image`: builds the Gespann container image offline. It builds the binary,
//! assembles the build context under `target/image/` (the binary, the shared libraries `ldd`
//! names and the loader: [`gespann_testkit::image`], which the image test uses too) and runs
//! `<engine> build -f Containerfile` on it. The release binary is built with the README's
//! release command (`cargo build --release`) so the image holds the binary a user would build.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gespann_testkit::image;

use crate::util::{root, run_cmd};

const USAGE: &str = "usage: cargo xtask image [--debug] [--tag gespann:dev] [--engine podman|docker]";

/// `cargo xtask image [--debug] [--tag TAG] [--engine podman|docker]`
pub fn run(args: &[String]) -> Result<()> {
    let mut debug = false;
    let mut tag = "gespann:dev".to_owned();
    let mut engine = "podman".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--debug" => debug = true,
            "--tag" | "-t" => tag = val("--tag")?,
            "--engine" => engine = val("--engine")?,
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if !matches!(engine.as_str(), "podman" | "docker") {
        bail!("--engine must be podman or docker, not `{engine}`");
    }
    let root = root()?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    // The debug binary is the test build's (`cargo build -p gespann` would resolve other
    // features and rebuild DataFusion); the release one is the README's build.
    let (build, bin): (&[&str], _) = if debug {
        (&["build", "--workspace", "--tests"], target.join("debug/gespann"))
    } else {
        (&["build", "--release"], target.join("release/gespann"))
    };
    run_cmd(crate::util::cargo()?.args(build))?;
    let context = target.join("image");
    let files = image::assemble(&bin, &context)?;
    eprintln!("image: {} files in {}", files.len(), context.join("rootfs").display());
    for f in &files {
        eprintln!("  /{}", f.strip_prefix(context.join("rootfs")).unwrap_or(f).display());
    }
    image::build(&engine, &context, &tag, &[])?;
    eprintln!("image: built {tag}; run it with\n  {}", run_line(&engine, &tag));
    Ok(())
}

/// The command line that records in the image (as the README gives it; podman on a host with
/// hybrid cgroups needs `--runtime runc` too, crun fails there).
fn run_line(engine: &str, tag: &str) -> String {
    format!(
        "sudo {engine} run --rm --privileged --pid=host --network=host --cgroupns=host -v /sys:/sys \
         -v /sys/fs/cgroup:/sys/fs/cgroup -v \"$PWD\":/out {tag} record --duration 30s"
    )
}
