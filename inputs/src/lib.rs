//! Where recordings come from: files, globs and directories on this machine, and objects in a
//! store (`s3://`, `gs://`, `az://`, `http(s)://`; a prefix or a glob names many).
//!
//! `gespann analyze` and `gespann replay` take the same inputs, so both go through this crate:
//! [`expand`] turns the arguments into [`Input`]s before anything is read, [`Input::footer`]
//! checks each one as a recording (the same checks for a file and an object, so a bad input is
//! one line naming it), and [`Input::batches`] reads its rows. A file is read from the disk;
//! an object through the `object_store` crate (DataFusion's own; the analyzer registers the
//! [`Object::store`] with its engine), configured by the standard environment variables — no
//! cloud SDK.

mod error;
mod local;
mod reader;
mod remote;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use gespann_common::FormatError;
use gespann_common::recording::{Footer, check_footer, inspect_footer};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use url::Url;

pub use error::{Cause, InputError, StoreCause};
pub use remote::store_for_url;

/// One recording to read: a file or an object.
#[derive(Clone, Debug)]
pub struct Input {
    /// How it is named in results and errors: the path as found, or the object's URL.
    pub name: String,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub enum Location {
    File(PathBuf),
    Object(Object),
}

/// An object in a store.
#[derive(Clone, Debug)]
pub struct Object {
    pub store: Arc<dyn ObjectStore>,
    /// The store's URL (`s3://bucket`): what a query engine registers the store under.
    pub root: Url,
    pub path: ObjectPath,
    pub size: u64,
}

/// Rows per batch read by [`Input::batches`].
const BATCH_ROWS: usize = 8192;

impl Input {
    /// The input as a path, for errors that take one (a URL displays as itself).
    pub fn path(&self) -> PathBuf {
        match &self.location {
            Location::File(p) => p.clone(),
            Location::Object(_) => PathBuf::from(&self.name),
        }
    }

    /// What a query engine opens: the file's absolute path, or the object's URL.
    pub fn url(&self) -> Result<String, InputError> {
        match &self.location {
            Location::File(p) => std::path::absolute(p)
                .map(|a| a.to_string_lossy().into_owned())
                .map_err(|cause| InputError::Read { path: p.clone(), cause }),
            Location::Object(o) => Ok(format!("{}/{}", o.root.as_str().trim_end_matches('/'), o.path)),
        }
    }

    /// Its size in bytes (0 when the file cannot be asked).
    pub fn size(&self) -> u64 {
        match &self.location {
            Location::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Location::Object(o) => o.size,
        }
    }

    /// Checks that it is a recording this version can read and returns what its footer says.
    pub async fn footer(&self) -> Result<Footer, InputError> {
        match &self.location {
            Location::File(p) => Ok(inspect_footer(p)?),
            Location::Object(o) => {
                let path = self.path();
                let reader = self.object_reader(o).await?;
                let builder =
                    ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| FormatError::corrupt(&path, e))?;
                let (meta, rows) = check_footer(&path, builder.metadata(), builder.schema())?;
                Ok(Footer { meta, rows, schema: builder.schema().clone(), parquet: builder.metadata().clone() })
            }
        }
    }

    /// Its rows, [`BATCH_ROWS`] at a time, in file order. Call [`Self::footer`] first: this
    /// does not check that it is a recording.
    pub async fn batches(&self) -> Result<BoxStream<'static, Result<RecordBatch, FormatError>>, InputError> {
        let path = self.path();
        let corrupt = |e| FormatError::corrupt(&path, e);
        match &self.location {
            Location::File(p) => {
                let file =
                    tokio::fs::File::open(p).await.map_err(|source| FormatError::Open { path: p.clone(), source })?;
                let stream = ParquetRecordBatchStreamBuilder::new(file)
                    .await
                    .map_err(corrupt)?
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(corrupt)?;
                Ok(stream.map_err(move |e| FormatError::corrupt(&path, e)).boxed())
            }
            Location::Object(o) => {
                let reader = self.object_reader(o).await?;
                let stream = ParquetRecordBatchStreamBuilder::new(reader)
                    .await
                    .map_err(corrupt)?
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(corrupt)?;
                let path = self.path();
                Ok(stream.map_err(move |e| FormatError::corrupt(&path, e)).boxed())
            }
        }
    }

    /// A Parquet reader of the object, once its ends say it is a Parquet file at all (so that
    /// a text object is "not a Parquet file", not a footer error).
    async fn object_reader(&self, o: &Object) -> Result<reader::ObjectReader, InputError> {
        let path = self.path();
        if o.size == 0 {
            return Err(FormatError::Empty { path, hint: "" }.into());
        }
        if o.size < 12 {
            return Err(FormatError::NotParquet { path, hint: " (too short)" }.into());
        }
        let ends = o.store.get_ranges(&o.path, &[0..4, o.size - 4..o.size]).await.map_err(|cause| {
            InputError::Store { what: "read", url: self.name.clone(), cause: error::StoreCause(cause) }
        })?;
        if ends.first().is_none_or(|b| &b[..] != b"PAR1") {
            return Err(FormatError::NotParquet { path, hint: "" }.into());
        }
        if ends.get(1).is_none_or(|b| &b[..] != b"PAR1") {
            return Err(FormatError::NotParquet { path, hint: " (no footer: the object is truncated)" }.into());
        }
        Ok(reader::ObjectReader::new(o.store.clone(), o.path.clone(), o.size))
    }
}

/// Expands the arguments into inputs, in a stable order: each argument's files or objects
/// sorted, arguments in the order given, duplicates dropped. Nothing is read but directory
/// listings (and, for a URL naming one object, its size).
pub async fn expand(args: &[String]) -> Result<Vec<Input>, InputError> {
    if args.is_empty() {
        return Err(InputError::NoInputs);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for arg in args {
        let found: Vec<Input> = if remote::is_url(arg) {
            remote::expand(arg)
                .await?
                .into_iter()
                .map(|o| {
                    let name = format!("{}/{}", o.root.as_str().trim_end_matches('/'), o.path);
                    Input { name, location: Location::Object(o) }
                })
                .collect()
        } else {
            let arg = arg.strip_prefix("file://").unwrap_or(arg);
            local::expand(arg)?
                .into_iter()
                .map(|p| Input { name: p.display().to_string(), location: Location::File(p) })
                .collect()
        };
        for input in found {
            if seen.insert(input.name.clone()) {
                out.push(input);
            }
        }
    }
    Ok(out)
}

/// Expands the arguments and checks every input ([`Input::footer`]), in order.
pub async fn open_all(args: &[String]) -> Result<Vec<(Input, Footer)>, InputError> {
    let mut out = Vec::new();
    for input in expand(args).await? {
        let footer = input.footer().await?;
        out.push((input, footer));
    }
    Ok(out)
}
