//! Replaying a recording to its end gives totals equal to the recording's own aggregates
//! (closes, resets, failures, distinct connections, bytes each way: the sum over connections of
//! the last cumulative value), on a synthetic recording and on every `samples/*.parquet`.

mod support;

use std::path::Path;
use std::time::Duration;

use gespann_common::recording::RecordingReader;
use gespann_replay::run::{Input, RunOptions, run};
use gespann_replay::{Config, Processor, ProcessorOptions, Speed};
use support::{Aggregates, aggregates, sample_files, synthetic, write_recording};

/// Through the whole pipeline (reader, blocking replay thread, processor), no adapters.
fn replay_totals(path: &Path) -> gespann_replay::Totals {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = Config { adapters: vec![], ..Config::default() };
    let outcome = rt
        .block_on(run(
            RunOptions {
                config,
                input: Input::Recording { path: path.to_owned(), speed: Speed::Max },
                exit_on_end: true,
            },
            vec![],
            std::future::pending(),
        ))
        .unwrap_or_else(|e| panic!("replay of {} failed: {e}", path.display()));
    assert!(outcome.replay.unwrap().complete);
    outcome.totals
}

fn check(path: &Path) {
    let rows = RecordingReader::open(path).unwrap().read_all().unwrap();
    let want: Aggregates = aggregates(&rows);
    let t = replay_totals(path);
    let what = path.display();
    assert_eq!(t.events, want.rows, "{what}: rows");
    assert_eq!(t.connections, want.connections, "{what}: distinct connections");
    assert_eq!(t.tcp_connections, want.tcp, "{what}: tcp connections");
    assert_eq!(t.udp_connections, want.udp, "{what}: udp connections");
    assert_eq!(t.closed, want.closes, "{what}: closes");
    assert_eq!(t.reset, want.resets, "{what}: resets");
    assert_eq!(t.failed, want.failures, "{what}: failures");
    assert_eq!(t.bytes_sent, want.bytes_sent, "{what}: bytes sent");
    assert_eq!(t.bytes_received, want.bytes_received, "{what}: bytes received");
    assert_eq!(t.open, want.open_at_end, "{what}: open at the end");

    // And the published metrics say the same.
    let mut p = Processor::new(ProcessorOptions::default());
    p.process_all(&rows);
    let s = p.snapshot();
    let v = |name: &str, labels: &[&str]| s.value(name, labels).unwrap_or(0.0) as u64;
    assert_eq!(v("gespann_closed_connections_total", &[]), want.closes, "{what}");
    assert_eq!(v("gespann_reset_connections_total", &[]), want.resets, "{what}");
    assert_eq!(v("gespann_failed_connections_total", &[]), want.failures, "{what}");
    assert_eq!(v("gespann_total_connections", &[]), want.connections, "{what}");
    assert_eq!(v("gespann_tcp_connections_total", &[]), want.tcp, "{what}");
    assert_eq!(v("gespann_udp_connections_total", &[]), want.udp, "{what}");
    assert_eq!(v("gespann_bytes_sent_total", &[]), want.bytes_sent, "{what}");
    assert_eq!(v("gespann_bytes_received_total", &[]), want.bytes_received, "{what}");
    assert_eq!(v("gespann_open_connections", &[]), want.open_at_end, "{what}");
    let bw = |dir| {
        v("gespann_connection_bandwidth_bytes_total", &[dir, "tcp"])
            + v("gespann_connection_bandwidth_bytes_total", &[dir, "udp"])
    };
    assert_eq!(bw("sent"), want.bytes_sent, "{what}");
    assert_eq!(bw("received"), want.bytes_received, "{what}");
    let events: f64 = s
        .family("gespann_connection_events_total")
        .unwrap()
        .series
        .iter()
        .map(|sr| match sr.value {
            gespann_replay::model::Value::Counter(c) => c as f64,
            _ => 0.0,
        })
        .sum();
    assert_eq!(events as u64, want.rows, "{what}: events by type add up to the rows");
}

#[test]
fn synthetic_recording_replays_to_its_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.parquet");
    let rows = synthetic(3000, Duration::from_secs(600), 7);
    write_recording(&path, &rows);
    let a = aggregates(&rows);
    // The recording exercises what the totals are about.
    assert!(a.closes > 0 && a.resets > 0 && a.failures > 0 && a.udp > 0 && a.open_at_end > 0);
    check(&path);
}

#[test]
fn every_sample_recording_replays_to_its_aggregates() {
    let samples = sample_files();
    if samples.is_empty() {
        eprintln!("no samples/*.parquet yet: only the synthetic recording was checked");
    }
    for path in samples {
        check(&path);
    }
}
