//! `cargo xtask synth`: writes a synthetic recording. The generator itself is in the test kit
//! ([`gespann_testkit::synth`]), shared with the analyzer's tests, so the file a benchmark or a
//! snapshot test sees is the one this command writes; only the command line is here.

use std::path::PathBuf;

use anyhow::{Context, bail};
pub use gespann_testkit::synth::{SynthConfig, write};

/// Parses `10M`, `500k`, `2G` or a plain number.
pub fn parse_count(s: &str) -> anyhow::Result<u64> {
    let s = s.trim().replace('_', "");
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        Some('g' | 'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (&s[..], 1),
    };
    let n: f64 = num.parse().with_context(|| format!("`{s}` is not a count (e.g. 10M, 500k, 20000)"))?;
    if !(n.is_finite() && n >= 0.0) {
        bail!("`{s}` is not a count");
    }
    Ok((n * mult as f64) as u64)
}

const USAGE: &str = "usage: cargo xtask synth --events N[k|M] -o FILE [--seed N] [--events-lost N] [--force]";

/// `cargo xtask synth --events 10M -o FILE [--seed N] [--events-lost N] [--force]`
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut events = None;
    let mut out: Option<PathBuf> = None;
    let mut seed = 1u64;
    let mut lost = 0u64;
    let mut force = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--events" | "-n" => events = Some(parse_count(&val("--events")?)?),
            "-o" | "--output" => out = Some(PathBuf::from(val("-o")?)),
            "--seed" => seed = val("--seed")?.parse().context("--seed must be a number")?,
            "--events-lost" => lost = parse_count(&val("--events-lost")?)?,
            "--force" | "-f" => force = true,
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let events = events.with_context(|| format!("--events is required\n{USAGE}"))?;
    let out = out.with_context(|| format!("-o FILE is required\n{USAGE}"))?;
    let mut cfg = SynthConfig::new(events, seed);
    cfg.events_lost = lost;
    let t = std::time::Instant::now();
    let rows = write(&cfg, &out, force)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "synth: wrote {rows} events to `{}` ({:.1} MiB) in {:.1?}",
        out.display(),
        size as f64 / (1024.0 * 1024.0),
        t.elapsed()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_with_suffixes() {
        assert_eq!(parse_count("10M").unwrap(), 10_000_000);
        assert_eq!(parse_count("1.5k").unwrap(), 1_500);
        assert!(parse_count("ten").is_err());
    }
}
