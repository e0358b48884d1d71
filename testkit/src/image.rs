//! The Gespann container image, built from what is on this machine: no base image is pulled
//! (none can be, here), so the build context is a root filesystem holding the `gespann` binary,
//! exactly the shared libraries `ldd` names for it and the dynamic loader, and the repository's
//! `Containerfile` (`FROM scratch`) copies it in. `cargo xtask image` and the image test
//! (`cli/tests/image.rs`) both assemble and build through here, so the test builds the image
//! the way a user does.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where the binary sits in the image (the Containerfile's ENTRYPOINT).
pub const BIN_IN_IMAGE: &str = "usr/bin/gespann";

/// The CA bundle `rustls-native-certs` finds on Debian-like systems; copied when present so
/// that `gespann analyze https://…` / `s3://…` can verify servers from inside the image.
const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// The absolute paths of the shared objects in `ldd`'s output (libraries and the loader; the
/// vDSO, which the kernel maps, has no path and is left out).
pub fn shared_objects(ldd_output: &str) -> Vec<PathBuf> {
    ldd_output
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line.trim(),
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// What `ldd` says `bin` needs; empty for a static binary.
fn needed_by(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("cannot run ldd (Debian package libc-bin)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // ldd exits 1 for a static binary, printing "not a dynamic executable".
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stdout.contains("not a dynamic executable") || stderr.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", bin.display(), stderr.trim());
    }
    if let Some(missing) = stdout.lines().find(|l| l.contains("not found")) {
        bail!("{} needs a library this machine lacks: {}", bin.display(), missing.trim());
    }
    Ok(shared_objects(&stdout))
}

/// Copies `src` (following symlinks) to `root` + its absolute path `at`.
fn copy_into(root: &Path, src: &Path, at: &Path) -> Result<PathBuf> {
    let dest = root.join(at.strip_prefix("/").unwrap_or(at));
    std::fs::create_dir_all(dest.parent().expect("a path below the root"))
        .with_context(|| format!("cannot create the directory of {}", dest.display()))?;
    std::fs::copy(src, &dest).with_context(|| format!("cannot copy {} to {}", src.display(), dest.display()))?;
    Ok(dest)
}

/// Makes `context` a build context for the Containerfile: `context/rootfs/` with the binary at
/// [`BIN_IN_IMAGE`], every shared object `ldd` names at its own path, the CA bundle when the
/// host has one, and an empty `/tmp`. Returns the files copied, the binary first.
pub fn assemble(bin: &Path, context: &Path) -> Result<Vec<PathBuf>> {
    let root = context.join("rootfs");
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("cannot clear {}", root.display()))?;
    }
    let mut files = vec![copy_into(&root, bin, &Path::new("/").join(BIN_IN_IMAGE))?];
    for lib in needed_by(bin)? {
        files.push(copy_into(&root, &lib, &lib)?);
    }
    let ca = Path::new("/").join(CA_BUNDLE);
    if ca.exists() {
        files.push(copy_into(&root, &ca, &ca)?);
    }
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    Ok(files)
}

/// `<engine> build -f <workspace>/Containerfile -t tag [extra...] context`, with the version and
/// git revision as build arguments (the image's OCI labels). `engine` is `podman` or `docker`.
pub fn build(engine: &str, context: &Path, tag: &str, extra: &[&str]) -> Result<()> {
    let root = crate::workspace_root();
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mut cmd = Command::new(engine);
    cmd.arg("build")
        .arg("-f")
        .arg(root.join("Containerfile"))
        .args(["-t", tag])
        .args(["--build-arg", &format!("VERSION={}", env!("CARGO_PKG_VERSION"))])
        .args(["--build-arg", &format!("REVISION={revision}")])
        .args(extra)
        .arg(context);
    let status = cmd.status().with_context(|| format!("cannot run {engine} (is it installed?)"))?;
    if !status.success() {
        bail!("{engine} build of {tag} failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ldd target/debug/gespann` on the development machine (Debian 12, glibc 2.36).
    const LDD: &str = "\tlinux-vdso.so.1 (0x00007fa01dc04000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007fa01dbd3000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007fa013320000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fa01313e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007fa01dc06000)
";

    #[test]
    fn ldd_output_gives_every_library_and_the_loader_but_not_the_vdso() {
        let want: Vec<PathBuf> = [
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(shared_objects(LDD), want);
    }
}
