//! Writing a recording: [`RecordingWriter`] (rows in, row groups and a footer out), its
//! checkpoints, and [`compact`].
//!
//! Shaped around crash safety. Rows are buffered and encoded into row groups; a checkpoint ends
//! the current row group and returns the length of the data so far with a footer describing it,
//! so the crash journal can make everything up to there readable again without encoding
//! anything twice. A recording checkpointed every second ends with many small row groups, which
//! [`compact`] rewrites into large ones at the end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataWriter};

use super::encode::{BatchBuilder, Pages, writer_properties};
use super::error::FormatError;
use super::files::create_private;
use super::meta::{RecordingMeta, end_pairs};
use super::reader::open_builder;
use crate::event::Event;
use crate::schema;

/// Rows handed to the Parquet writer at once. The builder is made with room for this many,
/// so its columns never grow while a batch fills.
const BATCH_ROWS: usize = 65536;

/// Writes a recording. Rows are buffered into row groups; `flush_row_group` forces what is
/// buffered onto disk, `finish` writes the footer with the closing metadata.
pub struct RecordingWriter<W: Write + Send> {
    path: PathBuf,
    writer: ArrowWriter<W>,
    batch: BatchBuilder,
    rows: u64,
    /// Footer metadata as the file starts it, for checkpoints.
    start_kv: Vec<KeyValue>,
    /// Closing counts (`gespann.late_rows`, ...) for checkpoints and the footer.
    counts: Vec<KeyValue>,
    writer_version: i32,
}

/// What a finished recording holds.
#[derive(Clone, Debug, Default)]
pub struct WriteSummary {
    pub rows: u64,
    pub bytes: u64,
    pub row_groups: usize,
}

impl RecordingWriter<File> {
    /// Creates `path` with mode 0600 (a recording tells who talks to whom). An existing file is
    /// an error unless `force`.
    pub fn create(path: &Path, force: bool, meta: &RecordingMeta) -> Result<Self, FormatError> {
        Self::create_with(path, force, meta, Pages::Small)
    }

    /// [`RecordingWriter::create`] with `pages` compression ([`Pages::Fast`]: while recording).
    pub fn create_with(path: &Path, force: bool, meta: &RecordingMeta, pages: Pages) -> Result<Self, FormatError> {
        let file = create_private(path, force)?;
        Self::new_with(path, file, meta, pages)
    }
}

impl<W: Write + Send> RecordingWriter<W> {
    pub fn new(path: &Path, sink: W, meta: &RecordingMeta) -> Result<Self, FormatError> {
        Self::new_with(path, sink, meta, Pages::Small)
    }

    fn new_with(path: &Path, sink: W, meta: &RecordingMeta, pages: Pages) -> Result<Self, FormatError> {
        let start_kv = meta.start_pairs();
        let props = writer_properties(pages).into_builder().set_key_value_metadata(Some(start_kv.clone())).build();
        let writer_version = props.writer_version().as_num();
        // The encoded Arrow schema is written with the footer, carrying the closing metadata.
        let options = ArrowWriterOptions::new().with_properties(props).with_skip_arrow_metadata(true);
        let writer = ArrowWriter::try_new_with_options(sink, schema::schema(), options)
            .map_err(|e| FormatError::write(path, e))?;
        Ok(RecordingWriter {
            path: path.to_owned(),
            writer,
            batch: BatchBuilder::with_capacity(BATCH_ROWS),
            rows: 0,
            start_kv,
            counts: Vec::new(),
            writer_version,
        })
    }

    /// Makes everything pushed so far recoverable: ends the current row group, hands all bytes
    /// to the sink, and returns `(data_len, footer)`: the first `data_len` bytes of the sink
    /// followed by `footer` form a complete recording of every row so far, with `ended_at`
    /// and `events_lost` in its metadata. The writer carries on as if nothing happened.
    pub fn checkpoint(&mut self, ended_at: &str, events_lost: u64) -> Result<(u64, Vec<u8>), FormatError> {
        self.flush_row_group()?;
        self.writer.sync().map_err(|e| FormatError::write(&self.path, e))?;
        let data_len = self.writer.bytes_written() as u64;
        let row_groups = self.writer.flushed_row_groups().to_vec();
        let num_rows = row_groups.iter().map(|rg| rg.num_rows()).sum();
        let mut kv = self.start_kv.clone();
        kv.extend(end_pairs(ended_at, events_lost));
        kv.extend(self.counts.iter().cloned());
        kv.push(arrow_schema_pair(&kv));
        let descr = parquet::arrow::ArrowSchemaConverter::new()
            .convert(&schema::schema())
            .map_err(|e| FormatError::write(&self.path, e))?;
        let file_meta = FileMetaData::new(
            self.writer_version,
            num_rows,
            Some(format!("gespann {}", env!("CARGO_PKG_VERSION"))),
            Some(kv),
            Arc::new(descr),
            None,
        );
        let md = ParquetMetaData::new(file_meta, row_groups);
        let mut footer = Vec::new();
        ParquetMetaDataWriter::new(&mut footer, &md).finish().map_err(|e| FormatError::write(&self.path, e))?;
        Ok((data_len, footer))
    }

    /// Counts the closing metadata carries besides `gespann.events_lost` (for the next
    /// checkpoint and the footer), as `(key, value)`.
    pub fn set_counts(&mut self, counts: &[(&str, u64)]) {
        self.counts = counts.iter().map(|(k, v)| KeyValue::new((*k).to_owned(), v.to_string())).collect();
    }

    pub fn push(&mut self, e: &Event) -> Result<(), FormatError> {
        self.batch.push(e);
        self.rows += 1;
        if self.batch.len() >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), FormatError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = self.batch.finish();
        self.writer.write(&batch).map_err(|e| FormatError::write(&self.path, e))
    }

    /// Ends the current row group so everything pushed so far is encoded and handed to the sink.
    pub fn flush_row_group(&mut self) -> Result<(), FormatError> {
        self.write_batch()?;
        self.writer.flush().map_err(|e| FormatError::write(&self.path, e))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes written to the sink so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.bytes_written() as u64
    }

    /// Writes the footer, with the metadata only known at the end. Nothing may be pushed after.
    pub fn finish(&mut self, ended_at: &str, events_lost: u64) -> Result<WriteSummary, FormatError> {
        self.write_batch()?;
        let end: Vec<KeyValue> =
            end_pairs(ended_at, events_lost).into_iter().chain(std::mem::take(&mut self.counts)).collect();
        let all: Vec<KeyValue> = self.start_kv.iter().chain(&end).cloned().collect();
        for kv in end {
            self.writer.append_key_value_metadata(kv);
        }
        self.writer.append_key_value_metadata(arrow_schema_pair(&all));
        let md = self.writer.finish().map_err(|e| FormatError::write(&self.path, e))?;
        self.writer.inner_mut().flush().map_err(|e| FormatError::write(&self.path, e))?;
        Ok(WriteSummary { rows: self.rows, bytes: self.writer.bytes_written() as u64, row_groups: md.num_row_groups() })
    }

    /// The sink, e.g. to `sync_all` a file after `finish`.
    pub fn sink(&self) -> &W {
        self.writer.inner()
    }
}

/// Rewrites a finished recording with large row groups (a recording checkpointed every second
/// ends up with many small ones) and zstd pages ([`Pages::Small`]). Same rows, same metadata,
/// same mode.
pub fn compact(path: &Path) -> Result<WriteSummary, FormatError> {
    let builder = open_builder(path)?;
    let kv: Vec<KeyValue> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| kvs.iter().filter(|k| k.key != parquet::arrow::ARROW_SCHEMA_META_KEY).cloned().collect())
        .unwrap_or_default();
    let reader = builder.with_batch_size(65536).build().map_err(|e| FormatError::corrupt(path, e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".compact");
    let tmp = PathBuf::from(tmp);
    let file = create_private(&tmp, true)?;
    let mut kv = kv;
    kv.push(arrow_schema_pair(&kv));
    let props = writer_properties(Pages::Small).into_builder().set_key_value_metadata(Some(kv)).build();
    let werr = |e: parquet::errors::ParquetError| FormatError::write(&tmp, e);
    let options = ArrowWriterOptions::new().with_properties(props).with_skip_arrow_metadata(true);
    let mut w = ArrowWriter::try_new_with_options(file, schema::schema(), options).map_err(werr)?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| FormatError::corrupt(path, e))?;
        rows += batch.num_rows() as u64;
        w.write(&batch).map_err(werr)?;
    }
    w.finish().map_err(werr)?;
    w.inner().sync_all().map_err(|e| FormatError::write(&tmp, e))?;
    let bytes = w.bytes_written() as u64;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|source| FormatError::Create { path: path.to_owned(), source })?;
    Ok(WriteSummary { rows, bytes, row_groups: 1 })
}

/// The encoded Arrow schema (`ARROW:schema`) of a footer whose key-value pairs are `kv`, with
/// those pairs as the schema's metadata too: Arrow readers (pyarrow's `read_schema`, Polars)
/// show a file's schema metadata, not its Parquet footer's, so the `gespann.*` facts go in both.
fn arrow_schema_pair(kv: &[KeyValue]) -> KeyValue {
    let metadata = kv
        .iter()
        .filter(|k| k.key != parquet::arrow::ARROW_SCHEMA_META_KEY)
        .filter_map(|k| Some((k.key.clone(), k.value.clone()?)))
        .collect();
    let schema = schema::schema().as_ref().clone().with_metadata(metadata);
    KeyValue::new(parquet::arrow::ARROW_SCHEMA_META_KEY.to_owned(), parquet::arrow::encode_arrow_schema(&schema))
}
