//! The crash journal: a killed recording is rebuilt from its last checkpoint.

use gespann_common::Event;
use gespann_common::journal::{JournalError, journal_path, recover, save_checkpoint};
use gespann_common::recording::{RecordingMeta, RecordingReader, RecordingWriter};
use gespann_testkit::fixtures::sample_event;

#[test]
fn a_killed_recording_is_rebuilt_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cap.parquet");
    let jpath = journal_path(&out);
    let meta = RecordingMeta { hostname: "h".into(), started_at: "s".into(), ..Default::default() };
    let mut w = RecordingWriter::create(&out, false, &meta).unwrap();
    let events: Vec<Event> = (0..10).map(sample_event).collect();
    for e in &events[..6] {
        w.push(e).unwrap();
    }
    let (len, footer) = w.checkpoint("t1", 1).unwrap();
    save_checkpoint(&jpath, w.sink(), len, &footer).unwrap();
    for e in &events[6..9] {
        w.push(e).unwrap();
    }
    let (len, footer) = w.checkpoint("t2", 4).unwrap();
    save_checkpoint(&jpath, w.sink(), len, &footer).unwrap();
    // Rows after the last checkpoint, then a crash: no footer.
    w.push(&events[9]).unwrap();
    w.flush_row_group().unwrap();
    drop(w);
    assert!(RecordingReader::open(&out).is_err());

    let rec = recover(&jpath, &out).unwrap();
    assert!(rec.discarded_bytes > 0);
    let r = RecordingReader::open(&out).unwrap();
    assert_eq!(r.meta.events_lost, 4);
    assert_eq!(r.meta.ended_at, "t2");
    assert_eq!(r.meta.hostname, "h");
    assert_eq!(r.read_all().unwrap(), events[..9].to_vec());
}

#[test]
fn the_writer_carries_on_after_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cap.parquet");
    let mut w = RecordingWriter::create(&out, false, &RecordingMeta::default()).unwrap();
    let events: Vec<Event> = (0..5).map(sample_event).collect();
    w.push(&events[0]).unwrap();
    w.checkpoint("x", 0).unwrap();
    for e in &events[1..] {
        w.push(e).unwrap();
    }
    w.finish("y", 0).unwrap();
    assert_eq!(RecordingReader::open(&out).unwrap().read_all().unwrap(), events);
}

#[test]
fn foreign_files_are_not_journals() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.journal");
    std::fs::write(&p, b"hello, world, this is long enough").unwrap();
    assert!(matches!(recover(&p, &dir.path().join("o.parquet")), Err(JournalError::NotAJournal { .. })));
}
