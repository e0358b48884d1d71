//! `deploy/compose.yaml` and the files it mounts, checked without running the stack (its
//! Prometheus and Grafana images cannot be pulled here): every mounted file exists, the
//! gespann service is the live sidecar `gespann replay` really parses, Prometheus scrapes the
//! address that replay serves by default, Grafana's data source is that Prometheus and its
//! dashboard provider reads the folder the dashboard is mounted in. `promtool check config`
//! (Debian package `prometheus`; the test fails, never skips, without it) checks the scrape
//! config as Prometheus itself reads it.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, FromArgMatches};
use gespann_replay::Config;
use gespann_replay::cli::ReplayArgs;
use gespann_replay::config::AdapterConfig;
use serde_yaml::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn compose() -> Value {
    yaml(&deploy().join("compose.yaml"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence().unwrap_or_else(|| panic!("a list: {v:?}")).iter().map(|s| s.as_str().expect("a string")).collect()
}

/// A service's bind mounts as (host path resolved against deploy/, container path).
fn mounts(service: &Value) -> Vec<(PathBuf, String)> {
    strings(&service["volumes"])
        .into_iter()
        .map(|m| {
            let mut parts = m.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap_or_else(|| panic!("`{m}`: no target")));
            (deploy().join(src), dst.to_owned())
        })
        .collect()
}

/// The port after the last `:` of `host:port` or `:port`.
fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("no port in `{addr}`"))
}

/// The port `gespann replay` serves /metrics on with the compose file's arguments.
fn replay_port(command: &[&str]) -> u16 {
    let cmd = ReplayArgs::augment_args(clap::Command::new("replay").no_binary_name(true));
    let matches = cmd.try_get_matches_from(&command[1..]).unwrap_or_else(|e| panic!("gespann {command:?}: {e}"));
    let args = ReplayArgs::from_arg_matches(&matches).unwrap();
    assert!(args.live, "the stack's gespann replays live: {command:?}");
    assert!(args.config.is_none(), "no --config: the image has no config file");
    match &Config::default().adapters[..] {
        [AdapterConfig::Prometheus(p)] => p.bind_addr().port(),
        other => panic!("replay's default adapters: {other:?}"),
    }
}

#[test]
fn the_gespann_service_is_the_live_sidecar_with_the_host_it_records() {
    let c = compose();
    let g = &c["services"]["gespann"];
    assert_eq!(g["command"][0], "replay");
    assert_eq!(replay_port(&strings(&g["command"])), 8080);
    assert_eq!(g["privileged"], true, "the probes need CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN");
    assert_eq!(g["pid"], "host", "owner names come from the host's /proc");
    assert_eq!(g["network_mode"], "host", "the host's connections and :8080 are in its namespace");
    assert_eq!(g["cgroup"], "host", "cgroup paths relative to the host's cgroup2 root");
    let sys =
        [(PathBuf::from("/sys"), "/sys".to_owned()), (PathBuf::from("/sys/fs/cgroup"), "/sys/fs/cgroup".to_owned())];
    assert_eq!(mounts(g), sys, "BTF, tracefs and the host's cgroup mounts (cgroup2 among them)");
    assert_eq!(g["image"], "gespann:dev", "the tag `cargo xtask image` gives by default");
    assert_eq!(g["pull_policy"], "never", "no registry has the image");
}

#[test]
fn prometheus_scrapes_the_port_replay_serves_and_promtool_accepts_its_config() {
    let c = compose();
    let (g, p) = (&c["services"]["gespann"], &c["services"]["prometheus"]);
    let port = replay_port(&strings(&g["command"]));
    assert_eq!(p["network_mode"], "host", "it reaches gespann on the host's 127.0.0.1");
    let [(config, at)] = &mounts(p)[..] else { panic!("one mount: the config") };
    assert_eq!(*config, deploy().join("./prometheus/prometheus.yml"));
    assert!(strings(&p["command"]).contains(&format!("--config.file={}", at).as_str()));
    let prom = yaml(config);
    let jobs = prom["scrape_configs"].as_sequence().expect("scrape_configs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["job_name"], "gespann");
    assert_eq!(strings(&jobs[0]["static_configs"][0]["targets"]), [format!("127.0.0.1:{port}")]);

    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(config)
        .output()
        .expect("promtool (Debian package prometheus: apt-get install prometheus)");
    assert!(out.status.success(), "promtool check config: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn grafana_gets_that_prometheus_as_its_default_source_and_the_dashboard() {
    let c = compose();
    let (p, gr) = (&c["services"]["prometheus"], &c["services"]["grafana"]);
    assert_eq!(gr["network_mode"], "host");
    let listen = strings(&p["command"]).into_iter().find_map(|a| a.strip_prefix("--web.listen-address=")).unwrap();
    let m = mounts(gr);
    assert_eq!(m.len(), 2, "{m:?}");
    for (src, _) in &m {
        assert!(src.exists(), "{} is mounted but missing", src.display());
    }
    let (provisioning, at) = &m[0];
    assert_eq!(at, "/etc/grafana/provisioning");
    let (dashboard, dash_at) = &m[1];
    assert_eq!(
        dashboard.canonicalize().unwrap(),
        deploy().join("grafana/gespann-dashboard.json").canonicalize().unwrap()
    );

    let sources = yaml(&provisioning.join("datasources/prometheus.yaml"));
    let ds = sources["datasources"].as_sequence().unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["type"], "prometheus");
    assert_eq!(ds[0]["isDefault"], true, "the dashboard's ${{datasource}} variable takes the default");
    assert_eq!(ds[0]["url"].as_str().unwrap(), format!("http://127.0.0.1:{}", port_of(listen)));

    let providers = yaml(&provisioning.join("dashboards/gespann.yaml"));
    let folder = providers["providers"][0]["options"]["path"].as_str().unwrap();
    assert_eq!(Path::new(dash_at).parent().unwrap(), Path::new(folder));
    assert_eq!(
        gr["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].as_str(),
        Some(dash_at.as_str()),
        "the home dashboard is the mounted one"
    );

    // The dashboard's data source variable lists Prometheus sources: the provisioned one.
    let text = std::fs::read_to_string(dashboard).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let var = d["templating"]["list"].as_array().unwrap().iter().find(|v| v["name"] == "datasource").unwrap();
    assert_eq!((var["type"].as_str(), var["query"].as_str()), (Some("datasource"), ds[0]["type"].as_str()));
}
