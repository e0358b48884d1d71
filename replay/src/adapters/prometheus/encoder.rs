//! Snapshot → Prometheus text exposition (format 0.0.4). Pure: no network, no clock.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::model::{self, Family, Kind, Snapshot, Value};

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// One family in the `prometheus` crate's data model (absolute values, as Prometheus wants).
pub fn family(f: &Family) -> MetricFamily {
    let def = f.def();
    let mut mf = MetricFamily::default();
    mf.set_name(def.name.to_string());
    mf.set_help(def.help.to_string());
    mf.set_field_type(match def.kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
        Kind::Histogram => MetricType::HISTOGRAM,
    });
    let metrics = f
        .series
        .iter()
        .map(|s| {
            // Optional (workload) labels with no value are left out: see `model`.
            let labels = def
                .label_pairs(&s.labels)
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name(k.to_string());
                    l.set_value(v.to_string());
                    l
                })
                .collect();
            let mut m = Metric::from_label(labels);
            match &s.value {
                Value::Counter(v) => {
                    let mut c = Counter::default();
                    c.set_value(*v as f64);
                    m.set_counter(c);
                }
                Value::Gauge(v) => {
                    let mut g = Gauge::default();
                    g.set_value(*v);
                    m.set_gauge(g);
                }
                Value::Histogram(h) => {
                    let mut hist = Histogram::default();
                    hist.set_sample_count(h.count);
                    hist.set_sample_sum(h.sum);
                    hist.set_bucket(
                        h.bounds
                            .iter()
                            .zip(&h.cumulative)
                            .map(|(ub, c)| {
                                let mut b = Bucket::default();
                                b.set_upper_bound(*ub);
                                b.set_cumulative_count(*c);
                                b
                            })
                            .collect(),
                    );
                    m.set_histogram(hist);
                }
            }
            m
        })
        .collect();
    mf.set_metric(metrics);
    mf
}

/// A collector over a source of snapshots: registering it checks every name and label set once.
pub struct SnapshotCollector<F> {
    descs: Vec<Desc>,
    source: F,
}

impl<F: Fn() -> Snapshot + Send + Sync> SnapshotCollector<F> {
    pub fn new(source: F) -> Self {
        let descs = model::Metric::ALL
            .iter()
            .map(|m| {
                let d = m.def();
                Desc::new(
                    d.name.to_string(),
                    d.help.to_string(),
                    d.all_labels().map(|l| l.to_string()).collect(),
                    HashMap::new(),
                )
                .unwrap_or_else(|e| panic!("metric `{}` is not a valid Prometheus name: {e}", d.name))
            })
            .collect();
        SnapshotCollector { descs, source }
    }
}

impl<F: Fn() -> Snapshot + Send + Sync> Collector for SnapshotCollector<F> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        (self.source)().families.iter().map(family).collect()
    }
}

/// The text exposition of a registry.
pub fn encode_registry(registry: &Registry) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 * 1024);
    // Writing into a Vec cannot fail, and the families come from the checked `Metric` list.
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding /metrics failed");
    }
    buf
}

/// The text exposition of one snapshot.
pub fn encode(snapshot: &Snapshot) -> String {
    let registry = Registry::new();
    let s = snapshot.clone();
    registry.register(Box::new(SnapshotCollector::new(move || s.clone()))).expect("the metrics register once");
    String::from_utf8(encode_registry(&registry)).expect("the text format is UTF-8")
}
