//! The recording session end to end over the in-memory kernel: what reaches the file, and how
//! the record loop stops. No root needed. (Its own test binary: it raises signals.)

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use gespann_common::raw::{self, RawEvent, kind};
use gespann_recorder::fake::{FakeHandle, FakeKernel};
use gespann_recorder::output::Output;
use gespann_recorder::{OutputOptions, RecordOptions, Session, Stop, StopSignals, run_until};

fn open_record(conn_id: u64, ts: u64) -> RawEvent {
    let mut r = RawEvent {
        ts_ns: ts,
        start_ns: ts,
        conn_id,
        kind: kind::OPEN,
        protocol: raw::PROTO_TCP,
        role: raw::ROLE_CLIENT,
        family: 4,
        sport: 40000,
        dport: 80,
        state: 1,
        ..Default::default()
    };
    r.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    r.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    r
}

fn session(dir: &Path) -> (Session<FakeKernel>, FakeHandle, std::path::PathBuf) {
    let path = dir.join("s.parquet");
    let opts = RecordOptions::default();
    let out = OutputOptions { path: path.clone(), force: false, command_line: "test".into() };
    let output = Output::create(&out, opts.sample_interval).unwrap();
    let (kernel, handle) = FakeKernel::new(1_700_000_000_000_000_000);
    (Session::with_kernel(kernel, &opts, Some(output)).unwrap(), handle, path)
}

fn key_values(path: &Path) -> HashMap<String, String> {
    use parquet::file::reader::FileReader;
    let r = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let kv = r.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    kv.into_iter().map(|k| (k.key, k.value.unwrap_or_default())).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_signal_that_arrives_while_a_batch_is_handled_ends_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, h, _) = session(dir.path());
    // As the binary runs: other worker threads handle the signal driver while this one writes.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    let stop = rt.block_on(async {
        let mut signals = StopSignals::new().unwrap();
        let mut batches = 0;
        run_until(&mut s, Some(Duration::from_secs(30)), &mut signals, |_, _| {
            batches += 1;
            h.push(&open_record(batches, h.now_ns()));
            if batches == 3 {
                // SIGINT while the batch is being written and synced, not while waiting.
                // SAFETY: raise(2) with a valid signal number.
                unsafe { libc::raise(libc::SIGINT) };
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap()
    });
    assert_eq!(stop, Stop::Interrupt);
    assert!(started.elapsed() < Duration::from_secs(5), "stopped at once, not at the end of the window");
    let ended = s.finish().unwrap();
    assert!(ended.file.unwrap().rows >= 3, "every row recorded before the stop is in the file");
}

#[test]
fn the_file_holds_what_the_final_drain_found_and_the_losses_counted_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, h, path) = session(dir.path());
    let rt = runtime();
    h.push(&open_record(1, h.now_ns()));
    for _ in 0..10 {
        rt.block_on(s.next_batch()).unwrap();
    }
    // Between the last tick and the end: one more record, and losses the final drain meets.
    h.push(&RawEvent { sport: 40002, ..open_record(2, h.now_ns()) });
    h.state().on_drain = Some(Box::new(|k| k.lost.ring = 7));
    let ended = s.finish().unwrap();
    assert_eq!(ended.stats.events_lost(), 7);
    let rows = gespann_common::RecordingReader::open(&path).unwrap().read_all().unwrap();
    let opens = rows.iter().filter(|r| r.kind == gespann_common::EventKind::Open);
    assert_eq!(opens.map(|r| r.conn_id).collect::<Vec<_>>(), vec![1, 2]);
    let kv = key_values(&path);
    assert_eq!(kv["gespann.events_lost"], "7");
    // The fake kernel holds neither socket at the end, and no end record came: both ended unseen.
    assert_eq!(kv["gespann.tcp_ends_inferred"], "2");
    assert_eq!(kv["gespann.late_rows"], "0");
    assert!(!path.with_extension("parquet.journal").exists(), "a normal end removes the journal");
}

#[test]
fn rows_written_out_of_order_are_counted_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, h, path) = session(dir.path());
    let rt = runtime();
    let t0 = h.now_ns();
    h.push(&open_record(1, t0 + 1_000));
    for _ in 0..10 {
        rt.block_on(s.next_batch()).unwrap();
    }
    h.push(&open_record(2, t0)); // older than row 1, which is written already
    h.push(&RawEvent { kind: 99, ..Default::default() });
    let ended = s.finish().unwrap();
    assert_eq!(ended.stats.tracker.late_rows, 1);
    let kv = key_values(&path);
    assert_eq!((kv["gespann.late_rows"].as_str(), kv["gespann.unknown_records"].as_str()), ("1", "1"));
}
