//! The `gespann` binary: a thin shell over the libraries (recorder, analyze, replay).
//! It owns argument parsing, logging, exit codes and error printing (`{:#}`: the whole chain).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gespann",
    version,
    about = "Record, analyze and replay every TCP connection and UDP flow on a Linux host"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze recordings with SQL reports.
    Analyze(gespann_analyze::cli::AnalyzeArgs),
    /// Replay a recording (or live kernel events) as Prometheus / DogStatsD metrics.
    Replay(gespann_replay::cli::ReplayArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Analyze(args) => gespann_analyze::cli::run(args).map_err(Into::into),
        Command::Replay(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(gespann_replay::cli::run(args))
                    .map_err(Into::into)
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gespann: {e:#}");
            ExitCode::FAILURE
        }
    }
}
