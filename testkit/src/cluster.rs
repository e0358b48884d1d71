//! A Ballista cluster of the `gespann` binary on loopback for tests: one `gespann scheduler`
//! and two `gespann executor` processes, killed on drop. Readiness and the tasks run are read
//! from Ballista's own log lines (`Executor registration succeed`, `Finished task`): if a
//! Ballista release rewords them, the cluster tests fail rather than pass blindly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::{free_port, gespann_bin};

/// A process's stderr lines so far.
pub type Log = Arc<Mutex<Vec<String>>>;

pub struct Cluster {
    children: Vec<Child>,
    /// `df://127.0.0.1:PORT`, for `gespann analyze --cluster`.
    pub url: String,
    /// Each executor's stderr so far (Ballista logs `Finished task` for each task it ran).
    pub executor_logs: Vec<Log>,
    _work_dirs: Vec<tempfile::TempDir>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// Starts the scheduler and two executors (2 task slots each), with `env` set for all three
    /// (e.g. an object store's `AWS_*`), and waits until both executors are registered.
    pub fn start(env: &[(&str, &str)]) -> Cluster {
        let port = free_port();
        let mut cmd = Command::new(gespann_bin());
        cmd.args(["scheduler", "--bind", &format!("127.0.0.1:{port}")])
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn");
        let mut children = vec![start_until(cmd, "listening on", "gespann scheduler").0];
        let (mut work_dirs, mut executor_logs) = (Vec::new(), Vec::new());
        for i in 0..2 {
            let dir = tempfile::tempdir().expect("a work directory");
            let mut cmd = Command::new(gespann_bin());
            cmd.args(["executor", "--scheduler", &format!("127.0.0.1:{port}")])
                .args(["--bind", &format!("127.0.0.1:{}", free_port())])
                .args(["--grpc-port", &free_port().to_string(), "--tasks", "2"])
                .arg("--work-dir")
                .arg(dir.path())
                .envs(env.iter().copied())
                // Ballista's own lines: once the scheduler has taken the executor in, and per task.
                .env("RUST_LOG", "warn,ballista_executor=info");
            let (child, log, _) = start_until(cmd, "Executor registration succeed", &format!("gespann executor {i}"));
            children.push(child);
            executor_logs.push(log);
            work_dirs.push(dir);
        }
        Cluster { children, url: format!("df://127.0.0.1:{port}"), executor_logs, _work_dirs: work_dirs }
    }

    /// Tasks each executor has finished so far.
    pub fn tasks_run(&self) -> Vec<usize> {
        self.executor_logs
            .iter()
            .map(|log| log.lock().map(|l| l.iter().filter(|l| l.contains("Finished task")).count()).unwrap_or(0))
            .collect()
    }
}

/// Starts `cmd` and waits (up to 60 s) for a line of its stderr containing `ready`, returned
/// with the child; the rest of its stderr is collected in the background, into the log.
fn start_until(mut cmd: Command, ready: &str, what: &str) -> (Child, Log, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start gespann");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let ready = ready.to_string();
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&ready) {
                let _ = tx.send(Ok(line.clone()));
            }
            if let Ok(mut s) = seen.lock() {
                s.push(line);
            }
        }
        let _ = tx.send(Err(seen.lock().map(|s| s.join("\n")).unwrap_or_default()));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(line)) => (child, log, line),
        Ok(Err(log)) => panic!("{what} exited before it was ready:\n{log}"),
        Err(_) => panic!("{what} was not ready within 60 s"),
    }
}
