//! Project chores cargo cannot do, as `cargo xtask <task>` (alias in `.cargo/config.toml`):
//! rebuild and check the committed BPF object, make the sample recordings, generate synthetic
//! recordings, run the benchmarks, make loopback traffic to try a recording on. Everything here shells out to real
//! tools or makes real traffic; nothing is faked.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::util::root;

mod bench_analyze;
mod bench_drain;
mod bench_idle;
mod bench_record;
mod bench_replay;
mod ebpf;
mod image;
mod samples;
mod synth;
mod test;
mod traffic;
mod util;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test             the whole suite on a fresh machine: installs what tests need, checks, every test (root)
  build-ebpf       recompile recorder-ebpf/src/*.c into recorder-ebpf/gespann.bpf.o (needs clang-19)
  check-ebpf       fail if the committed object differs from a fresh build of its source
  image            the container image, built offline: binary + its libraries FROM scratch
                   ([--debug] [--tag gespann:dev] [--engine podman|docker])
  samples          re-record the sample recordings in samples/ (root)
  synth            write a large synthetic recording (--events 10M -o FILE [--seed N])
  bench-record     what recording costs: churn throughput vs no tracer, tcplife and replay --live; CPU
                   per connection at a paced rate; bpf_stats per program; UDP and bulk TCP ratios;
                   --ablate prices each kernel program (root)
  bench-idle       50,000 idle connections held while recording: recorder memory, rows, losses (root)
  bench-drain      the recorder's real user-space path, raw records to Parquet [N] [--rate R]
  bench-analyze    gespann analyze vs DuckDB on a 10M-event synthetic recording
  bench-replay     replay at --speed max through both adapters: events/s, scrape time, datagrams
  traffic          realistic loopback traffic to record (HTTP, resets, refused, DNS, bulk, IPv6) and
                   exactly what it did [--duration 30s] [--rate N] [--format json] (--help)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(task, rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: &str, rest: &[String]) -> Result<()> {
    match task {
        "build-ebpf" => ebpf::build(&root()?.join(ebpf::OBJECT)),
        "check-ebpf" => ebpf::check(),
        "synth" => synth::run(rest),
        "samples" => samples::run(rest),
        "image" => image::run(rest),
        "bench-record" => bench_record::run(rest),
        "bench-drain" => bench_drain::run(rest),
        "bench-idle" => bench_idle::run(rest),
        "idle-hold" => bench_idle::hold(rest),
        "test" => test::run(rest),
        "bench-analyze" => bench_analyze::run(rest),
        "bench-replay" => bench_replay::run(rest),
        "traffic" => traffic::run(rest),
        "churn" => {
            let secs: f64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(5.0);
            println!("{:.0} conn/s", bench_record::churn(secs, 4, None)?.rate());
            Ok(())
        }
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}` (with {} more arguments)\n{USAGE}", rest.len()),
    }
}
