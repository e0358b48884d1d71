//! The recordings a user named — files, globs, directories or object-store URLs, found by
//! [`gespann_inputs`] — each checked before any query runs, so that a bad one is one clear line
//! naming it.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use gespann_common::RecordingMeta;
use gespann_inputs::{Input, Location};
use parquet::file::metadata::ParquetMetaData;

use crate::AnalyzeError;

/// One input, checked.
#[derive(Clone, Debug)]
pub struct Recording {
    /// How the input is named in results (the `source` column): the path as found, or the
    /// object's URL.
    pub source: String,
    /// The input as a path, for errors (a URL displays as itself).
    pub path: PathBuf,
    /// Where it is: what the query engine opens.
    pub input: Input,
    pub meta: RecordingMeta,
    pub rows: u64,
    pub bytes: u64,
    /// The file's Arrow schema: a version 1 file lacks the columns version 2 added, which
    /// the session then presents as NULLs ([`crate::session`]).
    pub schema: SchemaRef,
    /// Its Parquet footer (row groups and their column statistics), read once.
    pub parquet: Arc<ParquetMetaData>,
    /// Whether some row names a container or a pod (from the file's column statistics, so
    /// without reading the rows; `true` when the statistics do not say).
    pub has_workloads: bool,
}

impl Recording {
    /// Whether the file has column `name`.
    pub fn has_column(&self, name: &str) -> bool {
        self.schema.field_with_name(name).is_ok()
    }

    /// Whether it is in an object store rather than on this machine.
    pub fn is_remote(&self) -> bool {
        matches!(self.input.location, Location::Object(_))
    }
}

/// Expands and checks every input (see [`gespann_inputs::Input::footer`]).
pub async fn open_all(args: &[String]) -> Result<Vec<Recording>, AnalyzeError> {
    let mut out = Vec::new();
    for (input, footer) in gespann_inputs::open_all(args).await? {
        let has_workloads = has_workloads(&footer.parquet, &footer.schema);
        out.push(Recording {
            source: input.name.clone(),
            path: input.path(),
            bytes: input.size(),
            input,
            meta: footer.meta,
            rows: footer.rows,
            schema: footer.schema,
            parquet: footer.parquet,
            has_workloads,
        });
    }
    Ok(out)
}

/// Whether a row of the file has a container or pod: some row group's `container_id`,
/// `container_name`, `pod_uid` or `pod_name` is not all NULLs. A file without those columns
/// (schema version 1) has none; one whose statistics do not count NULLs may have some.
fn has_workloads(parquet: &ParquetMetaData, schema: &SchemaRef) -> bool {
    use gespann_common::schema::col;
    const COLUMNS: [&str; 4] = [col::CONTAINER_ID, col::CONTAINER_NAME, col::POD_UID, col::POD_NAME];
    if !COLUMNS.iter().any(|c| schema.field_with_name(c).is_ok()) {
        return false;
    }
    parquet.row_groups().iter().any(|rg| {
        rg.columns().iter().filter(|c| COLUMNS.contains(&c.column_path().string().as_str())).any(|c| {
            match c.statistics().and_then(|s| s.null_count_opt()) {
                Some(nulls) => nulls < rg.num_rows() as u64,
                None => true,
            }
        })
    })
}
