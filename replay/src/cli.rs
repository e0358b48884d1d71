//! `gespann replay`: the arguments and the entry point the binary calls.

use std::path::PathBuf;

use gespann_recorder::RecorderArgs;

use crate::config::Config;
use crate::run::{Input, RunOptions, shutdown_signal};
use crate::source::{LiveError, LiveOptions, Speed};

pub use crate::run::ReplayError;

/// Arguments of `gespann replay`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["inputs", "live"])))]
pub struct ReplayArgs {
    /// The recordings to replay (Parquet files written by `gespann record`): files, globs
    /// (quote them), directories, or object-store URLs (`s3://bucket/prefix/`, `gs://`, `az://`,
    /// `http(s)://`; configured by AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, … as for `gespann
    /// analyze`). Several are merged in time order; when they come from more than one host,
    /// every series gets a `host` label (the top N hosts by rows, the rest `other`).
    #[arg(value_name = "RECORDING", conflicts_with_all = ["pids", "comms", "ports", "buffer_mib", "sample_interval"])]
    pub inputs: Vec<String>,
    /// Replay speed: a factor of the original pacing (1 = as recorded, 20 = 20x faster), or
    /// `max` for as fast as possible.
    #[arg(long, default_value = "1", value_name = "FACTOR|max", conflicts_with = "live")]
    pub speed: Speed,
    /// Adapters and settings (YAML). Without it: Prometheus on 0.0.0.0:8080.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Export live kernel events instead of a recording (attaches the same probes as
    /// `gespann record`, so it needs the same privileges).
    #[arg(long)]
    pub live: bool,
    /// With --live: also write the events to this recording (created with mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "inputs")]
    pub record: Option<PathBuf>,
    /// With --record: overwrite the file if it exists.
    #[arg(long, conflicts_with = "inputs")]
    pub force: bool,
    /// With --live: what to record, as `gespann record` takes it.
    #[command(flatten)]
    pub recorder: RecorderArgs,
    /// Exit when the replay reaches the end, instead of serving the final values until Ctrl-C.
    #[arg(long, conflicts_with = "live")]
    pub exit_on_end: bool,
}

impl ReplayArgs {
    /// The config's `log_level`, for the binary to apply when it sets up logging (None without
    /// a config, or if the config cannot be read: `run` reports that properly).
    pub fn log_level(&self) -> Option<&'static str> {
        let path = self.config.as_ref()?;
        Config::load(path).ok()?.log_level.map(|l| l.as_str())
    }

    fn options(&self) -> Result<RunOptions, ReplayError> {
        let config = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        let input = match (self.inputs.is_empty(), self.live) {
            (_, true) => Input::Live(LiveOptions {
                recorder: self.recorder.options().map_err(|e| ReplayError::Live(LiveError::Options(e)))?,
                record: self.record.clone(),
                force: self.force,
            }),
            (false, false) => Input::Recordings { inputs: self.inputs.clone(), speed: self.speed },
            (true, false) => unreachable!("clap requires a recording or --live"),
        };
        Ok(RunOptions { config, input, exit_on_end: self.exit_on_end })
    }
}

/// `gespann replay ARGS`: runs until the end of the recording (with `--exit-on-end`) or until
/// Ctrl-C / SIGTERM.
pub async fn run(args: ReplayArgs) -> Result<(), ReplayError> {
    let opts = args.options()?;
    let adapters = crate::adapters::from_config(&opts.config.adapters);
    crate::run::run(opts, adapters, shutdown_signal()).await?;
    Ok(())
}
