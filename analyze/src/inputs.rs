//! Finding the recordings a user named: files, globs or directories, each checked before any
//! query runs so that a bad file is one clear line naming it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gespann_common::RecordingMeta;
use gespann_common::recording::inspect;

use crate::AnalyzeError;

/// One input file, checked.
#[derive(Clone, Debug)]
pub struct Recording {
    /// How the file is named in results (the `source` column): the path as found.
    pub source: String,
    pub path: PathBuf,
    pub meta: RecordingMeta,
    pub rows: u64,
    pub bytes: u64,
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands the arguments into files, in a stable order: each argument's files sorted, arguments
/// in the order given, duplicates dropped.
pub fn expand(args: &[String]) -> Result<Vec<PathBuf>, AnalyzeError> {
    if args.is_empty() {
        return Err(AnalyzeError::NoInputs);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        let mut found: Vec<PathBuf> = if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|cause| AnalyzeError::Read { path: path.to_owned(), cause })?;
            let mut v = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|cause| AnalyzeError::Read { path: path.to_owned(), cause })?;
                let p = entry.path();
                if p.extension().is_some_and(|e| e == "parquet") && p.is_file() {
                    v.push(p);
                }
            }
            if v.is_empty() {
                return Err(AnalyzeError::EmptyDir { path: path.to_owned() });
            }
            v
        } else if is_glob(arg) && !path.exists() {
            let paths = glob::glob(arg).map_err(|cause| AnalyzeError::BadGlob { pattern: arg.clone(), cause })?;
            let v: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
            if v.is_empty() {
                return Err(AnalyzeError::NoMatch { pattern: arg.clone() });
            }
            v
        } else {
            vec![path.to_owned()]
        };
        found.sort();
        for p in found {
            if seen.insert(p.clone()) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// Expands and checks every input (see [`gespann_common::recording::inspect`]).
pub fn open_all(args: &[String]) -> Result<Vec<Recording>, AnalyzeError> {
    expand(args)?.into_iter().map(|p| open(&p)).collect()
}

/// Checks one file.
pub fn open(path: &Path) -> Result<Recording, AnalyzeError> {
    let (meta, rows, _schema) = inspect(path)?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Recording { source: path.display().to_string(), path: path.to_owned(), meta, rows, bytes })
}
