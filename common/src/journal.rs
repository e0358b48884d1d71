//! Crash safety: what makes a recording survive `SIGKILL`.
//!
//! A Parquet file is only readable once its footer is written, at the end. So while recording,
//! the writer ends a row group about every second and the recorder saves, next to the output,
//! a *checkpoint*: the length of the data written so far and a footer describing it
//! (`<output>.journal`, replaced atomically, fsync'd after the data). A normal end deletes it.
//! After a crash, [`recover`] cuts the output at that length and appends that footer: a
//! complete recording of everything up to the last checkpoint. Nothing is encoded twice.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::recording::{FormatError, create_private, inspect};

const MAGIC: &[u8; 8] = b"GSPCKPT1";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write checkpoint `{path}`")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read `{path}`")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{path}` is not a Gespann checkpoint journal")]
    NotAJournal { path: PathBuf },
    #[error(
        "`{output}` holds {have} bytes, fewer than the {need} the checkpoint describes: it was truncated after the crash"
    )]
    ShortData { output: PathBuf, have: u64, need: u64 },
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Where a recording's checkpoint journal lives; defined with the recording format, whose reader
/// names it in its "killed before finishing" hint.
pub use crate::recording::journal_path;

/// Saves a checkpoint: `data` (the recording being written) is synced first, then the footer
/// is written to a temporary file and renamed over the journal, so a crash at any moment leaves
/// either the previous checkpoint or this one.
pub fn save_checkpoint(journal: &Path, data: &File, data_len: u64, footer: &[u8]) -> Result<(), JournalError> {
    let werr = |source| JournalError::Write { path: journal.to_owned(), source };
    data.sync_data().map_err(werr)?;
    let mut tmp = journal.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = create_private(&tmp, true)?;
    f.write_all(MAGIC).map_err(werr)?;
    f.write_all(&data_len.to_le_bytes()).map_err(werr)?;
    f.write_all(footer).map_err(werr)?;
    f.sync_data().map_err(werr)?;
    std::fs::rename(&tmp, journal).map_err(werr)?;
    Ok(())
}

/// What [`recover`] rebuilt.
#[derive(Debug)]
pub struct Recovered {
    pub data_bytes: u64,
    pub discarded_bytes: u64,
}

/// Rebuilds the recording `output` in place from its checkpoint `journal`: cuts it to the
/// checkpointed length and appends the checkpointed footer. Rows written after the last
/// checkpoint (at most about a second) are discarded and counted in `discarded_bytes`.
pub fn recover(journal: &Path, output: &Path) -> Result<Recovered, JournalError> {
    let rerr = |path: &Path, source| JournalError::Read { path: path.to_owned(), source };
    let mut j = Vec::new();
    File::open(journal).and_then(|mut f| f.read_to_end(&mut j)).map_err(|e| rerr(journal, e))?;
    if j.len() < 16 + 8 || &j[..8] != MAGIC {
        return Err(JournalError::NotAJournal { path: journal.to_owned() });
    }
    let data_len = u64::from_le_bytes(j[8..16].try_into().expect("8 bytes"));
    let footer = &j[16..];
    if &footer[footer.len() - 4..] != b"PAR1" {
        return Err(JournalError::NotAJournal { path: journal.to_owned() });
    }
    let f = std::fs::OpenOptions::new().write(true).open(output).map_err(|e| rerr(output, e))?;
    let have = f.metadata().map_err(|e| rerr(output, e))?.len();
    if have < data_len {
        return Err(JournalError::ShortData { output: output.to_owned(), have, need: data_len });
    }
    let werr = |source| JournalError::Write { path: output.to_owned(), source };
    f.set_len(data_len).map_err(werr)?;
    let mut f = f;
    use std::io::Seek;
    f.seek(std::io::SeekFrom::End(0)).map_err(werr)?;
    f.write_all(footer).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    // Prove it: the result must open as a recording.
    inspect(output)?;
    Ok(Recovered { data_bytes: data_len, discarded_bytes: have - data_len })
}
