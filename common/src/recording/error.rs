//! Everything that can go wrong with a recording file.
//!
//! One enum for the whole format, in a file of its own because every other part of it
//! (metadata, decoding, writing, reading) returns it and none of them should own it. Each variant
//! names the file, so a caller never has to add which one it was.

use std::path::PathBuf;

use crate::schema::SCHEMA_VERSION;

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
    Corrupt { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("`{path}` is not a Gespann recording: {missing}")]
    NotARecording { path: PathBuf, missing: String },
    #[error(
        "`{path}` has schema version {found}, newer than this gespann understands ({SCHEMA_VERSION}); upgrade gespann"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("cannot write `{path}`")]
    Write { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("bad value in `{path}`: column `{column}`: {what}")]
    BadValue { path: PathBuf, column: &'static str, what: String },
}
