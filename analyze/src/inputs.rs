//! Finding the recordings a user named: files, globs or directories, each checked before any
//! query runs so that a bad file is one clear line naming it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
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
    /// The file's Arrow schema: a version 1 file lacks the columns version 2 added, which
    /// the session then presents as NULLs ([`crate::session`]).
    pub schema: SchemaRef,
    /// Whether some row names a container or a pod (from the file's column statistics, so
    /// without reading the rows; `true` when the statistics do not say).
    pub has_workloads: bool,
}

impl Recording {
    /// Whether the file has column `name`.
    pub fn has_column(&self, name: &str) -> bool {
        self.schema.field_with_name(name).is_ok()
    }
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
    let (meta, rows, schema) = inspect(path)?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let has_workloads = has_workloads(path, &schema);
    Ok(Recording {
        source: path.display().to_string(),
        path: path.to_owned(),
        meta,
        rows,
        bytes,
        schema,
        has_workloads,
    })
}

/// Whether a row of the file at `path` has a container or pod: some row group's `container_id`,
/// `container_name`, `pod_uid` or `pod_name` is not all NULLs. A file without those columns
/// (schema version 1) has none; one whose statistics do not count NULLs may have some.
fn has_workloads(path: &Path, schema: &SchemaRef) -> bool {
    use gespann_common::schema::col;
    use parquet::file::reader::FileReader;
    const COLUMNS: [&str; 4] = [col::CONTAINER_ID, col::CONTAINER_NAME, col::POD_UID, col::POD_NAME];
    if !COLUMNS.iter().any(|c| schema.field_with_name(c).is_ok()) {
        return false;
    }
    let Some(reader) =
        std::fs::File::open(path).ok().and_then(|f| parquet::file::reader::SerializedFileReader::new(f).ok())
    else {
        return true;
    };
    reader.metadata().row_groups().iter().any(|rg| {
        rg.columns().iter().filter(|c| COLUMNS.contains(&c.column_path().string().as_str())).any(|c| {
            match c.statistics().and_then(|s| s.null_count_opt()) {
                Some(nulls) => nulls < rg.num_rows() as u64,
                None => true,
            }
        })
    })
}
