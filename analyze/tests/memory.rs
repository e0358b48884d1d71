//! Memory is bounded: a recording whose `connections` do not fit in `--memory-limit` in one
//! go still gets every report, computed in several passes, with the same numbers as with
//! plenty of memory; and the single pass really would not have fit.

mod support;

use gespann_analyze::AnalyzeError;
use gespann_analyze::cli::run_report;
use gespann_analyze::reports::Catalog;
use gespann_analyze::session::{Analyzer, Options};
use support::*;

const SMALL: usize = 16 << 20;

fn open(path: &std::path::Path) -> Vec<gespann_analyze::inputs::Recording> {
    futures::executor::block_on(gespann_analyze::inputs::open_all(&[path.to_str().unwrap().to_string()])).unwrap()
}

/// Every built-in report as CSV.
async fn all_reports(a: &Analyzer) -> String {
    let mut sections = Vec::new();
    for r in Catalog::builtin().all() {
        sections.push(run_report(a, r, 0).await.unwrap());
    }
    let mut buf = Vec::new();
    gespann_analyze::render::write_sections(
        &mut buf,
        gespann_analyze::render::Format::Csv,
        &sections,
        false,
        &Default::default(),
    )
    .unwrap();
    String::from_utf8(buf).unwrap()
}

/// The rows of `connections`, in conn_id order. (The average RTT is a float sum, whose last bits
/// depend on the order of the rows.)
async fn connection_rows(a: &Analyzer) -> Vec<Vec<Option<String>>> {
    let q = "SELECT * EXCLUDE (rtt_avg_us), round(rtt_avg_us, 3) AS rtt_avg_us FROM connections ORDER BY conn_id";
    let batches = a.sql("q", q).await.unwrap().collect().await.unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    // As text: a table kept in memory and one read back from Parquet differ in string types.
    batch
        .columns()
        .iter()
        .map(|c| {
            let s = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap();
            let s = s.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            s.iter().map(|v| v.map(str::to_string)).collect()
        })
        .collect()
}

#[test]
fn connections_that_do_not_fit_are_computed_in_passes_with_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    // About 47,000 connections: some 35 MB of join state, twice the 16 MiB limit.
    let f = synth_file(dir.path(), "big.parquet", 300_000, 5, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let small = Options { memory_limit: SMALL, threads: Some(2), cluster: None };
        let roomy = Options { memory_limit: 4 << 30, threads: Some(2), cluster: None };

        // One pass within 16 MiB runs out of memory: the limit is real.
        let mut a = Analyzer::new(open(&f), &small).await.unwrap();
        let connections = a.estimate_connections().await.unwrap();
        assert!((40_000..60_000).contains(&connections), "estimate {connections}");
        match a.connections_to_disk(1).await {
            Err(AnalyzeError::Query { cause, .. }) => {
                assert!(cause.to_string().contains("Resources exhausted"), "{cause}")
            }
            other => panic!("one pass within 16 MiB should fail, got {:?}", other.map(|_| ())),
        }
        assert!(a.connections_need_passes().await.unwrap());

        // The planned passes fit, and give what one pass with room gives.
        let passes = a.materialize_connections().await.unwrap();
        assert!(passes >= 2, "passes {passes}");
        let bounded = all_reports(&a).await;

        let mut b = Analyzer::new(open(&f), &roomy).await.unwrap();
        assert!(!b.connections_need_passes().await.unwrap());
        assert_eq!(b.materialize_connections().await.unwrap(), 1);
        let reference = all_reports(&b).await;
        assert!(bounded.lines().count() > 100, "{bounded}");
        assert!(same_csv(&bounded, &reference), "bounded:\n{bounded}\nreference:\n{reference}");

        // The rows of `connections` themselves are the same, however many passes.
        let mut c = Analyzer::new(open(&f), &roomy).await.unwrap();
        c.connections_to_disk(7).await.unwrap();
        let (got, want) = (connection_rows(&c).await, connection_rows(&b).await);
        assert_eq!(got[1].len(), want[1].len());
        assert!(got == want, "the rows of `connections` differ after 7 passes");
    });
}

#[test]
fn the_cli_stays_within_a_small_limit() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth_file(dir.path(), "big.parquet", 300_000, 6, 0);
    let f = f.to_str().unwrap();
    let small = analyze(&[f, "--memory-limit", "16MiB", "--format", "csv", "--top", "0"]).unwrap();
    let roomy = analyze(&[f, "--format", "csv", "--top", "0"]).unwrap();
    assert!(same_csv(&small, &roomy), "16MiB:\n{small}\nroomy:\n{roomy}");
    // One report over `connections`, and `--sql` over it, take the passes too.
    for a in [
        &["--report", "talkers"][..],
        &[
            "--sql",
            "SELECT remote_addr, outcome, count(*), sum(bytes_sent) FROM connections GROUP BY 1, 2 ORDER BY 1, 2",
        ],
    ] {
        let mut small_args = vec![f, "--memory-limit", "16MiB", "--format", "csv"];
        small_args.extend_from_slice(a);
        let mut roomy_args = vec![f, "--format", "csv"];
        roomy_args.extend_from_slice(a);
        let s = analyze(&small_args).unwrap_or_else(|e| panic!("{a:?} within 16MiB: {e}"));
        let r = analyze(&roomy_args).unwrap();
        assert!(same_csv(&s, &r), "{a:?}\n16MiB:\n{s}\nroomy:\n{r}");
        assert!(s.lines().count() > 3, "{s}");
    }
}
