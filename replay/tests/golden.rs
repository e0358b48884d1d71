//! The metric names are a contract (users' dashboards depend on them): any change to the
//! catalog must show up as a change to `tests/golden/metric_names.txt`.
//! Regenerate with `GESPANN_UPDATE_GOLDEN=1 cargo test -p gespann-replay --test golden`.

use std::path::Path;

#[test]
fn metric_names_match_the_golden_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metric_names.txt");
    let now = gespann_replay::model::catalog_text();
    if std::env::var_os("GESPANN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &now).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (GESPANN_UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(
        now,
        golden,
        "the metric catalog changed: check the names users depend on, then regenerate {}",
        path.display()
    );
    // The names the issue fixes, verbatim.
    for name in [
        "gespann_open_connections gauge",
        "gespann_closed_connections_total counter",
        "gespann_reset_connections_total counter",
        "gespann_failed_connections_total counter",
        "gespann_idle_connections gauge",
        "gespann_total_connections ",
        "gespann_bytes_sent_total counter",
        "gespann_bytes_received_total counter",
        "gespann_avg_connection_duration_ms gauge",
        "gespann_avg_rtt_microseconds gauge",
        "gespann_connection_bandwidth_bytes_total counter direction,protocol",
        "gespann_tcp_connections_total counter",
        "gespann_udp_connections_total counter",
        "gespann_connection_events_total counter type,protocol,reset_reason",
        // The bounded series keep their labels; the optional workload labels (`?`) may follow.
        "gespann_destination_connections_total counter address,port,protocol",
        "gespann_destination_bytes_total counter address,port,protocol,direction",
        "gespann_process_connections_total counter comm",
        "gespann_process_bytes_total counter comm,direction",
    ] {
        assert!(golden.lines().any(|l| l.starts_with(name)), "`{name}` is missing from the catalog");
    }
}
