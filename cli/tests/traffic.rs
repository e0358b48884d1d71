//! Root test: `gespann record` while the traffic generator behind `cargo xtask traffic` runs,
//! and the recording, read through `gespann analyze --sql` (the `connections` view), holds
//! exactly what the generator's report says its sockets did: connections per port and outcome,
//! refused connects as `failed` ECONNREFUSED, resets with the end that sent them, the bulk
//! transfer's bytes, every UDP flow's datagrams and bytes at both ends, and the IPv6 rows.
//!
//! The generator runs in this process (it is a library in the test kit), so its rows are found
//! by this pid and its ports: other programs on the machine make traffic at the same time.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use gespann_testkit::traffic::{BULK_BYTES, Config, End, Outcome, TcpKind, Traffic};
use serde_json::Value;

/// Runs `gespann analyze FILE --format json --sql SQL`: one JSON object per row.
fn query(file: &std::path::Path, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    let out = gespann().arg("analyze").arg(file).args(["--format", "json", "--sql", sql]).output().unwrap();
    assert!(out.status.success(), "gespann analyze --sql failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("analyze --format json prints a JSON array");
    rows.into_iter().map(|r| r.as_object().cloned().expect("rows are objects")).collect()
}

fn text(row: &serde_json::Map<String, Value>, col: &str) -> Option<String> {
    row[col].as_str().map(str::to_owned)
}

fn num(row: &serde_json::Map<String, Value>, col: &str) -> u64 {
    row[col].as_u64().unwrap_or_else(|| panic!("{col} is not a count: {row:?}"))
}

/// (role, server port, outcome, error, reset_by) -> (connections, bytes sent, bytes received)
type TcpGroups = BTreeMap<(String, u16, String, Option<String>, Option<String>), (u64, u64, u64)>;

#[test]
#[ignore = "needs root (loads eBPF): sudo cargo xtask test runs it"]
fn a_recording_of_the_traffic_generator_holds_exactly_what_it_reports() {
    let _g = serial();
    let traffic = Traffic::bind().unwrap();
    let p = traffic.ports();
    let port_args: Vec<String> = p.all().iter().flat_map(|port| ["--port".to_owned(), port.to_string()]).collect();
    let mut rec = Recording::start(&port_args.iter().map(String::as_str).collect::<Vec<_>>());
    let cfg = Config { duration: Duration::from_secs(3), rate: 20, bulk_bytes: BULK_BYTES };
    let report = traffic.run(&cfg, &AtomicBool::new(false)).unwrap();
    // The servers' sockets are closed (ending their UDP flows); let the rows through the
    // recorder's reorder window.
    std::thread::sleep(Duration::from_millis(700));
    let (_, meta, _) = rec.stop();
    assert_eq!(meta.events_lost, 0, "a lost event would make every count below a guess");
    assert_eq!(report.bursts, 3);
    let me = std::process::id();

    // TCP: both ends of every connection, grouped by the server's port and how it ended.
    let tcp_ports = [p.http4, p.http6, p.bulk, p.refused4, p.refused6].map(|x| x.to_string()).join(", ");
    let rows = query(
        &rec.path,
        &format!(
            "SELECT role, CASE role WHEN 'client' THEN remote_port ELSE local_port END AS port, outcome, error,
                    reset_by, count(*) AS n, sum(bytes_sent) AS sent, sum(bytes_received) AS received
             FROM connections
             WHERE pid = {me} AND protocol = 'tcp'
               AND CASE role WHEN 'client' THEN remote_port ELSE local_port END IN ({tcp_ports})
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
        ),
    );
    let got: TcpGroups = rows
        .iter()
        .map(|r| {
            let key = (
                text(r, "role").unwrap(),
                num(r, "port") as u16,
                text(r, "outcome").unwrap(),
                text(r, "error"),
                text(r, "reset_by"),
            );
            (key, (num(r, "n"), num(r, "sent"), num(r, "received")))
        })
        .collect();
    let mut want = TcpGroups::new();
    let s = |x: &str| Some(x.to_owned());
    for t in &report.tcp {
        // What each end's row says: a refused connect has no server end; the end that sent the
        // RST says `local`, the other `remote` with the ECONNRESET its socket got.
        let (client, server) = match (t.outcome, t.reset_by) {
            (Outcome::Failed, _) => ((s("ECONNREFUSED"), None), None),
            (Outcome::Reset, Some(End::Server)) => ((s("ECONNRESET"), s("remote")), Some((None, s("local")))),
            (Outcome::Reset, _) => ((None, s("local")), Some((s("ECONNRESET"), s("remote")))),
            (Outcome::Closed, _) => ((None, None), Some((None, None))),
        };
        let mut add = |role: &str, (error, by): (Option<String>, Option<String>), sent, received| {
            let e = want.entry((role.to_owned(), t.port, t.outcome.name().to_owned(), error, by)).or_default();
            *e = (e.0 + t.connections, e.1 + sent, e.2 + received);
        };
        add("client", client, t.bytes_sent, t.bytes_received);
        if let Some(server) = server {
            add("server", server, t.bytes_received, t.bytes_sent);
        }
    }
    assert_eq!(got, want, "recorded (left) vs the generator's report (right):\n{}", report.to_json());

    // The figures behind those groups, spelled out: 3 bursts at rate 20.
    let conns = |kind: TcpKind| report.tcp.iter().filter(|t| t.kind == kind).map(|t| t.connections).sum::<u64>();
    assert_eq!(conns(TcpKind::Refused), 6, "one refused connect per family and burst");
    assert_eq!((conns(TcpKind::ServerAbort), conns(TcpKind::ClientAbort)), (3, 3));
    // Per burst 14 requests over IPv4 (7 on keep-alive connections of up to 4: 2; 7 one per
    // connection) and 6 over IPv6 (3 keep-alive: 1; 3 one per connection).
    assert_eq!((conns(TcpKind::HttpKeepAlive), conns(TcpKind::HttpClose)), (9, 30));
    let bulk = report.tcp.iter().find(|t| t.kind == TcpKind::Bulk).unwrap();
    assert_eq!(bulk.connections, 1);
    let bulk_head = bulk.bytes_received - BULK_BYTES;
    assert!((100..200).contains(&bulk_head), "a response head of {bulk_head} bytes");
    assert_eq!(
        got[&("client".to_owned(), p.bulk, "closed".to_owned(), None, None)],
        (1, bulk.bytes_sent, BULK_BYTES + bulk_head),
        "the bulk download, to the byte"
    );

    // UDP: every flow at both ends, to the datagram and the byte.
    let rows = query(
        &rec.path,
        &format!(
            "SELECT role, family, local_port, remote_port, outcome, packets_sent, packets_received,
                    bytes_sent, bytes_received
             FROM connections
             WHERE pid = {me} AND protocol = 'udp'
               AND (CASE role WHEN 'client' THEN remote_port ELSE local_port END) IN ({}, {})
             ORDER BY 1, 2, 3, 4",
            p.dns4, p.dns6
        ),
    );
    type Flow = (String, u64, u64, u64, String, u64, u64, u64, u64);
    let mut got: Vec<Flow> = rows
        .iter()
        .map(|r| {
            (
                text(r, "role").unwrap(),
                num(r, "family"),
                num(r, "local_port"),
                num(r, "remote_port"),
                text(r, "outcome").unwrap(),
                num(r, "packets_sent"),
                num(r, "packets_received"),
                num(r, "bytes_sent"),
                num(r, "bytes_received"),
            )
        })
        .collect();
    let mut want: Vec<Flow> = Vec::new();
    for f in &report.udp {
        let (fam, c, sv) = (u64::from(f.family), u64::from(f.client_port), u64::from(f.server_port));
        let closed = "closed".to_owned();
        want.push((
            "client".into(),
            fam,
            c,
            sv,
            closed.clone(),
            f.datagrams_sent,
            f.datagrams_received,
            f.bytes_sent,
            f.bytes_received,
        ));
        want.push((
            "server".into(),
            fam,
            sv,
            c,
            closed,
            f.server_datagrams_sent,
            f.server_datagrams_received,
            f.server_bytes_sent,
            f.server_bytes_received,
        ));
    }
    got.sort();
    want.sort();
    assert_eq!(got, want, "UDP flows recorded (left) vs reported (right)");
    // 2 resolver sockets a burst; 10 IPv4 queries (2 unanswered) and 5 IPv6 (1 unanswered).
    assert_eq!(report.udp.len(), 6);
    let v4: Vec<_> = report.udp.iter().filter(|f| f.family == 4).collect();
    assert!(v4.iter().all(|f| (f.queries, f.server_datagrams_received, f.server_datagrams_sent) == (10, 10, 8)));
    assert!(v4.iter().all(|f| f.datagrams_received == 8 && !f.connected));

    // IPv6: the rows on ::1 are the generator's IPv6 share.
    let rows = query(
        &rec.path,
        &format!(
            "SELECT count(*) AS n FROM connections WHERE pid = {me} AND family = 6 AND remote_addr = '::1'
               AND CASE role WHEN 'client' THEN remote_port ELSE local_port END IN ({}, {}, {})",
            p.http6, p.refused6, p.dns6
        ),
    );
    let v6_tcp: u64 = report
        .tcp
        .iter()
        .filter(|t| t.family == 6)
        .map(|t| t.connections * if t.kind == TcpKind::Refused { 1 } else { 2 })
        .sum();
    let v6_udp = 2 * report.udp.iter().filter(|f| f.family == 6).count() as u64;
    assert_eq!(num(&rows[0], "n"), v6_tcp + v6_udp);
    assert_eq!(v6_tcp, 2 * (3 + 9 + 3) + 3, "keep-alive, one per connection, aborts; refused");
}
