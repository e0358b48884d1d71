//! Where CPU time went: the whole machine's busy time (`/proc/stat`), one process's user and
//! system time (`/proc/PID/stat`), and each BPF program's run count and run time (the kernel's
//! `bpf_stats`, read from the recorder's program fds in `/proc/PID/fdinfo`).

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result};

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// A point in time and the machine's idle time so far, to take busy CPU between two of them.
pub struct Machine {
    at: std::time::Instant,
    idle: f64,
    cpus: f64,
}

/// Now, and the idle plus iowait seconds summed over CPUs from /proc/stat. Busy time is taken
/// as wall time × CPUs − idle: with a tickless idle (NO_HZ) the kernel measures idle time at
/// every idle entry and exit, while its user/system split is sampled at each tick, which a
/// workload paced by timers can alias with (a paced phase read 1.6 or 248 µs per connection
/// from the tick counts, on alternate runs).
pub fn machine() -> Result<Machine> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let f: Vec<f64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0.0)).collect();
    let cpus = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count() as f64;
    Ok(Machine { at: std::time::Instant::now(), idle: (f[3] + f[4]) / clock_ticks(), cpus })
}

impl Machine {
    /// Busy CPU seconds (summed over CPUs) since `self`.
    pub fn busy_since(&self) -> Result<f64> {
        let now = machine()?;
        Ok((now.at - self.at).as_secs_f64() * self.cpus - (now.idle - self.idle))
    }
}

/// utime and stime of process `pid` in seconds (fields 14 and 15 of /proc/PID/stat).
pub fn process(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')').context("malformed /proc/PID/stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok((f[11].parse::<f64>()? / clock_ticks(), f[12].parse::<f64>()? / clock_ticks()))
}

/// Run count and total run time (ns) of every BPF program process `pid` holds, by program
/// name (as `bpftool prog show` gives it: the first 15 bytes). Needs
/// `/proc/sys/kernel/bpf_stats_enabled` set while the programs ran.
pub fn bpf_programs(pid: u32) -> Result<BTreeMap<String, (u64, u64)>> {
    let names = program_names()?;
    let mut out = BTreeMap::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else { continue };
        if target.to_string_lossy() != "anon_inode:bpf-prog" {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()))
        else {
            continue;
        };
        let field = |k: &str| {
            info.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
        };
        let id = field("prog_id:");
        let name = names.get(&id).cloned().unwrap_or_else(|| format!("id {id}"));
        out.insert(name, (field("run_cnt:"), field("run_time_ns:")));
    }
    Ok(out)
}

/// Program id -> name, from `bpftool prog show` ("ID: TYPE  name NAME  tag ...").
fn program_names() -> Result<BTreeMap<u64, String>> {
    let out =
        Command::new("bpftool").args(["prog", "show"]).output().context("run bpftool (apt-get install bpftool)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names = BTreeMap::new();
    for line in text.lines() {
        let Some((id, rest)) = line.split_once(':') else { continue };
        let Ok(id) = id.trim().parse::<u64>() else { continue };
        let mut words = rest.split_whitespace();
        if let Some(name) = words.by_ref().skip_while(|w| *w != "name").nth(1) {
            names.insert(id, name.to_owned());
        }
    }
    Ok(names)
}

/// Turns the kernel's run-time statistics on for as long as this lives (they cost two clock
/// reads per program run, so only the phases that report them have them on).
pub struct BpfStats;

impl BpfStats {
    pub fn on() -> Result<BpfStats> {
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").context("enable bpf_stats")?;
        Ok(BpfStats)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    }
}
