//! `sudo cargo xtask test`: the whole test suite on a fresh machine of this kind, in one
//! command (what `.ci/run` calls). It installs what the tests need and is missing (Debian
//! packages, a Python venv at `.venv` with DuckDB and pyarrow, tracefs), checks that the
//! committed BPF object matches its source, formatting and lints, then runs every test,
//! including the root-only ones (`#[ignore]`d in a plain `cargo test`, which runs everything
//! that needs no root). Root tests fail, never skip, when BPF cannot load.
//!
//! `--no-setup` skips the installs (for a machine set up already); `--quick` skips fmt and
//! clippy.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{root, run_cmd};

/// Debian packages the tests use: clang/bpftool to rebuild and check the BPF object,
/// libbpf-tools for tcplife (bench), iproute2 for network namespaces, prometheus for promtool
/// and the scrape tests, python3-venv for the engine cross-checks, Java for Spark, Chromium for
/// the HTML report.
const PACKAGES: &[&str] = &[
    "clang-19",
    "llvm-19",
    "libbpf-dev",
    "bpftool",
    "libbpf-tools",
    "linux-libc-dev",
    "iproute2",
    "util-linux",
    "python3",
    "python3-venv",
    "prometheus",
    // Real containers for the container tests: podman with runc (crun fails on hybrid cgroups)
    // and a static busybox for the root filesystems the tests assemble.
    "podman",
    "runc",
    "busybox-static",
    "ca-certificates",
    "openjdk-17-jre-headless",
    // The HTML report's rendering test (analyze/tests/html_chromium.rs).
    "chromium",
];

/// The engines a recording must read in (`analyze/tests/engines.rs`; DuckDB also checks the
/// reports' numbers) and the S3 API the object-store test talks to (`cli/tests/object_store.rs`,
/// a moto server; boto3 comes with it).
const PYTHON_PACKAGES: &[&str] = &["duckdb", "pyarrow", "polars", "chdb", "pyspark", "moto[server]"];

fn step(what: &str) {
    println!("\n== {what}");
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn setup(root: &Path) -> Result<()> {
    step("packages");
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        println!("all {} packages installed", PACKAGES.len());
    } else {
        println!("installing {}", missing.join(" "));
        run_cmd(Command::new("apt-get").args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }

    step("kernel interfaces");
    if !Path::new("/sys/kernel/tracing/events").exists() {
        run_cmd(Command::new("mount").args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"]))?;
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!("/sys/kernel/btf/vmlinux is missing: the kernel has no BTF, so the recorder cannot load");
    }

    step("python venv (DuckDB, pyarrow, Polars, chdb, pyspark: the engines recordings are read in; moto: an S3 API)");
    let venv = root.join(".venv");
    if !venv.join("bin/python").exists() {
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run_cmd(
        Command::new(venv.join("bin/pip")).args(["install", "-q", "--disable-pip-version-check"]).args(PYTHON_PACKAGES),
    )?;
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    let (mut do_setup, mut lints) = (true, true);
    for a in args {
        match a.as_str() {
            "--no-setup" => do_setup = false,
            "--quick" => lints = false,
            other => bail!("unknown option {other} (--no-setup, --quick)"),
        }
    }
    if !is_root() {
        bail!(
            "the full suite loads eBPF programs and sets up the machine: run it as root (sudo cargo xtask test); \
             a plain `cargo test --workspace` runs every test that needs no root"
        );
    }
    let root = root()?;
    if do_setup {
        setup(&root)?;
    }
    let python = root.join(".venv/bin/python");
    // Without the package environment (util::cargo): the tests' own nested `cargo build`
    // (gespann_testkit::gespann_bin) runs without it too, so the two builds agree.
    let cargo = || -> Result<Command> {
        let mut c = crate::util::cargo()?;
        c.env("GESPANN_PYTHON", &python);
        Ok(c)
    };

    step("the committed BPF object matches its source");
    crate::ebpf::check().context("cargo xtask check-ebpf")?;

    if lints {
        step("format and lints");
        run_cmd(cargo()?.args(["fmt", "--all", "--", "--check"]))?;
        run_cmd(cargo()?.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    }

    step("every test, the root-only ones included");
    run_cmd(cargo()?.args(["test", "--workspace", "--", "--include-ignored"]))
}
