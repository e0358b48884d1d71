//! The query engine: one DataFusion session with the recordings, their metadata, the
//! `connections` view and the `epoch_ns` function registered.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext};
use gespann_common::schema;

use crate::inputs::Recording;
use crate::reports::CONNECTIONS_VIEW;
use crate::{AnalyzeError, EngineCause};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Bytes the memory pool may hand out before operators spill (or fail, for those that cannot).
    pub memory_limit: usize,
    /// Worker threads and partitions; `None`: the number of CPUs.
    pub threads: Option<usize>,
    /// Run the queries on this Ballista scheduler (`df://HOST:PORT`) instead of in-process.
    pub cluster: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { memory_limit: 2 << 30, threads: None, cluster: None }
    }
}

/// A session over a set of recordings.
pub struct Analyzer {
    pub ctx: SessionContext,
    pub recordings: Vec<Recording>,
    memory_limit: usize,
    /// Holds the materialized `connections` when they did not fit in memory.
    spill_dir: Option<tempfile::TempDir>,
    /// The connection count, once estimated (deciding on passes and making them both need it).
    connections: std::sync::OnceLock<u64>,
    /// Queries run on a Ballista cluster: every table must travel in a plan (no in-memory
    /// tables) and the executors, not this process, hold the memory.
    remote: bool,
}

/// Quotes a string as a SQL literal.
pub fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Analyzer {
    /// Registers `recordings` (already checked by [`crate::inputs`]) in a new session.
    pub async fn new(recordings: Vec<Recording>, opts: &Options) -> Result<Self, AnalyzeError> {
        // DATAFUSION_* environment variables tune the engine, as in datafusion-cli (e.g.
        // DATAFUSION_EXECUTION_BATCH_SIZE=16384).
        let mut config = SessionConfig::from_env()
            .map_err(|e| AnalyzeError::engine("cannot start the query engine", e))?
            .with_information_schema(true)
            .with_default_catalog_and_schema("gespann", "public");
        if let Some(n) = opts.threads {
            config = config.with_target_partitions(n.max(1));
        }
        // Twice DataFusion's default batch: recordings are narrow rows by the million, and
        // the reports' aggregations ran about 10% faster on the 10M-event benchmark. Within a
        // small limit, operators that cannot spill (top-k, joins) need the smaller batches.
        if std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_none() && opts.memory_limit >= 1 << 30 {
            config = config.with_batch_size(16 * 1024);
        }
        // Each sort sets aside this much for merging what it spilled (10 MiB by default, per
        // partition); within a small limit that reservation alone would exhaust the pool.
        if std::env::var_os("DATAFUSION_EXECUTION_SORT_SPILL_RESERVATION_BYTES").is_none() {
            let partitions = config.target_partitions().max(1);
            let share = opts.memory_limit / 16 / partitions;
            let exec = &mut config.options_mut().execution;
            exec.sort_spill_reservation_bytes = exec.sort_spill_reservation_bytes.min(share.max(256 << 10));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(opts.memory_limit),
                std::num::NonZeroUsize::new(3).unwrap_or(std::num::NonZeroUsize::MIN),
            )))
            .with_disk_manager_builder(DiskManagerBuilder::default())
            .build_arc()
            .map_err(|e| AnalyzeError::engine("cannot start the query engine", e))?;
        let ctx = match &opts.cluster {
            None => SessionContext::new_with_config_rt(config, runtime),
            Some(url) => crate::cluster::remote_context(url, config, runtime).await?,
        };
        // After the remote upgrade, which replaces the function registry with Ballista's.
        for udf in udfs() {
            ctx.register_udf(udf);
        }

        let columns: Vec<String> = schema::schema().fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
        let columns = columns.join(", ");
        let mut union = Vec::with_capacity(recordings.len());
        // Whether the Parquet reader gives strings as `Utf8View` (DataFusion's default).
        let view_strings = ctx.copied_config().options().execution.parquet.schema_force_view_types;
        for (i, rec) in recordings.iter().enumerate() {
            let table = format!("recording_{i}");
            if let gespann_inputs::Location::Object(o) = &rec.input.location {
                // The engine reads objects through the store they were found in (its
                // credentials and endpoint); one registration per bucket serves every object.
                ctx.register_object_store(&o.root, o.store.clone());
            }
            let location = rec.input.url()?;
            let options = ParquetReadOptions {
                // Any file name: the inputs were already checked to be recordings.
                file_extension: "",
                ..Default::default()
            };
            let register_err = |e| AnalyzeError::Register { path: rec.path.clone(), cause: EngineCause(e) };
            match normalizing_select(rec, &format!("{table}_file"), view_strings) {
                // A file of the current schema is the table itself.
                None => ctx.register_parquet(&table, &location, options).await.map_err(register_err)?,
                Some(select) => {
                    ctx.register_parquet(format!("{table}_file"), &location, options).await.map_err(register_err)?;
                    run_ddl(&ctx, "an earlier schema version's columns", &format!("CREATE VIEW {table} AS {select}"))
                        .await?;
                }
            }
            union.push(format!("SELECT {columns}, {} AS source FROM {table}", sql_literal(&rec.source)));
        }
        let events = format!("CREATE VIEW events AS {}", union.join("\nUNION ALL\n"));
        run_ddl(&ctx, "the `events` view", &events).await?;
        register_small(&ctx, opts.cluster.is_some(), "recordings", recordings_batch(&recordings)?)?;
        // One aggregation per file, unioned: conn_id is unique within a file, and grouping by
        // it alone is several times faster than by (source, conn_id).
        let per_file: Vec<String> = recordings
            .iter()
            .enumerate()
            .map(|(i, rec)| {
                let q = connections_sql(&format!("recording_{i}"), &rec.source);
                if recordings.len() == 1 { q } else { format!("SELECT * FROM ({q})") }
            })
            .collect();
        let view = format!("CREATE VIEW connections AS {}", per_file.join("\nUNION ALL\n"));
        run_ddl(&ctx, "the `connections` view", &view).await?;
        Ok(Analyzer {
            ctx,
            recordings,
            memory_limit: opts.memory_limit,
            spill_dir: None,
            connections: std::sync::OnceLock::new(),
            remote: opts.cluster.is_some(),
        })
    }

    /// Total rows over all inputs.
    pub fn total_rows(&self) -> u64 {
        self.recordings.iter().map(|r| r.rows).sum()
    }

    /// Plans `sql`; errors name `query`.
    pub async fn sql(&self, query: &str, sql: &str) -> Result<DataFrame, AnalyzeError> {
        self.ctx.sql(sql).await.map_err(|e| AnalyzeError::query(query, e))
    }

    /// Computes the `connections` view once, so that several reports share one pass over the
    /// events instead of one pass each, and returns the number of passes it took.
    ///
    /// Memory stays within the limit however many connections there are. The view's joins
    /// cannot spill in DataFusion (its aggregation can), so their size is planned instead: the
    /// connections are counted first ([`Self::estimate_connections`]), and when they would not
    /// fit, the events are split once by `conn_id` residue class ([`crate::split`]) and the view
    /// is computed one slice per pass, each written to a temporary Parquet file (deleted when
    /// the analyzer is dropped). A pass that still
    /// runs out of memory (an estimate is an estimate) doubles the number of passes. A small
    /// result is kept in memory instead.
    ///
    /// On a cluster the view stays a view: each report computes it on the executors, and there
    /// is no table this process could hand them.
    pub async fn materialize_connections(&mut self) -> Result<usize, AnalyzeError> {
        if self.remote {
            return Ok(1);
        }
        let connections = self.estimate_connections().await?;
        let mut passes = passes_for(connections, self.memory_limit);
        loop {
            let cached = connections.saturating_mul(CACHED_BYTES_PER_CONNECTION);
            let result = if passes == 1 && cached <= self.memory_limit as u64 / 4 {
                self.connections_to_memory().await
            } else {
                self.connections_to_disk(passes).await
            };
            match result {
                Err(AnalyzeError::Query { cause, .. }) if cause.is_out_of_memory() && passes < MAX_PASSES => {
                    tracing::debug!(passes, %cause, "the connections did not fit; doubling the passes");
                    passes *= 2;
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    tracing::debug!(connections, passes, limit = self.memory_limit, "connections computed");
                    return Ok(passes);
                }
            }
        }
    }

    /// Whether the `connections` view over these inputs needs more than one pass to stay within
    /// the memory limit; `--sql` then materializes it before running a query that uses it.
    pub async fn connections_need_passes(&self) -> Result<bool, AnalyzeError> {
        if self.remote {
            return Ok(false);
        }
        Ok(passes_for(self.estimate_connections().await?, self.memory_limit) > 1)
    }

    /// Distinct connections over all inputs: at most the span of `conn_id` (the recorder
    /// numbers connections from 1, so this is usually exact), read from the files' statistics;
    /// when that is too many for one pass, a HyperLogLog estimate (within a few percent) from
    /// one scan of `conn_id`.
    pub async fn estimate_connections(&self) -> Result<u64, AnalyzeError> {
        if let Some(&n) = self.connections.get() {
            return Ok(n);
        }
        let n = self.count_connections().await?;
        Ok(*self.connections.get_or_init(|| n))
    }

    async fn count_connections(&self) -> Result<u64, AnalyzeError> {
        let bound: Option<u64> = self.recordings.iter().map(|r| conn_id_span(&r.parquet).map(|n| n.min(r.rows))).sum();
        if let Some(bound) = bound.filter(|&b| passes_for(b, self.memory_limit) == 1) {
            return Ok(bound);
        }
        let what = "counting the connections";
        let per_file: Vec<String> = (0..self.recordings.len())
            .map(|i| format!("SELECT approx_distinct(conn_id) AS n FROM recording_{i}"))
            .collect();
        let sql = format!("SELECT CAST(sum(n) AS BIGINT) AS n FROM ({})", per_file.join(" UNION ALL "));
        let batches = self.sql(what, &sql).await?.collect().await.map_err(|e| AnalyzeError::query(what, e))?;
        let n = batches
            .first()
            .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().map(|a| a.iter().flatten().sum::<i64>()))
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Replaces the `connections` view by its result, kept in memory.
    pub async fn connections_to_memory(&mut self) -> Result<(), AnalyzeError> {
        let what = "the `connections` view";
        let df = self.sql(what, "SELECT * FROM connections").await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect_partitioned().await.map_err(|e| AnalyzeError::query(what, e))?;
        // The joins' output shares the string buffers of their inputs; copied out, each batch
        // holds (and is accounted for by the memory pool as) only its own strings.
        let batches = batches
            .into_iter()
            .map(|part| part.into_iter().map(compact).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AnalyzeError::query(what, e.into()))?;
        let table = MemTable::try_new(schema, batches).map_err(|e| AnalyzeError::query(what, e))?;
        self.ctx.deregister_table("connections").map_err(|e| AnalyzeError::query(what, e))?;
        self.ctx.register_table("connections", Arc::new(table)).map_err(|e| AnalyzeError::query(what, e))?;
        Ok(())
    }

    /// Replaces the `connections` view by its result, computed in `passes` passes (each over the
    /// connections with `conn_id % passes` equal to its number, split off by
    /// [`crate::split`]) and written to temporary Parquet files, one per pass.
    pub async fn connections_to_disk(&mut self, passes: usize) -> Result<(), AnalyzeError> {
        let passes = passes.max(1);
        let dir = tempfile::Builder::new()
            .prefix("gespann-analyze-")
            .tempdir()
            .map_err(|e| AnalyzeError::engine("cannot create a temporary directory", e))?;
        let out = dir.path().join("connections");
        std::fs::create_dir(&out).map_err(|e| AnalyzeError::engine(format!("cannot create `{}`", out.display()), e))?;
        // The slices of each input, [input][pass]; none when one pass reads the inputs.
        let mut slices: Vec<Vec<PathBuf>> = Vec::new();
        if passes > 1 {
            for (i, rec) in self.recordings.iter().enumerate() {
                let d = dir.path().join(format!("input{i}"));
                let table = format!("recording_{i}");
                slices.push(crate::split::split_by_connection(&self.ctx, &table, passes, &d, "part").await?);
                tracing::debug!(input = %rec.source, passes, "split by connection");
            }
        }
        for pass in 0..passes {
            let what = if passes == 1 {
                "the `connections` view".to_string()
            } else {
                format!("the `connections` view (pass {} of {passes})", pass + 1)
            };
            let mut union = Vec::with_capacity(self.recordings.len());
            for (i, rec) in self.recordings.iter().enumerate() {
                let table = if passes == 1 {
                    format!("recording_{i}")
                } else {
                    let name = format!("slice_{i}");
                    let path = slices[i][pass].to_string_lossy().into_owned();
                    let _ = self.ctx.deregister_table(&name);
                    self.ctx
                        .register_arrow(&name, &path, ArrowReadOptions::default())
                        .await
                        .map_err(|e| AnalyzeError::query(what.as_str(), e))?;
                    name
                };
                union.push(format!("SELECT * FROM ({})", connections_sql(&table, &rec.source)));
            }
            let df = self.sql(&what, &union.join("\nUNION ALL\n")).await?;
            // Uncompressed: the file lives for one command, and compressing it costs more
            // than the reports save reading it. Small row groups keep the writer's buffers
            // small within a small memory limit.
            let mut parquet = TableParquetOptions::default();
            parquet.global.compression = Some("uncompressed".into());
            parquet.global.max_row_group_size = 128 * 1024;
            parquet.global.allow_single_file_parallelism = true;
            let file = out.join(format!("part-{pass:05}.parquet"));
            df.write_parquet(
                &file.to_string_lossy(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                Some(parquet),
            )
            .await
            .map_err(|e| AnalyzeError::query(what.as_str(), e))?;
            tracing::debug!(pass, "pass done");
            for (i, s) in slices.iter().enumerate() {
                let _ = self.ctx.deregister_table(format!("slice_{i}"));
                let _ = std::fs::remove_dir_all(&s[pass]);
            }
        }
        let what = "the `connections` view";
        self.ctx.deregister_table("connections").map_err(|e| AnalyzeError::query(what, e))?;
        self.ctx
            .register_parquet("connections", &out.to_string_lossy(), ParquetReadOptions::default())
            .await
            .map_err(|e| AnalyzeError::query(what, e))?;
        self.spill_dir = Some(dir);
        Ok(())
    }

    /// Registers a small in-memory table, e.g. the sides of a diff.
    pub fn register_batch(&self, name: &str, batch: RecordBatch) -> Result<(), AnalyzeError> {
        register_small(&self.ctx, self.remote, name, batch)
    }

    /// Whether the queries run on a Ballista cluster.
    pub fn is_remote(&self) -> bool {
        self.remote
    }
}

/// What computing the `connections` view reserves per connection in its hash joins and
/// aggregation (measured: about 700 bytes on the synthetic 10M-event benchmark).
const JOIN_BYTES_PER_CONNECTION: u64 = 768;
/// What one connection takes once computed, kept in memory.
const CACHED_BYTES_PER_CONNECTION: u64 = 256;
/// At most this many passes over the events: 4096 passes of 1 GiB each cover about 5 billion
/// connections.
const MAX_PASSES: usize = 4096;

/// Passes needed for `connections` within `memory_limit` (leaving a tenth for the scans and
/// the rest of the plan).
fn passes_for(connections: u64, memory_limit: usize) -> usize {
    let budget = (memory_limit as u64 / 10 * 9).max(1);
    let need = connections.saturating_mul(JOIN_BYTES_PER_CONNECTION);
    usize::try_from(need.div_ceil(budget)).unwrap_or(MAX_PASSES).clamp(1, MAX_PASSES)
}

/// `max(conn_id) - min(conn_id) + 1` over a recording, from its row groups' statistics; `None`
/// when they are missing.
fn conn_id_span(parquet: &parquet::file::metadata::ParquetMetaData) -> Option<u64> {
    use parquet::file::statistics::Statistics;
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for rg in parquet.row_groups() {
        let col = rg.columns().iter().find(|c| c.column_path().string() == "conn_id")?;
        match col.statistics()? {
            Statistics::Int64(s) => {
                // UInt64 is stored as INT64: the bits, reinterpreted.
                lo = lo.min(*s.min_opt()? as u64);
                hi = hi.max(*s.max_opt()? as u64);
            }
            _ => return None,
        }
    }
    Some(if hi >= lo { hi - lo + 1 } else { 0 })
}

/// `batch` with its string views copied into buffers of their own.
fn compact(batch: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.as_any().downcast_ref::<arrow::array::StringViewArray>() {
            Some(v) => Arc::new(v.gc()) as ArrayRef,
            None => c.clone(),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
}

/// `SELECT` of every column of the current schema from `table`, a file of an earlier version
/// (version 1 lacks [`schema::V2_COLUMNS`]; before version 3, `ts` is in nanoseconds): each
/// missing column is a NULL of its type and `ts` is cast, so every input presents the same
/// columns and they union. `None` for a file of the current version.
/// Projection only: the file's own columns are read as they are.
fn normalizing_select(rec: &Recording, table: &str, view_strings: bool) -> Option<String> {
    let current = schema::schema();
    let old_ts = rec.meta.schema_version < 3;
    if !old_ts && current.fields().iter().all(|f| rec.has_column(f.name())) {
        return None;
    }
    let columns: Vec<String> = current
        .fields()
        .iter()
        .map(|f| {
            if f.name() == schema::col::TS && old_ts {
                // Nanoseconds before version 3: truncated to the microseconds of today's files.
                format!("arrow_cast(\"{0}\", '{1}') AS \"{0}\"", f.name(), f.data_type())
            } else if rec.has_column(f.name()) {
                format!("\"{}\"", f.name())
            } else {
                format!("{} AS \"{}\"", typed_null(f.data_type(), view_strings), f.name())
            }
        })
        .collect();
    Some(format!("SELECT {} FROM {table}", columns.join(", ")))
}

/// A NULL in SQL of the type DataFusion reads a Parquet column of Arrow type `dt` as: itself,
/// but for top-level strings, which `view_strings` reads as `Utf8View`.
fn typed_null(dt: &DataType, view_strings: bool) -> String {
    let dt = if view_strings && *dt == DataType::Utf8 { &DataType::Utf8View } else { dt };
    format!("arrow_cast(NULL, '{dt}')")
}

/// The `connections` query over one file's table (see `queries/views/connections.sql`).
pub fn connections_sql(table: &str, source: &str) -> String {
    crate::reports::sql_body(CONNECTIONS_VIEW).replace("{events}", table).replace("{source}", &sql_literal(source))
}

async fn run_ddl(ctx: &SessionContext, what: &str, sql: &str) -> Result<(), AnalyzeError> {
    ctx.sql(sql)
        .await
        .map_err(|e| AnalyzeError::query(what, e))?
        .collect()
        .await
        .map_err(|e| AnalyzeError::query(what, e))?;
    Ok(())
}

/// Registers a small table: in memory, or for a cluster a view of its rows as `VALUES`, which
/// travels inside every plan that reads it (an in-memory table cannot be sent to executors).
fn register_small(ctx: &SessionContext, remote: bool, name: &str, batch: RecordBatch) -> Result<(), AnalyzeError> {
    let what = || format!("the `{name}` table");
    let table: Arc<dyn datafusion::catalog::TableProvider> = if remote {
        Arc::new(crate::cluster::values_view(&batch).map_err(|e| AnalyzeError::query(what(), e))?)
    } else {
        Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| AnalyzeError::query(what(), e))?)
    };
    ctx.register_table(name, table).map_err(|e| AnalyzeError::query(what(), e))?;
    Ok(())
}

/// The functions the reports use beyond DataFusion's own: registered in every session, and on
/// a cluster's scheduler and executors too (a plan names them, and they are looked up there).
pub fn udfs() -> Vec<datafusion::logical_expr::ScalarUDF> {
    vec![epoch_ns_udf(), make_timestamp_ns_udf()]
}

/// The `recordings` table: one row per input with its file metadata.
fn recordings_batch(recs: &[Recording]) -> Result<RecordBatch, AnalyzeError> {
    let ts = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("hostname", DataType::Utf8, false),
        Field::new("kernel", DataType::Utf8, false),
        Field::new("gespann_version", DataType::Utf8, false),
        Field::new("schema_version", DataType::UInt32, false),
        Field::new("started_at", ts(), true),
        Field::new("ended_at", ts(), true),
        Field::new("events_lost", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("file_bytes", DataType::UInt64, false),
        Field::new("sample_interval_ms", DataType::UInt64, true),
        Field::new("command_line", DataType::Utf8, false),
    ]));
    let strs =
        |f: &dyn Fn(&Recording) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(recs.iter().map(f))) };
    let times = |f: &dyn Fn(&Recording) -> &str| -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from(recs.iter().map(|r| parse_rfc3339(f(r))).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        strs(&|r| &r.source),
        strs(&|r| &r.meta.hostname),
        strs(&|r| &r.meta.kernel),
        strs(&|r| &r.meta.version),
        Arc::new(UInt32Array::from_iter_values(recs.iter().map(|r| r.meta.schema_version))),
        times(&|r| &r.meta.started_at),
        times(&|r| &r.meta.ended_at),
        Arc::new(UInt64Array::from_iter_values(recs.iter().map(|r| r.meta.events_lost))),
        Arc::new(UInt64Array::from_iter_values(recs.iter().map(|r| r.rows))),
        Arc::new(UInt64Array::from_iter_values(recs.iter().map(|r| r.bytes))),
        Arc::new(UInt64Array::from(recs.iter().map(|r| r.meta.sample_interval_ms).collect::<Vec<_>>())),
        strs(&|r| &r.meta.command_line),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| AnalyzeError::query("the `recordings` table", e.into()))
}

/// Parses an RFC 3339 time (as the recorder writes `gespann.started_at`) to Unix nanoseconds;
/// `None` for an empty or malformed value (the reports then fall back to the first and last
/// event).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let arr = arrow::array::StringArray::from(vec![s.trim()]);
    let out = arrow::compute::cast_with_options(
        &arr,
        &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        &arrow::compute::CastOptions { safe: true, ..Default::default() },
    )
    .ok()?;
    let out = out.as_any().downcast_ref::<TimestampNanosecondArray>()?;
    if s.trim().is_empty() || out.is_null(0) { None } else { Some(out.value(0)) }
}

/// `epoch_ns(timestamp) -> BIGINT`: nanoseconds since the Unix epoch, as DuckDB's function of
/// the same name, so durations are plain integers in every engine.
pub fn epoch_ns_udf() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "epoch_ns",
        vec![DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arg =
                args.first().ok_or_else(|| DataFusionError::Plan("epoch_ns takes one timestamp argument".into()))?;
            match arg {
                ColumnarValue::Scalar(s) => {
                    let v = match s {
                        ScalarValue::TimestampNanosecond(v, _) => *v,
                        ScalarValue::TimestampMicrosecond(v, _) => v.map(|x| x * 1_000),
                        ScalarValue::TimestampMillisecond(v, _) => v.map(|x| x * 1_000_000),
                        ScalarValue::TimestampSecond(v, _) => v.map(|x| x * 1_000_000_000),
                        ScalarValue::Null => None,
                        other => {
                            return Err(DataFusionError::Plan(format!(
                                "epoch_ns expects a timestamp, not {}",
                                other.data_type()
                            )));
                        }
                    };
                    Ok(ColumnarValue::Scalar(ScalarValue::Int64(v)))
                }
                ColumnarValue::Array(a) => {
                    let ns = arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())))?;
                    let out: Int64Array = ns
                        .as_any()
                        .downcast_ref::<TimestampNanosecondArray>()
                        .ok_or_else(|| DataFusionError::Internal("epoch_ns: cast to timestamp failed".into()))?
                        .reinterpret_cast::<arrow::datatypes::Int64Type>();
                    Ok(ColumnarValue::Array(Arc::new(out)))
                }
            }
        }),
    )
}

/// `make_timestamp_ns(bigint) -> timestamp`: the inverse of [`epoch_ns_udf`] (UTC), named as
/// DuckDB's function.
pub fn make_timestamp_ns_udf() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "make_timestamp_ns",
        vec![DataType::Int64],
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arg = args
                .first()
                .ok_or_else(|| DataFusionError::Plan("make_timestamp_ns takes one integer argument".into()))?;
            match arg {
                ColumnarValue::Scalar(ScalarValue::Int64(v)) => {
                    Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(*v, Some("UTC".into()))))
                }
                ColumnarValue::Scalar(other) => {
                    Err(DataFusionError::Plan(format!("make_timestamp_ns expects a BIGINT, not {}", other.data_type())))
                }
                ColumnarValue::Array(a) => {
                    let ints = a
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(|| DataFusionError::Internal("make_timestamp_ns: argument is not Int64".into()))?;
                    let out: TimestampNanosecondArray =
                        ints.reinterpret_cast::<arrow::datatypes::TimestampNanosecondType>().with_timezone("UTC");
                    Ok(ColumnarValue::Array(Arc::new(out)))
                }
            }
        }),
    )
}
