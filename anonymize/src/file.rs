//! A whole recording: rows through the [`Anonymizer`], file metadata rewritten, the result
//! written next to the output and moved into place only when complete (an interrupted run
//! leaves no half file, and never touches the input).

use std::path::{Path, PathBuf};

use gespann_common::recording::inspect;
use gespann_common::schema::{SCHEMA_VERSION, meta as key};
use gespann_common::{RecordingMeta, RecordingReader, RecordingWriter};

use crate::error::AnonymizeError;
use crate::key::Key;
use crate::rows::Anonymizer;

/// What an anonymized recording says its command line was: the way it was made, nothing of
/// the original (which names processes, containers and ports to filter on).
pub const COMMAND_LINE: &str = "gespann anonymize (crypto-pan+hmac-sha256)";

/// How addresses and names were replaced: the output's `gespann.anonymized`.
pub const METHOD: &str = "crypto-pan+hmac-sha256";

/// The footer keys [`RecordingMeta`] carries; the writer writes them from it.
const META_KEYS: [&str; 10] = [
    key::SCHEMA_VERSION,
    key::VERSION,
    key::HOSTNAME,
    key::KERNEL,
    key::STARTED_AT,
    key::ENDED_AT,
    key::EVENTS_LOST,
    key::COMMAND_LINE,
    key::SAMPLE_INTERVAL_MS,
    key::ANONYMIZED,
];

/// What [`anonymize`] did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub rows: u64,
    /// Distinct addresses replaced, and kept (loopback, unspecified).
    pub addresses: usize,
    pub addresses_kept: usize,
    /// Distinct process names and distinct workloads (cgroup, container, pod) replaced.
    pub comms: usize,
    pub workloads: usize,
    /// Bytes of the anonymized recording.
    pub bytes: u64,
    /// The input's schema version. The output is always the current one; a version 1 input
    /// did not record the workload columns, which the output then has empty (the host's).
    pub input_schema_version: u32,
    /// Footer keys of the input that were not copied: anything but the known facts and counts.
    pub dropped_keys: Vec<String>,
}

/// The metadata of the anonymized recording: the host name replaced, the command line
/// replaced by [`COMMAND_LINE`], `gespann.anonymized` set to [`METHOD`], everything else (versions, kernel, times, events lost, sample
/// interval) as it was.
pub fn anonymized_meta(meta: &RecordingMeta, a: &Anonymizer) -> RecordingMeta {
    RecordingMeta {
        schema_version: SCHEMA_VERSION,
        hostname: a.names().hostname(&meta.hostname),
        command_line: COMMAND_LINE.to_owned(),
        anonymized: Some(METHOD.to_owned()),
        ..meta.clone()
    }
}

/// Anonymizes the recording `input` into `output` (mode 0600), which must not exist unless
/// `force`. `progress` is told how many rows are done after each batch.
pub fn anonymize(
    input: &Path,
    output: &Path,
    key: &Key,
    force: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, AnonymizeError> {
    let (meta, _, schema) = inspect(input)?;
    if let (Ok(i), Ok(o)) = (std::fs::canonicalize(input), std::fs::canonicalize(output))
        && i == o
    {
        return Err(AnonymizeError::SameFile { input: input.to_owned(), output: output.to_owned() });
    }
    if !force && output.symlink_metadata().is_ok() {
        return Err(AnonymizeError::Exists { path: output.to_owned() });
    }
    // Counts the closing metadata carries (`gespann.late_rows`, ...) are copied; any other key
    // could say anything, so it is left out.
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut dropped_keys = Vec::new();
    for (k, v) in schema.metadata() {
        if META_KEYS.contains(&k.as_str()) || k == "ARROW:schema" {
            continue;
        }
        match v.trim().parse::<u64>() {
            Ok(n) if k.starts_with("gespann.") => counts.push((k.clone(), n)),
            _ => dropped_keys.push(k.clone()),
        }
    }
    counts.sort();
    dropped_keys.sort();

    let mut anonymizer = Anonymizer::new(key);
    let out_meta = anonymized_meta(&meta, &anonymizer);
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    // The directory's own error says why best (tempfile's adds the random name it tried).
    let temporary = |source| AnonymizeError::Temporary { dir: dir.clone(), source };
    std::fs::metadata(&dir).map_err(temporary)?;
    let tmp = tempfile::Builder::new()
        .prefix(".gespann-anonymize-")
        .suffix(".parquet")
        .tempfile_in(&dir)
        .map_err(|e| temporary(std::io::Error::from(e.kind())))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut reader = RecordingReader::open(input)?;
    let mut writer = RecordingWriter::new(output, file, &out_meta)?;
    let borrowed: Vec<(&str, u64)> = counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    writer.set_counts(&borrowed);
    let mut rows = 0u64;
    while let Some(batch) = reader.next_events() {
        for e in batch? {
            writer.push(&anonymizer.event(&e))?;
            rows += 1;
        }
        progress(rows);
    }
    let written = writer.finish(&meta.ended_at, meta.events_lost)?;
    let write_error = |source| AnonymizeError::Write { path: output.to_owned(), source };
    writer.sink().sync_all().map_err(write_error)?;
    drop(writer);
    let placed = if force { tmp_path.persist(output) } else { tmp_path.persist_noclobber(output) };
    placed.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            AnonymizeError::Exists { path: output.to_owned() }
        } else {
            write_error(e.error)
        }
    })?;
    let seen = anonymizer.seen();
    Ok(Summary {
        rows,
        addresses: seen.addresses,
        addresses_kept: seen.addresses_kept,
        comms: seen.comms,
        workloads: seen.workloads,
        bytes: written.bytes,
        input_schema_version: meta.schema_version,
        dropped_keys,
    })
}
