//! The Prometheus encoder (pure) and the HTTP endpoint (loopback).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use gespann_common::EventKind::*;
use tokio::sync::watch;

use super::encoder::encode;
use super::{Listen, Port, PrometheusAdapter, PrometheusConfig};
use crate::adapters::adapter::{Adapter, MetricsHandle, Phase};
use crate::model::Metric;
use crate::processor::{Processor, ProcessorOptions};
use crate::testutil::{bytes, ev, two_containers_and_a_host};

fn processor_with_traffic() -> Processor {
    let mut p = Processor::new(ProcessorOptions::default());
    let mut open = ev(0.0, Open, 1);
    open.handshake_us = Some(700);
    open.rtt_us = Some(120);
    let mut close = bytes(ev(2.0, Close, 1), 100, 2000);
    close.duration_ns = Some(2_000_000_000);
    let mut odd = bytes(ev(1.0, Open, 2), 5, 6);
    odd.comm = Arc::from("we\"ird\\name\n");
    let mut failed = ev(1.5, Failed, 3);
    failed.error = Some("ETIMEDOUT");
    p.process_all(&[open, odd, failed, close]);
    p
}

#[test]
fn exposition_has_absolute_values_types_and_escaped_labels() {
    let text = encode(&processor_with_traffic().snapshot());
    for line in [
        "# TYPE gespann_open_connections gauge",
        "gespann_open_connections 1",
        "# TYPE gespann_closed_connections_total counter",
        "gespann_closed_connections_total 1",
        "gespann_failed_connections_total 1",
        "gespann_total_connections 3",
        "gespann_bytes_sent_total 105",
        "gespann_bytes_received_total 2006",
        "gespann_connection_bandwidth_bytes_total{direction=\"received\",protocol=\"tcp\"} 2006",
        "gespann_connection_events_total{type=\"close\",protocol=\"tcp\",reset_reason=\"none\"} 1",
        "gespann_connection_failures_total{error=\"ETIMEDOUT\",protocol=\"tcp\"} 1",
        "# TYPE gespann_connection_duration_seconds histogram",
        "gespann_connection_duration_seconds_bucket{protocol=\"tcp\",le=\"1\"} 0",
        "gespann_connection_duration_seconds_bucket{protocol=\"tcp\",le=\"5\"} 1",
        "gespann_connection_duration_seconds_bucket{protocol=\"tcp\",le=\"+Inf\"} 1",
        "gespann_connection_duration_seconds_sum{protocol=\"tcp\"} 2",
        "gespann_connection_duration_seconds_count{protocol=\"tcp\"} 1",
        "gespann_handshake_seconds_count 1",
        "gespann_avg_connection_duration_ms 2000",
        "gespann_avg_rtt_microseconds 120",
        "gespann_process_connections_total{comm=\"we\\\"ird\\\\name\\n\"} 1",
        "gespann_destination_connections_total{address=\"10.0.0.2\",port=\"443\",protocol=\"tcp\"} 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    // Every catalog family is announced once, except the per-container ones: host-only data
    // has none, and no workload label appears anywhere (the series are those of earlier versions).
    for m in Metric::ALL {
        let d = m.def();
        let want = usize::from(!CONTAINER_FAMILIES.contains(m));
        assert_eq!(text.matches(&format!("# TYPE {} ", d.name)).count(), want, "{} in:\n{text}", d.name);
    }
    assert!(!text.contains("container=") && !text.contains("pod="), "{text}");
}

const CONTAINER_FAMILIES: &[Metric] =
    &[Metric::ContainerConnections, Metric::ContainerFailed, Metric::ContainerReset, Metric::ContainerBytes];

#[test]
fn workload_labels_are_left_out_when_empty() {
    let text = encode(&two_containers_and_a_host().snapshot());
    for line in [
        "gespann_process_connections_total{comm=\"curl\"} 1",
        "gespann_process_connections_total{comm=\"nginx\",container=\"web\"} 2",
        "gespann_process_connections_total{comm=\"nginx\",container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"} 2",
        "gespann_process_bytes_total{comm=\"nginx\",direction=\"received\",container=\"web\"} 1000",
        "gespann_destination_connections_total{address=\"10.0.0.2\",port=\"443\",protocol=\"tcp\"} 1",
        "gespann_destination_connections_total{address=\"10.0.0.2\",port=\"443\",protocol=\"tcp\",container=\"web\"} 1",
        "gespann_destination_bytes_total{address=\"10.0.0.53\",port=\"53\",protocol=\"udp\",direction=\"received\",container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"} 80",
        "# TYPE gespann_container_connections_total counter",
        "gespann_container_connections_total{container=\"web\"} 2",
        "gespann_container_connections_total{container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"} 2",
        "gespann_container_failed_connections_total{container=\"web\"} 1",
        "gespann_container_failed_connections_total{container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"} 0",
        "gespann_container_reset_connections_total{container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"} 1",
        "gespann_container_bytes_total{direction=\"sent\",container=\"bbbbbbbbbbbb\",pod=\"prod/api-0\"} 50",
        "gespann_container_bytes_total{direction=\"received\",container=\"web\"} 1000",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    assert!(!text.contains("=\"\""), "an empty label value in:\n{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("gespann_container_")).count(), 10, "{text}");
}

fn get(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_serves_only_metrics_and_healthz() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let metrics = MetricsHandle::new(processor_with_traffic());
    let (tx, rx) = watch::channel(Phase::Running);
    let adapter =
        Box::new(PrometheusAdapter::new(PrometheusConfig { port: Port(port), listen: Some(Listen::Ip(addr.ip())) }));
    let task = tokio::spawn(adapter.start(metrics.clone(), rx).unwrap());

    let replies = tokio::task::spawn_blocking(move || {
        let c = "Connection: close\r\n\r\n";
        [
            get(addr, &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{c}")),
            get(addr, &format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{c}")),
            get(addr, &format!("GET / HTTP/1.1\r\nHost: x\r\n{c}")),
            get(addr, &format!("GET /metrics/../etc HTTP/1.1\r\nHost: x\r\n{c}")),
            get(addr, &format!("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{c}")),
        ]
    })
    .await
    .unwrap();
    assert!(replies[0].starts_with("HTTP/1.1 200"), "{}", replies[0]);
    assert!(replies[0].contains("text/plain; version=0.0.4"));
    assert!(replies[0].contains("\ngespann_closed_connections_total 1\n"));
    assert!(replies[1].starts_with("HTTP/1.1 200") && replies[1].ends_with("ok\n"));
    assert!(replies[2].starts_with("HTTP/1.1 404"), "{}", replies[2]);
    assert!(replies[3].starts_with("HTTP/1.1 404"), "{}", replies[3]);
    assert!(replies[4].starts_with("HTTP/1.1 405"), "{}", replies[4]);

    // Values are read at scrape time.
    metrics.lock().process(&ev(3.0, Open, 9));
    let body =
        tokio::task::spawn_blocking(move || get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            .await
            .unwrap();
    assert!(body.contains("\ngespann_total_connections 4\n"), "{body}");

    tx.send(Phase::Stopping).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the adapter stops").unwrap().unwrap();
}

#[tokio::test]
async fn a_taken_port_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (_tx, rx) = watch::channel(Phase::Running);
    let adapter = Box::new(PrometheusAdapter::new(PrometheusConfig {
        port: Port(port),
        listen: Some(Listen::Ip([127, 0, 0, 1].into())),
    }));
    let err = match adapter.start(MetricsHandle::new(processor_with_traffic()), rx) {
        Ok(_) => panic!("binding a taken port succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
}
