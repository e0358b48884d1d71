//! The crash journal: what makes a recording survive `SIGKILL`.
//!
//! A Parquet file is only readable once its footer is written, at the end. So while recording,
//! every second's rows are also appended to `<output>.journal` as a small, complete Parquet
//! file of their own (length-prefixed, fsync'd), whose metadata carries the losses counted so
//! far. A normal end deletes the journal. After a crash, [`recover`] rebuilds the recording from
//! the journal: everything up to the last checkpoint, about a second before the kill.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::Event;
use crate::recording::{FormatError, RecordingMeta, RecordingWriter, events_from_batch};
use crate::schema::meta;

const MAGIC: &[u8; 8] = b"GSPJRNL1";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write journal `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read journal `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{path}` is not a Gespann journal")]
    NotAJournal { path: PathBuf },
    #[error("journal `{path}` holds no complete checkpoint: nothing to recover")]
    Empty { path: PathBuf },
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// The journal path that belongs to a recording.
pub fn journal_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

pub struct JournalWriter {
    path: PathBuf,
    file: File,
    meta: RecordingMeta,
    chunk: Option<RecordingWriter<Vec<u8>>>,
}

impl JournalWriter {
    pub fn create(path: &Path, meta: &RecordingMeta) -> Result<Self, JournalError> {
        let mut file = crate::recording::create_private(path, true)?;
        file.write_all(MAGIC).map_err(|source| JournalError::Write { path: path.to_owned(), source })?;
        Ok(JournalWriter { path: path.to_owned(), file, meta: meta.clone(), chunk: None })
    }

    pub fn push(&mut self, e: &Event) -> Result<(), JournalError> {
        if self.chunk.is_none() {
            self.chunk = Some(RecordingWriter::new(&self.path, Vec::new(), &self.meta)?);
        }
        self.chunk.as_mut().expect("just set").push(e)?;
        Ok(())
    }

    /// Appends the rows pushed since the last checkpoint and makes them durable.
    pub fn checkpoint(&mut self, ended_at: &str, events_lost: u64) -> Result<(), JournalError> {
        let Some(mut chunk) = self.chunk.take() else {
            return Ok(());
        };
        chunk.finish(ended_at, events_lost)?;
        let bytes = chunk.sink();
        let werr = |source| JournalError::Write { path: self.path.clone(), source };
        self.file.write_all(&(bytes.len() as u64).to_le_bytes()).map_err(werr)?;
        self.file.write_all(bytes).map_err(werr)?;
        self.file.sync_data().map_err(werr)?;
        Ok(())
    }

    /// Removes the journal (the recording it protected was completed).
    pub fn remove(self) -> Result<(), JournalError> {
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(|source| JournalError::Write { path: self.path, source })
    }
}

/// What [`recover`] rebuilt.
#[derive(Debug)]
pub struct Recovered {
    pub rows: u64,
    pub checkpoints: usize,
    pub events_lost: u64,
    pub torn_tail: bool,
}

/// Rebuilds a recording at `output` from a journal. A torn last checkpoint (the kill came while
/// it was written) is skipped and reported.
pub fn recover(journal: &Path, output: &Path, force: bool) -> Result<Recovered, JournalError> {
    let rerr = |source| JournalError::Read { path: journal.to_owned(), source };
    let mut r = BufReader::new(File::open(journal).map_err(rerr)?);
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(JournalError::NotAJournal { path: journal.to_owned() });
    }
    let mut chunks = Vec::new();
    let mut torn_tail = false;
    loop {
        let mut len = [0u8; 8];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(rerr(e)),
        }
        let len = u64::from_le_bytes(len) as usize;
        let mut buf = vec![0u8; len.min(1 << 32)];
        if r.read_exact(&mut buf).is_err() {
            torn_tail = true;
            break;
        }
        match ParquetRecordBatchReaderBuilder::try_new(Bytes::from(buf)) {
            Ok(b) => chunks.push(b),
            Err(_) => {
                torn_tail = true;
                break;
            }
        }
    }
    if chunks.is_empty() {
        return Err(JournalError::Empty { path: journal.to_owned() });
    }
    let kv = |b: &ParquetRecordBatchReaderBuilder<Bytes>| -> std::collections::HashMap<String, String> {
        b.metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kvs| kvs.iter().filter_map(|k| Some((k.key.clone(), k.value.clone()?))).collect())
            .unwrap_or_default()
    };
    let first = RecordingMeta::from_key_values(journal, &kv(&chunks[0]))?;
    let last_kv = kv(chunks.last().expect("non-empty"));
    let last = RecordingMeta::from_key_values(journal, &last_kv)?;
    let mut meta = first;
    meta.command_line = format!("{} (recovered from {})", meta.command_line, journal.display());
    let checkpoints = chunks.len();
    let mut w = RecordingWriter::create(output, force, &meta)?;
    for b in chunks {
        let reader = b.build().map_err(|source| FormatError::Corrupt { path: journal.to_owned(), source })?;
        for batch in reader {
            let batch = batch.map_err(|e| FormatError::Corrupt {
                path: journal.to_owned(),
                source: parquet::errors::ParquetError::ArrowError(e.to_string()),
            })?;
            for e in events_from_batch(journal, &batch)? {
                w.push(&e)?;
            }
        }
    }
    let ended = last_kv.get(meta::ENDED_AT).cloned().unwrap_or_default();
    let summary = w.finish(&ended, last.events_lost)?;
    w.sink().sync_all().map_err(|source| JournalError::Write { path: output.to_owned(), source })?;
    Ok(Recovered { rows: summary.rows, checkpoints, events_lost: last.events_lost, torn_tail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::RecordingReader;

    #[test]
    fn a_killed_recording_is_rebuilt_from_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cap.parquet");
        let jpath = journal_path(&out);
        let meta = RecordingMeta { hostname: "h".into(), started_at: "s".into(), ..Default::default() };
        let mut j = JournalWriter::create(&jpath, &meta).unwrap();
        let events: Vec<Event> = (0..10).map(crate::recording::tests::sample_event).collect();
        for e in &events[..6] {
            j.push(e).unwrap();
        }
        j.checkpoint("t1", 1).unwrap();
        for e in &events[6..] {
            j.push(e).unwrap();
        }
        j.checkpoint("t2", 4).unwrap();
        drop(j);
        // A torn third checkpoint: a length with half its bytes.
        let mut f = std::fs::OpenOptions::new().append(true).open(&jpath).unwrap();
        f.write_all(&1000u64.to_le_bytes()).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        drop(f);

        let rec = recover(&jpath, &out, false).unwrap();
        assert_eq!(rec.rows, 10);
        assert_eq!(rec.checkpoints, 2);
        assert!(rec.torn_tail);
        let r = RecordingReader::open(&out).unwrap();
        assert_eq!(r.meta.events_lost, 4);
        assert_eq!(r.meta.ended_at, "t2");
        assert_eq!(r.meta.hostname, "h");
        assert_eq!(r.read_all().unwrap(), events);
    }

    #[test]
    fn foreign_files_are_not_journals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.journal");
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(recover(&p, &dir.path().join("o.parquet"), false), Err(JournalError::NotAJournal { .. })));
    }
}
