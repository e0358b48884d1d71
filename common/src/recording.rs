//! Reading and writing recordings: rows of [`Event`] in one zstd-compressed Parquet file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, StringArray, StringBuilder, TimestampNanosecondArray,
    TimestampNanosecondBuilder, UInt8Array, UInt8Builder, UInt16Array, UInt16Builder, UInt32Array, UInt32Builder,
    UInt64Array, UInt64Builder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataWriter};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::event::{Event, EventKind, Protocol, ResetBy, Role, errno_static, tcp_state_static};
use crate::schema::{self, SCHEMA_VERSION, col, meta};

/// Everything that can go wrong with a recording file, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot open `{path}`")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot create `{path}`")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("`{path}` already exists (use --force to overwrite it)")]
    Exists { path: PathBuf },
    #[error("`{path}` is empty{hint}")]
    Empty { path: PathBuf, hint: &'static str },
    #[error("`{path}` is not a Parquet file{hint}")]
    NotParquet { path: PathBuf, hint: &'static str },
    #[error("`{path}` is not a readable Parquet file (truncated or damaged?)")]
    Corrupt { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("`{path}` is not a Gespann recording: {missing}")]
    NotARecording { path: PathBuf, missing: String },
    #[error(
        "`{path}` has schema version {found}, newer than this gespann understands ({SCHEMA_VERSION}); upgrade gespann"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("cannot write `{path}`")]
    Write { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("bad value in `{path}`: column `{column}`: {what}")]
    BadValue { path: PathBuf, column: &'static str, what: String },
}

/// File-level facts stored as Parquet key-value metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordingMeta {
    pub schema_version: u32,
    pub version: String,
    pub hostname: String,
    pub kernel: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub ended_at: String,
    pub events_lost: u64,
    pub command_line: String,
    pub sample_interval_ms: Option<u64>,
}

impl RecordingMeta {
    fn start_pairs(&self) -> Vec<KeyValue> {
        let mut kv = vec![
            KeyValue::new(meta::SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
            KeyValue::new(meta::VERSION.into(), self.version.clone()),
            KeyValue::new(meta::HOSTNAME.into(), self.hostname.clone()),
            KeyValue::new(meta::KERNEL.into(), self.kernel.clone()),
            KeyValue::new(meta::STARTED_AT.into(), self.started_at.clone()),
            KeyValue::new(meta::COMMAND_LINE.into(), self.command_line.clone()),
        ];
        if let Some(ms) = self.sample_interval_ms {
            kv.push(KeyValue::new(meta::SAMPLE_INTERVAL_MS.into(), ms.to_string()));
        }
        kv
    }

    /// Reads the metadata of a recording's footer; errors name what is missing.
    pub fn from_key_values(path: &Path, kv: &HashMap<String, String>) -> Result<Self, FormatError> {
        let need = |key: &str| {
            kv.get(key).cloned().ok_or_else(|| FormatError::NotARecording {
                path: path.to_owned(),
                missing: format!("no `{key}` in the file metadata"),
            })
        };
        let version_text = need(meta::SCHEMA_VERSION)?;
        let schema_version: u32 = version_text.trim().parse().map_err(|_| FormatError::NotARecording {
            path: path.to_owned(),
            missing: format!("`{}` is `{version_text}`, not a number", meta::SCHEMA_VERSION),
        })?;
        if schema_version > SCHEMA_VERSION {
            return Err(FormatError::NewerSchema { path: path.to_owned(), found: schema_version });
        }
        let events_lost = match kv.get(meta::EVENTS_LOST) {
            Some(v) => v.trim().parse().map_err(|_| FormatError::BadValue {
                path: path.to_owned(),
                column: "gespann.events_lost",
                what: format!("`{v}` is not a number"),
            })?,
            None => 0,
        };
        Ok(RecordingMeta {
            schema_version,
            version: kv.get(meta::VERSION).cloned().unwrap_or_default(),
            hostname: kv.get(meta::HOSTNAME).cloned().unwrap_or_default(),
            kernel: kv.get(meta::KERNEL).cloned().unwrap_or_default(),
            started_at: kv.get(meta::STARTED_AT).cloned().unwrap_or_default(),
            ended_at: kv.get(meta::ENDED_AT).cloned().unwrap_or_default(),
            events_lost,
            command_line: kv.get(meta::COMMAND_LINE).cloned().unwrap_or_default(),
            sample_interval_ms: kv.get(meta::SAMPLE_INTERVAL_MS).and_then(|v| v.parse().ok()),
        })
    }
}

/// Accumulates rows column by column and turns them into Arrow batches of the v1 schema.
pub struct BatchBuilder {
    ts: TimestampNanosecondBuilder,
    kind: StringBuilder,
    conn_id: UInt64Builder,
    protocol: StringBuilder,
    role: StringBuilder,
    family: UInt8Builder,
    local_addr: StringBuilder,
    local_port: UInt16Builder,
    remote_addr: StringBuilder,
    remote_port: UInt16Builder,
    pid: UInt32Builder,
    comm: StringBuilder,
    cgroup_id: UInt64Builder,
    state: StringBuilder,
    bytes_sent: UInt64Builder,
    bytes_received: UInt64Builder,
    packets_sent: UInt64Builder,
    packets_received: UInt64Builder,
    retransmits: UInt32Builder,
    rtt_us: UInt32Builder,
    handshake_us: UInt32Builder,
    duration_ns: UInt64Builder,
    error: StringBuilder,
    reset_by: StringBuilder,
    reset_reason: StringBuilder,
    preexisting: BooleanBuilder,
    len: usize,
    addr_buf: String,
    /// Formatting an address costs more than looking it up; hosts talk to few addresses.
    addrs: rustc_hash::FxHashMap<IpAddr, Box<str>>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::with_capacity(8192)
    }
}

impl BatchBuilder {
    pub fn with_capacity(n: usize) -> Self {
        let s = || StringBuilder::with_capacity(n, n * 8);
        BatchBuilder {
            ts: TimestampNanosecondBuilder::with_capacity(n),
            kind: s(),
            conn_id: UInt64Builder::with_capacity(n),
            protocol: s(),
            role: s(),
            family: UInt8Builder::with_capacity(n),
            local_addr: s(),
            local_port: UInt16Builder::with_capacity(n),
            remote_addr: s(),
            remote_port: UInt16Builder::with_capacity(n),
            pid: UInt32Builder::with_capacity(n),
            comm: s(),
            cgroup_id: UInt64Builder::with_capacity(n),
            state: s(),
            bytes_sent: UInt64Builder::with_capacity(n),
            bytes_received: UInt64Builder::with_capacity(n),
            packets_sent: UInt64Builder::with_capacity(n),
            packets_received: UInt64Builder::with_capacity(n),
            retransmits: UInt32Builder::with_capacity(n),
            rtt_us: UInt32Builder::with_capacity(n),
            handshake_us: UInt32Builder::with_capacity(n),
            duration_ns: UInt64Builder::with_capacity(n),
            error: s(),
            reset_by: s(),
            reset_reason: s(),
            preexisting: BooleanBuilder::with_capacity(n),
            len: 0,
            addr_buf: String::with_capacity(48),
            addrs: rustc_hash::FxHashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, e: &Event) {
        self.ts.append_value(e.ts_ns);
        self.kind.append_value(e.kind.as_str());
        self.conn_id.append_value(e.conn_id);
        self.protocol.append_value(e.protocol.as_str());
        self.role.append_value(e.role.as_str());
        self.family.append_value(e.family());
        self.local_addr.append_value(addr_text(&mut self.addrs, &mut self.addr_buf, e.local_addr));
        self.local_port.append_value(e.local_port);
        self.remote_addr.append_value(addr_text(&mut self.addrs, &mut self.addr_buf, e.remote_addr));
        self.remote_port.append_value(e.remote_port);
        self.pid.append_value(e.pid);
        self.comm.append_value(&*e.comm);
        self.cgroup_id.append_value(e.cgroup_id);
        self.state.append_option(e.state);
        self.bytes_sent.append_value(e.bytes_sent);
        self.bytes_received.append_value(e.bytes_received);
        self.packets_sent.append_value(e.packets_sent);
        self.packets_received.append_value(e.packets_received);
        self.retransmits.append_value(e.retransmits);
        self.rtt_us.append_option(e.rtt_us);
        self.handshake_us.append_option(e.handshake_us);
        self.duration_ns.append_option(e.duration_ns);
        self.error.append_option(e.error);
        self.reset_by.append_option(e.reset_by.map(ResetBy::as_str));
        self.reset_reason.append_option(e.reset_reason.as_deref());
        self.preexisting.append_value(e.preexisting);
        self.len += 1;
    }

    /// The rows pushed so far as one batch; the builder is left empty.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.kind.finish()),
            Arc::new(self.conn_id.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.family.finish()),
            Arc::new(self.local_addr.finish()),
            Arc::new(self.local_port.finish()),
            Arc::new(self.remote_addr.finish()),
            Arc::new(self.remote_port.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.cgroup_id.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.bytes_sent.finish()),
            Arc::new(self.bytes_received.finish()),
            Arc::new(self.packets_sent.finish()),
            Arc::new(self.packets_received.finish()),
            Arc::new(self.retransmits.finish()),
            Arc::new(self.rtt_us.finish()),
            Arc::new(self.handshake_us.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.reset_by.finish()),
            Arc::new(self.reset_reason.finish()),
            Arc::new(self.preexisting.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(schema::schema(), columns).expect("builder columns match the v1 schema")
    }
}

fn addr_text<'a>(cache: &'a mut rustc_hash::FxHashMap<IpAddr, Box<str>>, buf: &mut String, addr: IpAddr) -> &'a str {
    use std::fmt::Write as _;
    if cache.len() > 65536 {
        cache.clear();
    }
    cache.entry(addr).or_insert_with(|| {
        buf.clear();
        let _ = write!(buf, "{addr}");
        buf.as_str().into()
    })
}

/// Writer properties for recordings: zstd, dictionary-encoded strings, delta-encoded time and ids.
pub fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!("gespann {}", env!("CARGO_PKG_VERSION")));
    for c in [col::TS, col::CONN_ID, col::DURATION_NS] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// Writes a recording. Rows are buffered into row groups; `flush_row_group` forces what is
/// buffered onto disk, `finish` writes the footer with the closing metadata.
pub struct RecordingWriter<W: Write + Send> {
    path: PathBuf,
    writer: ArrowWriter<W>,
    batch: BatchBuilder,
    rows: u64,
    /// Footer metadata as the file starts it (including the encoded Arrow schema), for checkpoints.
    start_kv: Vec<KeyValue>,
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
        let file = create_private(path, force)?;
        Self::new(path, file, meta)
    }
}

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

impl<W: Write + Send> RecordingWriter<W> {
    pub fn new(path: &Path, sink: W, meta: &RecordingMeta) -> Result<Self, FormatError> {
        let props = writer_properties().into_builder().set_key_value_metadata(Some(meta.start_pairs())).build();
        let mut with_schema = props.clone();
        parquet::arrow::add_encoded_arrow_schema_to_metadata(&schema::schema(), &mut with_schema);
        let start_kv = with_schema.key_value_metadata().cloned().unwrap_or_default();
        let writer_version = props.writer_version().as_num();
        let writer = ArrowWriter::try_new(sink, schema::schema(), Some(props))
            .map_err(|source| FormatError::Write { path: path.to_owned(), source })?;
        Ok(RecordingWriter {
            path: path.to_owned(),
            writer,
            batch: BatchBuilder::default(),
            rows: 0,
            start_kv,
            writer_version,
        })
    }

    /// Makes everything pushed so far recoverable: ends the current row group, hands all bytes
    /// to the sink, and returns `(data_len, footer)`: the first `data_len` bytes of the sink
    /// followed by `footer` form a complete recording of every row so far, with `ended_at`
    /// and `events_lost` in its metadata. The writer carries on as if nothing happened.
    pub fn checkpoint(&mut self, ended_at: &str, events_lost: u64) -> Result<(u64, Vec<u8>), FormatError> {
        let werr = |path: &Path, source| FormatError::Write { path: path.to_owned(), source };
        self.flush_row_group()?;
        self.writer.sync().map_err(|e| werr(&self.path, e.into()))?;
        let data_len = self.writer.bytes_written() as u64;
        let row_groups = self.writer.flushed_row_groups().to_vec();
        let num_rows = row_groups.iter().map(|rg| rg.num_rows()).sum();
        let mut kv = self.start_kv.clone();
        kv.push(KeyValue::new(meta::ENDED_AT.into(), ended_at.to_string()));
        kv.push(KeyValue::new(meta::EVENTS_LOST.into(), events_lost.to_string()));
        let descr =
            parquet::arrow::ArrowSchemaConverter::new().convert(&schema::schema()).map_err(|e| werr(&self.path, e))?;
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
        ParquetMetaDataWriter::new(&mut footer, &md).finish().map_err(|e| werr(&self.path, e))?;
        Ok((data_len, footer))
    }

    pub fn push(&mut self, e: &Event) -> Result<(), FormatError> {
        self.batch.push(e);
        self.rows += 1;
        if self.batch.len() >= 65536 {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), FormatError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = self.batch.finish();
        self.writer.write(&batch).map_err(|source| FormatError::Write { path: self.path.clone(), source })
    }

    /// Ends the current row group so everything pushed so far is encoded and handed to the sink.
    pub fn flush_row_group(&mut self) -> Result<(), FormatError> {
        self.write_batch()?;
        self.writer.flush().map_err(|source| FormatError::Write { path: self.path.clone(), source })
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
        self.writer.append_key_value_metadata(KeyValue::new(meta::ENDED_AT.into(), ended_at.to_string()));
        self.writer.append_key_value_metadata(KeyValue::new(meta::EVENTS_LOST.into(), events_lost.to_string()));
        let err = |source| FormatError::Write { path: self.path.clone(), source };
        let md = self.writer.finish().map_err(err)?;
        self.writer
            .inner_mut()
            .flush()
            .map_err(|e| FormatError::Write { path: self.path.clone(), source: e.into() })?;
        Ok(WriteSummary { rows: self.rows, bytes: self.writer.bytes_written() as u64, row_groups: md.num_row_groups() })
    }

    /// The sink, e.g. to `sync_all` a file after `finish`.
    pub fn sink(&self) -> &W {
        self.writer.inner()
    }
}

/// Rewrites a finished recording with large row groups (a recording checkpointed every second
/// at a low event rate ends up with many small ones). Same rows, same metadata, same mode.
pub fn compact(path: &Path) -> Result<WriteSummary, FormatError> {
    let builder = open_builder(path)?;
    let kv: Vec<KeyValue> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| kvs.iter().filter(|k| k.key != parquet::arrow::ARROW_SCHEMA_META_KEY).cloned().collect())
        .unwrap_or_default();
    let reader = builder
        .with_batch_size(65536)
        .build()
        .map_err(|source| FormatError::Corrupt { path: path.to_owned(), source })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".compact");
    let tmp = PathBuf::from(tmp);
    let file = create_private(&tmp, true)?;
    let props = writer_properties().into_builder().set_key_value_metadata(Some(kv)).build();
    let werr = |source| FormatError::Write { path: tmp.clone(), source };
    let mut w = ArrowWriter::try_new(file, schema::schema(), Some(props)).map_err(werr)?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| FormatError::Corrupt { path: path.to_owned(), source: e.into() })?;
        rows += batch.num_rows() as u64;
        w.write(&batch).map_err(werr)?;
    }
    w.finish().map_err(werr)?;
    w.inner().sync_all().map_err(|e| werr(e.into()))?;
    let bytes = w.bytes_written() as u64;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|source| FormatError::Create { path: path.to_owned(), source })?;
    Ok(WriteSummary { rows, bytes, row_groups: 1 })
}

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
    let builder = open_builder(path)?;
    let (meta, rows) = check_builder(path, &builder)?;
    Ok((meta, rows, builder.schema().clone()))
}

fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, FormatError> {
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
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|source| FormatError::Corrupt { path: path.to_owned(), source })
}

fn check_builder(
    path: &Path,
    builder: &ParquetRecordBatchReaderBuilder<File>,
) -> Result<(RecordingMeta, u64), FormatError> {
    let file_meta = builder.metadata().file_metadata();
    let kv: HashMap<String, String> = file_meta
        .key_value_metadata()
        .map(|kvs| kvs.iter().filter_map(|k| Some((k.key.clone(), k.value.clone()?))).collect())
        .unwrap_or_default();
    let meta = RecordingMeta::from_key_values(path, &kv)?;
    let want = schema::schema();
    let have = builder.schema();
    for field in want.fields() {
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
        let (meta, rows) = check_builder(path, &builder)?;
        let reader = builder
            .with_batch_size(8192)
            .build()
            .map_err(|source| FormatError::Corrupt { path: path.to_owned(), source })?;
        Ok(RecordingReader { path: path.to_owned(), meta, rows, reader })
    }

    /// The next batch of rows as events; `None` at the end.
    pub fn next_events(&mut self) -> Option<Result<Vec<Event>, FormatError>> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(e) => {
                return Some(Err(FormatError::Corrupt {
                    path: self.path.clone(),
                    source: parquet::errors::ParquetError::ArrowError(e.to_string()),
                }));
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

fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

fn column<'a, T: 'static>(path: &Path, batch: &'a RecordBatch, name: &'static str) -> Result<&'a T, FormatError> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| FormatError::BadValue {
        path: path.to_owned(),
        column: name,
        what: "missing or of the wrong type".into(),
    })
}

/// Converts a batch of the v1 schema back into events.
pub fn events_from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Event>, FormatError> {
    let ts = column::<TimestampNanosecondArray>(path, batch, col::TS)?;
    let kind = column::<StringArray>(path, batch, col::KIND)?;
    let conn_id = column::<UInt64Array>(path, batch, col::CONN_ID)?;
    let protocol = column::<StringArray>(path, batch, col::PROTOCOL)?;
    let role = column::<StringArray>(path, batch, col::ROLE)?;
    let _family = column::<UInt8Array>(path, batch, col::FAMILY)?;
    let local_addr = column::<StringArray>(path, batch, col::LOCAL_ADDR)?;
    let local_port = column::<UInt16Array>(path, batch, col::LOCAL_PORT)?;
    let remote_addr = column::<StringArray>(path, batch, col::REMOTE_ADDR)?;
    let remote_port = column::<UInt16Array>(path, batch, col::REMOTE_PORT)?;
    let pid = column::<UInt32Array>(path, batch, col::PID)?;
    let comm = column::<StringArray>(path, batch, col::COMM)?;
    let cgroup_id = column::<UInt64Array>(path, batch, col::CGROUP_ID)?;
    let state = column::<StringArray>(path, batch, col::STATE)?;
    let bytes_sent = column::<UInt64Array>(path, batch, col::BYTES_SENT)?;
    let bytes_received = column::<UInt64Array>(path, batch, col::BYTES_RECEIVED)?;
    let packets_sent = column::<UInt64Array>(path, batch, col::PACKETS_SENT)?;
    let packets_received = column::<UInt64Array>(path, batch, col::PACKETS_RECEIVED)?;
    let retransmits = column::<UInt32Array>(path, batch, col::RETRANSMITS)?;
    let rtt_us = column::<UInt32Array>(path, batch, col::RTT_US)?;
    let handshake_us = column::<UInt32Array>(path, batch, col::HANDSHAKE_US)?;
    let duration_ns = column::<UInt64Array>(path, batch, col::DURATION_NS)?;
    let error = column::<StringArray>(path, batch, col::ERROR)?;
    let reset_by = column::<StringArray>(path, batch, col::RESET_BY)?;
    let reset_reason = column::<StringArray>(path, batch, col::RESET_REASON)?;
    let preexisting = column::<BooleanArray>(path, batch, col::PREEXISTING)?;

    let bad = |column: &'static str, what: String| FormatError::BadValue { path: path.to_owned(), column, what };
    let opt_u32 = |a: &UInt32Array, i: usize| if a.is_null(i) { None } else { Some(a.value(i)) };
    let mut comms: HashMap<String, Arc<str>> = HashMap::new();
    let mut reasons: HashMap<String, Arc<str>> = HashMap::new();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let k = kind.value(i);
        let p = protocol.value(i);
        let r = role.value(i);
        let la = local_addr.value(i);
        let ra = remote_addr.value(i);
        let c = comm.value(i);
        let comm_arc = match comms.get(c) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(c);
                comms.insert(c.to_owned(), a.clone());
                a
            }
        };
        let reason = opt_str(reset_reason, i).map(|s| match reasons.get(s) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(s);
                reasons.insert(s.to_owned(), a.clone());
                a
            }
        });
        out.push(Event {
            ts_ns: ts.value(i),
            kind: EventKind::parse(k).ok_or_else(|| bad(col::KIND, format!("unknown kind `{k}`")))?,
            conn_id: conn_id.value(i),
            protocol: Protocol::parse(p).ok_or_else(|| bad(col::PROTOCOL, format!("unknown protocol `{p}`")))?,
            role: Role::parse(r).ok_or_else(|| bad(col::ROLE, format!("unknown role `{r}`")))?,
            local_addr: la
                .parse::<IpAddr>()
                .map_err(|_| bad(col::LOCAL_ADDR, format!("`{la}` is not an IP address")))?,
            remote_addr: ra
                .parse::<IpAddr>()
                .map_err(|_| bad(col::REMOTE_ADDR, format!("`{ra}` is not an IP address")))?,
            local_port: local_port.value(i),
            remote_port: remote_port.value(i),
            pid: pid.value(i),
            comm: comm_arc,
            cgroup_id: cgroup_id.value(i),
            state: opt_str(state, i).and_then(tcp_state_static),
            bytes_sent: bytes_sent.value(i),
            bytes_received: bytes_received.value(i),
            packets_sent: packets_sent.value(i),
            packets_received: packets_received.value(i),
            retransmits: retransmits.value(i),
            rtt_us: opt_u32(rtt_us, i),
            handshake_us: opt_u32(handshake_us, i),
            duration_ns: if duration_ns.is_null(i) { None } else { Some(duration_ns.value(i)) },
            error: opt_str(error, i).map(|e| errno_static(e).unwrap_or("EUNKNOWN")),
            reset_by: opt_str(reset_by, i).and_then(ResetBy::parse),
            reset_reason: reason,
            preexisting: preexisting.value(i),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sample_event;

    #[test]
    fn written_recording_reads_back_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let meta = RecordingMeta { version: "t".into(), hostname: "h".into(), ..Default::default() };
        let mut w = RecordingWriter::create(&path, false, &meta).unwrap();
        let events: Vec<Event> = (0..100).map(sample_event).collect();
        for e in &events {
            w.push(e).unwrap();
        }
        w.finish("2026-01-01T00:00:00Z", 3).unwrap();
        let mode = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let r = RecordingReader::open(&path).unwrap();
        assert_eq!(r.meta.events_lost, 3);
        assert_eq!(r.meta.hostname, "h");
        assert_eq!(r.rows, 100);
        assert_eq!(r.read_all().unwrap(), events);
    }

    #[test]
    fn compaction_keeps_rows_and_metadata_in_fewer_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let meta = RecordingMeta { hostname: "h".into(), ..Default::default() };
        let mut w = RecordingWriter::create(&path, false, &meta).unwrap();
        let events: Vec<Event> = (0..40).map(sample_event).collect();
        for e in &events {
            w.push(e).unwrap();
            w.flush_row_group().unwrap();
        }
        assert_eq!(w.finish("end", 2).unwrap().row_groups, 40);
        let s = compact(&path).unwrap();
        assert_eq!(s.rows, 40);
        let r = RecordingReader::open(&path).unwrap();
        assert_eq!((r.meta.hostname.as_str(), r.meta.ended_at.as_str(), r.meta.events_lost), ("h", "end", 2));
        assert_eq!(r.read_all().unwrap(), events);
        let f = std::fs::File::open(&path).unwrap();
        let md = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        assert_eq!(md.metadata().num_row_groups(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        std::fs::write(&path, b"x").unwrap();
        let err = RecordingWriter::create(&path, false, &RecordingMeta::default()).err().unwrap();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert!(RecordingWriter::create(&path, true, &RecordingMeta::default()).is_ok());
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.parquet");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(RecordingReader::open(&empty), Err(FormatError::Empty { .. })));
        let text = dir.path().join("text.parquet");
        std::fs::write(&text, b"hello, this is not parquet at all").unwrap();
        assert!(matches!(RecordingReader::open(&text), Err(FormatError::NotParquet { .. })));
        let missing = dir.path().join("missing.parquet");
        let e = RecordingReader::open(&missing).err().unwrap();
        assert!(e.to_string().contains("missing.parquet"), "{e}");

        // Truncated: a real recording with its footer cut off.
        let good = dir.path().join("good.parquet");
        let mut w = RecordingWriter::create(&good, false, &RecordingMeta::default()).unwrap();
        w.push(&sample_event(1)).unwrap();
        w.finish("x", 0).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.parquet");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = RecordingReader::open(&cut).err().unwrap();
        assert!(e.to_string().contains("truncated"), "{e}");

        // Parquet, but not a recording.
        let foreign = dir.path().join("foreign.parquet");
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "x",
            arrow::datatypes::DataType::Int32,
            false,
        )]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(arrow::array::Int32Array::from(vec![1]))]).unwrap();
        let mut w = ArrowWriter::try_new(File::create(&foreign).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let e = RecordingReader::open(&foreign).err().unwrap();
        assert!(e.to_string().contains("gespann.schema_version"), "{e}");
    }
}
