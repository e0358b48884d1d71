//! Replaying a recording to its end gives totals equal to the recording's own aggregates
//! (closes, resets, failures, distinct connections, bytes each way: the sum over connections of
//! the last cumulative value), on a synthetic recording, on every `samples/*.parquet` and on
//! the recordings of earlier schema versions in `testkit/recordings/`.

mod support;

use std::time::Duration;

use support::{aggregates, check_consistency, sample_files, synthetic, write_recording};

#[test]
fn synthetic_recording_replays_to_its_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.parquet");
    let rows = synthetic(3000, Duration::from_secs(600), 7);
    write_recording(&path, &rows);
    let a = aggregates(&rows);
    // The recording exercises what the totals are about.
    assert!(a.closes > 0 && a.resets > 0 && a.failures > 0 && a.udp > 0 && a.open_at_end > 0);
    check_consistency(&path);
}

/// Also checks the recordings listed in `GESPANN_CONSISTENCY_FILES` (colon-separated), e.g. a
/// `cargo xtask synth` output.
#[test]
fn every_sample_recording_replays_to_its_aggregates() {
    let mut samples = sample_files();
    if let Some(extra) = std::env::var_os("GESPANN_CONSISTENCY_FILES") {
        samples.extend(std::env::split_paths(&extra));
    }
    assert!(samples.len() > 2, "the samples and the earlier versions' recordings: {samples:?}");
    for path in samples {
        check_consistency(&path);
    }
}
