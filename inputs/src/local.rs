//! Files, globs and directories on this machine.

use std::path::{Path, PathBuf};

use crate::InputError;

pub(crate) fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files `arg` names: itself, a directory's `.parquet` files, or a glob's matches, sorted.
pub(crate) fn expand(arg: &str) -> Result<Vec<PathBuf>, InputError> {
    let path = Path::new(arg);
    let mut found: Vec<PathBuf> = if path.is_dir() {
        let read_err = |cause| InputError::Read { path: path.to_owned(), cause };
        let mut v = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read_err)? {
            let p = entry.map_err(read_err)?.path();
            if p.extension().is_some_and(|e| e == "parquet") && p.is_file() {
                v.push(p);
            }
        }
        if v.is_empty() {
            return Err(InputError::EmptyDir { path: path.to_owned() });
        }
        v
    } else if is_glob(arg) && !path.exists() {
        let paths = glob::glob(arg).map_err(|cause| InputError::BadGlob { pattern: arg.to_owned(), cause })?;
        let v: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
        if v.is_empty() {
            return Err(InputError::NoMatch { pattern: arg.to_owned() });
        }
        v
    } else {
        vec![path.to_owned()]
    };
    found.sort();
    Ok(found)
}
