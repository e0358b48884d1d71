//! The DogStatsD encoder (pure: deltas, gauges, tags) and the UDP sink (loopback receiver).

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gespann_common::EventKind::*;
use tokio::sync::watch;

use super::encoder::{DeltaEncoder, tag_value};
use super::{DatadogAdapter, DatadogConfig};
use crate::adapters::adapter::{Adapter, MetricsHandle, Phase};
use crate::processor::{Processor, ProcessorOptions};
use crate::testutil::{bytes, ev, two_containers_and_a_host};

fn find<'a>(lines: &'a [String], prefix: &str) -> Option<&'a String> {
    lines.iter().find(|l| l.starts_with(prefix))
}

#[test]
fn counters_are_deltas_gauges_are_values() {
    let mut p = Processor::new(ProcessorOptions::default());
    let mut enc = DeltaEncoder::new(vec!["env:test".into()]);
    p.process_all(&[ev(0.0, Open, 1), bytes(ev(1.0, Close, 1), 10, 20), ev(1.0, Open, 2)]);
    let first = enc.encode(&p.snapshot());
    assert!(first.contains(&"gespann.closed_connections_total:1|c|#env:test".to_string()), "{first:#?}");
    assert!(first.contains(&"gespann.bytes_sent_total:10|c|#env:test".to_string()));
    assert!(first.contains(&"gespann.open_connections:1|g|#env:test".to_string()));
    assert!(first.contains(
        &"gespann.connection_bandwidth_bytes_total:20|c|#env:test,direction:received,protocol:tcp".to_string()
    ));
    assert!(first.contains(
        &"gespann.connection_events_total:2|c|#env:test,type:open,protocol:tcp,reset_reason:none".to_string()
    ));
    // Zero counters are not sent.
    assert!(find(&first, "gespann.reset_connections_total:").is_none(), "{first:#?}");

    p.process_all(&[bytes(ev(2.0, Sample, 2), 5, 0), bytes(ev(3.0, Close, 2), 7, 0)]);
    let second = enc.encode(&p.snapshot());
    assert!(second.contains(&"gespann.closed_connections_total:1|c|#env:test".to_string()));
    assert!(second.contains(&"gespann.bytes_sent_total:7|c|#env:test".to_string()), "{second:#?}");
    assert!(find(&second, "gespann.bytes_received_total:").is_none(), "{second:#?}");
    assert!(second.contains(&"gespann.open_connections:0|g|#env:test".to_string()));
    // Nothing changed: only gauges.
    let third = enc.encode(&p.snapshot());
    assert!(third.iter().all(|l| l.contains("|g")), "{third:#?}");
}

#[test]
fn workload_tags_are_left_out_when_empty() {
    let lines = DeltaEncoder::new(vec!["env:test".into()]).encode(&two_containers_and_a_host().snapshot());
    for want in [
        "gespann.process_connections_total:1|c|#env:test,comm:curl",
        "gespann.process_connections_total:2|c|#env:test,comm:nginx,container:web",
        "gespann.process_connections_total:2|c|#env:test,comm:nginx,container:bbbbbbbbbbbb,pod:prod/api-0",
        "gespann.container_failed_connections_total:1|c|#env:test,container:web",
        "gespann.container_bytes_total:100|c|#env:test,direction:received,container:bbbbbbbbbbbb,pod:prod/api-0",
        "gespann.destination_bytes_total:5|c|#env:test,address:10.0.0.2,port:443,protocol:tcp,direction:sent",
    ] {
        assert!(lines.contains(&want.to_string()), "missing {want} in {lines:#?}");
    }
    assert!(!lines.iter().any(|l| l.ends_with(':') || l.contains(":,")), "an empty tag in {lines:#?}");
    // Zero deltas are left out here too: the api container had no failure.
    assert!(find(&lines, "gespann.container_failed_connections_total:0").is_none(), "{lines:#?}");
}

#[test]
fn histograms_become_bucket_count_and_sum_counters() {
    let mut p = Processor::new(ProcessorOptions::default());
    let mut close = ev(1.0, Close, 1);
    close.duration_ns = Some(2_500_000_000);
    p.process_all(&[ev(0.0, Open, 1), close]);
    let lines = DeltaEncoder::new(vec![]).encode(&p.snapshot());
    for want in [
        "gespann.connection_duration_seconds.bucket:1|c|#protocol:tcp,upper_bound:5",
        "gespann.connection_duration_seconds.count:1|c|#protocol:tcp",
        "gespann.connection_duration_seconds.sum:2.5|c|#protocol:tcp",
    ] {
        assert!(lines.contains(&want.to_string()), "missing {want} in {lines:#?}");
    }
    assert!(find(&lines, "gespann.connection_duration_seconds.bucket:1|c|#protocol:tcp,upper_bound:1|").is_none());
}

#[test]
fn a_counter_that_restarted_sends_its_whole_value() {
    use crate::model::{Family, Metric, Series, Snapshot, Value};
    let snap = |v| Snapshot {
        families: vec![Family {
            metric: Metric::Closed,
            series: vec![Series { labels: vec![], value: Value::Counter(v) }],
        }],
    };
    let mut enc = DeltaEncoder::new(vec![]);
    assert_eq!(enc.encode(&snap(10)), vec!["gespann.closed_connections_total:10|c"]);
    assert_eq!(enc.encode(&snap(3)), vec!["gespann.closed_connections_total:3|c"]);
    assert_eq!(enc.encode(&snap(5)), vec!["gespann.closed_connections_total:2|c"]);
}

#[test]
fn tag_values_cannot_break_the_datagram() {
    assert_eq!(tag_value("Web Content"), "Web_Content");
    assert_eq!(tag_value("a,b|c#d\ne"), "a_b_c_d_e");
    assert_eq!(tag_value("::1"), "::1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_delivers_every_line_and_flushes_on_finish_and_stop() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let addr = receiver.local_addr().unwrap();

    let mut p = Processor::new(ProcessorOptions::default());
    for i in 0..200u64 {
        let mut e = bytes(ev(i as f64, Open, i + 1), i, 2 * i);
        e.comm = Arc::from(format!("p{}", i % 30).as_str());
        e.remote_addr = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
        p.process(&e);
    }
    let metrics = MetricsHandle::new(p);
    let adapter = DatadogAdapter::new(DatadogConfig {
        host: addr.to_string(),
        flush_interval: Duration::from_secs(3600),
        max_packet_size: 512,
        ..DatadogConfig::default()
    });
    let stats = adapter.stats();
    let (tx, rx) = watch::channel(Phase::Running);
    let task = tokio::spawn(Box::new(adapter).start(metrics.clone(), rx).unwrap());

    // The end of a replay is flushed at once, not at the next tick (an hour away).
    tx.send(Phase::Finished).unwrap();
    let recv = std::thread::spawn(move || {
        let mut got = vec![];
        let mut buf = [0u8; 65536];
        while let Ok(n) = receiver.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
        got
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    metrics.lock().process(&bytes(ev(500.0, Close, 1), 1000, 0));
    tx.send(Phase::Stopping).unwrap();
    task.await.unwrap().unwrap();
    let datagrams = tokio::task::spawn_blocking(move || recv.join().unwrap()).await.unwrap();

    assert!(datagrams.iter().all(|d| d.len() <= 512), "a datagram exceeds max_packet_size");
    assert_eq!(datagrams.len() as u64, stats.datagrams_sent.load(Ordering::Relaxed), "datagrams sent vs received");
    assert_eq!(stats.lines_dropped.load(Ordering::Relaxed), 0);
    let lines: Vec<&str> = datagrams.iter().flat_map(|d| d.lines()).collect();
    assert_eq!(lines.len() as u64, stats.lines.load(Ordering::Relaxed));
    let mut sums: HashMap<&str, f64> = HashMap::new();
    for l in &lines {
        if let Some((name, rest)) = l.split_once(':')
            && rest.contains("|c")
            && !rest.contains("|#")
        {
            *sums.entry(name).or_default() += rest.split('|').next().unwrap().parse::<f64>().unwrap();
        }
    }
    let t = metrics.lock().totals();
    assert_eq!(sums["gespann.tcp_connections_total"], t.tcp_connections as f64);
    assert_eq!(sums["gespann.closed_connections_total"], 1.0);
    assert_eq!(sums["gespann.bytes_sent_total"], t.bytes_sent as f64);
    assert_eq!(sums["gespann.bytes_received_total"], t.bytes_received as f64);
}

#[tokio::test]
async fn an_unresolvable_host_names_the_host() {
    let (_tx, rx) = watch::channel(Phase::Running);
    let adapter =
        Box::new(DatadogAdapter::new(DatadogConfig { host: "no-port-here".into(), ..DatadogConfig::default() }));
    let err = match adapter.start(MetricsHandle::new(Processor::new(ProcessorOptions::default())), rx) {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("`no-port-here`"), "{err}");
}
