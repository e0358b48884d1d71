//! `gespann recover`: rebuilds a recording from the crash journal of a killed recorder.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  gespann recover capture.parquet                # or capture.parquet.journal: repairs capture.parquet in place")]
pub struct RecoverArgs {
    /// The journal (`<recording>.journal`), or the recording it belongs to.
    pub journal: PathBuf,
}

pub fn run(args: RecoverArgs) -> Result<()> {
    let (journal, output) = match args.journal.extension() {
        Some(e) if e == "journal" => (args.journal.clone(), args.journal.with_extension("")),
        _ => (gespann_common::journal::journal_path(&args.journal), args.journal.clone()),
    };
    let r = gespann_common::journal::recover(&journal, &output)
        .with_context(|| format!("cannot recover `{}`", output.display()))?;
    std::fs::remove_file(&journal).with_context(|| format!("cannot remove `{}`", journal.display()))?;
    eprintln!(
        "gespann: `{}` is a complete recording again ({} bytes of rows kept, {} bytes after the last checkpoint dropped)",
        output.display(),
        r.data_bytes,
        r.discarded_bytes
    );
    Ok(())
}
