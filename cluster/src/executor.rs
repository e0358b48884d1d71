//! `gespann executor`: a Ballista executor that registers with a scheduler and runs its tasks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

use crate::ClusterError;

/// Arguments of `gespann executor`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  gespann executor --scheduler 127.0.0.1:50050
  gespann executor --scheduler sched.internal:50050 --bind 0.0.0.0:50051 --external-host node7.internal

Two executors on one machine need their own --bind ports (each also uses the next port for the
scheduler's task pushes, see --grpc-port). It runs until Ctrl-C, SIGTERM or the scheduler
stops it. Logging: RUST_LOG=info.")]
pub struct ExecutorArgs {
    /// The scheduler to register with: HOST:PORT or df://HOST:PORT. Tried for 30 s, so
    /// executors may start before it (then it is an error).
    #[arg(long, value_name = "HOST:PORT")]
    pub scheduler: String,

    /// Address of the Arrow Flight service that clients and other executors fetch results from
    /// (IPv4: Ballista's executor does not listen on IPv6).
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "ADDR")]
    pub bind: SocketAddr,

    /// Port, on --bind's address, of the service the scheduler pushes tasks to (default:
    /// --bind's port + 1).
    #[arg(long, value_name = "PORT")]
    pub grpc_port: Option<u16>,

    /// Name or address the scheduler and clients reach this executor by (default: --bind's
    /// address; for 0.0.0.0, the address its connection to the scheduler comes from).
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,

    /// Tasks run at once (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub tasks: Option<usize>,

    /// Directory for shuffle files and spills (default: a new temporary directory, removed at
    /// exit).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Memory for the tasks (e.g. 4GiB), split evenly among the --tasks slots: a task spills
    /// beyond its slots' share. Default: 70% of this machine's memory, or of this cgroup's
    /// limit if lower.
    #[arg(long, value_parser = gespann_analyze::cli::parse_size, value_name = "SIZE")]
    pub memory_limit: Option<u64>,
}

impl ExecutorArgs {
    /// `--scheduler`'s host and port (which it must name).
    pub fn scheduler_address(&self) -> Result<(String, u16), ClusterError> {
        let url =
            if self.scheduler.contains("://") { self.scheduler.clone() } else { format!("df://{}", self.scheduler) };
        match gespann_analyze::cluster::parse_scheduler(&url) {
            Some((host, Some(port))) => Ok((host, port)),
            _ => Err(ClusterError::SchedulerAddress(self.scheduler.clone())),
        }
    }

    /// The arguments checked: the scheduler's host and port, and the port for task pushes.
    pub fn check(&self) -> Result<(String, u16, u16), ClusterError> {
        let (host, port) = self.scheduler_address()?;
        if !self.bind.is_ipv4() || self.bind.port() == 0 {
            return Err(ClusterError::Usage(format!(
                "--bind {}: an IPv4 address and a port other than 0 (it is given to the scheduler as is)",
                self.bind
            )));
        }
        let grpc_port = match self.grpc_port {
            Some(0) => return Err(ClusterError::Usage("--grpc-port 0: give a port".into())),
            Some(p) => p,
            None => self.bind.port().checked_add(1).ok_or_else(|| {
                ClusterError::Usage(format!("--bind {}: no port after it for --grpc-port; give one", self.bind))
            })?,
        };
        Ok((host, port, grpc_port))
    }
}

/// Runs the executor until it is asked to stop.
pub fn run_executor(args: &ExecutorArgs) -> Result<(), ClusterError> {
    let (host, port, grpc_port) = args.check()?;
    // A temporary directory of our own, removed at exit (Ballista's default is removed at once).
    let temp;
    let work_dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("gespann-executor-")
                .tempdir()
                .map_err(|e| ClusterError::Io { what: "cannot create a work directory".into(), cause: e })?;
            temp.path().to_owned()
        }
    };
    let wd = work_dir.to_string_lossy().into_owned();
    let stores = Arc::new(crate::session::EnvObjectStores::default());
    let producer_dir = wd.clone();
    let config = ExecutorProcessConfig {
        bind_host: args.bind.ip().to_string(),
        port: args.bind.port(),
        grpc_port,
        // The address it listens on, unless that is every address.
        external_host: args
            .external_host
            .clone()
            .or_else(|| (!args.bind.ip().is_unspecified()).then(|| args.bind.ip().to_string())),
        scheduler_host: crate::url_host(&host),
        scheduler_port: port,
        // One try: the scheduler was just reached (Ballista's own retries never give up).
        scheduler_connect_timeout_seconds: 0,
        vcores: args.tasks.unwrap_or(0),
        work_dir: Some(wd),
        memory_pool_size: args.memory_limit,
        override_function_registry: Some(Arc::new(crate::session::executor_functions())),
        override_runtime_producer: Some(Arc::new(move |_| {
            RuntimeEnvBuilder::new()
                .with_temp_file_path(producer_dir.clone())
                .with_object_store_registry(stores.clone())
                .build_arc()
        })),
        ..Default::default()
    };
    let rt = crate::runtime()?;
    rt.block_on(async {
        let patience = std::time::Duration::from_secs(30);
        tokio::select! {
            r = gespann_analyze::cluster::reach_scheduler(&host, port, patience) => r.map_err(|cause| ClusterError::Io {
                what: format!("cannot reach the scheduler at {}:{port} within 30 s", crate::url_host(&host)),
                cause,
            })?,
            _ = crate::stop_requested() => return Ok(()),
        }
        start_executor_process(Arc::new(config)).await.map_err(|cause| ClusterError::Ballista {
            what: format!("the executor failed (scheduler {}:{port})", crate::url_host(&host)),
            cause,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses() {
        let args = |s: &str| ExecutorArgs {
            scheduler: s.into(),
            bind: "127.0.0.1:50051".parse().unwrap(),
            grpc_port: None,
            external_host: None,
            tasks: None,
            work_dir: None,
            memory_limit: None,
        };
        assert_eq!(args("127.0.0.1:50050").scheduler_address().unwrap(), ("127.0.0.1".into(), 50050));
        assert_eq!(args("df://sched:7/").scheduler_address().unwrap(), ("sched".into(), 7));
        assert_eq!(args("[::1]:9").scheduler_address().unwrap(), ("::1".into(), 9));
        for bad in ["sched", ":50050", "sched:port"] {
            assert!(args(bad).scheduler_address().unwrap_err().to_string().contains(bad));
        }
        // Task pushes go to the port after --bind's, unless given; addresses Ballista cannot use
        // are refused up front.
        assert_eq!(args("h:1").check().unwrap(), ("h".into(), 1, 50052));
        let with = |bind: &str, grpc: Option<u16>| ExecutorArgs {
            bind: bind.parse().unwrap(),
            grpc_port: grpc,
            ..args("h:1")
        };
        assert_eq!(with("10.1.2.3:7000", Some(9)).check().unwrap().2, 9);
        for (bind, grpc) in
            [("[::1]:7000", None), ("127.0.0.1:0", None), ("127.0.0.1:65535", None), ("127.0.0.1:7000", Some(0))]
        {
            let e = with(bind, grpc).check().unwrap_err().to_string();
            assert!(e.starts_with("--"), "{bind} {grpc:?}: {e}");
        }
    }
}
