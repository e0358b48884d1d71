//! The metrics as every adapter sees them: the [`Metric`] families with their definitions, and
//! snapshots of values.
//!
//! Each family is one variant of [`Metric`], declared once below with its name, help, kind and
//! label names. The processor fills a snapshot by an exhaustive `match` on it, so a family
//! added here without a value there is a compile error, and adapters read a family's definition
//! from the family itself, never by comparing names.
//!
//! # Counter semantics (the one place they are stated)
//!
//! A [`Snapshot`] holds **absolute** values, cumulative since the replay (or the live session)
//! began. Counters only grow, with one exception: a per-destination or per-process series that
//! was evicted from the bounded top-N table and later comes back restarts from zero.
//!
//! - Prometheus exposes the values as they are (absolute counters, gauges, cumulative histogram
//!   buckets); Prometheus itself handles a restarted counter as a counter reset.
//! - DogStatsD sends, at each flush, the **delta** of every counter since the previous flush
//!   (`|c`); a counter that went down restarted, so its whole value is the delta. Gauges are sent
//!   as their current value (`|g`). A histogram becomes three counters, sent as deltas like any
//!   other: `.bucket` (cumulative bucket counts, tag `upper_bound`), `.count` and `.sum`.
//!
//! Label sets are bounded by design: every label takes its values from a closed set (event
//! kinds, protocols, directions, errno names, kernel reset reasons capped at
//! [`MAX_RESET_REASONS`]) except the per-destination, per-process and per-container labels,
//! which are limited to the configured top N.
//!
//! # Workload labels (`container`, `pod`): left out, never empty
//!
//! The per-process, per-destination and per-container families carry two *optional* labels
//! ([`MetricDef::optional`]), the workload of the connection's owner: `container` (the
//! container's name, else its id's first 12 characters) and `pod` (`<namespace>/<name>`, else
//! the pod uid). A series whose owner has none (a host process, a version 1 recording) has the
//! value `""`, and both adapters **leave the label out** rather than print it empty: the series
//! of host-only data are exactly the series of earlier versions (same names, same label sets),
//! and Prometheus treats an absent label and an empty one as the same anyway.

//! # The `host` label: replays of several hosts
//!
//! Every family also carries the optional label `host`, the last one: when a replay merges
//! recordings of more than one host (`gespann replay FILES…`, [`crate::hosts`]), each series
//! names the host (the recording's `gespann.hostname`) it counts. A replay of one host leaves
//! it out, so its series are exactly those of a single-recording replay. It is bounded like
//! the per-destination labels: the top N hosts by rows get their own value, the rest `other`.

/// What kind of metric a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The definition of one metric family: its Prometheus name, help, kind and label names.
#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Labels every series has.
    pub labels: &'static [&'static str],
    /// Labels after those, left out of a series where their value is empty (the workload
    /// labels: see the module doc).
    pub optional: &'static [&'static str],
}

impl MetricDef {
    /// The DogStatsD name: `gespann.<name>` (the Prometheus name without its `gespann_` prefix).
    pub fn statsd_name(&self) -> String {
        format!("gespann.{}", self.name.strip_prefix("gespann_").unwrap_or(self.name))
    }

    /// Every label name a series may have: [`labels`](Self::labels), then
    /// [`optional`](Self::optional).
    pub fn all_labels(&self) -> impl Iterator<Item = &'static str> + Clone {
        self.labels.iter().chain(self.optional).copied()
    }

    /// The `(name, value)` pairs a series is published with: its values in label order, with
    /// the optional labels whose value is empty left out. Every adapter goes through this.
    pub fn label_pairs<'a>(&self, values: &'a [String]) -> impl Iterator<Item = (&'static str, &'a str)> {
        let required = self.labels.len();
        self.all_labels()
            .zip(values)
            .enumerate()
            .filter(move |(i, (_, v))| *i < required || !v.is_empty())
            .map(|(_, (k, v))| (k, v.as_str()))
    }
}

/// Distinct kernel reset reasons kept as label values; further ones are counted as `other`.
pub const MAX_RESET_REASONS: usize = 32;

/// Bucket upper bounds (seconds) of the connection duration histogram.
pub const DURATION_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Bucket upper bounds (seconds) of the RTT and handshake histograms.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0];

macro_rules! metrics {
    ($($variant:ident = $name:literal, $kind:ident, [$($l:literal),*] $(+ [$($o:literal),*])?, $help:literal;)*) => {
        /// Every metric family, one variant each. The processor builds a snapshot by matching on
        /// it, so a family added here without a value there does not compile.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Metric {
            $(#[doc = $help] $variant),*
        }

        impl Metric {
            /// Every family, in exposition order (the golden file lists them).
            pub const ALL: &[Metric] = &[$(Metric::$variant),*];

            /// Its name, help, kind and label names.
            pub const fn def(self) -> &'static MetricDef {
                match self {
                    $(Metric::$variant => &MetricDef {
                        name: $name, help: $help, kind: Kind::$kind, labels: &[$($l),*],
                        optional: &[$($($o,)*)? "host"],
                    }),*
                }
            }
        }
    };
}

metrics! {
    Open = "gespann_open_connections", Gauge, [],
        "Connections open now (established TCP connections and active UDP flows).";
    Idle = "gespann_idle_connections", Gauge, [],
        "Open connections that moved no bytes for the idle threshold (default 30s).";
    Total = "gespann_total_connections", Gauge, [],
        "Distinct connections seen since the start, including failed attempts (never decreases; a gauge for compatibility).";
    Closed = "gespann_closed_connections_total", Counter, [],
        "Connections that ended with an orderly close.";
    Reset = "gespann_reset_connections_total", Counter, [],
        "Connections that ended with a reset (RST sent or received).";
    Failed = "gespann_failed_connections_total", Counter, [],
        "Connection attempts that never established.";
    Tcp = "gespann_tcp_connections_total", Counter, [],
        "Distinct TCP connections seen, including failed attempts.";
    Udp = "gespann_udp_connections_total", Counter, [],
        "Distinct UDP flows seen.";
    BytesSent = "gespann_bytes_sent_total", Counter, [],
        "Bytes sent by all connections (TCP: acknowledged bytes; UDP: payload).";
    BytesReceived = "gespann_bytes_received_total", Counter, [],
        "Bytes received by all connections (TCP: in-order bytes; UDP: payload).";
    Bandwidth = "gespann_connection_bandwidth_bytes_total", Counter, ["direction", "protocol"],
        "Bytes moved, by direction (sent, received) and protocol.";
    Retransmits = "gespann_retransmits_total", Counter, [],
        "TCP segments retransmitted.";
    AvgDuration = "gespann_avg_connection_duration_ms", Gauge, [],
        "Mean duration of the connections that ended (closed or reset), in milliseconds.";
    AvgRtt = "gespann_avg_rtt_microseconds", Gauge, [],
        "Mean of the smoothed TCP RTT reports, in microseconds.";
    Events = "gespann_connection_events_total", Counter, ["type", "protocol", "reset_reason"],
        "Connection events by type (open, close, reset, failed, retransmit, sample), protocol and kernel reset reason (none if not a local reset).";
    Failures = "gespann_connection_failures_total", Counter, ["error", "protocol"],
        "Failed connection attempts by errno name (unknown if the kernel gave none).";
    Duration = "gespann_connection_duration_seconds", Histogram, ["protocol"],
        "Duration of the connections that ended (closed or reset).";
    Rtt = "gespann_rtt_seconds", Histogram, [],
        "Smoothed TCP RTT, one observation per report.";
    Handshake = "gespann_handshake_seconds", Histogram, [],
        "TCP client handshake time (SYN sent to established).";
    DestConnections = "gespann_destination_connections_total", Counter, ["address", "port", "protocol"] + ["container", "pod"],
        "Connections per destination (remote address and service port) and local workload, for the top N only.";
    DestBytes = "gespann_destination_bytes_total", Counter, ["address", "port", "protocol", "direction"] + ["container", "pod"],
        "Bytes per destination, local workload and direction, for the top N only.";
    ProcConnections = "gespann_process_connections_total", Counter, ["comm"] + ["container", "pod"],
        "Connections per process name and workload, for the top N only.";
    ProcBytes = "gespann_process_bytes_total", Counter, ["comm", "direction"] + ["container", "pod"],
        "Bytes per process name, workload and direction, for the top N only.";
    ContainerConnections = "gespann_container_connections_total", Counter, [] + ["container", "pod"],
        "Connections per container or pod, including failed attempts, for the top N only (host processes have no series).";
    ContainerFailed = "gespann_container_failed_connections_total", Counter, [] + ["container", "pod"],
        "Connection attempts that never established, per container or pod, for the top N only.";
    ContainerReset = "gespann_container_reset_connections_total", Counter, [] + ["container", "pod"],
        "Connections that ended with a reset, per container or pod, for the top N only.";
    ContainerBytes = "gespann_container_bytes_total", Counter, ["direction"] + ["container", "pod"],
        "Bytes per container or pod and direction, for the top N only.";
    EventsProcessed = "gespann_events_processed_total", Counter, [],
        "Recording rows (or live events) processed.";
    EventsLost = "gespann_events_lost_total", Counter, [],
        "Events the recorder lost (kernel ring buffer full), as reported by the recorder or the recording.";
    ReplayFinished = "gespann_replay_finished", Gauge, [],
        "1 once a replay has processed the whole recording, else 0.";
}

/// One value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramValue),
}

/// A histogram: cumulative counts per upper bound (the `+Inf` bucket is `count`).
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramValue {
    pub bounds: &'static [f64],
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// One labelled series of a family; labels are in the order of [`MetricDef::labels`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Vec<String>,
    pub value: Value,
}

/// One metric family with its series.
#[derive(Clone, Debug)]
pub struct Family {
    pub metric: Metric,
    pub series: Vec<Series>,
}

impl Family {
    /// The family's name, help, kind and label names.
    pub fn def(&self) -> &'static MetricDef {
        self.metric.def()
    }
}

/// Every family at one moment, absolute values (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub families: Vec<Family>,
}

impl Snapshot {
    /// The family of `metric`, if present.
    pub fn get(&self, metric: Metric) -> Option<&Family> {
        self.families.iter().find(|f| f.metric == metric)
    }

    /// The family called `name`, if present (for tests and tools that hold a name).
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.def().name == name)
    }

    /// The value of an unlabelled counter or gauge, or of the series with exactly `labels`;
    /// trailing labels left out of `labels` must be empty (as in the exposition, where an empty
    /// optional label is left out).
    pub fn value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let f = self.family(name)?;
        let s = f.series.iter().find(|s| {
            s.labels.len() >= labels.len()
                && s.labels.iter().zip(labels).all(|(a, b)| a == b)
                && s.labels[labels.len()..].iter().all(|l| l.is_empty())
        })?;
        match &s.value {
            Value::Counter(v) => Some(*v as f64),
            Value::Gauge(v) => Some(*v),
            Value::Histogram(h) => Some(h.count as f64),
        }
    }
}

/// The golden list of metric names: one line per family, `name kind label,label` (`-` for no
/// labels; an optional label, left out when empty, ends in `?`).
pub fn catalog_text() -> String {
    let mut out = String::new();
    for d in Metric::ALL.iter().map(|m| m.def()) {
        out.push_str(d.name);
        out.push(' ');
        out.push_str(d.kind.as_str());
        out.push(' ');
        let labels: Vec<String> =
            d.labels.iter().map(|l| l.to_string()).chain(d.optional.iter().map(|l| format!("{l}?"))).collect();
        if labels.is_empty() {
            out.push('-');
        } else {
            out.push_str(&labels.join(","));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_labels_are_left_out_when_empty_and_only_then() {
        let d = Metric::ProcBytes.def();
        let pairs = |v: &[&str]| {
            let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            d.label_pairs(&v).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        };
        assert_eq!(pairs(&["curl", "sent", "", ""]), "comm=curl,direction=sent");
        assert_eq!(pairs(&["curl", "sent", "web", ""]), "comm=curl,direction=sent,container=web");
        assert_eq!(pairs(&["curl", "sent", "", "prod/api-0"]), "comm=curl,direction=sent,pod=prod/api-0");
        // A required label keeps its empty value (a row with no process name), as before.
        assert_eq!(pairs(&["", "sent", "", ""]), "comm=,direction=sent");
    }
}
