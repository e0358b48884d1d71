//! The files around a recording: how one is created (mode 0600, never silently replaced) and
//! where its checkpoint journal lives.
//!
//! Its own module because the writer, the compaction, the reader's hints and the crash journal
//! ([`crate::journal`]) all need these two facts, and the journal builds on the format: defining
//! them here lets the format name the journal without importing it.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::FormatError;

/// The checkpoint journal that belongs to a recording: `<output>.journal` (see [`crate::journal`]).
pub fn journal_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// Opens `path` for writing with mode 0600, refusing to replace an existing file unless `force`.
pub fn create_private(path: &Path, force: bool) -> Result<File, FormatError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).mode(0o600);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            FormatError::Exists { path: path.to_owned() }
        } else {
            FormatError::Create { path: path.to_owned(), source }
        }
    })
}
