//! The configuration file (YAML), as Gespann users already write it:
//!
//! ```yaml
//! log_level: info
//! idle_threshold: 30s      # optional: when an open connection counts as idle
//! top_n: 20                # optional: destinations / processes with their own series
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

/// A configuration problem; the message carries the key path and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad config `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
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

impl PartialEq for ProcessorOptions {
    fn eq(&self, o: &Self) -> bool {
        self.idle_threshold == o.idle_threshold && self.top_n == o.top_n
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

pub(crate) fn human_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim())
        .map_err(|e| de::Error::custom(format!("bad duration `{s}`: {e} (write e.g. 30s, 500ms)")))
}

pub(crate) fn nonzero_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let t = human_duration(d)?;
    if t.is_zero() {
        return Err(de::Error::custom("must be more than 0"));
    }
    Ok(t)
}

pub(crate) fn packet_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if !(64..=65_000).contains(&n) {
        return Err(de::Error::custom(format!(
            "bad max_packet_size `{n}`: expected 64-65000"
        )));
    }
    Ok(n)
}

pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let tags = Vec::<String>::deserialize(d)?;
    if let Some(t) = tags
        .iter()
        .find(|t| t.is_empty() || t.contains([',', '|', '#', '\n', ' ']))
    {
        return Err(de::Error::custom(format!(
            "bad tag `{t}`: expected key:value without `,`, `|`, `#` or spaces"
        )));
    }
    Ok(tags)
}

fn adapter_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<AdapterConfig>>, D::Error> {
    let v = Vec::<AdapterConfig>::deserialize(d)?;
    if v.is_empty() {
        return Err(de::Error::custom(
            "the list is empty (leave `adapters` out for the default Prometheus on :8080)",
        ));
    }
    Ok(Some(v))
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
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default, deserialize_with = "adapter_list")]
    adapters: Option<Vec<AdapterConfig>>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses config text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if text.trim().is_empty() {
            return Err(invalid("the file is empty (expected at least `adapters:`)".into()));
        }
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut c = Config {
            log_level: raw.log_level,
            ..Config::default()
        };
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
