//! One run of `gespann replay`: open the source, start the adapters, feed events to the
//! processor, then keep serving (or exit) and shut down cleanly.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gespann_common::FormatError;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::adapters::{Adapter, AdapterError, MetricsHandle, Phase};
use crate::config::{Config, ConfigError};
use crate::processor::{Processor, Totals};
use crate::source::{Live, LiveError, LiveOptions, ReplayStats, Speed, open_recordings, replay_recordings};

/// Where the events come from.
#[derive(Clone, Debug)]
pub enum Input {
    /// Recordings: files, globs, directories or object-store URLs ([`gespann_inputs::expand`]),
    /// merged in time order.
    Recordings {
        inputs: Vec<String>,
        speed: Speed,
    },
    Live(LiveOptions),
}

/// Everything a run needs besides the adapters.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: Config,
    pub input: Input,
    /// Return when the replay reaches the end instead of serving until `stop`.
    pub exit_on_end: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub totals: Totals,
    /// For a recording: what was read and how long it took.
    pub replay: Option<ReplayStats>,
}

/// Everything `gespann replay` can fail on; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Recording(#[from] FormatError),
    #[error(transparent)]
    Input(#[from] gespann_inputs::InputError),
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("the {0} adapter stopped unexpectedly")]
    AdapterStopped(&'static str),
    #[error("the replay thread panicked")]
    Panicked,
}

/// What an adapter task returns: its name and how it ended.
type AdapterEnd = (&'static str, Result<(), AdapterError>);
type AdapterSet = JoinSet<AdapterEnd>;

fn adapter_ended(r: Option<Result<AdapterEnd, tokio::task::JoinError>>) -> ReplayError {
    match r {
        Some(Ok((_, Err(e)))) => e.into(),
        Some(Ok((name, Ok(())))) => ReplayError::AdapterStopped(name),
        Some(Err(_)) | None => ReplayError::Panicked,
    }
}

/// The next adapter task to end; never completes when there are none.
async fn adapter_end(tasks: &mut AdapterSet) -> Option<Result<AdapterEnd, tokio::task::JoinError>> {
    if tasks.is_empty() { std::future::pending().await } else { tasks.join_next().await }
}

/// Runs until the recording ends (with `exit_on_end`) or `stop` completes (Ctrl-C, SIGTERM),
/// then stops the adapters, which publish their last values.
pub async fn run(
    opts: RunOptions,
    adapters: Vec<Box<dyn Adapter>>,
    stop: impl Future<Output = ()>,
) -> Result<Outcome, ReplayError> {
    // Open the recordings before binding anything: a bad file fails first.
    let (metrics, rows) = match &opts.input {
        Input::Recordings { inputs, .. } => {
            let r = open_recordings(inputs, &opts.config.processor).await?;
            (MetricsHandle::of_hosts(r.hosts), Some((r.rows, r.total_rows, r.names)))
        }
        Input::Live(_) => (MetricsHandle::new(Processor::new(opts.config.processor.clone())), None),
    };

    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut tasks: AdapterSet = JoinSet::new();
    for a in adapters {
        let name = a.name();
        match a.start(metrics.clone(), phase_rx.clone()) {
            Ok(task) => {
                tasks.spawn(async move { (name, task.await) });
            }
            Err(e) => {
                let _ = phase_tx.send(Phase::Stopping);
                while tasks.join_next().await.is_some() {}
                return Err(e.into());
            }
        }
    }

    tokio::pin!(stop);
    let mut outcome = Outcome::default();
    let main: Result<(), ReplayError> = async {
        match (&opts.input, rows) {
            (Input::Recordings { speed, .. }, Some((rows, total, names))) => {
                tracing::info!(inputs = %names, rows = total, ?speed, "replaying");
                let flag = Arc::new(AtomicBool::new(false));
                let (m, f) = (metrics.clone(), flag.clone());
                let speed = *speed;
                let mut h = tokio::task::spawn_blocking(move || replay_recordings(rows, &m, speed, &f));
                let mut early: Option<ReplayError> = None;
                let joined = tokio::select! {
                    r = &mut h => r,
                    _ = &mut stop => { flag.store(true, Ordering::Relaxed); h.await }
                    r = adapter_end(&mut tasks) => {
                        flag.store(true, Ordering::Relaxed);
                        early = Some(adapter_ended(r));
                        h.await
                    }
                };
                let stats = joined.map_err(|_| ReplayError::Panicked)??;
                if let Some(e) = early {
                    return Err(e);
                }
                let rate = stats.events as f64 / stats.elapsed.as_secs_f64().max(1e-9);
                tracing::info!(
                    events = stats.events,
                    seconds = stats.elapsed.as_secs_f64(),
                    events_per_second = rate as u64,
                    complete = stats.complete,
                    "replay done"
                );
                let complete = stats.complete;
                outcome.replay = Some(stats);
                if !complete {
                    return Ok(());
                }
                metrics.lock().set_finished();
                let _ = phase_tx.send(Phase::Finished);
                if opts.exit_on_end {
                    return Ok(());
                }
                tracing::info!("end of the recording: serving the final values until Ctrl-C");
                tokio::select! {
                    _ = &mut stop => Ok(()),
                    r = adapter_end(&mut tasks) => Err(adapter_ended(r)),
                }
            }
            (Input::Live(live_opts), _) => {
                let mut live = Live::start(live_opts)?;
                tracing::info!("exporting live events");
                let result = loop {
                    tokio::select! {
                        r = live.step(&metrics) => if let Err(e) = r { break Err(e.into()) },
                        _ = &mut stop => break Ok(()),
                        r = adapter_end(&mut tasks) => break Err(adapter_ended(r)),
                    }
                };
                let finished = live.finish(&metrics).map_err(ReplayError::from);
                result.and(finished)
            }
            (Input::Recordings { .. }, None) => unreachable!("the recordings are opened above"),
        }
    }
    .await;

    // Shut down: every adapter publishes its last values.
    let _ = phase_tx.send(Phase::Stopping);
    let mut first_err = main.err();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => {
                    first_err.get_or_insert(e.into());
                }
                Err(_) => {
                    first_err.get_or_insert(ReplayError::Panicked);
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("adapters did not stop within 10s");
    }
    outcome.totals = metrics.lock().totals();
    match first_err {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("stopping");
}
