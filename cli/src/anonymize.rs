//! `gespann anonymize`: a shareable copy of a recording, with the progress bar and the closing
//! line. The work is `gespann_anonymize::anonymize`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use gespann_anonymize::{Key, anonymize};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `gespann anonymize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  head -c 32 /dev/urandom > anon.key && chmod 600 anon.key     # once; keep it private
  gespann anonymize capture.parquet shared.parquet --key anon.key
  gespann anonymize before.parquet before-anon.parquet --key anon.key
  gespann anonymize after.parquet after-anon.parquet --key anon.key
  gespann analyze --diff before-anon.parquet after-anon.parquet  # compares as the originals do

Addresses: two addresses that share their first k bits still share exactly k bits (one /24
stays one /24; IPv6 alike). Loopback (127.0.0.0/8, ::1) and the unspecified address (0.0.0.0,
::) are kept as they are: they name no one, and say a connection stayed on the host or had no
address. Keeping them also keeps how many leading bits any address shares with them.
Names: `comm-<hex>`, `host-<hex>`, `ctr-<hex>`, `pod-<hex>`, `ns-<hex>`; a container id stays 64
hex digits and a pod uid a uid; cgroup paths keep their layout. Kept as they are: ports, pids,
cgroup ids, network namespace inodes, every counter, RTTs and durations, the kernel's words
(state, errno, reset reason) and the file's versions, kernel, window and events lost. The command
line is replaced.

The same key gives the same replacements in every recording, so recordings anonymized with it
can be analyzed and compared together. Keep the key secret: with it, a guessed name or address
can be checked. A key file has at least 32 bytes; every byte counts.")]
pub struct AnonymizeArgs {
    /// The recording to anonymize.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Where to write the anonymized recording (mode 0600).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// The secret key: a file of 32 or more random bytes.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: AnonymizeArgs) -> Result<()> {
    let key = Key::from_file(&args.key)?;
    let total = gespann_common::recording::inspect(&args.input).map(|(_, rows, _)| rows).unwrap_or(0);
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(total.max(1));
        b.set_style(
            ProgressStyle::with_template("{spinner} anonymizing [{bar:30}] {human_pos}/{human_len} rows · {eta} left")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    });
    let done = anonymize(&args.input, &args.output, &key, args.force, &mut |rows| {
        if let Some(b) = &bar {
            b.set_position(rows);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let s = done?;
    if s.input_schema_version < 2 {
        eprintln!(
            "gespann: note: `{}` is a schema version {} recording, which has no workload columns; the \
             anonymized one (version {}) has them empty, so its reports show every connection on the host",
            args.input.display(),
            s.input_schema_version,
            gespann_common::schema::SCHEMA_VERSION
        );
    }
    if !s.dropped_keys.is_empty() {
        eprintln!("gespann: note: metadata left out (not a known Gespann key): {}", s.dropped_keys.join(", "));
    }
    eprintln!(
        "gespann: wrote `{}`: {} rows; replaced {} addresses (kept {}: loopback, unspecified), {} process names, {} workloads",
        args.output.display(),
        s.rows,
        s.addresses,
        s.addresses_kept,
        s.comms,
        s.workloads
    );
    Ok(())
}
