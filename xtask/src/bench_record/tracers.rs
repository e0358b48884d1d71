//! The tracers a phase runs under: none, `gespann record` (this build or another, with extra
//! flags such as `--leave-out`), libbpf-tools `tcplife` writing to a file, and `gespann replay
//! --live` serving Prometheus. Each is started before the workload and stopped after it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::cpu;

pub enum Tracer {
    None,
    Gespann {
        child: Child,
        out: PathBuf,
    },
    Tcplife {
        child: Child,
    },
    /// `gespann replay --live`: the sidecar (live metrics, nothing written).
    Live {
        child: Child,
    },
}

/// What `gespann record` wrote in a phase.
pub struct Recorded {
    pub rows: u64,
    pub lost: u64,
    pub bytes: u64,
}

impl Tracer {
    pub fn gespann(bin: &Path, dir: &Path, extra: &[String]) -> Result<Tracer> {
        let out = dir.join("bench.parquet");
        let child = Command::new(bin)
            .args(["record", "--duration", "10m", "-q", "--force", "-o"])
            .arg(&out)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .context("run gespann record")?;
        let journal = PathBuf::from(format!("{}.journal", out.display()));
        let mut t = Tracer::Gespann { child, out };
        let t0 = Instant::now();
        while !journal.exists() {
            if let Tracer::Gespann { child, .. } = &mut t
                && let Some(status) = child.try_wait()?
            {
                bail!("gespann record {extra:?} exited at start: {status}");
            }
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("gespann record did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(t)
    }

    pub fn tcplife(dir: &Path) -> Result<Tracer> {
        let file = std::fs::File::create(dir.join("tcplife.txt"))?;
        let mut child = Command::new("tcplife")
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .context("run tcplife (apt-get install libbpf-tools)")?;
        // tcplife prints its header only when its buffered stdout fills; give it time to attach.
        std::thread::sleep(Duration::from_secs(2));
        if let Some(status) = child.try_wait()? {
            bail!("tcplife exited at start: {status}");
        }
        Ok(Tracer::Tcplife { child })
    }

    pub fn live(bin: &Path, dir: &Path) -> Result<Tracer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let cfg = dir.join("live.yaml");
        std::fs::write(
            &cfg,
            format!(
                "adapters:\n  - type: prometheus\n    settings:\n      listen: 127.0.0.1\n      port: \"{port}\"\n"
            ),
        )?;
        let child = Command::new(bin)
            .args(["replay", "--live", "-c"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .spawn()
            .context("run gespann replay --live")?;
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("gespann replay --live did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Tracer::Live { child })
    }

    /// The gespann process (record or live), whose own CPU time is measured.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Tracer::Gespann { child, .. } | Tracer::Live { child } => Some(child.id()),
            _ => None,
        }
    }

    /// The process's user and system seconds so far (zero without a gespann process).
    pub fn cpu(&self) -> Result<(f64, f64)> {
        Ok(self.pid().map(cpu::process).transpose()?.unwrap_or_default())
    }

    /// Stops the tracer (SIGINT, as Ctrl-C) and returns what `gespann record` wrote.
    pub fn stop(mut self) -> Result<Option<Recorded>> {
        let out = match &self {
            Tracer::Gespann { out, .. } => Some(out.clone()),
            _ => None,
        };
        let child = match &mut self {
            Tracer::None => return Ok(None),
            Tracer::Gespann { child, .. } | Tracer::Tcplife { child } | Tracer::Live { child } => child,
        };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = child.wait()?;
        let Some(out) = out else { return Ok(None) };
        if !status.success() {
            bail!("gespann record failed: {status}");
        }
        let (meta, rows, _) = gespann_common::recording::inspect(&out)?;
        let bytes = std::fs::metadata(&out)?.len();
        std::fs::remove_file(&out)?;
        Ok(Some(Recorded { rows, lost: meta.events_lost, bytes }))
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let child = match self {
            Tracer::None => return,
            Tracer::Gespann { child, .. } | Tracer::Tcplife { child } | Tracer::Live { child } => child,
        };
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
