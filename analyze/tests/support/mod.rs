//! Shared test helpers: the hand-counted recording, runs of the analyzer through its library API,
//! and DuckDB. Recordings, the generator and the binary come from `gespann-testkit`.
#![allow(dead_code, unused_imports, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use clap::Parser;
use gespann_analyze::cli::{AnalyzeArgs, run_with};
use gespann_common::{Event, EventKind, Protocol, ResetBy, Role, Workload};

/// The generator behind `cargo xtask synth`, the hand-made rows, and how to find the binary and
/// Python: all from the workspace's test kit.
pub use gespann_testkit::fixtures::{Conn, SEC, T0, ev, write_recording};
pub use gespann_testkit::synth;
pub use gespann_testkit::{gespann_bin, python, workspace_root as workspace};

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: AnalyzeArgs,
}

/// Parses `gespann analyze` arguments.
pub fn args(a: &[&str]) -> AnalyzeArgs {
    let mut v = vec!["analyze"];
    v.extend_from_slice(a);
    Wrap::try_parse_from(v).expect("valid arguments").args
}

/// Runs the analyzer through its library API; returns stdout.
pub fn analyze(a: &[&str]) -> Result<String, gespann_analyze::AnalyzeError> {
    let mut out = Vec::new();
    run_with(args(a), &mut out, false)?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

/// Runs reports with `--format json --top 0` and parses the document.
pub fn analyze_json(a: &[&str]) -> serde_json::Value {
    let mut v = a.to_vec();
    v.extend_from_slice(&["--format", "json", "--top", "0"]);
    let text = analyze(&v).unwrap_or_else(|e| panic!("analyze {a:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

/// A synthetic recording of about `events` rows.
pub fn synth_file(dir: &Path, name: &str, events: u64, seed: u64, lost: u64) -> PathBuf {
    let path = dir.join(name);
    let mut cfg = synth::SynthConfig::new(events, seed);
    cfg.events_lost = lost;
    synth::write(&cfg, &path, true).expect("synthetic recording");
    path
}

/// The hand-counted recording: ten connections whose every report number is worked out by hand
/// in `handcounted.rs`.
pub fn handcounted_events() -> Vec<Event> {
    use EventKind::*;
    let mut v = Vec::new();
    let web = Conn::tcp("192.0.2.10", 443, "curl", 100);
    let db = Conn::tcp("198.51.100.7", 5432, "python3", 200);
    let slow = Conn::tcp("198.51.100.8", 9000, "java", 300);
    let redis = Conn::tcp("10.0.0.5", 6379, "java", 300);
    let nginx = Conn {
        proto: Protocol::Tcp,
        role: Role::Server,
        remote: "203.0.113.5",
        rport: 50000,
        lport: 443,
        comm: "nginx",
        pid: 400,
    };
    let dns = |r: &'static str| Conn {
        proto: Protocol::Udp,
        role: Role::Client,
        remote: r,
        rport: 53,
        lport: 0,
        comm: "systemd-resolve",
        pid: 500,
    };
    // conn 7: open before the recording started, idle after t=3, still open at the end.
    let mut e = redis.at(Open, 0.0, 7);
    e.preexisting = true;
    e.bytes_sent = 10;
    e.bytes_received = 10;
    e.rtt_us = Some(300);
    v.push(e);
    // conn 1: closed after 2 s.
    let mut e = web.at(Open, 1.0, 1);
    e.handshake_us = Some(1500);
    e.rtt_us = Some(1000);
    v.push(e);
    // conn 8: an answered DNS query.
    let mut e = dns("10.0.0.2").at(Open, 1.0, 8);
    e.bytes_sent = 40;
    e.packets_sent = 1;
    v.push(e);
    let mut e = dns("10.0.0.2").at(Close, 1.02, 8);
    e.bytes_sent = 40;
    e.packets_sent = 1;
    e.bytes_received = 120;
    e.packets_received = 1;
    e.duration_ns = Some(20_000_000);
    v.push(e);
    // conn 2: reset by the remote side after 1 s.
    let mut e = web.at(Open, 1.5, 2);
    e.pid = 101;
    e.handshake_us = Some(2500);
    e.rtt_us = Some(2000);
    v.push(e);
    let mut e = web.at(Sample, 2.0, 1);
    e.rtt_us = Some(3000);
    e.bytes_sent = 100;
    e.bytes_received = 5000;
    v.push(e);
    // conn 6: nginx serving a remote client, with retransmits.
    let mut e = nginx.at(Open, 2.0, 6);
    e.rtt_us = Some(500);
    v.push(e);
    // conn 9: a DNS query never answered.
    let mut e = dns("1.1.1.1").at(Open, 2.0, 9);
    e.bytes_sent = 40;
    e.packets_sent = 1;
    v.push(e);
    let mut e = web.at(Reset, 2.5, 2);
    e.pid = 101;
    e.rtt_us = Some(2000);
    e.bytes_sent = 50;
    e.packets_sent = 1;
    e.duration_ns = Some(SEC as u64);
    e.reset_by = Some(ResetBy::Remote);
    e.reset_reason = Some(Arc::from("NOT_SPECIFIED"));
    e.error = Some("ECONNRESET");
    v.push(e);
    let mut e = web.at(Close, 3.0, 1);
    e.rtt_us = Some(2000);
    e.bytes_sent = 200;
    e.bytes_received = 10_000;
    e.packets_sent = 3;
    e.packets_received = 9;
    e.duration_ns = Some(2 * SEC as u64);
    v.push(e);
    let mut e = nginx.at(Retransmit, 3.0, 6);
    e.bytes_sent = 500_000;
    e.bytes_received = 300;
    e.retransmits = 2;
    e.packets_sent = 350;
    e.packets_received = 5;
    v.push(e);
    let mut e = redis.at(Sample, 3.0, 7);
    e.bytes_sent = 20;
    e.bytes_received = 20;
    e.rtt_us = Some(500);
    v.push(e);
    // conns 3 and 4: refused; conn 5: timed out.
    let mut e = db.at(Failed, 4.0, 3);
    e.error = Some("ECONNREFUSED");
    e.duration_ns = Some(1_000_000);
    v.push(e);
    let mut e = db.at(Failed, 5.0, 4);
    e.error = Some("ECONNREFUSED");
    e.duration_ns = Some(3_000_000);
    v.push(e);
    let mut e = slow.at(Failed, 6.0, 5);
    e.error = Some("ETIMEDOUT");
    e.duration_ns = Some(3 * SEC as u64);
    v.push(e);
    let mut e = nginx.at(Close, 7.0, 6);
    e.bytes_sent = 1_000_000;
    e.bytes_received = 700;
    e.packets_sent = 700;
    e.packets_received = 10;
    e.retransmits = 2;
    e.rtt_us = Some(700);
    e.duration_ns = Some(5 * SEC as u64);
    v.push(e);
    let mut e = dns("1.1.1.1").at(Close, 7.0, 9);
    e.bytes_sent = 80;
    e.packets_sent = 2;
    e.duration_ns = Some(5 * SEC as u64);
    v.push(e);
    // conn 10: this host aborts its own connection.
    let mut e = web.at(Open, 7.2, 10);
    e.pid = 102;
    e.handshake_us = Some(3000);
    e.rtt_us = Some(4000);
    v.push(e);
    let mut e = web.at(Reset, 7.5, 10);
    e.pid = 102;
    e.duration_ns = Some(300_000_000);
    e.reset_by = Some(ResetBy::Local);
    e.reset_reason = Some(Arc::from("TCP_ABORT_ON_CLOSE"));
    v.push(e);
    // The end of the window: the final sample of the connection still open.
    let mut e = redis.at(Sample, 8.0, 7);
    e.bytes_sent = 20;
    e.bytes_received = 20;
    e.rtt_us = Some(400);
    v.push(e);
    // A host without containers: every process in a systemd service's cgroup.
    let host = host_workload();
    for e in &mut v {
        e.workload = host.clone();
    }
    v
}

/// The host's network namespace inode in hand-made recordings.
pub const HOST_NETNS: u32 = 4026531840;

/// A process on the host, outside any container.
pub fn host_workload() -> Arc<Workload> {
    Arc::new(Workload { cgroup: Arc::from("/system.slice/app.service"), ..Workload::default() })
}

/// A connection of [`containers_events`]: `conn` run in `netns` by a process of `workload`.
fn placed(mut e: Event, netns: u32, workload: &Arc<Workload>) -> Event {
    e.netns = netns;
    e.workload = workload.clone();
    e
}

/// The container host: a schema version 2 recording of twelve connections in a Kubernetes pod
/// (`prod/api-7d9f`, containerd, no container name), a Docker container (`redis-cache`), a podman
/// container without a name (id `c0ffee012345…`) and on the host, with failures, resets both ways,
/// bytes and a connection still open at the end. Every number of its reports is worked out in
/// `containers.rs`.
pub fn containers_events() -> Vec<Event> {
    use EventKind::*;
    let api_id = "a1".repeat(32);
    let api = Arc::new(Workload {
        cgroup: Arc::from(format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_4000_8000_00000000abcd.slice/cri-containerd-{api_id}.scope"
        )),
        container_id: Some(Arc::from(api_id.as_str())),
        container_name: None,
        pod_uid: Some(Arc::from("1b2c3d4e-0000-4000-8000-00000000abcd")),
        pod_name: Some(Arc::from("api-7d9f")),
        pod_namespace: Some(Arc::from("prod")),
    });
    let redis_id = "b2".repeat(32);
    let redis = Arc::new(Workload {
        cgroup: Arc::from(format!("/system.slice/docker-{redis_id}.scope")),
        container_id: Some(Arc::from(redis_id.as_str())),
        container_name: Some(Arc::from("redis-cache")),
        ..Workload::default()
    });
    let anon_id = format!("c0ffee{}", "0123456789".repeat(6).get(..58).unwrap_or_default());
    let anon = Arc::new(Workload {
        cgroup: Arc::from(format!("/machine.slice/libpod-{anon_id}.scope")),
        container_id: Some(Arc::from(anon_id.as_str())),
        ..Workload::default()
    });
    let host = Arc::new(Workload { cgroup: Arc::from("/system.slice/sshd.service"), ..Workload::default() });
    let (api_ns, redis_ns, anon_ns) = (4026532100, 4026532200, 4026532300);

    let pg = Conn::tcp("10.96.0.10", 5432, "node", 1000);
    let search = Conn::tcp("10.96.0.20", 8080, "node", 1000);
    let billing = Conn::tcp("10.96.0.30", 443, "node", 1000);
    let redis_srv = Conn {
        proto: Protocol::Tcp,
        role: Role::Server,
        remote: "172.17.0.1",
        rport: 51000,
        lport: 6379,
        comm: "redis-server",
        pid: 2000,
    };
    let dns = Conn {
        proto: Protocol::Udp,
        role: Role::Client,
        remote: "10.0.0.2",
        rport: 53,
        lport: 0,
        comm: "dig",
        pid: 3000,
    };
    let v6 = Conn::tcp("2001:db8::1", 443, "curl", 3001);
    let ssh = Conn {
        proto: Protocol::Tcp,
        role: Role::Server,
        remote: "203.0.113.9",
        rport: 60000,
        lport: 22,
        comm: "sshd",
        pid: 4000,
    };
    let unreachable = Conn::tcp("192.0.2.10", 443, "curl", 4001);

    let mut v = Vec::new();
    let mut push = |e: Event, ns: u32, w: &Arc<Workload>| v.push(placed(e, ns, w));
    let bytes = |mut e: Event, sent: u64, received: u64| {
        e.bytes_sent = sent;
        e.bytes_received = received;
        e
    };
    let ended = |mut e: Event, ns: i64| {
        e.duration_ns = Some(ns as u64);
        e
    };
    let failed = |mut e: Event, errno: &'static str| {
        e.error = Some(errno);
        e.duration_ns = Some(1_000_000);
        e
    };
    // host: an ssh session served from 0.5 s to 7 s.
    push(ssh.at(Open, 0.5, 11), HOST_NETNS, &host);
    // api: two queries to postgres, closed.
    let mut e = pg.at(Open, 1.0, 1);
    e.rtt_us = Some(1000);
    e.handshake_us = Some(1200);
    push(e, api_ns, &api);
    // redis-cache: a client served from 1 s to 6 s.
    push(redis_srv.at(Open, 1.0, 7), redis_ns, &redis);
    let mut e = pg.at(Open, 1.5, 2);
    e.rtt_us = Some(3000);
    e.handshake_us = Some(3200);
    push(e, api_ns, &api);
    let mut e = bytes(ended(pg.at(Close, 2.0, 1), SEC), 1000, 20_000);
    e.rtt_us = Some(1000);
    push(e, api_ns, &api);
    // redis-cache: a client it aborted.
    push(redis_srv.at(Open, 2.0, 8), redis_ns, &redis);
    // the podman container: an answered DNS query.
    let mut e = bytes(dns.at(Open, 2.0, 9), 40, 0);
    e.state = None;
    push(e, anon_ns, &anon);
    let mut e = bytes(ended(dns.at(Close, 2.02, 9), 20_000_000), 40, 120);
    e.state = None;
    push(e, anon_ns, &anon);
    let mut e = bytes(ended(redis_srv.at(Reset, 2.2, 8), 200_000_000), 0, 10);
    e.reset_by = Some(ResetBy::Local);
    e.reset_reason = Some(Arc::from("TCP_ABORT_ON_CLOSE"));
    push(e, redis_ns, &redis);
    let mut e = bytes(ended(pg.at(Close, 2.5, 2), SEC), 500, 3000);
    e.rtt_us = Some(3000);
    push(e, api_ns, &api);
    // api: three failed attempts.
    push(failed(search.at(Failed, 3.0, 3), "ECONNREFUSED"), api_ns, &api);
    push(failed(search.at(Failed, 3.5, 4), "ECONNREFUSED"), api_ns, &api);
    push(failed(billing.at(Failed, 4.0, 5), "ETIMEDOUT"), api_ns, &api);
    // api: a query reset by postgres.
    let mut e = pg.at(Open, 5.0, 6);
    e.rtt_us = Some(2000);
    e.handshake_us = Some(2200);
    push(e, api_ns, &api);
    let mut e = bytes(ended(pg.at(Reset, 5.5, 6), SEC / 2), 100, 0);
    e.rtt_us = Some(2000);
    e.reset_by = Some(ResetBy::Remote);
    e.error = Some("ECONNRESET");
    push(e, api_ns, &api);
    push(bytes(ended(redis_srv.at(Close, 6.0, 7), 5 * SEC), 300, 40), redis_ns, &redis);
    // the podman container: an IPv6 connection still open at the end.
    let mut e = bytes(v6.at(Open, 6.0, 10), 10, 10);
    e.local_addr = "2001:db8::100".parse().unwrap();
    e.rtt_us = Some(500);
    push(e, anon_ns, &anon);
    push(bytes(ended(ssh.at(Close, 7.0, 11), 6 * SEC + SEC / 2), 2000, 1000), HOST_NETNS, &host);
    // host: an attempt with no route.
    push(failed(unreachable.at(Failed, 7.0, 12), "EHOSTUNREACH"), HOST_NETNS, &host);
    let mut e = bytes(v6.at(Sample, 8.0, 10), 10, 10);
    e.local_addr = "2001:db8::100".parse().unwrap();
    e.rtt_us = Some(500);
    push(e, anon_ns, &anon);
    v
}

/// The container host's recording, written to `dir/containers.parquet`.
pub fn containers_file(dir: &Path) -> PathBuf {
    let p = dir.join("containers.parquet");
    write_recording(&p, &containers_events(), 0, T0, T0 + 8 * SEC);
    p
}

/// The hand-counted recording, written to `dir/handcounted.parquet` (7 events lost).
pub fn handcounted_file(dir: &Path) -> PathBuf {
    let p = dir.join("handcounted.parquet");
    write_recording(&p, &handcounted_events(), 7, T0, T0 + 8 * SEC);
    p
}

/// Runs `sql` in DuckDB with the view `events` over `file`; returns the rows as JSON arrays.
pub fn duckdb(file: &Path, sql: &str) -> Vec<Vec<serde_json::Value>> {
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
con.execute("CREATE VIEW events AS SELECT * FROM read_parquet('%s')" % sys.argv[1].replace("'", "''"))
rows = con.execute(sys.argv[2]).fetchall()
print(json.dumps([list(r) for r in rows], default=str))
"#;
    let py = python();
    let out = Command::new(&py).arg("-c").arg(script).arg(file).arg(sql).output().expect("run python");
    assert!(
        out.status.success(),
        "duckdb through `{}` failed (it needs duckdb and pyarrow: `python3 -m venv .venv && \
         .venv/bin/pip install duckdb pyarrow` in the workspace, or set GESPANN_PYTHON): {}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("duckdb JSON")
}

/// Cells equal as text, or as numbers within a relative 1e-9 (parallel float sums).
pub fn same_cell(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

pub fn same_csv(got: &str, want: &str) -> bool {
    let g: Vec<&str> = got.lines().collect();
    let w: Vec<&str> = want.lines().collect();
    g.len() == w.len()
        && g.iter().zip(&w).all(|(a, b)| {
            let (ca, cb): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
            ca.len() == cb.len() && ca.iter().zip(&cb).all(|(x, y)| same_cell(x, y))
        })
}

/// The reports `names` (every built-in one when empty) over `inputs`, each rendered as CSV, with
/// the connections kept in memory (`passes` `None`) or split onto disk in that many passes.
pub fn reports_as_csv(inputs: &[String], names: &[&str], passes: Option<usize>) -> Vec<String> {
    use gespann_analyze::cli::run_report;
    use gespann_analyze::reports::Catalog;
    use gespann_analyze::session::{Analyzer, Options};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let recs = gespann_analyze::inputs::open_all(inputs).await.unwrap();
        let mut a = Analyzer::new(recs, &Options::default()).await.unwrap();
        match passes {
            Some(n) => a.connections_to_disk(n).await.unwrap(),
            None => a.connections_to_memory().await.unwrap(),
        }
        let catalog = Catalog::builtin();
        let reports = if names.is_empty() {
            catalog.all().collect::<Vec<_>>()
        } else {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            catalog.resolve(&names, true).unwrap()
        };
        let mut out = Vec::new();
        for r in reports {
            let s = run_report(&a, r, 0).await.unwrap();
            let mut buf = Vec::new();
            gespann_analyze::render::write_sections(
                &mut buf,
                gespann_analyze::render::Format::Csv,
                &[s],
                false,
                &Default::default(),
            )
            .unwrap();
            out.push(String::from_utf8(buf).unwrap());
        }
        out
    })
}
