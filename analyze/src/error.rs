//! The analyzer's errors; each names what failed (file, report, query), and its cause is the
//! `source()`, said once: the binary prints the chain.

use std::path::PathBuf;

use datafusion::error::DataFusionError;
use gespann_common::FormatError;

/// Any cause, as a source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// An input could not be found or opened (it names the argument, file or URL).
    #[error(transparent)]
    Input(#[from] gespann_inputs::InputError),
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    /// The file is not a recording this version can read; the message names the file (and
    /// its source, the OS or Parquet reason, follows in the chain).
    #[error(transparent)]
    Format(FormatError),
    #[error("unknown report `{name}`; known reports: {known}")]
    UnknownReport { name: String, known: String },
    #[error("report file `{}`: {what}", path.display())]
    BadReportFile { path: PathBuf, what: String },
    #[error("cannot register `{}` with the query engine", path.display())]
    Register {
        path: PathBuf,
        #[source]
        cause: EngineCause,
    },
    #[error("{query} failed")]
    Query {
        query: String,
        #[source]
        cause: EngineCause,
    },
    #[error("--diff: {0}")]
    Diff(String),
    /// `--cluster URL`: the address is wrong, or the scheduler cannot be reached.
    #[error("--cluster `{url}`: {what}")]
    Cluster {
        url: String,
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The query engine, or what it needs besides a query (a runtime, temporary files), failed
    /// at `what` (e.g. "cannot start the query engine").
    #[error("{what}")]
    Engine {
        what: String,
        #[source]
        cause: Cause,
    },
    /// A chart query's result lacks what its chart reads (a column, a type, a value).
    #[error("chart `{chart}`: {what}")]
    ChartData { chart: String, what: String },
    #[error("cannot draw chart `{chart}`")]
    Draw {
        chart: String,
        #[source]
        cause: Cause,
    },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot write the results")]
    Output(#[source] std::io::Error),
}

impl From<FormatError> for AnalyzeError {
    fn from(e: FormatError) -> Self {
        AnalyzeError::Format(e)
    }
}

impl AnalyzeError {
    /// A failure of query `query` (a report name, `--sql`, a view).
    pub fn query(query: impl Into<String>, cause: DataFusionError) -> Self {
        AnalyzeError::Query { query: query.into(), cause: EngineCause(cause) }
    }

    /// The engine failed at `what` because of `cause`; a DataFusion error is rendered as
    /// [`EngineCause`] renders it.
    pub fn engine(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        let cause = cause.into();
        let cause = match cause.downcast::<DataFusionError>() {
            Ok(e) => Box::new(EngineCause(*e)),
            Err(other) => other,
        };
        AnalyzeError::Engine { what: what.into(), cause }
    }
}

/// A DataFusion error as the cause of an [`AnalyzeError`]: its message on one line (some span
/// several), with a hint when the memory limit was hit. It is the end of the chain: DataFusion's
/// message already includes the errors it wraps, which it also returns as its `source()`.
#[derive(Debug)]
pub struct EngineCause(pub DataFusionError);

impl EngineCause {
    /// True when the query ran out of memory (the limit was hit).
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self.0.find_root(), DataFusionError::ResourcesExhausted(_))
    }
}

impl std::fmt::Display for EngineCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        f.write_str(&text)?;
        if self.is_out_of_memory() {
            f.write_str(
                " (the query needs more than --memory-limit allows, and hash joins cannot spill: raise the limit)",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for EngineCause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_cause_is_one_line_with_the_memory_hint_when_the_limit_was_hit() {
        let e = EngineCause(DataFusionError::Context(
            "sorting".into(),
            Box::new(DataFusionError::ResourcesExhausted("Failed to allocate\n  42 bytes".into())),
        ));
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("Failed to allocate 42 bytes") && text.ends_with("raise the limit)"), "{text}");
        assert!(std::error::Error::source(&e).is_none());
        let plain = EngineCause(DataFusionError::Plan("no column\n`x`".into()));
        assert!(!plain.to_string().contains("memory-limit"), "{plain}");
    }

    #[test]
    fn a_datafusion_error_given_to_engine_is_rendered_on_one_line() {
        let e = AnalyzeError::engine("cannot start the query engine", DataFusionError::Configuration("a\nb".into()));
        let AnalyzeError::Engine { cause, .. } = &e else { unreachable!() };
        assert!(cause.downcast_ref::<EngineCause>().is_some());
        assert_eq!(e.to_string(), "cannot start the query engine");
    }
}
