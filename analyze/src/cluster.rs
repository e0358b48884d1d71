//! `gespann analyze --cluster df://HOST:PORT`: the same session, planned here and run on an
//! Apache DataFusion Ballista cluster (`gespann scheduler` and `gespann executor`, see the
//! `gespann-cluster` crate).
//!
//! Ballista sends each query's logical plan to the scheduler, which plans it physically and has
//! the executors run it. So everything a plan names has to exist on the other side: the
//! recordings as Parquet tables (the same paths or object-store URLs must resolve there), the
//! functions ([`crate::session::udfs`], registered on the scheduler and executors by name), and
//! no in-memory table, which cannot be serialized: the small tables the reports join
//! (`recordings`, a diff's sides) travel inside the plan as `VALUES` ([`values_view`]).

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::ViewTable;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, lit};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::AnalyzeError;

/// The scheduler's port when the address names none (Ballista's default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// Host and port (if it names one) of a scheduler's address, `df://HOST[:PORT]` or
/// `http://HOST[:PORT]` (as Ballista takes it); the host without IPv6 brackets. `None` for
/// anything else. The one parser of scheduler addresses: `gespann executor --scheduler` uses it.
pub fn parse_scheduler(url: &str) -> Option<(String, Option<u16>)> {
    let parsed = url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "df" | "http"))?;
    let host = parsed.host_str().filter(|h| !h.is_empty())?;
    // `Url` keeps IPv6 hosts in brackets; a socket address wants them without.
    Some((host.trim_start_matches('[').trim_end_matches(']').to_string(), parsed.port()))
}

/// `HOST:PORT` of a cluster address (`--cluster`), the port defaulting to Ballista's.
pub fn scheduler_address(url: &str) -> Result<(String, u16), AnalyzeError> {
    let (host, port) = parse_scheduler(url).ok_or_else(|| AnalyzeError::Cluster {
        url: url.to_string(),
        what: "is not an address like df://HOST:PORT".to_string(),
        cause: None,
    })?;
    Ok((host, port.unwrap_or(DEFAULT_SCHEDULER_PORT)))
}

/// Connects to the scheduler at `host:port` (every address it resolves to), trying again every
/// half second until `patience` has passed; the last refusal if none answered.
pub async fn reach_scheduler(host: &str, port: u16, patience: std::time::Duration) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let attempt = async {
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
            for a in tokio::net::lookup_host((host, port)).await? {
                match tokio::net::TcpStream::connect(a).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let err = match tokio::time::timeout_at(deadline.max(tokio::time::Instant::now() + ONE_TRY), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
        };
        if tokio::time::Instant::now() + RETRY >= deadline {
            return Err(err);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// How long one attempt may take at least, and the pause between attempts.
const ONE_TRY: std::time::Duration = std::time::Duration::from_secs(10);
const RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// A session whose queries run on the scheduler at `url`, with this session's settings.
/// The scheduler is reached once first, so that a wrong address is one clear line rather than
/// a failure of the first report.
pub async fn remote_context(
    url: &str,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> Result<SessionContext, AnalyzeError> {
    let (host, port) = scheduler_address(url)?;
    reach_scheduler(&host, port, std::time::Duration::ZERO).await.map_err(|e| AnalyzeError::Cluster {
        url: url.to_string(),
        what: format!("cannot reach the scheduler at {host}:{port}"),
        cause: Some(Box::new(e)),
    })?;
    // Ballista's settings (applied once), without its adaptive planner: with it, jobs over
    // several recordings hung here (the scheduler logged stage metrics of the wrong size and
    // stages it could not cancel); the static planner runs every report.
    let config = config.upgrade_for_ballista().with_ballista_adaptive_query_planner(false);
    let state =
        SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build();
    // The address as given: Ballista makes http://HOST:PORT of it (an IPv6 host in brackets).
    SessionContext::remote_with_state(url, state).await.map_err(|e| AnalyzeError::Cluster {
        url: url.to_string(),
        what: "cannot make a session for the cluster".to_string(),
        cause: Some(Box::new(e)),
    })
}

/// A view of `batch`'s rows as `VALUES`, its columns named and typed as the batch's: a table
/// that is part of the plan itself. (A plan's `VALUES` travel without their schema, as columns
/// `column1`, `column2`, ...: the names come from a projection over them, and with no rows, from
/// typed NULLs over an empty relation.)
pub fn values_view(batch: &RecordBatch) -> Result<ViewTable, DataFusionError> {
    let schema = batch.schema();
    let plan = if batch.num_rows() == 0 {
        let nulls = schema
            .fields()
            .iter()
            .map(|f| Ok(lit(ScalarValue::try_from(f.data_type())?).alias(f.name())))
            .collect::<Result<Vec<_>, DataFusionError>>()?;
        LogicalPlanBuilder::empty(false).project(nulls)?.build()?
    } else {
        let rows = (0..batch.num_rows())
            .map(|r| batch.columns().iter().map(|c| ScalarValue::try_from_array(c, r).map(lit)).collect())
            .collect::<Result<Vec<Vec<_>>, _>>()?;
        let names = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Expr::Column(Column::from_name(format!("column{}", i + 1))).alias(f.name()));
        LogicalPlanBuilder::values(rows)?.project(names)?.build()?
    };
    Ok(ViewTable::new(plan, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(scheduler_address("df://10.0.0.5:50060").unwrap(), ("10.0.0.5".into(), 50060));
        assert_eq!(scheduler_address("df://sched").unwrap(), ("sched".into(), DEFAULT_SCHEDULER_PORT));
        assert_eq!(scheduler_address("df://[::1]:7000").unwrap(), ("::1".into(), 7000));
        for bad in ["10.0.0.5:50050", "s3://bucket/x", "df://:5"] {
            let e = scheduler_address(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[tokio::test]
    async fn values_view_keeps_rows_and_types() {
        use arrow::array::{StringArray, TimestampNanosecondArray, UInt64Array};
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("started_at", ts.clone(), true),
            Field::new("rows", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a.parquet", "b.parquet"])),
                Arc::new(
                    TimestampNanosecondArray::from(vec![Some(1_700_000_000_123_456_789), None]).with_timezone("UTC"),
                ),
                Arc::new(UInt64Array::from(vec![7, 9])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(values_view(&batch).unwrap())).unwrap();
        let got = ctx.sql("SELECT * FROM t").await.unwrap().collect().await.unwrap();
        assert_eq!(got.len(), 1);
        for (got, want) in got[0].schema().fields().iter().zip(schema.fields()) {
            assert_eq!((got.name(), got.data_type()), (want.name(), want.data_type()));
        }
        assert_eq!(got[0].columns(), batch.columns());
        let empty = RecordBatch::new_empty(schema.clone());
        ctx.register_table("e", Arc::new(values_view(&empty).unwrap())).unwrap();
        let got = ctx.sql("SELECT count(*) AS n, min(rows) AS r FROM e").await.unwrap().collect().await.unwrap();
        let n = got[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);
        assert_eq!(n, 0);
        assert_eq!(got[0].schema().field(1).data_type(), &DataType::UInt64);
    }
}
