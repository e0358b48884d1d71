//! Reading a recording: [`inspect`] (is this a recording this version can read, and what does
//! its footer say) and [`RecordingReader`] (its rows as [`Event`]s).
//!
//! Opening checks the file before Parquet sees it (empty, too short, no magic, no footer, a
//! journal next to it) so that each failure says what is wrong in words, then checks the footer's
//! metadata and every column its schema version must have.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::ParquetMetaData;

use super::decode::events_from_batch;
use super::error::FormatError;
use super::files::journal_path;
use super::meta::RecordingMeta;
use crate::event::Event;
use crate::schema;

/// An open recording: its metadata, and its rows as Arrow batches or [`Event`]s.
pub struct RecordingReader {
    pub path: PathBuf,
    pub meta: RecordingMeta,
    pub rows: u64,
    reader: ParquetRecordBatchReader,
}

/// Checks that `path` is a Gespann recording this version can read, and returns its metadata
/// and row count. Each failure names the file and what is wrong with it.
pub fn inspect(path: &Path) -> Result<(RecordingMeta, u64, SchemaRef), FormatError> {
    let found = inspect_footer(path)?;
    Ok((found.meta, found.rows, found.schema))
}

/// What a recording's footer says, checked: its metadata, row count, Arrow schema and the
/// Parquet metadata itself (row groups, column statistics), read once.
#[derive(Clone, Debug)]
pub struct Footer {
    pub meta: RecordingMeta,
    pub rows: u64,
    pub schema: SchemaRef,
    pub parquet: Arc<ParquetMetaData>,
}

/// [`inspect`], keeping the whole footer.
pub fn inspect_footer(path: &Path) -> Result<Footer, FormatError> {
    let builder = open_builder(path)?;
    let (meta, rows) = check_footer(path, builder.metadata(), builder.schema())?;
    Ok(Footer { meta, rows, schema: builder.schema().clone(), parquet: builder.metadata().clone() })
}

pub(super) fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, FormatError> {
    let mut file = File::open(path).map_err(|source| FormatError::Open { path: path.to_owned(), source })?;
    let len = file.metadata().map_err(|source| FormatError::Open { path: path.to_owned(), source })?.len();
    let journal_hint = if journal_path(path).exists() {
        " (the recorder was killed before finishing it: `gespann recover` rebuilds it from its `.journal`)"
    } else {
        ""
    };
    if len == 0 {
        return Err(FormatError::Empty { path: path.to_owned(), hint: journal_hint });
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    let read = |file: &mut File, pos: SeekFrom, buf: &mut [u8; 4]| -> std::io::Result<()> {
        file.seek(pos)?;
        file.read_exact(buf)
    };
    if len < 12
        || read(&mut file, SeekFrom::Start(0), &mut head).is_err()
        || read(&mut file, SeekFrom::End(-4), &mut tail).is_err()
    {
        return Err(FormatError::NotParquet { path: path.to_owned(), hint: " (too short)" });
    }
    if &head != b"PAR1" {
        let hint = if path.extension().is_some_and(|e| e == "journal") {
            " (it looks like a crash journal: run `gespann recover` on it)"
        } else {
            ""
        };
        return Err(FormatError::NotParquet { path: path.to_owned(), hint });
    }
    if &tail != b"PAR1" {
        let hint = if journal_hint.is_empty() { " (no footer: the file is truncated)" } else { journal_hint };
        return Err(FormatError::NotParquet { path: path.to_owned(), hint });
    }
    file.seek(SeekFrom::Start(0)).map_err(|source| FormatError::Open { path: path.to_owned(), source })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| FormatError::corrupt(path, e))
}

/// Checks a Parquet footer read by any means (a local file, an object store) as a recording
/// this version can read: its `gespann.*` metadata and every column its schema version must
/// have, with its type. `path` names it in errors.
pub fn check_footer(
    path: &Path,
    parquet: &ParquetMetaData,
    have: &SchemaRef,
) -> Result<(RecordingMeta, u64), FormatError> {
    let file_meta = parquet.file_metadata();
    let kv: HashMap<String, String> = file_meta
        .key_value_metadata()
        .map(|kvs| kvs.iter().filter_map(|k| Some((k.key.clone(), k.value.clone()?))).collect())
        .unwrap_or_default();
    let meta = RecordingMeta::from_key_values(path, &kv)?;
    for field in schema::required_fields(meta.schema_version) {
        match have.field_with_name(field.name()) {
            Ok(f) if f.data_type() == field.data_type() => {}
            Ok(f) => {
                return Err(FormatError::NotARecording {
                    path: path.to_owned(),
                    missing: format!("column `{}` is {} instead of {}", field.name(), f.data_type(), field.data_type()),
                });
            }
            Err(_) => {
                return Err(FormatError::NotARecording {
                    path: path.to_owned(),
                    missing: format!("no column `{}`", field.name()),
                });
            }
        }
    }
    Ok((meta, file_meta.num_rows() as u64))
}

impl RecordingReader {
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let builder = open_builder(path)?;
        let (meta, rows) = check_footer(path, builder.metadata(), builder.schema())?;
        let reader = builder.with_batch_size(8192).build().map_err(|e| FormatError::corrupt(path, e))?;
        Ok(RecordingReader { path: path.to_owned(), meta, rows, reader })
    }

    /// The next batch of rows as events; `None` at the end.
    pub fn next_events(&mut self) -> Option<Result<Vec<Event>, FormatError>> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(e) => {
                return Some(Err(FormatError::corrupt(&self.path, e)));
            }
        };
        Some(events_from_batch(&self.path, &batch))
    }

    /// All rows; for small recordings and tests.
    pub fn read_all(mut self) -> Result<Vec<Event>, FormatError> {
        let mut out = Vec::with_capacity(self.rows as usize);
        while let Some(b) = self.next_events() {
            out.extend(b?);
        }
        Ok(out)
    }
}
