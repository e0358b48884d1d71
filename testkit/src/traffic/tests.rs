//! The generator without a recorder: what the clients counted agrees with what the servers
//! counted, and with the plan worked out by hand for a short run.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::*;

fn row(r: &Report, kind: TcpKind, port: u16) -> &TcpRow {
    r.tcp
        .iter()
        .find(|t| t.kind == kind && t.port == port)
        .unwrap_or_else(|| panic!("no {kind:?} row on {port}: {r:#?}"))
}

/// Two bursts at rate 9: per burst 6 requests over IPv4 (3 on one keep-alive connection, 3 one
/// per connection) and 3 over IPv6 (1 keep-alive, 2 one per connection); a server abort and a
/// client abort each; a refused connect per family; 4 DNS queries over IPv4 (the 5th would be
/// the first unanswered) and 2 over IPv6; one bulk download in the second burst.
#[test]
fn a_short_run_does_exactly_the_planned_mix_and_both_ends_agree() {
    let t = Traffic::bind().unwrap();
    let p = t.ports();
    let cfg = Config { duration: Duration::from_millis(1500), rate: 9, bulk_bytes: 3 << 20 };
    let r = t.run(&cfg, &AtomicBool::new(false)).unwrap();
    assert_eq!((r.bursts, r.interrupted), (2, false));
    assert!(r.elapsed_s >= 1.5, "{}", r.elapsed_s);

    let req_len = |port: u16, v6: bool, path: &str, close: bool| -> u64 {
        let host = if v6 { format!("[::1]:{port}") } else { format!("127.0.0.1:{port}") };
        (format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gespann-traffic\r\nAccept: */*\r\n").len()
            + if close { 19 } else { 0 }
            + 2) as u64
    };
    let ka4 = row(&r, TcpKind::HttpKeepAlive, p.http4);
    assert_eq!((ka4.connections, ka4.requests, ka4.outcome), (2, 6, Outcome::Closed));
    let close4 = row(&r, TcpKind::HttpClose, p.http4);
    assert_eq!((close4.connections, close4.requests), (6, 6));
    let ka6 = row(&r, TcpKind::HttpKeepAlive, p.http6);
    assert_eq!((ka6.connections, ka6.requests, ka6.family), (2, 2, 6));
    let close6 = row(&r, TcpKind::HttpClose, p.http6);
    assert_eq!((close6.connections, close6.requests), (4, 4));
    // Requests 0-5 and 9-14 over IPv4, 6-8 and 15-17 over IPv6: exactly what each sent.
    let sent = |ids: &[u64], port, v6, close| -> u64 {
        ids.iter()
            .map(|&j| {
                let path = match j {
                    j if j % 7 == 6 => "/missing".to_owned(),
                    j if j % 13 == 12 => "/error".to_owned(),
                    j => format!("/item/{j}"),
                };
                req_len(port, v6, &path, close)
            })
            .sum()
    };
    assert_eq!(ka4.bytes_sent, sent(&[0, 1, 2, 9, 10, 11], p.http4, false, false));
    assert_eq!(close4.bytes_sent, sent(&[3, 4, 5, 12, 13, 14], p.http4, false, true));
    assert_eq!(ka6.bytes_sent, sent(&[6, 15], p.http6, true, false));
    assert_eq!(close6.bytes_sent, sent(&[7, 8, 16, 17], p.http6, true, true));
    // 6 and 13 are /missing, 12 is /error; 15 requests, 2 client aborts' and the bulk are 200s.
    assert_eq!(r.http_responses, BTreeMap::from([(200, 18), (404, 2), (500, 1)]));

    for (kind, port, family) in [
        (TcpKind::ServerAbort, p.http4, 4),
        (TcpKind::ServerAbort, p.http6, 6),
        (TcpKind::ClientAbort, p.http4, 4),
        (TcpKind::ClientAbort, p.http6, 6),
    ] {
        let a = row(&r, kind, port);
        assert_eq!((a.connections, a.outcome, a.family), (1, Outcome::Reset, family));
        assert_eq!(a.reset_by, Some(if kind == TcpKind::ServerAbort { End::Server } else { End::Client }));
    }
    assert_eq!(row(&r, TcpKind::ServerAbort, p.http4).bytes_received, 0);
    for port in [p.refused4, p.refused6] {
        let f = row(&r, TcpKind::Refused, port);
        assert_eq!((f.connections, f.outcome, f.error, f.bytes_sent), (2, Outcome::Failed, Some("ECONNREFUSED"), 0));
    }
    let bulk = row(&r, TcpKind::Bulk, p.bulk);
    assert_eq!((bulk.connections, bulk.requests), (1, 1));
    assert!(bulk.bytes_received > 3 << 20 && bulk.bytes_received < (3 << 20) + 200, "{bulk:?}");
    assert_eq!(r.tcp.len(), 11, "{:#?}", r.tcp);

    // The servers accepted every connection that was not refused.
    let accepted = |name: &str, port| r.servers.iter().find(|s| s.name == name && s.port == port).unwrap().accepted;
    assert_eq!(accepted("http", p.http4), 2 + 6 + 2);
    assert_eq!(accepted("http", p.http6), 2 + 4 + 2);
    assert_eq!(accepted("bulk", p.bulk), 1);

    // DNS: one flow per family and burst; every datagram arrived, every answer was read.
    assert_eq!(r.udp.len(), 4, "{:#?}", r.udp);
    for f in &r.udp {
        let (queries, family) = if f.server_port == p.dns4 { (4, 4) } else { (2, 6) };
        assert_eq!((f.queries, f.family, f.connected), (queries, family, family == 6), "{f:?}");
        assert_eq!(f.unanswered_by_design, 0);
        assert_eq!((f.datagrams_sent, f.server_datagrams_received), (queries, queries));
        assert_eq!((f.datagrams_received, f.server_datagrams_sent), (queries, queries));
        assert_eq!((f.bytes_sent, f.bytes_received), (f.server_bytes_received, f.server_bytes_sent));
        assert_eq!(f.bytes_received, f.bytes_sent + 16 * queries, "an answer is its query and a 16-byte A record");
    }
}

/// At rate 10 every fifth query is under void.test and goes unanswered: the client waited, the
/// server received it and sent nothing back.
#[test]
fn void_queries_reach_the_server_and_get_no_answer() {
    let t = Traffic::bind().unwrap();
    let p = t.ports();
    let cfg = Config { duration: Duration::from_millis(500), rate: 10, bulk_bytes: 1024 };
    let r = t.run(&cfg, &AtomicBool::new(false)).unwrap();
    let f = r.udp.iter().find(|f| f.server_port == p.dns4).unwrap();
    assert_eq!((f.queries, f.unanswered_by_design), (5, 1));
    assert_eq!((f.server_datagrams_received, f.server_datagrams_sent, f.datagrams_received), (5, 4, 4));
}

/// A stop flag set before the run: no traffic at all, and a report that says so.
#[test]
fn stopped_before_the_first_burst_reports_nothing_done() {
    let t = Traffic::bind().unwrap();
    let r = t.run(&Config::default(), &AtomicBool::new(true)).unwrap();
    assert_eq!((r.bursts, r.interrupted, r.tcp.len(), r.udp.len()), (0, true, 0, 0));
    assert!(r.servers.iter().all(|s| s.accepted == 0));
}
