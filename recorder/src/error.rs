//! The recorder's errors. Each message names what failed and never repeats its cause: the
//! cause is the `#[source]`, and the binary prints the chain once.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(
        "permission denied loading eBPF programs: run as root (sudo) or grant CAP_BPF and CAP_PERFMON (plus CAP_NET_ADMIN for the cgroup hooks)"
    )]
    Permission(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot load the eBPF object")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("cannot mount tracefs at /sys/kernel/tracing (needed to find tracepoints)")]
    Tracefs(#[source] std::io::Error),
    #[error("failed to attach `{program}` to {target}")]
    Attach {
        program: String,
        target: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("the eBPF object has no program `{0}` (stale object?)")]
    MissingProgram(String),
    #[error("the eBPF object has no map `{0}` (stale object?)")]
    MissingMap(&'static str),
    #[error("cannot use map `{0}`")]
    Map(&'static str, #[source] Box<aya::maps::MapError>),
    #[error("cannot open cgroup v2 root `{path}`")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("too many filters: at most {pids} --pid, {comms} --comm and {ports} --port")]
    TooManyFilters { pids: usize, comms: usize, ports: usize },
    #[error("--buffer-mib {0}: the ring buffer must be a power of two MiB, at most 2048")]
    BufferMib(u32),
    #[error("ring buffer size {0} is not a power of two of at least 4096 bytes")]
    RingSize(u32),
    #[error("--sample-interval must be longer than 0")]
    SampleInterval,
    #[error(
        "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): the kernel side needs a kernel built with CONFIG_DEBUG_INFO_BTF"
    )]
    Btf(#[source] aya::BtfError),
    #[error(
        "--leave-out {0}: not a program that may be left out (see TRACEPOINTS and CGROUP_HOOKS in recorder/src/ebpf.rs; handle_set_state is needed)"
    )]
    LeaveOut(String),
    #[error("cannot poll the ring buffer")]
    Poll(#[source] std::io::Error),
    #[error("sock_diag netlink dump failed")]
    SockDiag(#[source] std::io::Error),
    #[error("--cgroup {path}: no such cgroup under the cgroup2 root")]
    NoSuchCgroup {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// True when `e` or one of its causes is an OS error saying the caller lacks privileges.
pub fn caused_by_permission(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

impl RecorderError {
    /// A load failure: a permission error when the kernel said EPERM/EACCES.
    pub(crate) fn load(e: aya::EbpfError) -> RecorderError {
        if caused_by_permission(&e) { RecorderError::Permission(Box::new(e)) } else { RecorderError::Load(Box::new(e)) }
    }

    /// True when the cause is missing privileges.
    pub fn is_permission(&self) -> bool {
        matches!(self, RecorderError::Permission(_))
            || matches!(self, RecorderError::Attach { source, .. } if caused_by_permission(source.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_is_read_from_the_errno_of_any_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        assert!(caused_by_permission(&Outer(std::io::Error::from_raw_os_error(libc::EPERM))));
        assert!(caused_by_permission(&std::io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!caused_by_permission(&Outer(std::io::Error::from_raw_os_error(libc::ENOENT))));
        // Text that merely mentions a permission is not one.
        assert!(!caused_by_permission(&Outer(std::io::Error::other("EPERM Operation not permitted"))));
    }
}
