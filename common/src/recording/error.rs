//! Everything that can go wrong with a recording file.
//!
//! One enum for the whole format, in a file of its own because every other part of it
//! (metadata, decoding, writing, reading) returns it and none of them should own it. Each variant
//! names the file, so a caller never has to add which one it was; the cause, when there is one,
//! is the `source()`, said once (see [`FormatError::write`]).

use std::error::Error;
use std::path::{Path, PathBuf};

use arrow::error::ArrowError;
use parquet::errors::ParquetError;

use crate::schema::SCHEMA_VERSION;

/// The cause of a failed read or write, as a source.
pub type Cause = Box<dyn Error + Send + Sync>;

/// Everything that can go wrong with a recording file, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot open `{path}`")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot create `{path}`")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("`{path}` already exists (use --force to overwrite it)")]
    Exists { path: PathBuf },
    #[error("`{path}` is empty{hint}")]
    Empty { path: PathBuf, hint: &'static str },
    #[error("`{path}` is not a Parquet file{hint}")]
    NotParquet { path: PathBuf, hint: &'static str },
    #[error("`{path}` is not a readable Parquet file (truncated or damaged?)")]
    Corrupt { path: PathBuf, source: Cause },
    #[error("`{path}` is not a Gespann recording: {missing}")]
    NotARecording { path: PathBuf, missing: String },
    #[error(
        "`{path}` has schema version {found}, newer than this gespann understands ({SCHEMA_VERSION}); upgrade gespann"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("cannot write `{path}`")]
    Write { path: PathBuf, source: Cause },
    #[error("bad value in `{path}`: column `{column}`: {what}")]
    BadValue { path: PathBuf, column: &'static str, what: String },
}

impl FormatError {
    /// Writing `path` failed because of `e` (a Parquet, Arrow or I/O error).
    pub fn write(path: &Path, e: impl Into<ParquetError>) -> FormatError {
        FormatError::Write { path: path.to_owned(), source: said_once(Box::new(e.into())) }
    }

    /// Reading `path` failed because of `e`: the file is damaged.
    pub fn corrupt(path: &Path, e: impl Into<ParquetError>) -> FormatError {
        FormatError::Corrupt { path: path.to_owned(), source: said_once(Box::new(e.into())) }
    }
}

/// The error that says `e`'s cause once. Parquet's `External(inner)` and Arrow's
/// `ExternalError(inner)` / `IoError(text, io)` print their inner error *and* return it as
/// their source, so the chain would say it twice (`External: No space left on device (os error
/// 28): No space left on device (os error 28)`); those wrappers add nothing, so the inner error
/// takes their place.
fn said_once(e: Cause) -> Cause {
    let e = match e.downcast::<ParquetError>() {
        Ok(p) => {
            return match *p {
                ParquetError::External(inner) => said_once(inner),
                other => Box::new(other),
            };
        }
        Err(e) => e,
    };
    match e.downcast::<ArrowError>() {
        Ok(a) => match *a {
            ArrowError::ExternalError(inner) => said_once(inner),
            ArrowError::IoError(_, io) => Box::new(io),
            other => Box::new(other),
        },
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message in the chain, as the binary prints it.
    fn chain(e: &FormatError) -> String {
        let mut out = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cur = c.source();
        }
        out
    }

    #[test]
    fn a_write_error_from_parquet_says_the_os_reason_once() {
        let enospc = || std::io::Error::from_raw_os_error(28);
        let cases = [
            FormatError::write(Path::new("x.parquet"), enospc()),
            FormatError::write(Path::new("x.parquet"), ParquetError::External(Box::new(enospc()))),
            FormatError::write(Path::new("x.parquet"), ArrowError::from(enospc())),
            FormatError::corrupt(
                Path::new("x.parquet"),
                ParquetError::External(Box::new(ArrowError::ExternalError(Box::new(enospc())))),
            ),
        ];
        for e in &cases {
            let text = chain(e);
            assert_eq!(text.matches("os error 28").count(), 1, "{text}");
            assert!(text.starts_with("cannot write `x.parquet`: ") || text.contains("truncated or damaged"), "{text}");
        }
        // The OS error is still reachable, e.g. to recognise a broken pipe.
        let FormatError::Write { source, .. } = &cases[0] else { unreachable!() };
        assert!(source.downcast_ref::<std::io::Error>().is_some_and(|io| io.raw_os_error() == Some(28)));
    }

    #[test]
    fn other_parquet_errors_are_kept_as_they_are() {
        let e = FormatError::corrupt(Path::new("x.parquet"), ParquetError::EOF("eof".into()));
        assert_eq!(chain(&e), "`x.parquet` is not a readable Parquet file (truncated or damaged?): EOF: eof");
    }
}
