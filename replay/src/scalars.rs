//! The checked YAML scalars of the configuration file: durations, packet sizes, tags, and the
//! helper that raises a bad value inside serde_yaml's scalar context (so the message carries the
//! key path and the line).
//!
//! Its own module because both the top-level configuration ([`crate::config`]) and each
//! adapter's settings (`adapters/*/config.rs`) read these scalars, while the top level also
//! embeds the adapters' settings: keeping the scalars here means neither side imports the other
//! back.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// Deserializes a scalar through `check`, raising its error inside serde_yaml's scalar context
/// so that the message carries the key path and the line of the value.
pub(crate) fn checked_scalar<'de, D: Deserializer<'de>, T>(
    d: D,
    expecting: &'static str,
    check: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct V<T> {
        expecting: &'static str,
        check: fn(&str) -> Result<T, String>,
    }
    impl<T> de::Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.check)(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
    }
    d.deserialize_any(V { expecting, check })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("bad duration `{s}`: {e} (write e.g. 30s, 500ms)"))
}

pub(crate) fn human_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    checked_scalar(d, "a duration such as 30s", parse_duration)
}

pub(crate) fn nonzero_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    checked_scalar(d, "a duration such as 10s", |s| match parse_duration(s)? {
        t if t.is_zero() => Err(format!("bad duration `{s}`: must be more than 0")),
        t => Ok(t),
    })
}

pub(crate) fn packet_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    checked_scalar(d, "a size in bytes, 64-65000", |s| match s.trim().parse::<usize>() {
        Ok(n) if (64..=65_000).contains(&n) => Ok(n),
        _ => Err(format!("bad max_packet_size `{s}`: expected 64-65000")),
    })
}

/// One DogStatsD tag, `key:value`.
struct Tag(String);

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_scalar(d, "a tag key:value", |t| {
            if t.is_empty() || t.contains([',', '|', '#', '\n', ' ']) {
                Err(format!("bad tag `{t}`: expected key:value without `,`, `|`, `#` or spaces"))
            } else {
                Ok(Tag(t.to_string()))
            }
        })
    }
}

pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<Tag>::deserialize(d)?.into_iter().map(|t| t.0).collect())
}
