//! The unit tests' names (the processor's, the source's and the adapters') for the test kit's
//! hand-fed rows, and a small stream with two containers and a host process.

use std::sync::Arc;

use gespann_common::EventKind::*;
use gespann_common::{Event, Protocol, Workload};

use crate::processor::{Processor, ProcessorOptions};
pub use gespann_testkit::fixtures::{row as ev, with_bytes as bytes};

pub const WEB_ID: &str = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111";
pub const API_ID: &str = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222";

/// Container `web` (named, no pod) and an unnamed container in pod `prod/api-0`.
pub fn web() -> Arc<Workload> {
    Arc::new(Workload {
        cgroup: Arc::from(format!("/system.slice/docker-{WEB_ID}.scope")),
        container_id: Some(Arc::from(WEB_ID)),
        container_name: Some(Arc::from("web")),
        ..Workload::default()
    })
}

pub fn api() -> Arc<Workload> {
    Arc::new(Workload {
        cgroup: Arc::from(format!("/kubepods.slice/kubepods-pod1234.slice/cri-containerd-{API_ID}.scope")),
        container_id: Some(Arc::from(API_ID)),
        pod_uid: Some(Arc::from("1234-5678")),
        pod_name: Some(Arc::from("api-0")),
        pod_namespace: Some(Arc::from("prod")),
        ..Workload::default()
    })
}

pub fn at(mut e: Event, w: &Arc<Workload>, comm: &str) -> Event {
    e.workload = w.clone();
    e.comm = Arc::from(comm);
    e
}

/// Two containers (both running `nginx`) and a host `curl`: connections 1-2 in `web`
/// (one closed, one refused), 3-4 in `api` (a reset, a UDP flow still open), 5 on the host.
pub fn two_containers_and_a_host() -> Processor {
    let (web, api) = (web(), api());
    let mut p = Processor::new(ProcessorOptions::default());
    let mut refused = at(ev(0.5, Failed, 2), &web, "nginx");
    refused.error = Some("ECONNREFUSED");
    refused.remote_port = 80;
    let mut dns = at(ev(0.3, Open, 4), &api, "nginx");
    dns.protocol = Protocol::Udp;
    dns.remote_addr = "10.0.0.53".parse().unwrap();
    dns.remote_port = 53;
    let mut dns_sample = bytes(dns.clone(), 40, 80);
    dns_sample.kind = Sample;
    dns_sample.ts_ns += 1_000_000_000;
    p.process_all(&[
        at(ev(0.0, Open, 1), &web, "nginx"),
        at(ev(0.2, Open, 3), &api, "nginx"),
        dns,
        at(ev(0.4, Open, 5), &Workload::unknown(), "curl"),
        refused,
        at(bytes(ev(1.0, Close, 1), 100, 1000), &web, "nginx"),
        dns_sample,
        at(bytes(ev(1.5, Close, 5), 5, 7), &Workload::unknown(), "curl"),
        at(bytes(ev(2.0, Reset, 3), 10, 20), &api, "nginx"),
    ]);
    p
}
