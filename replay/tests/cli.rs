//! `gespann replay` as a user runs it: the real binary (`target/debug/gespann`, brought up to
//! date by the test kit with `cargo build -p gespann`), a config file, curl-like scrapes, a
//! DogStatsD receiver, SIGTERM, exit codes and error messages.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{
    UdpReceiver, aggregates, free_port, gespann_binary, http, statsd_lines, statsd_totals, synthetic, wait_metrics,
    write_recording,
};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child.
        let rc = unsafe { libc::kill(self.0.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    fn wait_for(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "gespann did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(args: &[&str], stderr_to: &Path) -> Proc {
    spawn_logging(args, stderr_to, "gespann_replay=info")
}

fn spawn_logging(args: &[&str], stderr_to: &Path, rust_log: &str) -> Proc {
    let child = Command::new(gespann_binary())
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr_to).unwrap())
        .spawn()
        .expect("run gespann");
    Proc(child)
}

fn config(dir: &Path, port: u16, statsd: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "log_level: info\nadapters:\n  - type: prometheus\n    settings:\n      port: \"{port}\"\n      listen: 127.0.0.1\n  - type: datadog\n    settings:\n      host: \"{statsd}\"\n      flush_interval: 100ms\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn replay_serves_until_sigterm_then_flushes_dogstatsd_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("capture.parquet");
    let rows = synthetic(500, Duration::from_secs(30), 5);
    write_recording(&rec, &rows);
    let want = aggregates(&rows);
    let statsd = UdpReceiver::start();
    let port = free_port();
    let cfg = config(dir.path(), port, statsd.addr);
    let log = dir.path().join("stderr");
    let mut p = spawn(&["replay", rec.to_str().unwrap(), "--speed", "max", "-c", cfg.to_str().unwrap()], &log);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let m = wait_metrics(addr, Duration::from_secs(30), |m| m.get("gespann_replay_finished") == Some(&1.0));
    assert_eq!(m["gespann_closed_connections_total"], want.closes as f64);
    assert_eq!(m["gespann_reset_connections_total"], want.resets as f64);
    assert_eq!(m["gespann_failed_connections_total"], want.failures as f64);
    assert_eq!(m["gespann_total_connections"], want.connections as f64);
    assert_eq!(m["gespann_bytes_sent_total"], want.bytes_sent as f64);
    assert_eq!(m["gespann_bytes_received_total"], want.bytes_received as f64);
    assert_eq!(http(addr, "GET", "/healthz").unwrap(), (200, "ok\n".into()));
    assert_eq!(http(addr, "GET", "/").unwrap().0, 404);

    // After the end it keeps serving the final values.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(p.0.try_wait().unwrap().is_none(), "gespann exited after the replay");
    let (status, body) = http(addr, "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(&format!("\ngespann_closed_connections_total {}\n", want.closes)));

    p.signal(libc::SIGTERM);
    let status = p.wait_for(Duration::from_secs(10));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(stderr.contains("DogStatsD flushed"), "{stderr}");
    let totals = statsd_totals(&statsd_lines(&statsd.finish()));
    assert_eq!(totals["gespann.closed_connections_total"], want.closes as f64);
    assert_eq!(totals["gespann.bytes_received_total"], want.bytes_received as f64);
    assert_eq!(totals["gespann.replay_finished"], 1.0);
}

#[test]
fn ctrl_c_during_a_paced_replay_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("capture.parquet");
    // An hour of traffic at original pacing: it is still running when interrupted.
    write_recording(&rec, &synthetic(200, Duration::from_secs(3600), 9));
    let statsd = UdpReceiver::start();
    let port = free_port();
    let cfg = config(dir.path(), port, statsd.addr);
    let log = dir.path().join("stderr");
    let mut p = spawn(&["replay", rec.to_str().unwrap(), "-c", cfg.to_str().unwrap()], &log);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let m = wait_metrics(addr, Duration::from_secs(30), |m| m.contains_key("gespann_replay_finished"));
    assert_eq!(m["gespann_replay_finished"], 0.0);
    p.signal(libc::SIGINT);
    let status = p.wait_for(Duration::from_secs(10));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    // The last flush went out: the gauges arrived.
    let totals = statsd_totals(&statsd_lines(&statsd.finish()));
    assert_eq!(totals.get("gespann.replay_finished"), Some(&0.0));
}

#[test]
fn exit_on_end_quits_after_the_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("capture.parquet");
    let rows = synthetic(300, Duration::from_secs(20), 21);
    write_recording(&rec, &rows);
    let want = aggregates(&rows);
    let statsd = UdpReceiver::start();
    let cfg = config(dir.path(), free_port(), statsd.addr);
    let log = dir.path().join("stderr");
    let mut p = spawn(
        &["replay", rec.to_str().unwrap(), "--speed", "20", "--config", cfg.to_str().unwrap(), "--exit-on-end"],
        &log,
    );
    let started = Instant::now();
    let status = p.wait_for(Duration::from_secs(30));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    // 20 s of traffic at 20x: about a second.
    assert!(started.elapsed() >= Duration::from_millis(700), "{:?}", started.elapsed());
    let totals = statsd_totals(&statsd_lines(&statsd.finish()));
    assert_eq!(totals["gespann.failed_connections_total"], want.failures as f64);
    assert_eq!(totals["gespann.udp_connections_total"], want.udp as f64);
    assert_eq!(totals["gespann.open_connections"], want.open_at_end as f64);
}

/// Runs gespann to completion; (exit code, stderr).
fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut p = spawn_logging(args, &log, "warn");
    let status = p.wait_for(Duration::from_secs(30));
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn bad_input_is_one_clear_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("capture.parquet");
    write_recording(&rec, &synthetic(5, Duration::from_secs(5), 1));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "adapters:\n  - type: influxdb\n    settings:\n      port: \"8080\"\n".into(),
            vec!["bad config", "config.yaml", "adapters[0]", "unknown variant `influxdb`", "line 2"],
        ),
        (
            "adapters:\n  - type: prometheus\n    settings:\n      port: \"99999\"\n".into(),
            vec!["config.yaml", "adapters[0].settings.port", "bad port `99999`", "line 4"],
        ),
        ("adapters:\n  - type: prometheus\n    settings: {port: 1\n".into(), vec!["bad config", "config.yaml", "line"]),
    ];
    for (text, want) in cases {
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, &text).unwrap();
        let (code, stderr) = run_to_end(&["replay", rec.to_str().unwrap(), "-c", cfg.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("gespann: "), "{stderr}");
        for w in want {
            assert!(stderr.contains(w), "{text}: `{w}` not in {stderr}");
        }
    }
    // A missing config file and a missing recording are named.
    let (code, stderr) = run_to_end(&["replay", rec.to_str().unwrap(), "-c", "/nonexistent.yaml"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/nonexistent.yaml"), "{stderr}");
    let (code, stderr) = run_to_end(&["replay", "/nonexistent.parquet", "--exit-on-end"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/nonexistent.parquet"), "{stderr}");
    // A port in use is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = dir.path().join("taken.yaml");
    std::fs::write(
        &cfg,
        format!("adapters:\n  - type: prometheus\n    settings:\n      port: {port}\n      listen: 127.0.0.1\n"),
    )
    .unwrap();
    let (code, stderr) = run_to_end(&["replay", rec.to_str().unwrap(), "-c", cfg.to_str().unwrap(), "--exit-on-end"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
    // Argument mistakes are usage errors.
    let (code, stderr) = run_to_end(&["replay", rec.to_str().unwrap(), "--speed", "fast"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`fast` is not a speed"), "{stderr}");
    for args in [
        &["replay", rec.to_str().unwrap(), "--record", "x.parquet"][..],
        &["replay", "--record", "x.parquet"][..],
        &["replay", "--live", "--exit-on-end"][..],
        &["replay", "--live", "--speed", "2"][..],
        &["replay", "--live", rec.to_str().unwrap()][..],
        &["replay", rec.to_str().unwrap(), "--force"][..],
        &["replay"][..],
    ] {
        let (code, stderr) = run_to_end(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
    }
}

/// Without a config: Prometheus on 0.0.0.0:8080. If something else holds 8080 here, the error
/// must name that address instead.
#[test]
fn default_is_prometheus_on_port_8080() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("capture.parquet");
    let rows = synthetic(50, Duration::from_secs(5), 2);
    write_recording(&rec, &rows);
    let free = std::net::TcpListener::bind("0.0.0.0:8080").is_ok();
    let log = dir.path().join("stderr");
    let mut p = spawn(&["replay", rec.to_str().unwrap(), "--speed", "max"], &log);
    if free {
        let addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let m = wait_metrics(addr, Duration::from_secs(30), |m| m.get("gespann_replay_finished") == Some(&1.0));
        assert_eq!(m["gespann_total_connections"], aggregates(&rows).connections as f64);
        p.signal(libc::SIGTERM);
        assert!(p.wait_for(Duration::from_secs(10)).success());
    } else {
        let status = p.wait_for(Duration::from_secs(10));
        assert_eq!(status.code(), Some(1));
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(stderr.contains("cannot listen on 0.0.0.0:8080"), "{stderr}");
    }
}
