//! Everything that can go wrong anonymizing a recording, each naming the file it concerns; the
//! cause, when there is one, is the `source()`.

use std::path::PathBuf;

use gespann_common::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum AnonymizeError {
    #[error("cannot read the key file `{path}`")]
    KeyRead { path: PathBuf, source: std::io::Error },
    #[error(
        "the key file `{path}` holds {len} bytes, fewer than {min} (make one with `head -c 32 /dev/urandom > {path}`)"
    )]
    KeyTooShort { path: PathBuf, len: usize, min: usize },
    #[error("`{input}` and `{output}` are the same file: write the anonymized recording elsewhere")]
    SameFile { input: PathBuf, output: PathBuf },
    #[error("`{path}` already exists (use --force to overwrite it)")]
    Exists { path: PathBuf },
    #[error("cannot create a temporary file in `{dir}` for the anonymized recording")]
    Temporary { dir: PathBuf, source: std::io::Error },
    #[error("cannot write `{path}`")]
    Write { path: PathBuf, source: std::io::Error },
    /// Reading the input or writing the output: the format's error names the file.
    #[error(transparent)]
    Format(#[from] FormatError),
}
