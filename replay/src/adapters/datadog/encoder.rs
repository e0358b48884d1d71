//! Snapshot → DogStatsD lines (`name:value|type|#tag:value,...`). Pure: the only state is the
//! last value sent of each counter, from which the deltas are computed.

use rustc_hash::FxHashMap;

use crate::model::{Kind, MetricDef, Snapshot, Value};

/// Turns successive snapshots into DogStatsD lines.
#[derive(Default)]
pub struct DeltaEncoder {
    global_tags: Vec<String>,
    /// Last absolute value sent, by line prefix (name and tags).
    counters: FxHashMap<String, u64>,
    sums: FxHashMap<String, f64>,
}

/// A tag value that DogStatsD can carry: `,` `|` `#` `:` are separators there, whitespace and
/// control characters are not kept.
pub fn tag_value(v: &str) -> String {
    v.chars()
        .map(|c| if matches!(c, ',' | '|' | '#') || c.is_whitespace() || c.is_control() { '_' } else { c })
        .collect()
}

/// The tags of one series: the global ones, then its labels (optional ones with no value left
/// out, as in the Prometheus exposition), then `extra`.
fn format_tags(global: &[String], def: &MetricDef, values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut tags: Vec<String> = global.to_vec();
    for (k, v) in def.label_pairs(values) {
        tags.push(format!("{k}:{}", tag_value(v)));
    }
    if let Some((k, v)) = extra {
        tags.push(format!("{k}:{v}"));
    }
    if tags.is_empty() { String::new() } else { format!("|#{}", tags.join(",")) }
}

impl DeltaEncoder {
    /// `tags` are added to every line.
    pub fn new(tags: Vec<String>) -> Self {
        DeltaEncoder { global_tags: tags, ..DeltaEncoder::default() }
    }

    fn counter(&mut self, out: &mut Vec<String>, name: &str, tags: &str, now: u64) {
        let key = format!("{name}{tags}");
        let last = self.counters.insert(key, now).unwrap_or(0);
        // A counter that went down restarted from zero: all of it is new.
        let delta = if now >= last { now - last } else { now };
        if delta > 0 {
            out.push(format!("{name}:{delta}|c{tags}"));
        }
    }

    fn sum(&mut self, out: &mut Vec<String>, name: &str, tags: &str, now: f64) {
        let key = format!("{name}{tags}");
        let last = self.sums.insert(key, now).unwrap_or(0.0);
        let delta = if now >= last { now - last } else { now };
        if delta > 0.0 {
            out.push(format!("{name}:{delta}|c{tags}"));
        }
    }

    /// The lines of one flush: counters as deltas since the previous call (zero deltas are left
    /// out), gauges as values, histograms as `.bucket` (tag `upper_bound`), `.count` and `.sum`
    /// counters.
    pub fn encode(&mut self, snapshot: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for f in &snapshot.families {
            let def = f.def();
            let name = def.statsd_name();
            for s in &f.series {
                match (&s.value, def.kind) {
                    (Value::Counter(v), _) => {
                        let tags = format_tags(&self.global_tags, def, &s.labels, None);
                        self.counter(&mut out, &name, &tags, *v);
                    }
                    (Value::Gauge(v), _) => {
                        let tags = format_tags(&self.global_tags, def, &s.labels, None);
                        out.push(format!("{name}:{v}|g{tags}"));
                    }
                    (Value::Histogram(h), Kind::Histogram) => {
                        let bucket = format!("{name}.bucket");
                        for (ub, c) in h.bounds.iter().zip(&h.cumulative) {
                            let ub = ub.to_string();
                            let tags = format_tags(&self.global_tags, def, &s.labels, Some(("upper_bound", &ub)));
                            self.counter(&mut out, &bucket, &tags, *c);
                        }
                        let tags = format_tags(&self.global_tags, def, &s.labels, None);
                        self.counter(&mut out, &format!("{name}.count"), &tags, h.count);
                        self.sum(&mut out, &format!("{name}.sum"), &tags, h.sum);
                    }
                    (Value::Histogram(_), _) => {
                        tracing::warn!(metric = def.name, "histogram value for a non-histogram");
                    }
                }
            }
        }
        out
    }
}
