//! `gespann scheduler`: a Ballista scheduler, holding its cluster state in memory.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use crate::ClusterError;

/// Arguments of `gespann scheduler`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "A cluster on one machine (each in its own terminal, or with &):
  gespann scheduler --bind 127.0.0.1:50050
  gespann executor --scheduler 127.0.0.1:50050 --bind 127.0.0.1:50051
  gespann executor --scheduler 127.0.0.1:50050 --bind 127.0.0.1:50061
  gespann analyze --cluster df://127.0.0.1:50050 /data/captures/

The scheduler plans each query and hands its tasks to the executors; the recordings must be at
the same path (or object-store URL) on the scheduler and on every executor. It runs until Ctrl-C
or SIGTERM. Logging: RUST_LOG=info.")]
pub struct SchedulerArgs {
    /// Address to listen on, for executors and for `gespann analyze --cluster` clients.
    #[arg(long, default_value = "127.0.0.1:50050", value_name = "ADDR")]
    pub bind: SocketAddr,

    /// Name or address executors reach this scheduler by: it is sent to them with each task,
    /// for their status reports. Default: --bind's address; needed when that is 0.0.0.0 or ::.
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,
}

/// A scheduler listening on its address, not yet serving.
pub struct BoundScheduler {
    rt: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    config: Arc<SchedulerConfig>,
}

impl BoundScheduler {
    /// Binds `args.bind` (a port of 0 takes a free one: see [`Self::local_addr`]).
    pub fn bind(args: &SchedulerArgs) -> Result<Self, ClusterError> {
        let external_host = match &args.external_host {
            Some(h) => h.clone(),
            None if args.bind.ip().is_unspecified() => {
                return Err(ClusterError::Usage(format!(
                    "--bind {} listens on every address: give --external-host, the name executors reach this scheduler by",
                    args.bind
                )));
            }
            None => args.bind.ip().to_string(),
        };
        let rt = crate::runtime()?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(args.bind))
            .map_err(|e| ClusterError::Io { what: format!("cannot listen on {}", args.bind), cause: e })?;
        let addr = listener.local_addr().map_err(|e| ClusterError::Io { what: "cannot listen".into(), cause: e })?;
        let config = SchedulerConfig {
            bind_host: addr.ip().to_string(),
            bind_port: addr.port(),
            external_host: crate::url_host(&external_host),
            override_session_builder: Some(Arc::new(crate::session::scheduler_session)),
            // A task to each executor in turn, rather than filling the first one's slots (the
            // default): the reports' stages are small, and with that every one ran on a
            // single executor however many there were.
            task_distribution: TaskDistributionPolicy::RoundRobin,
            ..Default::default()
        };
        Ok(BoundScheduler { rt, listener, config: Arc::new(config) })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves executors and clients until Ctrl-C or SIGTERM.
    pub fn serve(self) -> Result<(), ClusterError> {
        let BoundScheduler { rt, listener, config } = self;
        rt.block_on(async move {
            let ballista = |what: &str| {
                let what = what.to_string();
                move |cause| ClusterError::Ballista { what, cause }
            };
            let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista("cannot set up the scheduler"))?;
            let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
                .await
                .map_err(ballista("cannot start the scheduler"))?;
            tokio::select! {
                r = start_grpc_service_with_listener(listener, scheduler) => r.map_err(ballista("the scheduler failed")),
                _ = crate::stop_requested() => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_needs_an_external_host() {
        let args = |bind: &str, external: Option<&str>| SchedulerArgs {
            bind: bind.parse().unwrap(),
            external_host: external.map(str::to_string),
        };
        let e = BoundScheduler::bind(&args("0.0.0.0:0", None)).err().unwrap().to_string();
        assert!(e.contains("--external-host"), "{e}");
        let s = BoundScheduler::bind(&args("0.0.0.0:0", Some("sched.internal"))).unwrap();
        assert_eq!(s.config.external_host, "sched.internal");
        let s = BoundScheduler::bind(&args("[::1]:0", None)).unwrap();
        assert_eq!(s.config.external_host, "[::1]");
        assert_ne!(s.local_addr().unwrap().port(), 0);
    }
}
