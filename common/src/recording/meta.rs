//! The file-level facts of a recording ([`RecordingMeta`]) and their Parquet key-value pairs.
//!
//! Apart from the rows because they travel differently: the pairs known at the start go into the
//! writer's properties (and into every checkpoint footer), the two known only at the end
//! (`ended_at`, `events_lost`) are appended when a footer is written, and the reader turns the
//! pairs of a footer back into [`RecordingMeta`], naming what is missing.

use std::collections::HashMap;
use std::path::Path;

use parquet::file::metadata::KeyValue;

use super::error::FormatError;
use crate::schema::{SCHEMA_VERSION, meta};

/// File-level facts stored as Parquet key-value metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordingMeta {
    pub schema_version: u32,
    pub version: String,
    pub hostname: String,
    pub kernel: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub ended_at: String,
    pub events_lost: u64,
    pub command_line: String,
    pub sample_interval_ms: Option<u64>,
    /// How the recording was anonymized (`gespann.anonymized`), `None` for an original.
    pub anonymized: Option<String>,
}

impl RecordingMeta {
    /// The pairs known when the file starts (and so written into every checkpoint's footer).
    pub(crate) fn start_pairs(&self) -> Vec<KeyValue> {
        let mut kv = vec![
            KeyValue::new(meta::SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
            KeyValue::new(meta::VERSION.into(), self.version.clone()),
            KeyValue::new(meta::HOSTNAME.into(), self.hostname.clone()),
            KeyValue::new(meta::KERNEL.into(), self.kernel.clone()),
            KeyValue::new(meta::STARTED_AT.into(), self.started_at.clone()),
            KeyValue::new(meta::COMMAND_LINE.into(), self.command_line.clone()),
        ];
        if let Some(ms) = self.sample_interval_ms {
            kv.push(KeyValue::new(meta::SAMPLE_INTERVAL_MS.into(), ms.to_string()));
        }
        if let Some(how) = &self.anonymized {
            kv.push(KeyValue::new(meta::ANONYMIZED.into(), how.clone()));
        }
        kv
    }

    /// Reads the metadata of a recording's footer; errors name what is missing.
    pub fn from_key_values(path: &Path, kv: &HashMap<String, String>) -> Result<Self, FormatError> {
        let need = |key: &str| {
            kv.get(key).cloned().ok_or_else(|| FormatError::NotARecording {
                path: path.to_owned(),
                missing: format!("no `{key}` in the file metadata"),
            })
        };
        let version_text = need(meta::SCHEMA_VERSION)?;
        let schema_version: u32 = version_text.trim().parse().map_err(|_| FormatError::NotARecording {
            path: path.to_owned(),
            missing: format!("`{}` is `{version_text}`, not a number", meta::SCHEMA_VERSION),
        })?;
        if schema_version > SCHEMA_VERSION {
            return Err(FormatError::NewerSchema { path: path.to_owned(), found: schema_version });
        }
        let events_lost = match kv.get(meta::EVENTS_LOST) {
            Some(v) => v.trim().parse().map_err(|_| FormatError::BadValue {
                path: path.to_owned(),
                column: "gespann.events_lost",
                what: format!("`{v}` is not a number"),
            })?,
            None => 0,
        };
        Ok(RecordingMeta {
            schema_version,
            version: kv.get(meta::VERSION).cloned().unwrap_or_default(),
            hostname: kv.get(meta::HOSTNAME).cloned().unwrap_or_default(),
            kernel: kv.get(meta::KERNEL).cloned().unwrap_or_default(),
            started_at: kv.get(meta::STARTED_AT).cloned().unwrap_or_default(),
            ended_at: kv.get(meta::ENDED_AT).cloned().unwrap_or_default(),
            events_lost,
            command_line: kv.get(meta::COMMAND_LINE).cloned().unwrap_or_default(),
            sample_interval_ms: kv.get(meta::SAMPLE_INTERVAL_MS).and_then(|v| v.parse().ok()),
            anonymized: kv.get(meta::ANONYMIZED).cloned(),
        })
    }
}

/// The pairs only known at the end: appended to the start pairs by a checkpoint and by
/// [`RecordingWriter::finish`](super::RecordingWriter::finish).
pub(crate) fn end_pairs(ended_at: &str, events_lost: u64) -> [KeyValue; 2] {
    [
        KeyValue::new(meta::ENDED_AT.into(), ended_at.to_string()),
        KeyValue::new(meta::EVENTS_LOST.into(), events_lost.to_string()),
    ]
}
