//! `gespann scheduler` and `gespann executor`: the gespann binary as an Apache DataFusion
//! Ballista cluster, on which `gespann analyze --cluster df://HOST:PORT` runs its reports.
//!
//! The cluster is this binary rather than Ballista's own because a plan is not self-contained:
//! it names the analyzer's functions (`epoch_ns`, ...), which the scheduler (planning) and every
//! executor (running) look up by name in their own registries, and it names recordings in object
//! stores by URL, which both open with the same environment configuration as `gespann analyze`
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`). [`session`] sets both up, once, for both roles; the rest
//! is Ballista's.

mod error;
mod executor;
mod scheduler;
mod session;

pub use error::ClusterError;
pub use executor::{ExecutorArgs, run_executor};
pub use scheduler::{BoundScheduler, SchedulerArgs};

/// The runtime both roles run on: plans of many unioned recordings are deep, and Ballista's
/// own binaries give their threads 32 MiB of stack for them.
fn runtime() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .map_err(|e| ClusterError::Io { what: "cannot start the runtime".into(), cause: e })
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM; Ctrl-C alone if SIGTERM
/// cannot be handled).
async fn stop_requested() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `host` as Ballista puts it before `:PORT` in its addresses and URLs: an IPv6 address in
/// brackets.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() }
}
