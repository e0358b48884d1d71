//! `gespann analyze --html` in a real browser: headless Debian chromium renders the page of the
//! sample recordings to a PNG (a real picture: the size asked for, and far more than a blank
//! page compresses to) and its DOM holds the seven charts' SVG. Chromium runs with its network
//! features off and a fresh profile, from a `file://` URL. Without chromium the test fails: it
//! is never skipped (`apt-get install chromium`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "chromium is not installed (looked for /usr/bin/chromium and /usr/bin/chromium-browser); this test needs \
         it: `apt-get install -y --no-install-recommends chromium`"
    );
}

/// Runs headless chromium on `url` with `args`; returns stdout. Panics, with its stderr, when it
/// fails or takes more than two minutes.
fn run_chromium(url: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    // Read both pipes on threads so a full pipe cannot stall chromium.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).map(|_| s)
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 120 s: {}", err.join().unwrap().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = err.join().unwrap().unwrap_or_default();
    assert!(status.success(), "chromium {args:?} failed ({status}): {stderr}");
    out.join().unwrap().unwrap_or_default()
}

#[test]
fn chromium_renders_the_page_of_the_samples_with_its_seven_charts() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let mut a: Vec<String> = std::fs::read_dir(workspace().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    a.sort();
    a.extend(["--html".to_string(), html.to_string_lossy().into_owned()]);
    analyze(&a.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    let url = format!("file://{}", html.display());

    // Where the screenshot goes: GESPANN_HTML_SCREENSHOT keeps it for a person to look at.
    let png: PathBuf =
        std::env::var_os("GESPANN_HTML_SCREENSHOT").map_or_else(|| dir.path().join("page.png"), PathBuf::from);
    let _ = std::fs::remove_file(&png);
    run_chromium(&url, &[format!("--screenshot={}", png.display()), "--window-size=1400,3000".to_string()]);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("chromium wrote no screenshot {}: {e}", png.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1400, 3000), "screenshot size");
    // A blank 1400x3000 page compresses to a few KiB; charts, text and tables do not.
    assert!(bytes.len() > 100_000, "the screenshot is {} bytes: nearly blank?", bytes.len());

    let dom = run_chromium(&url, &["--dump-dom".to_string()]);
    assert!(dom.contains("<figure id=\"chart-connections_per_second\""), "the charts are in the DOM");
    assert_eq!(dom.matches("<svg").count(), 7, "seven SVG elements in the DOM");
    assert!(dom.matches("<circle").count() > 20, "the points are SVG circles in the DOM");
    assert!(dom.contains("<table id=\"table-summary\">"), "the report tables are in the DOM");
}
