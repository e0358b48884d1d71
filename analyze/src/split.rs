//! Splitting the events by connection, for computing `connections` in several passes.
//!
//! The `connections` view reads its events three times (totals, closing rows, opening rows)
//! and joins the three, and DataFusion's hash joins cannot spill. When the connections do not
//! fit in the memory limit, the analyzer computes them one slice at a time, a slice being the
//! connections with `conn_id % slices == slice`. Filtering the whole recording once per slice
//! would read it `3 × slices` times; instead this module reads it once (DataFusion's parallel
//! scan, one task per partition) and writes each slice to files of its own: Arrow IPC,
//! LZ4-compressed, written batch by batch so that memory holds one batch per partition. Each
//! pass then reads only its own slice.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::CompressionType;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::AnalyzeError;

/// Splits the rows of `table` into `slices` directories `dir/slice-{n}` by `conn_id % slices`,
/// each holding one file `{stem}-{partition}.arrow` per scan partition, and returns the
/// directories, indexed by slice.
pub async fn split_by_connection(
    ctx: &SessionContext,
    table: &str,
    slices: usize,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>, AnalyzeError> {
    let slices = slices.max(1);
    let what = format!("splitting `{table}` by connection");
    let df = ctx.sql(&format!("SELECT * FROM {table}")).await.map_err(|e| AnalyzeError::query(what.as_str(), e))?;
    let streams = df.execute_stream_partitioned().await.map_err(|e| AnalyzeError::query(what.as_str(), e))?;
    let dirs: Vec<PathBuf> = (0..slices).map(|n| dir.join(format!("slice-{n}"))).collect();
    for d in &dirs {
        std::fs::create_dir_all(d)
            .map_err(|source| AnalyzeError::engine(what.as_str(), SliceError::Create { path: d.clone(), source }))?;
    }
    let mut tasks = Vec::with_capacity(streams.len());
    for (partition, mut stream) in streams.into_iter().enumerate() {
        let paths: Vec<PathBuf> = dirs.iter().map(|d| d.join(format!("{stem}-{partition}.arrow"))).collect();
        let what = what.clone();
        let mut writer =
            SliceWriter::create(&paths, stream.schema()).map_err(|e| AnalyzeError::engine(what.as_str(), e))?;
        tasks.push(tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| AnalyzeError::query(what.as_str(), e))?;
                writer.write(&batch).map_err(|e| AnalyzeError::engine(what.as_str(), e))?;
            }
            writer.finish().map_err(|e| AnalyzeError::engine(what.as_str(), e))
        }));
    }
    for t in tasks {
        t.await.map_err(|e| AnalyzeError::engine(what.as_str(), e))??;
    }
    Ok(dirs)
}

/// Why a slice could not be written.
#[derive(Debug, thiserror::Error)]
enum SliceError {
    #[error("cannot create `{}`", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error("`conn_id` is not UInt64")]
    ConnIdType,
    #[error(transparent)]
    Io(std::io::Error),
    #[error(transparent)]
    External(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Arrow(ArrowError),
}

/// Arrow's I/O and external errors print their inner error and return it as their source too:
/// the inner error takes their place, so that the chain says it once.
impl From<ArrowError> for SliceError {
    fn from(e: ArrowError) -> Self {
        match e {
            ArrowError::IoError(_, io) => SliceError::Io(io),
            ArrowError::ExternalError(inner) => SliceError::External(inner),
            other => SliceError::Arrow(other),
        }
    }
}

/// One scan partition's writers, one per slice.
struct SliceWriter {
    schema: SchemaRef,
    conn_id: usize,
    writers: Vec<FileWriter<BufWriter<File>>>,
    rows: Vec<Vec<u32>>,
}

impl SliceWriter {
    fn create(paths: &[PathBuf], input: SchemaRef) -> Result<Self, SliceError> {
        // String views share their buffers across the rows taken out of a batch; plain
        // strings keep each slice's file to its own bytes. Dictionaries (`cgroup`) are written
        // as their values: each batch read from Parquet has a dictionary of its own, and an
        // Arrow IPC file holds one dictionary per column.
        let plain = |dt: &DataType| match dt {
            DataType::Utf8View => DataType::Utf8,
            other => other.clone(),
        };
        let fields: Vec<Field> = input
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, values) => f.as_ref().clone().with_data_type(plain(values)),
                other => f.as_ref().clone().with_data_type(plain(other)),
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let conn_id = schema.index_of("conn_id")?;
        let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
        let mut writers = Vec::with_capacity(paths.len());
        for p in paths {
            let f = File::create(p).map_err(|source| SliceError::Create { path: p.clone(), source })?;
            writers.push(FileWriter::try_new_with_options(BufWriter::new(f), &schema, options.clone())?);
        }
        Ok(SliceWriter { schema, conn_id, rows: vec![Vec::new(); paths.len()], writers })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SliceError> {
        let ids = batch.column(self.conn_id).as_any().downcast_ref::<UInt64Array>().ok_or(SliceError::ConnIdType)?;
        let n = self.writers.len() as u64;
        for (row, id) in ids.values().iter().enumerate() {
            self.rows[(id % n) as usize].push(row as u32);
        }
        for (rows, w) in self.rows.iter_mut().zip(self.writers.iter_mut()) {
            if rows.is_empty() {
                continue;
            }
            let indices = UInt32Array::from(std::mem::take(rows));
            let columns = batch
                .columns()
                .iter()
                .zip(self.schema.fields())
                .map(|(c, f)| {
                    let taken = take(c.as_ref(), &indices, None)?;
                    if taken.data_type() == f.data_type() { Ok(taken) } else { cast(&taken, f.data_type()) }
                })
                .collect::<Result<Vec<ArrayRef>, _>>()?;
            let slice = RecordBatch::try_new(self.schema.clone(), columns)?;
            w.write(&slice)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), SliceError> {
        for mut w in self.writers {
            w.finish()?;
        }
        Ok(())
    }
}
