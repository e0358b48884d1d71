//! `cargo xtask bench-record`: what recording costs the traced host, measured in one run.
//!
//! Saturated throughput on this kind of VM moves 15k–22k conn/s between runs, so besides the
//! throughput ratios the benchmark measures what is stable: **CPU per connection at a fixed,
//! paced rate** below saturation — the whole machine's busy time from `/proc/stat` with and
//! without the recorder, and the recorder process's own user and system time — and each BPF
//! program's runs and ns per run from the kernel's `bpf_stats`. `--ablate` prices each kernel
//! program by leaving it out (`gespann record --leave-out`). Every mode alternates within a
//! round; tables give medians; every phase's figure is printed, and a phase that stalled (the
//! VM's loopback sometimes holds every client in SYN-SENT for seconds) is shown and not counted.
//!
//! Sections: `churn` (saturated: no tracer, `gespann record`, `tcplife`, `replay --live`, and
//! `--baseline BIN`'s record), `paced`, `stats`, `udp` (DNS-like request/response), `bulk` (one
//! TCP transfer), `ablate` (only when asked).

mod cpu;
mod tracers;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::util::{root, run_cmd};
use tracers::{Recorded, Tracer};
use workloads::Done;
pub use workloads::churn;

/// A process's user + system CPU seconds so far.
pub fn process_cpu(pid: u32) -> Result<f64> {
    let (u, s) = cpu::process(pid)?;
    Ok(u + s)
}

struct Opts {
    seconds: f64,
    clients: usize,
    rounds: usize,
    rate: f64,
    /// Another gespann binary (an earlier build) whose `record` runs as a mode of its own.
    baseline: Option<PathBuf>,
    sections: Vec<String>,
}

const SECTIONS: &[&str] = &["churn", "paced", "stats", "udp", "bulk", "ablate"];

const USAGE: &str = "cargo xtask bench-record [--seconds 8] [--clients 4] [--rounds 3] [--rate 8000] \
     [--baseline GESPANN_BIN] [--only churn,paced,stats,udp,bulk] [--ablate]";

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        seconds: 8.0,
        clients: 4,
        rounds: 3,
        rate: 8000.0,
        baseline: None,
        sections: ["churn", "paced", "stats", "udp", "bulk"].map(String::from).to_vec(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value\nusage: {USAGE}"));
        match a.as_str() {
            "--seconds" => o.seconds = val()?.parse()?,
            "--clients" => o.clients = val()?.parse()?,
            "--rounds" => o.rounds = val()?.parse()?,
            "--rate" => o.rate = val()?.parse()?,
            "--baseline" => o.baseline = Some(PathBuf::from(val()?)),
            "--only" => o.sections = val()?.split(',').map(String::from).collect(),
            "--ablate" => o.sections.push("ablate".into()),
            other => bail!("unknown option {other}\nusage: {USAGE}"),
        }
    }
    if let Some(bad) = o.sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        bail!("unknown section {bad} (one of {})", SECTIONS.join(", "));
    }
    Ok(o)
}

/// One phase: the workload under one tracer.
struct Phase {
    done: Done,
    /// Busy CPU of the whole machine from the workload's start to the tracer's exit, seconds.
    busy: f64,
    /// The gespann process's user and system seconds over the same span.
    proc_cpu: (f64, f64),
    recorded: Option<Recorded>,
    bpf: BTreeMap<String, (u64, u64)>,
}

impl Phase {
    fn per_unit_us(&self, secs: f64) -> f64 {
        secs * 1e6 / self.done.units.max(1.0)
    }
}

/// Runs `work` under `tracer`: machine and process CPU from just before the workload to the
/// tracer's exit (a recorder's last drain and its final write count), bpf_stats if `stats`.
fn phase(tracer: Tracer, stats: bool, work: impl FnOnce() -> Result<Done>) -> Result<Phase> {
    std::thread::sleep(Duration::from_millis(300));
    let bpf0 = match (stats, tracer.pid()) {
        (true, Some(pid)) => cpu::bpf_programs(pid)?,
        _ => BTreeMap::new(),
    };
    let machine = cpu::machine()?;
    let cpu0 = tracer.cpu()?;
    let done = work()?;
    let mut bpf = match (stats, tracer.pid()) {
        (true, Some(pid)) => cpu::bpf_programs(pid)?,
        _ => BTreeMap::new(),
    };
    for (name, (runs, ns)) in &mut bpf {
        let (r0, n0) = bpf0.get(name).copied().unwrap_or_default();
        *runs -= r0;
        *ns -= n0;
    }
    std::thread::sleep(Duration::from_millis(700));
    let cpu1 = tracer.cpu()?;
    let recorded = tracer.stop()?;
    let busy = machine.busy_since()?;
    Ok(Phase { done, busy, proc_cpu: (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1), recorded, bpf })
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Bench {
    o: Opts,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Bench {
    fn tracer(&self, mode: &str, extra: &[String]) -> Result<Tracer> {
        match mode {
            "no tracer" => Ok(Tracer::None),
            "gespann record" => Tracer::gespann(&self.bin, self.dir.path(), extra),
            "baseline record" => Tracer::gespann(self.o.baseline.as_deref().expect("baseline"), self.dir.path(), extra),
            "tcplife > file" => Tracer::tcplife(self.dir.path()),
            "replay --live" => Tracer::live(&self.bin, self.dir.path()),
            other => bail!("no tracer {other}"),
        }
    }

    fn modes(&self, with_others: bool) -> Vec<&'static str> {
        let mut m = vec!["no tracer", "gespann record"];
        if with_others {
            m.extend(["tcplife > file", "replay --live"]);
        }
        if self.o.baseline.is_some() {
            m.push("baseline record");
        }
        m
    }

    /// Saturated churn: throughput ratios.
    fn churn(&self) -> Result<()> {
        let modes = self.modes(true);
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut recorded: Vec<Recorded> = Vec::new();
        let mut all: Vec<Vec<(usize, f64)>> = Vec::new();
        for round in 0..self.o.rounds {
            let mut round_rates = Vec::new();
            for (i, mode) in modes.iter().enumerate() {
                let p = phase(self.tracer(mode, &[])?, false, || churn(self.o.seconds, self.o.clients, None))?;
                let rate = p.done.rate();
                let mut line = format!("churn round {round}: {mode:<16} {rate:>8.0} conn/s");
                if let Some(r) = &p.recorded {
                    line += &format!("   {} events, {} lost", r.rows, r.lost);
                }
                eprintln!("{line}");
                round_rates.push((i, rate));
                if let Some(r) = p.recorded
                    && *mode == "gespann record"
                {
                    recorded.push(r);
                }
            }
            all.push(round_rates);
        }
        // A stall holds every client in SYN-SENT for seconds: a phase far below its own mode's
        // usual rate. Compared with the same tracer's other rounds, not with the round's best,
        // so a tracer that is slow every round (tcplife at half the rate) is counted, not dropped.
        let usual: Vec<f64> = (0..modes.len())
            .map(|i| median(&all.iter().flatten().filter(|r| r.0 == i).map(|r| r.1).collect::<Vec<_>>()))
            .collect();
        for (round, round_rates) in all.into_iter().enumerate() {
            for (i, rate) in round_rates {
                if rate < 0.5 * usual[i] {
                    eprintln!(
                        "churn round {round}: {} stalled ({rate:.0} conn/s < half of its median {:.0}), not counted",
                        modes[i], usual[i]
                    );
                } else {
                    rates[i].push(rate);
                }
            }
        }
        let base = median(&rates[0]);
        println!(
            "\nchurn, saturated ({} client threads, {} s phases, {} rounds, medians)",
            self.o.clients, self.o.seconds, self.o.rounds
        );
        println!("{:<18} {:>10} {:>8}", "tracer", "conn/s", "ratio");
        for (i, mode) in modes.iter().enumerate() {
            let m = median(&rates[i]);
            println!("{mode:<18} {m:>10.0} {:>8.3}", m / base);
        }
        let rows: u64 = recorded.iter().map(|r| r.rows).sum();
        let lost: u64 = recorded.iter().map(|r| r.lost).sum();
        let bytes: u64 = recorded.iter().map(|r| r.bytes).sum();
        println!(
            "gespann record: {rows} events, {lost} lost, {:.1} bytes/event on disk",
            bytes as f64 / rows.max(1) as f64
        );
        Ok(())
    }

    /// A paced churn phase under `mode`; `None` if it could not keep the rate (stalled).
    fn paced(&self, mode: &str, extra: &[String], stats: bool, label: &str) -> Result<Option<Phase>> {
        let o = &self.o;
        let p = phase(self.tracer(mode, extra)?, stats, || churn(o.seconds, o.clients, Some(o.rate)))?;
        let mut line =
            format!("{label:<34} {:>7.0} conn/s   machine {:>6.2} µs/conn", p.done.rate(), p.per_unit_us(p.busy));
        if p.recorded.is_some() {
            line += &format!(
                "   recorder {:.2} user + {:.2} sys µs/conn",
                p.per_unit_us(p.proc_cpu.0),
                p.per_unit_us(p.proc_cpu.1)
            );
        }
        if let Some(r) = &p.recorded {
            line += &format!("   {} lost", r.lost);
        }
        if p.done.rate() < 0.9 * o.rate {
            eprintln!("{line}   stalled (below 90% of {:.0}), not counted", o.rate);
            return Ok(None);
        }
        eprintln!("{line}");
        Ok(Some(p))
    }

    /// CPU per connection at a paced rate.
    fn paced_section(&self) -> Result<()> {
        let modes = self.modes(false);
        let mut busy: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut user: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut sys: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut lost = 0;
        for round in 0..self.o.rounds {
            for (i, mode) in modes.iter().enumerate() {
                let Some(p) = self.paced(mode, &[], false, &format!("paced round {round}: {mode}"))? else { continue };
                busy[i].push(p.per_unit_us(p.busy));
                user[i].push(p.per_unit_us(p.proc_cpu.0));
                sys[i].push(p.per_unit_us(p.proc_cpu.1));
                lost += p.recorded.map_or(0, |r| r.lost);
            }
        }
        println!(
            "\nchurn paced at {:.0} conn/s ({} client threads, {} s phases, {} rounds, medians; µs of CPU per connection)",
            self.o.rate, self.o.clients, self.o.seconds, self.o.rounds
        );
        println!("{:<18} {:>14} {:>16} {:>18}", "tracer", "machine busy", "tracer (delta)", "recorder process");
        let base = median(&busy[0]);
        for (i, mode) in modes.iter().enumerate() {
            let b = median(&busy[i]);
            let (delta, own) = if i == 0 {
                (String::new(), String::new())
            } else {
                (
                    format!("{:.2}", b - base),
                    format!(
                        "{:.2} ({:.2}u + {:.2}s)",
                        median(&user[i]) + median(&sys[i]),
                        median(&user[i]),
                        median(&sys[i])
                    ),
                )
            };
            println!("{mode:<18} {b:>14.2} {delta:>16} {own:>18}");
        }
        println!("events lost in paced phases: {lost}");
        Ok(())
    }

    /// Paced phases with bpf_stats on, as recorded by default and with `--connect-errors`:
    /// each program's runs per connection and ns per run.
    fn stats_section(&self) -> Result<()> {
        let _on = cpu::BpfStats::on()?;
        let mut phases = Vec::new();
        for (label, extra) in [("default", vec![]), ("--connect-errors", vec!["--connect-errors".to_owned()])] {
            let Some(p) = self.paced("gespann record", &extra, true, &format!("stats: gespann record {label}"))? else {
                bail!("the bpf_stats phase stalled: run again");
            };
            phases.push(p);
        }
        println!("\nBPF programs at {:.0} conn/s (bpf_stats; its own clock reads add 20-40 ns per run)", self.o.rate);
        println!("{:<20} {:>10} {:>8} {:>9}   {:>10} {:>8} {:>9}", "", "default", "", "", "--connect-errors", "", "");
        println!(
            "{:<20} {:>10} {:>8} {:>9}   {:>10} {:>8} {:>9}",
            "program", "runs/conn", "ns/run", "ns/conn", "runs/conn", "ns/run", "ns/conn"
        );
        let names: std::collections::BTreeSet<&String> = phases.iter().flat_map(|p| p.bpf.keys()).collect();
        let mut totals = [0.0; 2];
        for name in names {
            let mut line = format!("{name:<20}");
            for (i, p) in phases.iter().enumerate() {
                let conns = p.done.units;
                match p.bpf.get(name) {
                    Some(&(runs, ns)) => {
                        let per_run = if runs > 0 { ns as f64 / runs as f64 } else { 0.0 };
                        totals[i] += ns as f64 / conns;
                        line += &format!(" {:>10.2} {per_run:>8.0} {:>9.0}  ", runs as f64 / conns, ns as f64 / conns);
                    }
                    None => line += &format!(" {:>10} {:>8} {:>9}  ", "-", "-", "-"),
                }
            }
            println!("{line}");
        }
        println!(
            "{:<20} {:>10} {:>8} {:>9.0}   {:>10} {:>8} {:>9.0}",
            "all programs", "", "", totals[0], "", "", totals[1]
        );
        Ok(())
    }

    /// Leaves each group of kernel programs out in turn: what each costs per connection, as
    /// the machine's busy time (everything, noisy) and the recorder process's own time (exact).
    fn ablate_section(&self) -> Result<()> {
        let groups: &[(&str, &[&str])] = &[
            ("connect failures", &["handle_exit_connect", "connect4", "connect6"]),
            ("send/recv length", &["handle_send_length", "handle_recv_length"]),
            ("UDP peer hooks", &["udp_sendmsg4", "udp_sendmsg6", "udp_recvmsg4", "udp_recvmsg6"]),
            ("sock_release", &["sock_release"]),
            ("reset tracepoints", &["handle_receive_reset", "handle_send_reset"]),
            ("retransmit", &["handle_retransmit"]),
            ("destroy_sock", &["handle_destroy_sock"]),
        ];
        // Everything attached: the default set plus --connect-errors. The machine drifts over
        // a run (its busy time per connection rose by 30 µs across one), so each group is left
        // out right after a phase with everything, and the figure is the median of those
        // pairs' differences.
        let everything = vec!["--connect-errors".to_owned()];
        let per = |p: &Phase| (p.per_unit_us(p.busy), p.per_unit_us(p.proc_cpu.0 + p.proc_cpu.1));
        let mut saves: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); groups.len()];
        let mut tracer = Vec::new();
        for round in 0..self.o.rounds {
            for (g, (name, progs)) in groups.iter().enumerate() {
                let label = |what: &str| format!("ablate round {round}, {name}: {what}");
                let Some(none) = self.paced("no tracer", &[], false, &label("no tracer"))? else { continue };
                let Some(full) = self.paced("gespann record", &everything, false, &label("everything"))? else {
                    continue;
                };
                let mut extra = everything.clone();
                extra.extend(progs.iter().flat_map(|p| ["--leave-out".to_owned(), (*p).to_owned()]));
                let Some(without) = self.paced("gespann record", &extra, false, &label("without it"))? else {
                    continue;
                };
                let (fb, fr) = per(&full);
                let (wb, wr) = per(&without);
                tracer.push(fb - none.per_unit_us(none.busy));
                saves[g].0.push(fb - wb);
                saves[g].1.push(fr - wr);
            }
        }
        println!(
            "\nablation at {:.0} conn/s, µs per connection (medians of {} rounds of paired phases)",
            self.o.rate, self.o.rounds
        );
        println!("everything attached (with --connect-errors) costs the machine {:.2} over no tracer", median(&tracer));
        println!("{:<20} {:>16} {:>18}", "left out", "machine saves", "recorder saves");
        for (g, (name, _)) in groups.iter().enumerate() {
            println!("{name:<20} {:>16.2} {:>18.2}", median(&saves[g].0), median(&saves[g].1));
        }
        Ok(())
    }

    /// Throughput of `work` with no tracer and with `gespann record` (and the baseline's),
    /// alternated.
    fn ratio_section(&self, title: &str, unit: &str, scale: f64, work: impl Fn() -> Result<Done>) -> Result<()> {
        let modes = self.modes(false);
        let mut rates = vec![Vec::new(); modes.len()];
        let mut lost = 0;
        for round in 0..self.o.rounds {
            for (i, mode) in modes.iter().enumerate() {
                let p = phase(self.tracer(mode, &[])?, false, &work)?;
                let mut line = format!("{title} round {round}: {mode:<16} {:>10.1} {unit}", p.done.rate() / scale);
                if p.recorded.is_some() {
                    line += &format!(
                        "   recorder {:.2} µs CPU per {}",
                        (p.proc_cpu.0 + p.proc_cpu.1) * 1e6 * scale / p.done.units.max(1.0),
                        unit.trim_end_matches("/s")
                    );
                }
                if let Some(r) = &p.recorded {
                    line += &format!("   {} events, {} lost", r.rows, r.lost);
                    lost += r.lost;
                }
                eprintln!("{line}");
                rates[i].push(p.done.rate() / scale);
            }
        }
        let base = median(&rates[0]);
        println!("\n{title} ({} s phases, {} rounds, medians; {lost} events lost)", self.o.seconds, self.o.rounds);
        for (i, mode) in modes.iter().enumerate() {
            let m = median(&rates[i]);
            println!("{mode:<18} {m:>10.1} {unit} {:>8.3}x", m / base);
        }
        Ok(())
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench-record loads eBPF programs: run it as root");
    }
    run_cmd(crate::util::cargo()?.args(["build", "--release", "--quiet", "-p", "gespann"]))?;
    let bin = root()?.join("target/release/gespann");
    let _ = std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "1");
    let b = Bench { o, bin, dir: tempfile::tempdir()? };
    check_binary(&b.bin)?;
    eprintln!("warm-up ...");
    churn(2.0, b.o.clients, None)?;
    let has = |s: &str| b.o.sections.iter().any(|x| x == s);
    if has("churn") {
        b.churn()?;
    }
    if has("paced") {
        b.paced_section()?;
    }
    if has("stats") {
        b.stats_section()?;
    }
    if has("udp") {
        let (secs, clients) = (b.o.seconds, b.o.clients);
        b.ratio_section("UDP request/response", "kqueries/s", 1e3, || workloads::udp_request_response(secs, clients))?;
    }
    if has("bulk") {
        let secs = b.o.seconds;
        b.ratio_section("bulk TCP, one connection", "MB/s", 1e6, || workloads::bulk_tcp(secs))?;
    }
    if has("ablate") {
        b.ablate_section()?;
    }
    Ok(())
}

fn check_binary(bin: &Path) -> Result<()> {
    if !bin.exists() {
        bail!("{} is missing after the build", bin.display());
    }
    Ok(())
}
