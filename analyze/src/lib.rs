//! SQL reports over recordings (placeholder: being written).
pub mod cli {
    /// Arguments of `gespann analyze`.
    #[derive(Debug, clap::Args)]
    pub struct AnalyzeArgs {
        /// Recordings: files, globs or directories.
        pub inputs: Vec<String>,
    }

    #[derive(Debug, thiserror::Error)]
    pub enum AnalyzeError {
        #[error("`gespann analyze` is not built yet")]
        NotYet,
    }

    pub fn run(_args: AnalyzeArgs) -> Result<(), AnalyzeError> {
        Err(AnalyzeError::NotYet)
    }
}
