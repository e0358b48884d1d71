//! The Grafana dashboard `deploy/grafana/gespann-dashboard.json` against a real Prometheus
//! (Debian package `prometheus`; fails, does not skip, when it is missing): a recording holding
//! every kind of event is replayed into the Prometheus adapter while Prometheus scrapes it every
//! second, and then every query of every panel, with Grafana's variables substituted, must
//! return data (no empty result, no NaN, every label its legend shows), and the key panels must
//! show the recording's own numbers. Without a server: the file is valid JSON, every panel and query goes through the
//! `${datasource}` variable, and the panels cover every metric family the replay exports.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gespann_common::{Event, EventKind, Protocol, ResetBy, Role};
use gespann_replay::adapters::Adapter;
use gespann_replay::adapters::prometheus::{Listen, Port, PrometheusAdapter, PrometheusConfig};
use gespann_replay::model::{Kind, Metric};
use gespann_replay::run::{Input, RunOptions, run};
use gespann_replay::{Config, Speed};
use serde_json::Value;
use support::{Aggregates, PromSample, PrometheusServer, aggregates, every_kind_of_event, free_port, wait_metrics};

const DASHBOARD_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/gespann-dashboard.json");

/// What every panel and every query must name as its data source.
const DATASOURCE: &str = r#"{"type":"prometheus","uid":"${datasource}"}"#;

/// The recorder's lost-events count written in the recording (`gespann_events_lost_total`).
const EVENTS_LOST: u64 = 7;

/// How much faster than recorded the 80 s recording is replayed: 8 s, about 8 scrapes.
const SPEED: f64 = 10.0;

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD_PATH).unwrap_or_else(|e| panic!("{DASHBOARD_PATH}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD_PATH} is not JSON: {e}"))
}

/// Every panel, those inside collapsed rows included; rows themselves hold no queries.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = vec![];
    for p in d["panels"].as_array().expect("a `panels` array") {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

fn is_row(p: &Value) -> bool {
    p["type"] == "row"
}

/// One query of one panel.
struct Query {
    title: String,
    ref_id: String,
    expr: String,
    /// The labels its legend shows (`{{comm}}`).
    legend_labels: Vec<String>,
}

/// Every query of the dashboard.
fn queries(d: &Value) -> Vec<Query> {
    let mut out = vec![];
    for p in panels(d).into_iter().filter(|p| !is_row(p)) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let legend = t["legendFormat"].as_str().unwrap_or_default();
            out.push(Query {
                title: p["title"].as_str().unwrap_or_default().to_owned(),
                ref_id: t["refId"].as_str().unwrap_or_default().to_owned(),
                expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                legend_labels: legend
                    .split("{{")
                    .skip(1)
                    .filter_map(|s| s.split_once("}}"))
                    .map(|(l, _)| l.trim().to_owned())
                    .collect(),
            });
        }
    }
    out
}

/// What Grafana would put in place of its variables: the built-in intervals (as for a 1 s
/// scrape interval and a short time range) and, for each query variable, its "All" value.
fn substitutions(d: &Value) -> Vec<(String, String)> {
    let mut subs: Vec<(String, String)> = [
        ("__rate_interval", "30s"),
        ("__interval", "5s"),
        ("__interval_ms", "5000"),
        ("__range", "5m"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for v in d["templating"]["list"].as_array().into_iter().flatten().filter(|v| v["type"] == "query") {
        let name = v["name"].as_str().expect("a variable's name");
        assert_eq!(v["includeAll"], true, "variable `{name}` must offer All");
        let all = v["allValue"].as_str().unwrap_or_else(|| panic!("variable `{name}`: no allValue"));
        subs.push((name.to_owned(), all.to_owned()));
    }
    // `${x}` and `$x`, longest names first (`$__range_s` before `$__range`).
    subs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    subs.into_iter().flat_map(|(k, v)| [(format!("${{{k}}}"), v.clone()), (format!("${k}"), v)]).collect()
}

fn substitute(expr: &str, subs: &[(String, String)]) -> String {
    let mut out = expr.to_owned();
    for (k, v) in subs {
        out = out.replace(k, v);
    }
    assert!(!out.contains('$'), "a Grafana variable the test does not know is left in `{out}` (from `{expr}`)");
    out
}

/// The family names an expression uses (a histogram through its `_bucket` series).
fn families_in(expr: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = expr;
    while let Some(i) = rest.find("gespann_") {
        let name: String =
            rest[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn dashboard_is_importable_and_every_panel_uses_the_datasource_variable() {
    let d = dashboard();
    let want_ds: Value = serde_json::from_str(DATASOURCE).unwrap();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| (36..=41).contains(&v)),
        "schemaVersion {}",
        d["schemaVersion"]
    );
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()) && d["uid"].is_string());
    assert!(d["id"].is_null(), "an importable dashboard has `id: null`");

    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds: Vec<&Value> = vars.iter().filter(|v| v["name"] == "datasource").collect();
    assert_eq!(ds.len(), 1, "one `datasource` variable");
    assert_eq!(ds[0]["type"], "datasource");
    assert_eq!(ds[0]["query"], "prometheus");
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], want_ds, "variable {}", v["name"]);
    }

    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(ids.insert(p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no numeric id"))), "{title}: id reused");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24 && g["h"].as_u64().unwrap() > 0 && g["y"].is_u64(), "{title}: gridPos {g}");
        if is_row(p) {
            assert!(p.get("targets").is_none(), "row {title} has queries");
            continue;
        }
        assert_eq!(p["datasource"], want_ds, "panel {title}");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no queries");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"], want_ds, "panel {title}, query {}", t["refId"]);
            assert!(refs.insert(t["refId"].as_str().unwrap()), "{title}: refId reused");
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: empty expr");
            assert!(expr.contains("instance=~\"$instance\""), "{title}: `{expr}` ignores the instance variable");
            used.extend(families_in(expr));
        }
    }

    // Every name is one the replay exports (histograms through their buckets), and every
    // family has a panel: a family added to the model needs one here.
    let mut known = BTreeMap::new();
    for m in Metric::ALL {
        let def = m.def();
        let series = match def.kind {
            Kind::Histogram => format!("{}_bucket", def.name),
            _ => def.name.to_owned(),
        };
        known.insert(series, def.name);
    }
    for name in &used {
        assert!(known.contains_key(name), "the dashboard queries `{name}`, which the replay does not export");
    }
    let missing: Vec<&str> = known.iter().filter(|(s, _)| !used.contains(*s)).map(|(_, n)| *n).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

/// What the key panels must show, worked out from the rows (not through the processor).
struct Expected {
    totals: Aggregates,
    opened: u64,
    retransmits: u64,
    idle: u64,
    avg_duration_ms: f64,
    avg_rtt_us: f64,
    /// `error protocol` -> failed attempts.
    failures: BTreeMap<String, f64>,
    /// Kernel reset reason (`none` without one) -> resets.
    resets: BTreeMap<String, f64>,
    /// `address port protocol` (the service port) -> connections.
    destinations: BTreeMap<String, f64>,
    /// Process name -> connections.
    processes: BTreeMap<String, f64>,
}

fn expected(rows: &[Event], idle_threshold: Duration) -> Expected {
    let count = |m: &mut BTreeMap<String, f64>, k: String| *m.entry(k).or_default() += 1.0;
    let (mut failures, mut resets) = (BTreeMap::new(), BTreeMap::new());
    let mut destinations: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut processes: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    // conn_id -> (bytes sent, bytes received, retransmits, last activity, last kind)
    let mut conns: HashMap<u64, (u64, u64, u32, i64, EventKind)> = HashMap::new();
    let (mut durations, mut rtts) = (vec![], vec![]);
    let mut opened = 0;
    for e in rows {
        match e.kind {
            EventKind::Open => opened += 1,
            EventKind::Failed => {
                count(&mut failures, format!("{} {}", e.error.unwrap_or("unknown"), e.protocol.as_str()))
            }
            EventKind::Reset => count(&mut resets, e.reset_reason.as_deref().unwrap_or("none").to_owned()),
            _ => {}
        }
        if matches!(e.kind, EventKind::Close | EventKind::Reset)
            && let Some(d) = e.duration_ns
        {
            durations.push(d as f64 / 1e6);
        }
        rtts.extend(e.rtt_us.map(f64::from));
        let port = match e.role {
            Role::Client => e.remote_port,
            Role::Server => e.local_port,
        };
        destinations.entry(format!("{} {port} {}", e.remote_addr, e.protocol.as_str())).or_default().insert(e.conn_id);
        processes.entry(e.comm.to_string()).or_default().insert(e.conn_id);
        let c = conns.entry(e.conn_id).or_insert((0, 0, 0, e.ts_ns, e.kind));
        if e.bytes_sent > c.0 || e.bytes_received > c.1 {
            c.3 = e.ts_ns;
        }
        c.0 = c.0.max(e.bytes_sent);
        c.1 = c.1.max(e.bytes_received);
        c.2 = c.2.max(e.retransmits);
        c.4 = e.kind;
    }
    let end = rows.iter().map(|e| e.ts_ns).max().unwrap();
    let idle_before = end - idle_threshold.as_nanos() as i64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sizes = |m: BTreeMap<String, BTreeSet<u64>>| m.into_iter().map(|(k, s)| (k, s.len() as f64)).collect();
    Expected {
        totals: aggregates(rows),
        opened,
        retransmits: conns.values().map(|c| u64::from(c.2)).sum(),
        idle: conns.values().filter(|c| !c.4.is_terminal() && c.3 < idle_before).count() as u64,
        avg_duration_ms: mean(&durations),
        avg_rtt_us: mean(&rtts),
        failures,
        resets,
        destinations: sizes(destinations),
        processes: sizes(processes),
    }
}

/// The recording really holds what the test claims it does.
fn check_every_kind_is_there(rows: &[Event]) {
    let kinds: BTreeSet<EventKind> = rows.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, EventKind::ALL.into_iter().collect(), "event kinds");
    let reset_by: BTreeSet<&str> = rows.iter().filter_map(|e| e.reset_by.map(ResetBy::as_str)).collect();
    assert_eq!(reset_by, ["local", "remote"].into_iter().collect());
    let errnos: BTreeSet<&str> =
        rows.iter().filter(|e| e.kind == EventKind::Failed).map(|e| e.error.unwrap_or("unknown")).collect();
    assert!(errnos.len() >= 4, "errnos {errnos:?}");
    assert!(rows.iter().any(|e| e.protocol == Protocol::Udp), "no UDP");
    assert!(rows.iter().any(|e| e.preexisting), "no preexisting connection");
    assert!(rows.iter().any(|e| e.workload.container_name.is_some()), "no named container");
    assert!(rows.iter().any(|e| e.workload.pod_name.is_some()), "no pod");
    assert!(rows.iter().any(|e| e.workload.container_id.is_none()), "no host process");
}

/// The query results keyed by the values of `labels`, joined by spaces.
fn keyed(result: &[PromSample], labels: &[&str]) -> BTreeMap<String, f64> {
    result
        .iter()
        .map(|s| {
            let key: Vec<&str> = labels.iter().map(|l| s.labels.get(*l).map_or("", String::as_str)).collect();
            (key.join(" "), s.value)
        })
        .collect()
}

#[test]
fn every_dashboard_query_returns_data_from_a_replay_scraped_by_prometheus() {
    let started = Instant::now();
    let d = dashboard();
    let subs = substitutions(&d);
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("every-kind.parquet");
    let rows = every_kind_of_event();
    check_every_kind_is_there(&rows);
    let (first, last) = (rows[0].ts_ns, rows[rows.len() - 1].ts_ns);
    gespann_testkit::fixtures::write_recording(&recording, &rows, EVENTS_LOST, first, last);
    let config = Config { adapters: vec![], ..Config::default() };
    let want = expected(&rows, config.processor.idle_threshold);
    assert!(want.idle > 0 && want.totals.open_at_end > want.idle, "the recording needs idle and busy open connections");

    let port = free_port();
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let prom = PrometheusServer::start(dir.path(), target);

    let adapters: Vec<Box<dyn Adapter>> = vec![Box::new(PrometheusAdapter::new(PrometheusConfig {
        port: Port(port),
        listen: Some(Listen::Ip(target.ip())),
    }))];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let replay = rt.spawn(run(
        RunOptions {
            config,
            input: Input::Recordings { inputs: vec![recording.display().to_string()], speed: Speed::Factor(SPEED) },
            exit_on_end: false,
        },
        adapters,
        async {
            let _ = stop_rx.await;
        },
    ));

    // The replay ends, then Prometheus scrapes its final values.
    let m = wait_metrics(target, Duration::from_secs(60), |m| m.get("gespann_replay_finished") == Some(&1.0));
    assert_eq!(m["gespann_events_processed_total"], want.totals.rows as f64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while prom.query("gespann_replay_finished == 1").is_empty() {
        assert!(Instant::now() < deadline, "prometheus never scraped the final values; its log:\n{}", prom.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let scrapes = prom.query("count_over_time(gespann_events_processed_total[5m])");
    assert!(scrapes.first().is_some_and(|s| s.value >= 4.0), "too few scrapes during the replay: {scrapes:?}");

    // Every query of every panel has data, and no NaN (a quantile over buckets that never moved,
    // a ratio of zeros).
    let all = queries(&d);
    let mut problems = vec![];
    for Query { title, ref_id, expr, legend_labels } in &all {
        let promql = substitute(expr, &subs);
        let result = prom.query(&promql);
        if result.is_empty() {
            problems.push(format!("{title} ({ref_id}): no data from {promql}"));
        } else if let Some(s) = result.iter().find(|s| !s.value.is_finite()) {
            problems.push(format!("{title} ({ref_id}): {} for {:?} from {promql}", s.value, s.labels));
        }
        // A legend label no series has is a misspelt `by (...)` (an optional label such as
        // `pod` may be absent from some series, not from all).
        for l in legend_labels.iter().filter(|l| !result.iter().any(|s| s.labels.contains_key(*l))) {
            problems.push(format!("{title} ({ref_id}): the legend shows `{l}`, which no series of {promql} has"));
        }
    }
    assert!(problems.is_empty(), "{} problems in {} queries:\n{}", problems.len(), all.len(), problems.join("\n"));

    // The query variables list the replay (Grafana's `label_values(metric, label)`).
    for v in d["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query") {
        let def = v["definition"].as_str().unwrap();
        let (metric, label) = def
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .and_then(|s| s.split_once(','))
            .unwrap_or_else(|| panic!("variable {}: `{def}` is not label_values(metric, label)", v["name"]));
        let values = prom.api(&format!("label/{}/values", label.trim()), &[("match[]", metric.trim())]);
        assert!(values.as_array().is_some_and(|a| !a.is_empty()), "{def}: {values}");
        if label.trim() == "instance" {
            assert_eq!(values, serde_json::json!([target.to_string()]), "{def}");
        }
    }

    // The key panels show the recording's own numbers.
    let panel_query = |title: &str| -> Vec<PromSample> {
        let q =
            all.iter().find(|q| q.title == title && q.ref_id == "A").unwrap_or_else(|| panic!("no panel `{title}`"));
        prom.query(&substitute(&q.expr, &subs))
    };
    let single = |title: &str| -> f64 {
        let r = panel_query(title);
        assert_eq!(r.len(), 1, "{title}: {r:?}");
        r[0].value
    };
    let t = &want.totals;
    for (title, value) in [
        ("Open now", t.open_at_end),
        ("Idle now", want.idle),
        ("Connections seen", t.connections),
        ("Opened", want.opened),
        ("Closed", t.closes),
        ("Reset", t.resets),
        ("Failed", t.failures),
        ("Bytes sent", t.bytes_sent),
        ("Bytes received", t.bytes_received),
        ("Retransmits", want.retransmits),
        ("Events lost", EVENTS_LOST),
        ("Replay finished", 1),
    ] {
        assert_eq!(single(title), value as f64, "panel {title}");
    }
    for (title, value) in [("Average connection duration", want.avg_duration_ms), ("Average RTT", want.avg_rtt_us)] {
        let got = single(title);
        assert!((got - value).abs() <= 1e-9 * value.abs(), "panel {title}: {got}, expected {value}");
    }
    assert_eq!(keyed(&panel_query("Failed connects by errno (total)"), &["error", "protocol"]), want.failures);
    assert_eq!(keyed(&panel_query("Resets by reason (total)"), &["reset_reason"]), want.resets);
    // Ten destinations and eight processes: topk(10) shows them all.
    assert_eq!(
        keyed(&panel_query("Top destinations by connections"), &["address", "port", "protocol"]),
        want.destinations
    );
    assert_eq!(keyed(&panel_query("Top processes by connections"), &["comm"]), want.processes);

    stop_tx.send(()).unwrap();
    let outcome = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), replay).await })
        .expect("the replay stops on request")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.totals.events, want.totals.rows);
    eprintln!("{} queries checked in {:?}", all.len(), started.elapsed());
}
