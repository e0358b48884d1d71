//! A real Prometheus server (Debian package `prometheus`) scrapes `/metrics` every second while
//! a recording is replayed at its original pacing; its HTTP API must then report the
//! recording's own aggregates, and `promtool check metrics` must accept the exposition, with
//! and without workload (`container`, `pod`) labels. Fails (does not skip) when `prometheus` or
//! `promtool` is missing.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gespann_common::{Event, Workload};

use gespann_replay::adapters::Adapter;
use gespann_replay::adapters::prometheus::{Listen, Port, PrometheusAdapter, PrometheusConfig};
use gespann_replay::run::{Input, RunOptions, run};
use gespann_replay::{Config, Processor, ProcessorOptions, Speed};
use support::{aggregates, free_port, http, synthetic, wait_metrics, write_recording};

fn tool(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: `apt-get install prometheus` (Debian) provides it"))
}

/// Puts a third of the connections in container `web`, a third in an unnamed container of pod
/// `prod/api-0` (label `container="bbbbbbbbbbbb"`), and leaves the rest on the host; returns
/// the number of connections in each container.
fn place_in_containers(rows: &mut [Event]) -> [u64; 2] {
    let web = Arc::new(Workload {
        cgroup: Arc::from("/system.slice/docker-aaaaaaaaaaaa1111.scope"),
        container_id: Some(Arc::from("aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111")),
        container_name: Some(Arc::from("web")),
        ..Workload::default()
    });
    let api = Arc::new(Workload {
        cgroup: Arc::from("/kubepods.slice/kubepods-pod1234.slice/cri-containerd-bbbbbbbbbbbb2222.scope"),
        container_id: Some(Arc::from("bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222")),
        pod_uid: Some(Arc::from("1234-5678")),
        pod_name: Some(Arc::from("api-0")),
        pod_namespace: Some(Arc::from("prod")),
        ..Workload::default()
    });
    let mut seen = [HashSet::new(), HashSet::new()];
    for e in rows {
        match e.conn_id % 3 {
            0 => e.workload = web.clone(),
            1 => e.workload = api.clone(),
            _ => continue,
        }
        seen[(e.conn_id % 3) as usize].insert(e.conn_id);
    }
    [seen[0].len() as u64, seen[1].len() as u64]
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(dir: &Path, target: SocketAddr) -> (Server, SocketAddr) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: gespann\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = http(listen, "GET", "/-/ready") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not become ready; its log:\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, listen)
}

/// Instant query; the single value of the result (None if the result is empty).
fn query(prom: SocketAddr, promql: &str) -> Option<f64> {
    let q: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http(prom, "GET", &format!("/api/v1/query?query={q}")).ok()?;
    assert_eq!(status, 200, "query {promql}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let result = v["data"]["result"].as_array()?;
    let first = result.first()?;
    first["value"][1].as_str()?.parse().ok()
}

#[test]
fn real_prometheus_scrapes_a_replay_and_gets_the_recording_totals() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("capture.parquet");
    // About 6 s of traffic at original pacing: several scrapes land during the replay.
    let mut rows = synthetic(400, Duration::from_secs(6), 11);
    let [web, api] = place_in_containers(&mut rows);
    assert!(web > 0 && api > 0);
    write_recording(&recording, &rows);
    let want = aggregates(&rows);

    let port = free_port();
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let (_prometheus, prom) = start_prometheus(dir.path(), target);

    // Prometheus applies discovered targets after a delay: wait for its first scrape attempt
    // (the target is down until the replay starts), so that it scrapes the whole replay.
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(prom, "up{job=\"gespann\"}").is_none() {
        assert!(Instant::now() < deadline, "prometheus never tried the target");
        std::thread::sleep(Duration::from_millis(100));
    }

    let config = Config { adapters: vec![], ..Config::default() };
    let adapters: Vec<Box<dyn Adapter>> = vec![Box::new(PrometheusAdapter::new(PrometheusConfig {
        port: Port(port),
        listen: Some(Listen::Ip(target.ip())),
    }))];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let replay = rt.spawn(run(
        RunOptions {
            config,
            input: Input::Recordings { inputs: vec![recording.display().to_string()], speed: Speed::Factor(1.0) },
            exit_on_end: false,
        },
        adapters,
        async {
            let _ = stop_rx.await;
        },
    ));

    // The replay ends, and the endpoint keeps serving the final values.
    let started = Instant::now();
    let last = wait_metrics(target, Duration::from_secs(60), |m| m.get("gespann_replay_finished") == Some(&1.0));
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "original pacing: the replay took only {:?}",
        started.elapsed()
    );
    assert_eq!(last["gespann_events_processed_total"], want.rows as f64);

    // Prometheus gets the final values from its scrapes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(prom, "gespann_replay_finished") != Some(1.0) {
        assert!(Instant::now() < deadline, "prometheus never scraped the final values");
        std::thread::sleep(Duration::from_millis(200));
    }
    let checks = [
        ("gespann_closed_connections_total", want.closes),
        ("gespann_reset_connections_total", want.resets),
        ("gespann_failed_connections_total", want.failures),
        ("gespann_total_connections", want.connections),
        ("gespann_tcp_connections_total", want.tcp),
        ("gespann_udp_connections_total", want.udp),
        ("gespann_bytes_sent_total", want.bytes_sent),
        ("gespann_bytes_received_total", want.bytes_received),
        ("gespann_open_connections", want.open_at_end),
        ("gespann_events_processed_total", want.rows),
        ("sum(gespann_connection_bandwidth_bytes_total{direction=\"sent\"})", want.bytes_sent),
        ("sum(gespann_connection_events_total)", want.rows),
        ("sum(gespann_connection_events_total{type=\"failed\"})", want.failures),
        ("sum(gespann_connection_failures_total)", want.failures),
        // Workload labels: an absent label matches `=""`; the host's connections are not a
        // container's.
        ("gespann_container_connections_total{container=\"web\",pod=\"\"}", web),
        ("gespann_container_connections_total{container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"}", api),
        ("count(gespann_container_connections_total)", 2),
        ("count(gespann_container_bytes_total)", 4),
    ];
    for (q, v) in checks {
        assert_eq!(query(prom, q), Some(v as f64), "prometheus: {q}");
    }
    // It scraped while the replay was running: it saw the count of events grow.
    let seen = query(prom, "count_over_time(gespann_events_processed_total[5m])").unwrap();
    let least = query(prom, "min_over_time(gespann_events_processed_total[5m])").unwrap();
    assert!(seen >= 3.0, "only {seen} scrapes");
    assert!(least < want.rows as f64, "no scrape happened during the replay (min {least})");
    // Histograms in base units made it too.
    assert_eq!(query(prom, "sum(gespann_connection_duration_seconds_count)"), Some((want.closes + want.resets) as f64));

    // promtool accepts the exposition.
    let (_, body) = http(target, "GET", "/metrics").unwrap();
    promtool_accepts(&body);

    stop_tx.send(()).unwrap();
    let outcome = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), replay).await })
        .expect("the replay stops on request")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.totals.closed, want.closes);
}

/// The exposition of host processes, named and unnamed containers and a pod, with no Prometheus
/// server: what `promtool` checks without one.
#[test]
fn promtool_accepts_workload_labels() {
    let mut rows = synthetic(300, Duration::from_secs(5), 5);
    place_in_containers(&mut rows);
    let mut p = Processor::new(ProcessorOptions::default());
    p.process_all(&rows);
    let text = gespann_replay::adapters::prometheus::encoder::encode(&p.snapshot());
    for want in ["container=\"web\"", "container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"", "gespann_container_bytes_total{"]
    {
        assert!(text.contains(want), "no {want} in:\n{text}");
    }
    promtool_accepts(&text);
}

/// `promtool check metrics`: no parse error; lint findings only for the two names the issue
/// fixes for compatibility (they predate the base-unit convention; the `_seconds` histograms
/// are the base-unit form).
fn promtool_accepts(exposition: &str) {
    use std::io::Write;
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut findings: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    findings.sort();
    assert_eq!(
        findings,
        vec![
            "gespann_avg_connection_duration_ms metric names should not contain abbreviated units",
            "gespann_avg_rtt_microseconds use base unit \"seconds\" instead of \"microseconds\"",
        ],
        "promtool check metrics: {text}"
    );
    // 3 = lint findings only (1 would be a parse error).
    assert_eq!(out.status.code(), Some(3), "promtool: {text}");
}
