//! Recordings in an object store, as a fleet keeps them: a real S3 API (`moto` server, from the
//! `.venv` that `cargo xtask test` sets up) that checks credentials, two sample recordings under
//! a prefix, and `gespann analyze` / `gespann replay` given `s3://` URLs with the standard
//! environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, …). The reports and the metrics must be
//! exactly those of the same files on disk; a missing bucket, a wrong key and an object that is
//! not a recording must each be one line naming the URL, and a non-zero exit. Fails (does not
//! skip) when moto is missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gespann_testkit::{free_port, gespann_bin, python, workspace_root};

const BUCKET: &str = "fleet";

/// A moto S3 server on loopback, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    key_id: String,
    secret: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto (credentials enforced after its first three requests, which make the IAM
/// user), then uploads `files` as `key=path`.
fn moto(files: &[(&str, &Path)]) -> Moto {
    let port = free_port();
    let child = Command::new(python())
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto (the .venv of `cargo xtask test` has moto[server])");
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not listen on {endpoint} within 30 s (is moto[server] installed?)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut moto = Moto { child, endpoint, key_id: String::new(), secret: String::new() };
    let out = Command::new(python())
        .arg(workspace_root().join("cli/tests/object_store/moto_setup.py"))
        .args([&moto.endpoint, BUCKET])
        .args(files.iter().map(|(k, p)| format!("{k}={}", p.display())))
        .output()
        .unwrap();
    assert!(out.status.success(), "moto_setup.py: {}", String::from_utf8_lossy(&out.stderr));
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    moto.key_id = key["key_id"].as_str().unwrap().to_owned();
    moto.secret = key["secret"].as_str().unwrap().to_owned();
    moto
}

fn gespann(moto: &Moto, secret: &str, args: &[&str]) -> Output {
    Command::new(gespann_bin())
        .args(args)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", &moto.key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "gespann failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The error line of a failed run: exactly one line, exit code 1.
fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(err.lines().count(), 1, "one line expected:\n{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    err
}

fn sample(name: &str) -> PathBuf {
    workspace_root().join("samples").join(name)
}

/// Two recordings on disk under the same relative names as in the bucket: a schema version 1
/// one (`testkit/recordings/`) and a sample of the current version, so the bucket holds both.
fn local_copies(dir: &Path) -> [PathBuf; 2] {
    let a = dir.join("2026-12-01/web.parquet");
    let b = dir.join("2026-12-02/containers.parquet");
    for (src, dst) in [(gespann_testkit::recordings::v1_web(), &a), (sample("containers.parquet"), &b)] {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, dst).unwrap();
    }
    [a, b]
}

#[test]
fn analyze_and_replay_read_a_bucket_as_they_read_the_same_files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = local_copies(dir.path());
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, "this is a text file, not a recording\n").unwrap();
    let moto = moto(&[
        ("recordings/2026-12-01/web.parquet", &a),
        ("recordings/2026-12-02/containers.parquet", &b),
        ("recordings/README.txt", &sample("../README.md")),
        ("junk/not-a-recording.parquet", &junk),
    ]);
    let prefix = format!("s3://{BUCKET}/recordings/");
    let local_root = format!("{}/", dir.path().display());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    // What the bucket's names become on disk: then the outputs must be equal byte for byte.
    let as_local = |s: String| s.replace(&prefix, &local_root);

    // The default report (every section), and the two recordings' rows and bytes per source.
    for args in [
        vec!["analyze", "--format", "csv"],
        vec!["analyze", "--format", "json", "--report", "failures", "--report", "talkers", "--report", "latency"],
        vec![
            "analyze",
            "--format",
            "csv",
            "--sql",
            "SELECT source, count(*) AS n, sum(bytes_sent) AS sent FROM events GROUP BY source ORDER BY source",
        ],
        vec![
            "analyze",
            "--format",
            "csv",
            "--sql",
            "SELECT source, hostname, schema_version, rows, file_bytes FROM recordings ORDER BY source",
        ],
    ] {
        let remote = ok(&gespann(&moto, &moto.secret, &[&args[..], &[prefix.as_str()]].concat()));
        let local = ok(&gespann(&moto, &moto.secret, &[&args[..], &[a, b]].concat()));
        assert!(local.lines().count() > 1, "{args:?}: {local}");
        assert_eq!(as_local(remote), local, "{args:?}");
    }
    // The same reports of the bucket on a Ballista cluster, whose scheduler and executors open
    // the store from the same environment.
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", moto.key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", moto.secret.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let cluster = gespann_testkit::cluster::Cluster::start(&env);
    for args in [vec!["analyze", "--format", "csv"], vec!["analyze", "--report", "summary", "--report", "failures"]] {
        let local = ok(&gespann(&moto, &moto.secret, &[&args[..], &[prefix.as_str()]].concat()));
        let remote = ok(&gespann(
            &moto,
            &moto.secret,
            &[&args[..], &["--cluster", cluster.url.as_str(), prefix.as_str()]].concat(),
        ));
        assert_eq!(remote, local, "{args:?} on the cluster");
    }
    assert!(cluster.tasks_run().iter().all(|&n| n > 0), "tasks per executor: {:?}", cluster.tasks_run());
    drop(cluster);

    // A glob and a single object name the same recordings.
    let glob = format!("s3://{BUCKET}/recordings/*/web.parquet");
    let sql = ["analyze", "--format", "csv", "--sql", "SELECT count(*) AS n FROM events"];
    assert_eq!(
        ok(&gespann(&moto, &moto.secret, &[&sql[..], &[glob.as_str()]].concat())),
        ok(&gespann(&moto, &moto.secret, &[&sql[..], &[a]].concat()))
    );

    // Replay: the metrics of the bucket's recordings are those of the files.
    let metrics = |inputs: &[&str]| -> String {
        let port = free_port();
        let cfg = dir.path().join(format!("replay-{port}.yaml"));
        std::fs::write(
            &cfg,
            format!("adapters:\n  - type: prometheus\n    settings:\n      port: {port}\n      listen: 127.0.0.1\n"),
        )
        .unwrap();
        let mut child = Command::new(gespann_bin())
            .args(["replay", "--speed", "max", "-c", cfg.to_str().unwrap()])
            .args(inputs)
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", &moto.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &moto.secret)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let body = loop {
            assert!(Instant::now() < deadline, "replay of {inputs:?} did not finish");
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("replay of {inputs:?} exited ({st}): {err}");
            }
            if let Some(body) = scrape(port).filter(|b| finished(b)) {
                break body;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = child.kill();
        let _ = child.wait();
        body
    };
    let remote = metrics(&[&prefix]);
    assert!(remote.contains("gespann_events_processed_total"), "{remote}");
    assert_eq!(remote, metrics(&[a, b]));

    // Bad inputs: one line each, naming what was given.
    let err = one_line_error(&gespann(&moto, &moto.secret, &["analyze", "s3://no-such-bucket/x/"]));
    assert!(err.contains("s3://no-such-bucket/x/") && err.contains("NoSuchBucket"), "{err}");
    let err = one_line_error(&gespann(&moto, "not-the-secret", &["analyze", &prefix]));
    assert!(err.contains(&prefix) && err.contains("403"), "{err}");
    let object = format!("s3://{BUCKET}/junk/not-a-recording.parquet");
    let err = one_line_error(&gespann(&moto, &moto.secret, &["analyze", &object]));
    assert_eq!(err, format!("gespann: `{object}` is not a Parquet file"));
    let err = one_line_error(&gespann(&moto, &moto.secret, &["replay", &object, "--exit-on-end"]));
    assert_eq!(err, format!("gespann: `{object}` is not a Parquet file"));
    let err = one_line_error(&gespann(&moto, &moto.secret, &["analyze", &format!("s3://{BUCKET}/nothing-here/")]));
    assert!(err.contains("names no object"), "{err}");
}

/// Whether every host's replay is finished (`gespann_replay_finished` 1, with or without a
/// `host` label).
fn finished(body: &str) -> bool {
    let mut lines = body.lines().filter(|l| l.starts_with("gespann_replay_finished")).peekable();
    lines.peek().is_some() && lines.all(|l| l.ends_with(" 1"))
}

/// The body of `GET /metrics` on 127.0.0.1:`port`, if it answers.
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}
