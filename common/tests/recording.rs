//! Round trips through the writer and the reader, and the errors of files that are not
//! recordings.

use std::fs::File;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use gespann_common::Event;
use gespann_common::recording::{FormatError, Pages, RecordingMeta, RecordingReader, RecordingWriter, compact};
use gespann_testkit::fixtures::sample_event;

#[test]
fn written_recording_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.parquet");
    let meta = RecordingMeta { version: "t".into(), hostname: "h".into(), ..Default::default() };
    let mut w = RecordingWriter::create(&path, false, &meta).unwrap();
    let events: Vec<Event> = (0..100).map(sample_event).collect();
    for e in &events {
        w.push(e).unwrap();
    }
    w.finish("2026-01-01T00:00:00Z", 3).unwrap();
    let mode = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!(r.meta.events_lost, 3);
    assert_eq!(r.meta.hostname, "h");
    assert_eq!(r.rows, 100);
    assert_eq!(r.read_all().unwrap(), events);
}

/// Rows of several workloads interleaved (two containers, a pod, the host, no owner), each
/// workload a separate `Arc` as the recorder shares them, and one with equal contents in a
/// second `Arc`: every row reads back with its own values.
#[test]
fn interleaved_workloads_read_back_row_by_row() {
    use gespann_common::Workload;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.parquet");
    let mut w = RecordingWriter::create(&path, false, &RecordingMeta::default()).unwrap();
    let s = |v: &str| Some(Arc::<str>::from(v));
    let web = Arc::new(Workload {
        cgroup: "/libpod_parent/libpod-aaa".into(),
        container_id: s("aaa"),
        container_name: s("web"),
        ..Default::default()
    });
    let pod = Arc::new(Workload {
        cgroup: "/kubepods.slice/x/cri-containerd-bbb.scope".into(),
        container_id: s("bbb"),
        pod_uid: s("u-1"),
        pod_name: s("api-0"),
        pod_namespace: s("prod"),
        ..Default::default()
    });
    let host = Arc::new(Workload { cgroup: "/".into(), ..Default::default() });
    let web_again = Arc::new((*web).clone());
    let order = [&web, &host, &pod, &web, &web_again, &Workload::unknown(), &pod, &host];
    let events: Vec<Event> = (0..400u64)
        .map(|i| Event {
            netns: 4026531840 + (i % 3) as u32,
            workload: order[i as usize % order.len()].clone(),
            ..sample_event(i)
        })
        .collect();
    for e in &events {
        w.push(e).unwrap();
    }
    w.finish("2026-01-01T00:00:00Z", 0).unwrap();
    assert_eq!(RecordingReader::open(&path).unwrap().read_all().unwrap(), events);
}

/// The codec of every column chunk of `path`.
fn codecs(path: &std::path::Path) -> std::collections::BTreeSet<String> {
    let md = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    md.metadata().row_groups().iter().flat_map(|rg| rg.columns().iter().map(|c| c.compression().to_string())).collect()
}

#[test]
fn compaction_keeps_rows_and_metadata_in_fewer_row_groups_and_zstd_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.parquet");
    let meta = RecordingMeta { hostname: "h".into(), ..Default::default() };
    // As `gespann record` writes: LZ4 pages, a row group per checkpoint.
    let mut w = RecordingWriter::create_with(&path, false, &meta, Pages::Fast).unwrap();
    let events: Vec<Event> = (0..40).map(sample_event).collect();
    for e in &events {
        w.push(e).unwrap();
        w.flush_row_group().unwrap();
    }
    assert_eq!(w.finish("end", 2).unwrap().row_groups, 40);
    assert_eq!(codecs(&path).into_iter().collect::<Vec<_>>(), ["LZ4_RAW"]);
    let s = compact(&path).unwrap();
    assert_eq!(codecs(&path).into_iter().collect::<Vec<_>>(), ["ZSTD(ZstdLevel(1))"]);
    assert_eq!(s.rows, 40);
    let r = RecordingReader::open(&path).unwrap();
    assert_eq!((r.meta.hostname.as_str(), r.meta.ended_at.as_str(), r.meta.events_lost), ("h", "end", 2));
    assert_eq!(r.read_all().unwrap(), events);
    let f = std::fs::File::open(&path).unwrap();
    let md = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    assert_eq!(md.metadata().num_row_groups(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.parquet");
    std::fs::write(&path, b"x").unwrap();
    let err = RecordingWriter::create(&path, false, &RecordingMeta::default()).err().unwrap();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(RecordingWriter::create(&path, true, &RecordingMeta::default()).is_ok());
}

#[test]
fn bad_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(RecordingReader::open(&empty), Err(FormatError::Empty { .. })));
    let text = dir.path().join("text.parquet");
    std::fs::write(&text, b"hello, this is not parquet at all").unwrap();
    assert!(matches!(RecordingReader::open(&text), Err(FormatError::NotParquet { .. })));
    let missing = dir.path().join("missing.parquet");
    let e = RecordingReader::open(&missing).err().unwrap();
    assert!(e.to_string().contains("missing.parquet"), "{e}");

    // Truncated: a real recording with its footer cut off.
    let good = dir.path().join("good.parquet");
    let mut w = RecordingWriter::create(&good, false, &RecordingMeta::default()).unwrap();
    w.push(&sample_event(1)).unwrap();
    w.finish("x", 0).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = RecordingReader::open(&cut).err().unwrap();
    assert!(e.to_string().contains("truncated"), "{e}");

    // Parquet, but not a recording.
    let foreign = dir.path().join("foreign.parquet");
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "x",
        arrow::datatypes::DataType::Int32,
        false,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(arrow::array::Int32Array::from(vec![1]))]).unwrap();
    let mut w = ArrowWriter::try_new(File::create(&foreign).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let e = RecordingReader::open(&foreign).err().unwrap();
    assert!(e.to_string().contains("gespann.schema_version"), "{e}");
}
