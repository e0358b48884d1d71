//! The `gespann` binary: a thin shell over the libraries (recorder, analyze, replay, anonymize).
//! It owns argument parsing, logging (`RUST_LOG`), exit codes and error printing (`{:#}`: the
//! whole chain on one line).

mod anonymize;
mod doctor;
mod record;
mod recover;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gespann",
    version,
    about = "Record, analyze and replay every TCP connection and UDP flow on a Linux host",
    long_about = "Gespann records every TCP connection and UDP flow on this host (open, close, reset, \
failed attempt, bytes, packets, retransmits, RTT, duration, owning process) with eBPF into one \
Parquet file, then answers questions about it with SQL reports, or replays it as Prometheus and \
DogStatsD metrics.",
    after_help = "Typical use:
  sudo gespann record --duration 5m        # capture.parquet
  gespann analyze capture.parquet          # the incident report
  gespann replay capture.parquet           # metrics on :8080/metrics

Logging: RUST_LOG=debug. Exit codes: 0 success, 1 failure, 2 bad usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record connections and flows into a Parquet file (needs root).
    Record(record::RecordArgs),
    /// Analyze recordings with SQL reports.
    Analyze(gespann_analyze::cli::AnalyzeArgs),
    /// Replay a recording (or live kernel events) as Prometheus / DogStatsD metrics.
    Replay(gespann_replay::cli::ReplayArgs),
    /// Check whether this machine can record (kernel, BTF, tracepoints, privileges).
    Doctor(doctor::DoctorArgs),
    /// Rebuild a recording from the crash journal of a killed recorder.
    Recover(recover::RecoverArgs),
    /// Write a shareable copy of a recording: addresses and names replaced, every number kept.
    Anonymize(anonymize::AnonymizeArgs),
    /// Run a Ballista scheduler, for `gespann analyze --cluster` over many machines.
    Scheduler(gespann_cluster::SchedulerArgs),
    /// Run a Ballista executor: registers with a scheduler and runs its queries' tasks.
    Executor(gespann_cluster::ExecutorArgs),
}

/// A panic is a bug, here or in a library: one line naming it instead of the default report
/// (which `RUST_BACKTRACE` brings back, with the backtrace). A panic on a worker thread (the
/// query engine's, say) is also returned as the failing operation's error, which ends the run.
fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    std::panic::set_hook(Box::new(|info| {
        // Parallel workers tend to hit the same bug together: name it once.
        if REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        eprintln!("gespann: internal error (a bug) in thread `{thread}` at {at}: {msg}");
    }));
}

fn main() -> ExitCode {
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let cli = Cli::parse();
    // RUST_LOG wins; otherwise a replay config's `log_level`; otherwise warnings only.
    let default_level = match &cli.command {
        Command::Replay(args) => args.log_level().unwrap_or("warn"),
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    install_panic_hook();
    let runtime = || tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result: anyhow::Result<bool> = match cli.command {
        Command::Record(args) => {
            runtime().map_err(Into::into).and_then(|rt| rt.block_on(record::run(args, command_line))).map(|()| true)
        }
        Command::Analyze(args) => gespann_analyze::cli::run(args).map_err(Into::into).map(|()| true),
        Command::Replay(args) => runtime()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(gespann_replay::cli::run(args)).map_err(Into::into))
            .map(|()| true),
        Command::Doctor(args) => runtime().map_err(Into::into).and_then(|rt| {
            let _guard = rt.enter();
            doctor::run(args)
        }),
        Command::Recover(args) => recover::run(args).map(|()| true),
        Command::Anonymize(args) => anonymize::run(args).map(|()| true),
        Command::Scheduler(args) => gespann_cluster::BoundScheduler::bind(&args)
            .and_then(|s| {
                if let Some(addr) = s.local_addr() {
                    eprintln!("gespann scheduler: listening on {addr}");
                }
                s.serve()
            })
            .map_err(Into::into)
            .map(|()| true),
        Command::Executor(args) => args
            .check()
            .and_then(|(host, port, _)| {
                eprintln!("gespann executor: Flight on {}, registering with the scheduler at {host}:{port}", args.bind);
                gespann_cluster::run_executor(&args)
            })
            .map_err(Into::into)
            .map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The error and each of its causes, once each: no library message embeds its cause.
            eprintln!("gespann: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
