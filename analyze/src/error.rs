//! The analyzer's errors; each names what failed (file, report, query).

use std::path::PathBuf;

use datafusion::error::DataFusionError;
use gespann_common::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("no recordings given: pass files, globs or directories (see `gespann analyze --help`)")]
    NoInputs,
    #[error("`{pattern}` matches no file")]
    NoMatch { pattern: String },
    #[error("`{pattern}` is not a valid glob: {cause}")]
    BadGlob { pattern: String, cause: glob::PatternError },
    #[error("directory `{}` holds no `.parquet` file", path.display())]
    EmptyDir { path: PathBuf },
    #[error("cannot read `{}`: {cause}", path.display())]
    Read { path: PathBuf, cause: std::io::Error },
    /// The file is not a recording this version can read; the message names the file (and
    /// its source, the OS or Parquet reason, follows in the chain).
    #[error(transparent)]
    Format(FormatError),
    #[error("unknown report `{name}`; known reports: {known}")]
    UnknownReport { name: String, known: String },
    #[error("report file `{}`: {what}", path.display())]
    BadReportFile { path: PathBuf, what: String },
    #[error("cannot register `{}` with the query engine: {cause}", path.display())]
    Register { path: PathBuf, cause: DataFusionError },
    #[error("{query} failed: {}", one_line(cause))]
    Query { query: String, cause: DataFusionError },
    #[error("--diff: {0}")]
    Diff(String),
    #[error("cannot start the query engine: {0}")]
    Engine(String),
    #[error("cannot write the results: {0}")]
    Output(std::io::Error),
}

// The causes are part of each message rather than `source()`s: the binary prints the whole
// chain, and each failure should read as one line that says everything once.
impl From<FormatError> for AnalyzeError {
    fn from(e: FormatError) -> Self {
        AnalyzeError::Format(e)
    }
}

impl AnalyzeError {
    /// A failure of query `query` (a report name, `--sql`, a view).
    pub fn query(query: impl Into<String>, cause: DataFusionError) -> Self {
        AnalyzeError::Query { query: query.into(), cause }
    }
}

/// DataFusion's message on one line (some span several).
fn one_line(e: &DataFusionError) -> String {
    let text = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    if text.contains("Resources exhausted") {
        format!(
            "{text} (the query needs more than --memory-limit allows, and hash joins cannot spill: raise the limit)"
        )
    } else {
        text
    }
}
