//! `cargo xtask bench-drain [N] [--rate R]`: the recorder's user-space path, measured as it runs
//! in `gespann record`: raw ring-buffer records -> the recorder's control loop (drain, tracker,
//! reorder watermark) -> rows -> Parquet file + crash checkpoints, through the same
//! `gespann_recorder::Session`, with an in-memory kernel (`FakeKernel`) instead of the BPF
//! ring. Realistic records: client and server open/close pairs, some resets, arriving at R
//! records per second of (virtual) kernel time: 32,000 by default, the 8,000 connections per
//! second of `bench-record`'s paced phase. The session's clock is the kernel's, so ticks and
//! the once-a-second checkpoints (each a row group) come as often per record as at that rate
//! in a real recording. A second run without the file shows how the time splits between the
//! recorder and the writer; the end of the recording (final footer, compaction of the
//! checkpoint row groups) is timed apart, as it happens after the window.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gespann_common::raw::{self, RawEvent, kind};
use gespann_recorder::fake::{FakeHandle, FakeKernel, START_NS};
use gespann_recorder::{OutputOptions, RecordOptions, Session};

/// `n` records: open/close pairs, `spacing_ns` of kernel time between one pair and the next.
fn records(n: usize, spacing_ns: u64) -> Vec<RawEvent> {
    let mut out = Vec::with_capacity(n);
    let mut t = START_NS + 1_000;
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
                pid: 1000 + u32::from(role),
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
            t += spacing_ns;
        }
    }
    out.truncate(n);
    out
}

struct Run {
    /// The recording window: every record handed to the session, tick by tick.
    secs: f64,
    /// Its end: the final drain, footer and compaction.
    finish_secs: f64,
    rows: u64,
    bytes: u64,
}

/// Feeds `recs` to a session tick by tick, as the kernel would fill the ring, and finishes it.
async fn run_session(recs: &[RawEvent], output: Option<&OutputOptions>) -> Result<Run> {
    let (kernel, handle): (FakeKernel, FakeHandle) = FakeKernel::new(1_700_000_000_000_000_000);
    let opts = RecordOptions::default();
    let out = output.map(|o| gespann_recorder::output::Output::create(o, opts.sample_interval)).transpose()?;
    // Records in their order in the ring: by the time the kernel wrote them.
    let mut bytes: Vec<(u64, Vec<u8>)> = recs.iter().map(|r| (r.ts_ns, r.as_bytes().to_vec())).collect();
    bytes.sort_by_key(|b| b.0);
    let mut session = Session::with_kernel(kernel, &opts, out)?;
    let start = Instant::now();
    let mut rows = 0u64;
    let mut next = 0;
    while next < bytes.len() {
        // What the kernel wrote up to now, then one tick of the recorder.
        let now = handle.now_ns();
        let upto = bytes[next..].partition_point(|b| b.0 <= now) + next;
        {
            // Moved, not copied: the kernel's writing is not the recorder's cost.
            let mut s = handle.state();
            s.ring.extend(bytes[next..upto].iter_mut().map(|b| std::mem::take(&mut b.1)));
        }
        next = upto;
        rows += session.next_batch().await?.len() as u64;
    }
    handle.advance(Duration::from_secs(1));
    let secs = start.elapsed().as_secs_f64();
    let ended = session.finish()?;
    rows += ended.events.len() as u64;
    let finish_secs = start.elapsed().as_secs_f64() - secs;
    Ok(Run { secs, finish_secs, rows, bytes: ended.file.map_or(0, |f| f.bytes) })
}

pub fn run(args: &[String]) -> Result<()> {
    let mut n: usize = 2_000_000;
    let mut rate: u64 = 32_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rate" => rate = it.next().context("--rate needs a value")?.parse().context("--rate: a number")?,
            _ => n = a.parse().with_context(|| format!("`{a}`: a record count or --rate R"))?,
        }
    }
    anyhow::ensure!(rate > 0 && rate <= 1_000_000_000, "--rate: 1 to 1e9 records per second");
    // Each step of kernel time carries an open and its close.
    let recs = records(n, 2_000_000_000 / rate);
    let dir = tempfile::tempdir()?;
    let output = OutputOptions { path: dir.path().join("d.parquet"), force: false, command_line: "bench-drain".into() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let with_file = rt.block_on(run_session(&recs, Some(&output)))?;
    let no_file = rt.block_on(run_session(&recs, None))?;
    anyhow::ensure!(with_file.rows == n as u64 && no_file.rows == n as u64, "every record became a row");
    let per = |secs: f64| (n as f64 / secs / 1e6, secs * 1e6 / n as f64);
    let (speed, us) = per(with_file.secs);
    let (speed_nf, us_nf) = per(no_file.secs);
    println!(
        "drain (the recorder's real path: Session over an in-memory ring -> tracker -> Parquet + checkpoints), \
         {n} records at {rate}/s of kernel time ({:.0} s, as many checkpoint row groups): {speed:.2} M events/s, \
         {us:.2} µs per event while recording",
        n as f64 / rate as f64,
    );
    println!(
        "  of which the recorder alone (no file): {speed_nf:.2} M events/s, {us_nf:.2} µs per event; the writer: \
         {:.2} µs per event",
        us - us_nf
    );
    println!(
        "  the end (final footer, compaction of the row groups): {:.2} s = {:.2} µs per event; {:.1} bytes/event on disk",
        with_file.finish_secs,
        with_file.finish_secs * 1e6 / n as f64,
        with_file.bytes as f64 / with_file.rows as f64,
    );
    Ok(())
}
