//! `cargo xtask bench-drain`: user-space throughput of the recorder's pipeline, without the
//! kernel: raw ring-buffer records -> tracker -> rows -> Parquet file + crash journal.
//! Realistic records (client and server open/close pairs, some failures) built in memory.

use std::time::Instant;

use anyhow::Result;
use gespann_common::journal::save_checkpoint;
use gespann_common::raw::{self, RawEvent, kind};
use gespann_common::recording::{RecordingMeta, RecordingWriter};
use gespann_recorder::tracker::{Clock, ResetReasons, Tracker};

fn records(n: usize) -> Vec<RawEvent> {
    let mut out = Vec::with_capacity(n);
    let mut t = 1_000_000u64;
    let mut id = 1u64;
    while out.len() < n {
        for role in [raw::ROLE_CLIENT, raw::ROLE_SERVER] {
            let mut r = RawEvent {
                ts_ns: t,
                start_ns: t - 50_000,
                conn_id: id,
                kind: kind::OPEN,
                protocol: raw::PROTO_TCP,
                role,
                family: 4,
                sport: if role == raw::ROLE_CLIENT { 30000 + (id % 30000) as u16 } else { 8080 },
                dport: if role == raw::ROLE_CLIENT { 8080 } else { 30000 + (id % 30000) as u16 },
                pid: 1000 + role as u32,
                state: 1,
                flags: raw::flags::HAS_RTT | raw::flags::HAS_HANDSHAKE,
                rtt_us: 40,
                handshake_us: 90,
                ..Default::default()
            };
            r.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
            r.daddr[..4].copy_from_slice(&[127, 0, 0, (2 + id % 4) as u8]);
            r.comm[..6].copy_from_slice(if role == raw::ROLE_CLIENT { b"client" } else { b"server" });
            out.push(r);
            let mut c = r;
            c.kind = if id.is_multiple_of(50) { kind::RESET } else { kind::CLOSE };
            c.ts_ns = t + 200_000;
            c.state = 7;
            c.prev_state = 9;
            c.bytes_sent = 129;
            c.bytes_received = 65;
            c.packets_sent = 1;
            c.packets_received = 1;
            out.push(c);
            id += 1;
        }
        t += 50_000;
    }
    out
}

pub fn run(args: &[String]) -> Result<()> {
    let n: usize = args.first().map(|a| a.parse()).transpose()?.unwrap_or(4_000_000);
    let recs = records(n);
    let bytes: Vec<Vec<u8>> = recs.iter().map(|r| r.as_bytes().to_vec()).collect();
    let dir = tempfile::tempdir()?;
    let meta = RecordingMeta::default();
    let mut w = RecordingWriter::create(&dir.path().join("d.parquet"), false, &meta)?;
    let journal = dir.path().join("d.parquet.journal");
    let mut tr = Tracker::new(Clock::fixed(0), ResetReasons::default());
    let start = Instant::now();
    let mut rows = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        let r = RawEvent::from_bytes(b).expect("record");
        tr.on_raw(&r);
        // The recorder hands rows out every 200 ms; here every 50k records.
        if i % 50_000 == 49_999 {
            let ready = tr.drain_ready(r.ts_ns.saturating_sub(10_000_000));
            for e in &ready {
                w.push(e)?;
            }
            let (len, footer) = w.checkpoint("x", 0)?;
            save_checkpoint(&journal, w.sink(), len, &footer)?;
            rows += ready.len() as u64;
        }
    }
    for e in tr.drain_all() {
        w.push(&e)?;
        rows += 1;
    }
    let s = w.finish("x", 0)?;
    let secs = start.elapsed().as_secs_f64();
    // Stage timings, for finding the bottleneck.
    let t = Instant::now();
    let mut tr2 = Tracker::new(Clock::fixed(0), ResetReasons::default());
    let mut all = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        let r = RawEvent::from_bytes(b).expect("record");
        tr2.on_raw(&r);
        if i % 50_000 == 49_999 {
            all.extend(tr2.drain_ready(r.ts_ns.saturating_sub(10_000_000)));
        }
    }
    all.extend(tr2.drain_all());
    let tracker_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut b = gespann_common::recording::BatchBuilder::default();
    for e in &all {
        b.push(e);
        if b.len() == 65536 {
            b.finish();
        }
    }
    let batch_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut w2 = RecordingWriter::new(&dir.path().join("x"), Vec::new(), &meta)?;
    for e in &all {
        w2.push(e)?;
    }
    w2.finish("x", 0)?;
    let parquet_s = t.elapsed().as_secs_f64();
    eprintln!("stages: tracker {tracker_s:.2} s, arrow batches {batch_s:.2} s, arrow+parquet {parquet_s:.2} s");
    println!(
        "drain: {n} raw events -> {rows} rows in {secs:.2} s = {:.2} M events/s (tracker + Parquet + checkpoints), {:.1} bytes/event on disk",
        n as f64 / secs / 1e6,
        s.bytes as f64 / rows as f64
    );
    Ok(())
}
