//! The cluster roles' errors: what failed, with the cause (Ballista's, the OS's) as the source.

use ballista_core::error::BallistaError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("{what}")]
    Ballista {
        what: String,
        #[source]
        cause: BallistaError,
    },
    #[error("--scheduler `{0}` is not HOST:PORT (or df://HOST:PORT)")]
    SchedulerAddress(String),
}
