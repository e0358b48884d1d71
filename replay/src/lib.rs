//! Replay and live export (placeholder: being written).
pub mod cli {
    /// Arguments of `gespann replay`.
    #[derive(Debug, clap::Args)]
    pub struct ReplayArgs {
        /// The recording to replay.
        pub input: Option<std::path::PathBuf>,
    }

    #[derive(Debug, thiserror::Error)]
    pub enum ReplayError {
        #[error("`gespann replay` is not built yet")]
        NotYet,
    }

    pub async fn run(_args: ReplayArgs) -> Result<(), ReplayError> {
        Err(ReplayError::NotYet)
    }
}
