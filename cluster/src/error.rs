//! The cluster roles' errors: what failed, with the cause (Ballista's, the OS's) as the source.

use ballista_core::error::BallistaError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The OS refused what `what` names (a port to listen on, a directory, the runtime).
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        cause: std::io::Error,
    },
    /// Ballista failed at `what` (starting, serving, registering).
    #[error("{what}")]
    Ballista {
        what: String,
        #[source]
        cause: BallistaError,
    },
    #[error("--scheduler `{0}` is not HOST:PORT (or df://HOST:PORT)")]
    SchedulerAddress(String),
    /// An argument Ballista cannot work with; the message says which and why.
    #[error("{0}")]
    Usage(String),
}
