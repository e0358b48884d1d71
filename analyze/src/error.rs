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
    #[error("`{pattern}` is not a valid glob: {source}")]
    BadGlob {
        pattern: String,
        source: glob::PatternError,
    },
    #[error("directory `{}` holds no `.parquet` file", path.display())]
    EmptyDir { path: PathBuf },
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a recording this version can read; the message names the file.
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("unknown report `{name}`; known reports: {known}")]
    UnknownReport { name: String, known: String },
    #[error("report file `{}`: {what}", path.display())]
    BadReportFile { path: PathBuf, what: String },
    #[error("cannot register `{}` with the query engine: {source}", path.display())]
    Register {
        path: PathBuf,
        source: DataFusionError,
    },
    #[error("{query} failed: {source}")]
    Query {
        query: String,
        source: DataFusionError,
    },
    #[error("--diff: {0}")]
    Diff(String),
    #[error("cannot start the query engine: {0}")]
    Engine(String),
    #[error("cannot write the results: {0}")]
    Output(std::io::Error),
}

impl AnalyzeError {
    /// A failure of query `query` (a report name, `--sql`, a view).
    pub fn query(query: impl Into<String>, source: DataFusionError) -> Self {
        AnalyzeError::Query {
            query: query.into(),
            source,
        }
    }
}
