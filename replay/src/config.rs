//! The configuration file (YAML), as Gespann users already write it:
//!
//! ```yaml
//! log_level: info
//! idle_threshold: 30s      # optional: when an open connection counts as idle
//! top_n: 20                # optional: destinations / processes / containers with their own series
//! adapters:
//!   - type: prometheus
//!     settings:
//!       port: "8080"
//!       listen: 0.0.0.0    # optional: the address to bind
//!   - type: datadog
//!     settings:
//!       host: "localhost:8125"
//!       flush_interval: 10s  # optional
//!       tags: ["env:prod"]   # optional: added to every metric
//! ```
//!
//! Unknown keys, unknown adapter types, bad ports and bad YAML are errors naming the file, the
//! key path and the line (serde_yaml's location of the offending value).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::adapters::datadog::DatadogConfig;
use crate::adapters::prometheus::PrometheusConfig;
use crate::processor::ProcessorOptions;
use crate::scalars::{checked_scalar, human_duration};

/// A configuration problem; the message carries the key path and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("bad config `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
    /// serde_yaml's error (key path, what is wrong, usually the line) is the source; `line` is
    /// the offending key's line when serde_yaml gives none (it gives none for an unknown key at
    /// the top level).
    #[error("bad config `{path}`{}", at_line(*line))]
    Yaml { path: PathBuf, line: Option<usize>, source: serde_yaml::Error },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub log_level: Option<LogLevel>,
    pub processor: ProcessorOptions,
    pub adapters: Vec<AdapterConfig>,
}

impl Default for Config {
    /// Without a config file: Prometheus on `0.0.0.0:8080`.
    fn default() -> Self {
        Config {
            log_level: None,
            processor: ProcessorOptions::default(),
            adapters: vec![AdapterConfig::Prometheus(PrometheusConfig::default())],
        }
    }
}

/// One adapter, as `type` + `settings`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", content = "settings", rename_all = "lowercase")]
pub enum AdapterConfig {
    Prometheus(PrometheusConfig),
    Datadog(DatadogConfig),
}

/// `log_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

fn adapter_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<AdapterConfig>>, D::Error> {
    let v = Vec::<AdapterConfig>::deserialize(d)?;
    if v.is_empty() {
        return Err(de::Error::custom("the list is empty (leave `adapters` out for the default Prometheus on :8080)"));
    }
    Ok(Some(v))
}

/// Upper bound of `top_n`: each destination adds 3 series, each process 3, each container 5.
pub const MAX_TOP_N: usize = 10_000;

fn top_n<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    checked_scalar(d, "a number of series, 0-10000", |s| match s.trim().parse::<usize>() {
        Ok(n) if n <= MAX_TOP_N => Ok(Some(n)),
        _ => Err(format!("bad top_n `{s}`: expected 0-{MAX_TOP_N}")),
    })
}

fn human_duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    human_duration(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    log_level: Option<LogLevel>,
    #[serde(default, deserialize_with = "human_duration_opt")]
    idle_threshold: Option<Duration>,
    #[serde(default, deserialize_with = "top_n")]
    top_n: Option<usize>,
    #[serde(default, deserialize_with = "adapter_list")]
    adapters: Option<Vec<AdapterConfig>>,
}

/// The line (1-based) to name for `e` when serde_yaml's message names none: the offending key's
/// for an unknown key, else serde_yaml's location.
fn missing_line(text: &str, e: &serde_yaml::Error) -> Option<usize> {
    let msg = e.to_string();
    if msg.contains(" line ") {
        return None;
    }
    let key = msg.strip_prefix("unknown field `").and_then(|r| r.split_once('`')).map(|(k, _)| k);
    let line = key.and_then(|k| {
        text.lines().position(|l| l.trim_start().strip_prefix(k).is_some_and(|r| r.trim_start().starts_with(':')))
    });
    line.map(|i| i + 1).or_else(|| e.location().map(|l| l.line()))
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(path, &text)
    }

    /// Parses config text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_owned(), message };
        if text.trim().is_empty() {
            return Err(invalid("the file is empty (expected at least `adapters:`)".into()));
        }
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|source| ConfigError::Yaml {
            path: path.to_owned(),
            line: missing_line(text, &source),
            source,
        })?;
        let mut c = Config { log_level: raw.log_level, ..Config::default() };
        if let Some(t) = raw.idle_threshold {
            c.processor.idle_threshold = t;
        }
        if let Some(n) = raw.top_n {
            c.processor.top_n = n;
        }
        if let Some(adapters) = raw.adapters {
            c.adapters = adapters;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::prometheus::{Listen, Port};

    /// The error and its causes, as the binary prints them.
    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("config.yaml"), text).map_err(|e| {
            let mut out = e.to_string();
            let mut cur = std::error::Error::source(&e);
            while let Some(c) = cur {
                out.push_str(&format!(": {c}"));
                cur = c.source();
            }
            out
        })
    }

    #[test]
    fn the_issue_example_parses() {
        let c = parse(
            "log_level: info\nadapters:\n  - type: prometheus\n    settings:\n      port: \"8080\"\n  - type: datadog\n    settings:\n      host: \"localhost:8125\"\n",
        )
        .unwrap();
        assert_eq!(c.log_level, Some(LogLevel::Info));
        assert_eq!(c.adapters.len(), 2);
        match &c.adapters[0] {
            AdapterConfig::Prometheus(p) => {
                assert_eq!(p.port, Port(8080));
                assert_eq!(p.bind_addr().to_string(), "0.0.0.0:8080");
            }
            other => panic!("{other:?}"),
        }
        match &c.adapters[1] {
            AdapterConfig::Datadog(d) => {
                assert_eq!(d.host, "localhost:8125");
                assert_eq!(d.flush_interval, Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_and_defaults() {
        let c = parse(
            "idle_threshold: 90s\ntop_n: 5\nadapters:\n  - type: prometheus\n    settings:\n      port: 9100\n      listen: \"::1\"\n  - type: datadog\n    settings:\n      host: 127.0.0.1:9125\n      flush_interval: 250ms\n      tags: [\"env:test\"]\n",
        )
        .unwrap();
        assert_eq!(c.processor.idle_threshold, Duration::from_secs(90));
        assert_eq!(c.processor.top_n, 5);
        match &c.adapters[0] {
            AdapterConfig::Prometheus(p) => {
                assert_eq!(p.listen, Some(Listen::Ip("::1".parse().unwrap())));
                assert_eq!(p.bind_addr().to_string(), "[::1]:9100");
            }
            other => panic!("{other:?}"),
        }
        // Without a file: Prometheus on 0.0.0.0:8080.
        match &Config::default().adapters[..] {
            [AdapterConfig::Prometheus(p)] => assert_eq!(p.bind_addr().to_string(), "0.0.0.0:8080"),
            other => panic!("{other:?}"),
        }
        // `settings` may be left out.
        let c = parse("adapters:\n  - type: prometheus\n    settings: {}\n").unwrap();
        assert_eq!(c.adapters, vec![AdapterConfig::Prometheus(Default::default())]);
    }

    /// Each error names the file, the key and the line.
    #[test]
    fn errors_name_file_key_and_line() {
        let cases = [
            (
                "adapters:\n  - type: influx\n    settings:\n      port: \"1\"\n",
                &["config.yaml", "adapters[0]", "influx", "line 2"][..],
            ),
            (
                "adapters:\n  - type: prometheus\n    settings:\n      port: \"80a80\"\n",
                &["config.yaml", "adapters[0].settings.port", "bad port `80a80`", "line 4"][..],
            ),
            (
                "adapters:\n  - type: prometheus\n    settings:\n      port: 70000\n",
                &["adapters[0].settings.port", "bad port `70000`", "line 4"][..],
            ),
            (
                "adapters:\n  - type: prometheus\n    settings:\n      prot: 8080\n",
                &["adapters[0].settings", "unknown field `prot`", "line 4"][..],
            ),
            ("log_levle: info\n", &["unknown field `log_levle`", "line 1"][..]),
            ("adapters:\n  - type: prometheus\n    settings: {port: 1\n", &["config.yaml", "line 4"][..]),
            ("adapters:\n  - type: prometheus\n\tsettings:\n", &["config.yaml", "line 3"][..]),
            ("adapters:\n  - type: prometheus\n", &["adapters[0]", "missing field `settings`", "line 2"][..]),
            (
                "adapters:\n  - type: datadog\n    settings:\n      host: x\n      flush_interval: soon\n",
                &["adapters[0].settings.flush_interval", "bad duration `soon`", "line 5"][..],
            ),
            (
                "adapters:\n  - type: prometheus\n    settings:\n      listen: localhost\n",
                &["adapters[0].settings.listen", "bad listen address `localhost`", "line 4"][..],
            ),
            (
                "adapters:\n  - type: datadog\n    settings:\n      tags: [\"a:b\", \"x|y\"]\n",
                &["adapters[0].settings.tags[1]", "bad tag `x|y`", "line 4"][..],
            ),
            ("adapters: []\n", &["adapters", "empty", "line 1"][..]),
            ("log_level: loud\n", &["log_level", "loud", "line 1"][..]),
            ("top_n: 1000000\n", &["top_n", "bad top_n `1000000`", "line 1"][..]),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            for w in want {
                assert!(err.contains(w), "error for {text:?} lacks {w:?}: {err}");
            }
        }
    }
}
