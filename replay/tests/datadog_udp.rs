//! A replay through the DataDog adapter to a local UDP receiver: every datagram is valid
//! DogStatsD, counters arrive as deltas that add up to the recording's own aggregates, gauges
//! end at their final value, and nothing is dropped on the way.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use gespann_replay::adapters::Adapter;
use gespann_replay::adapters::datadog::{DatadogAdapter, DatadogConfig};
use gespann_replay::run::{Input, RunOptions, run};
use gespann_replay::{Config, Speed};
use support::{UdpReceiver, aggregates, statsd_lines, statsd_totals, synthetic, write_recording};

#[test]
fn dogstatsd_deltas_add_up_to_the_recording_totals() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("capture.parquet");
    let rows = synthetic(2000, Duration::from_secs(10), 3);
    write_recording(&recording, &rows);
    let want = aggregates(&rows);

    let receiver = UdpReceiver::start();
    let adapter = DatadogAdapter::new(DatadogConfig {
        host: receiver.addr.to_string(),
        flush_interval: Duration::from_millis(50),
        tags: vec!["env:test".into()],
        ..DatadogConfig::default()
    });
    let stats = adapter.stats();
    let adapters: Vec<Box<dyn Adapter>> = vec![Box::new(adapter)];
    let rt = tokio::runtime::Runtime::new().unwrap();
    // 10 s of traffic at 10x: about a second, so about 20 flushes.
    let outcome = rt
        .block_on(run(
            RunOptions {
                config: Config { adapters: vec![], ..Config::default() },
                input: Input::Recordings { inputs: vec![recording.display().to_string()], speed: Speed::Factor(10.0) },
                exit_on_end: true,
            },
            adapters,
            std::future::pending(),
        ))
        .unwrap();
    assert!(outcome.replay.unwrap().complete);
    let datagrams = receiver.finish();

    // Nothing lost between the adapter and the receiver.
    assert_eq!(stats.lines_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(stats.datagrams_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(datagrams.len() as u64, stats.datagrams_sent.load(Ordering::Relaxed), "datagrams sent vs received");
    assert!(datagrams.iter().all(|d| d.len() <= 1432));
    let lines = statsd_lines(&datagrams);
    assert_eq!(lines.len() as u64, stats.lines.load(Ordering::Relaxed));
    assert!(stats.flushes.load(Ordering::Relaxed) >= 5);
    for l in &lines {
        assert!(l.name.starts_with("gespann."), "{l:?}");
        assert!(l.tags.contains(&"env:test".to_string()), "{l:?}");
        assert!(l.kind == "c" || l.kind == "g", "{l:?}");
        if l.kind == "c" {
            assert!(l.value > 0.0, "zero or negative delta sent: {l:?}");
        }
    }
    // Deltas: the closed counter went out in several pieces.
    let pieces = lines.iter().filter(|l| l.name == "gespann.closed_connections_total").count();
    assert!(pieces > 1, "closed_connections_total sent {pieces} times");

    let totals = statsd_totals(&lines);
    let t = |name: &str| totals.get(&format!("{name}#env:test")).copied().unwrap_or(0.0);
    assert_eq!(t("gespann.closed_connections_total"), want.closes as f64);
    assert_eq!(t("gespann.reset_connections_total"), want.resets as f64);
    assert_eq!(t("gespann.failed_connections_total"), want.failures as f64);
    assert_eq!(t("gespann.tcp_connections_total"), want.tcp as f64);
    assert_eq!(t("gespann.udp_connections_total"), want.udp as f64);
    assert_eq!(t("gespann.bytes_sent_total"), want.bytes_sent as f64);
    assert_eq!(t("gespann.bytes_received_total"), want.bytes_received as f64);
    assert_eq!(t("gespann.events_processed_total"), want.rows as f64);
    // Gauges end at the final value.
    assert_eq!(t("gespann.total_connections"), want.connections as f64);
    assert_eq!(t("gespann.open_connections"), want.open_at_end as f64);
    assert_eq!(t("gespann.replay_finished"), 1.0);
    // Labels became tags, with values DogStatsD can carry.
    let sent_tcp = totals
        .get("gespann.connection_bandwidth_bytes_total#direction:sent,env:test,protocol:tcp")
        .copied()
        .unwrap_or(0.0);
    let sent_udp = totals
        .get("gespann.connection_bandwidth_bytes_total#direction:sent,env:test,protocol:udp")
        .copied()
        .unwrap_or(0.0);
    assert_eq!(sent_tcp + sent_udp, want.bytes_sent as f64);
    assert!(
        totals.keys().any(|k| k.starts_with("gespann.process_connections_total#comm:Web_Content")),
        "comm with a space sanitised"
    );
    let events: f64 =
        totals.iter().filter(|(k, _)| k.starts_with("gespann.connection_events_total#")).map(|(_, v)| v).sum();
    assert_eq!(events, want.rows as f64);
}
