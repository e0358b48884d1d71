//! `gespann recover`: rebuilds a recording from the crash journal of a killed recorder.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  gespann recover capture.parquet.journal        # writes capture.parquet (replacing the footer-less file)")]
pub struct RecoverArgs {
    /// The journal (`<recording>.journal`), or the recording it belongs to.
    pub journal: PathBuf,
    /// Where to write the recording (default: the journal's name without `.journal`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: RecoverArgs) -> Result<()> {
    let (journal, default_out) = match args.journal.extension() {
        Some(e) if e == "journal" => (args.journal.clone(), args.journal.with_extension("")),
        _ => (gespann_common::journal::journal_path(&args.journal), args.journal.clone()),
    };
    let output = args.output.unwrap_or(default_out);
    // The footer-less file the killed recorder left is exactly what recovery replaces.
    let r = gespann_common::journal::recover(&journal, &output, true)
        .with_context(|| format!("cannot recover `{}`", journal.display()))?;
    eprintln!(
        "gespann: recovered {} rows from {} checkpoints into `{}` (events lost: {}){}",
        r.rows,
        r.checkpoints,
        output.display(),
        r.events_lost,
        if r.torn_tail { "; the last, partly written checkpoint was skipped" } else { "" }
    );
    std::fs::remove_file(&journal).with_context(|| format!("cannot remove `{}`", journal.display()))?;
    Ok(())
}
