//! `gespann doctor`: can a recording be made on this machine, and if not, why.
//!
//! Most checks read files anyone can read (kernel version, BTF, tracefs, cgroup v2, the
//! capabilities this process holds); with privileges it also loads and attaches the probes for
//! real, which is the only proof that counts.

use std::path::Path;

use crate::ebpf::{self, CGROUP_HOOKS, TRACEPOINTS};
use crate::kernel::Kernel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
    Check { name: name.into(), status, detail: detail.into() }
}

/// Capability numbers from `linux/capability.h`.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// True if this process may load the probes (CAP_BPF+CAP_PERFMON, or CAP_SYS_ADMIN).
pub fn privileged() -> bool {
    effective_caps().is_some_and(|c| {
        let has = |n: u32| c & (1 << n) != 0;
        has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
    })
}

/// Runs every check. With `try_load` and privileges, also loads and attaches the probes.
pub fn run(try_load: bool) -> (Vec<Check>, bool) {
    let mut out = Vec::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    out.push(check("kernel", Status::Ok, kernel));

    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    out.push(check(
        "BTF (/sys/kernel/btf/vmlinux)",
        if btf { Status::Ok } else { Status::Fail },
        if btf {
            "present: CO-RE relocations resolve against it"
        } else {
            "missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y"
        },
    ));

    let caps = effective_caps().unwrap_or(0);
    let has = |n: u32| caps & (1 << n) != 0;
    let priv_ok = privileged();
    out.push(check(
        "capabilities",
        if priv_ok { Status::Ok } else { Status::Fail },
        format!(
            "CAP_BPF={} CAP_PERFMON={} CAP_NET_ADMIN={} CAP_SYS_ADMIN={}{}",
            has(CAP_BPF),
            has(CAP_PERFMON),
            has(CAP_NET_ADMIN),
            has(CAP_SYS_ADMIN),
            if priv_ok { "" } else { " — run with sudo, or grant CAP_BPF and CAP_PERFMON (and CAP_NET_ADMIN)" }
        ),
    ));

    let tracefs =
        ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].into_iter().find(|d| Path::new(d).join("events").exists());
    out.push(match tracefs {
        Some(d) => check("tracefs", Status::Ok, format!("mounted at {d}")),
        None if priv_ok => {
            check("tracefs", Status::Warn, "not mounted: `gespann record` mounts it at /sys/kernel/tracing")
        }
        None => check("tracefs", Status::Unknown, "not mounted, and mounting it needs root"),
    });
    let mut essential_ok = true;
    for &(prog, cat, ev, effect) in TRACEPOINTS {
        let name = format!("tracepoint {cat}:{ev}");
        let st = match tracefs {
            Some(d) if Path::new(d).join("events").join(cat).join(ev).join("id").exists() => {
                check(name, Status::Ok, "available")
            }
            Some(_) => {
                if prog == "handle_set_state" {
                    essential_ok = false;
                }
                check(
                    name,
                    if prog == "handle_set_state" { Status::Fail } else { Status::Warn },
                    format!("missing: without it, no {effect}"),
                )
            }
            None => check(name, Status::Unknown, "tracefs not mounted"),
        };
        out.push(st);
    }
    match ebpf::cgroup2_root() {
        Some(root) => out.push(check(
            "cgroup v2",
            Status::Ok,
            format!("mounted at {}: UDP peer and close hooks attach there", root.display()),
        )),
        None => out.push(check(
            "cgroup v2",
            Status::Warn,
            format!("not mounted: without it, no {}", CGROUP_HOOKS.iter().map(|h| h.1).collect::<Vec<_>>().join("; ")),
        )),
    }

    let mut can_record = btf && priv_ok && essential_ok;
    if try_load && priv_ok {
        match crate::ebpf::Probes::load(&crate::filters::RecordOptions {
            ring_buffer_bytes: 1 << 16,
            ..Default::default()
        }) {
            Ok(probes) => {
                let rec = &probes;
                let missing = rec.missing().len();
                out.push(check(
                    "load and attach",
                    if missing == 0 { Status::Ok } else { Status::Warn },
                    if missing == 0 {
                        "every program loaded and attached".to_owned()
                    } else {
                        format!(
                            "{missing} programs could not attach: {}",
                            rec.missing().iter().map(|m| m.what.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    },
                ));
            }
            Err(e) => {
                can_record = false;
                out.push(check("load and attach", Status::Fail, format!("{e}: {}", error_chain(&e))));
            }
        }
    } else if !priv_ok {
        out.push(check("load and attach", Status::Unknown, "not tried: needs privileges"));
    }
    (out, can_record)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}
