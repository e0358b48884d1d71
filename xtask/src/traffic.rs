//! `cargo xtask traffic`: realistic loopback traffic to record while trying Gespann out, and a
//! report of exactly what it did. The generator is `gespann_testkit::traffic` (the root test
//! `cli/tests/traffic.rs` records the same code and checks the recording against its report);
//! this file is its command line: arguments, Ctrl-C, and the table for people.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gespann_testkit::traffic::{Config, Report, TcpKind, Traffic};

pub const HELP: &str = "usage: cargo xtask traffic [--duration 30s] [--rate N] [--format table|json]

Makes a realistic mix of connections on loopback (127.0.0.1 and ::1 only), against servers it
starts itself on ephemeral ports, so that a recording has something to show. One burst a second:

  HTTP/1.1     N requests (--rate, default 20): half on keep-alive connections of up to 4
               requests, half one per connection (Connection: close); every 7th a 404, every
               13th a 500; a third of them over IPv6
  resets       a server abort (GET /abort: the server closes with SO_LINGER 0) and a client
               abort (the client closes with SO_LINGER 0 after a response)
  refused      a connect to a port held bound without a listener, over IPv4 and IPv6
  DNS (UDP)    N/2 queries from an unconnected IPv4 socket and N/4 from a connected IPv6 one,
               each socket a new flow; every 5th name (under void.test) goes unanswered
and once, half-way, a bulk HTTP download of 32 MiB.

At the end (or at Ctrl-C, which stops early) it prints what its sockets did: per kind and
server port the connections, their outcome (closed, reset, failed) and the bytes each way; the
HTTP statuses; per DNS server the flows, datagrams and bytes; the ports it used. `--format json`
prints the same as JSON, every UDP flow with its client port, for programs.

Try it with a recording (README: \"Try it in one minute\"):
  sudo target/debug/gespann record --duration 40s -o /tmp/try.parquet &
  cargo xtask traffic --duration 30s

options:
  -d, --duration D   how long (30s, 2m, 500ms; default 30s); bursts start every second
  -r, --rate N       HTTP requests per burst, 1 to 10000 (default 20)
  -f, --format F     table (default) or json
  -h, --help         this text
";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Debug, PartialEq)]
enum Format {
    Table,
    Json,
}

/// The parsed command line; `None` when it asked for help.
fn parse(args: &[String]) -> Result<Option<(Config, Format)>> {
    let mut cfg = Config::default();
    let mut format = Format::Table;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            inline.clone().or_else(|| it.next().cloned()).with_context(|| format!("`{name}` needs a value"))
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "-d" | "--duration" => {
                let v = value()?;
                cfg.duration = humantime::parse_duration(&v)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .with_context(|| format!("--duration `{v}`: not a duration such as 30s, 2m or 500ms"))?;
            }
            "-r" | "--rate" => {
                let v = value()?;
                cfg.rate = v
                    .parse()
                    .ok()
                    .filter(|r| (1..=10_000).contains(r))
                    .with_context(|| format!("--rate `{v}`: not a number of requests from 1 to 10000"))?;
            }
            "-f" | "--format" => {
                format = match value()?.as_str() {
                    "table" => Format::Table,
                    "json" => Format::Json,
                    other => bail!("--format `{other}`: not table or json"),
                };
            }
            other => bail!("traffic: unknown argument `{other}` (cargo xtask traffic --help)"),
        }
    }
    Ok(Some((cfg, format)))
}

pub fn run(args: &[String]) -> Result<()> {
    let Some((cfg, format)) = parse(args)? else {
        print!("{HELP}");
        return Ok(());
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let traffic = Traffic::bind()?;
    let p = traffic.ports();
    eprintln!(
        "traffic: {} of bursts on 127.0.0.1 and ::1 (http {} and {}, bulk {}, dns {} and {}, refused {} and {}); \
         Ctrl-C stops early",
        humantime::format_duration(Duration::from_millis(cfg.duration.as_millis() as u64)),
        p.http4,
        p.http6,
        p.bulk,
        p.dns4,
        p.dns6,
        p.refused4,
        p.refused6
    );
    let report = traffic.run(&cfg, &STOP)?;
    match format {
        Format::Json => println!("{}", report.to_json()),
        Format::Table => print!("{}", table(&report)),
    }
    Ok(())
}

fn endpoint(addr: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// The report for people.
fn table(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "traffic: {} bursts in {:.1} s at {} requests per burst{}",
        r.bursts,
        r.elapsed_s,
        r.rate,
        if r.interrupted { " (stopped early)" } else { "" }
    );
    let _ = writeln!(o, "\nTCP, as the clients saw it (each server end moved the same bytes the other way):");
    let _ = writeln!(
        o,
        "  {:<16} {:<17} {:<7} {:<7} {:>6} {:>8} {:>12} {:>12}",
        "kind", "server", "outcome", "by", "conns", "requests", "bytes sent", "bytes recv"
    );
    for t in &r.tcp {
        let by = match (t.reset_by, t.error) {
            (Some(end), _) => format!("{end:?}").to_lowercase(),
            (None, Some(err)) => err.to_owned(),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            o,
            "  {:<16} {:<17} {:<7} {:<7} {:>6} {:>8} {:>12} {:>12}",
            t.kind.name(),
            endpoint(t.addr, t.port),
            t.outcome.name(),
            by,
            t.connections,
            t.requests,
            t.bytes_sent,
            t.bytes_received
        );
    }
    let total: u64 = r.tcp.iter().filter(|t| t.kind != TcpKind::Refused).map(|t| t.connections).sum();
    let refused: u64 = r.tcp.iter().filter(|t| t.kind == TcpKind::Refused).map(|t| t.connections).sum();
    let _ = writeln!(o, "  {total} connections, {refused} refused attempts");
    let statuses: Vec<String> = r.http_responses.iter().map(|(code, n)| format!("{code} x{n}")).collect();
    let _ = writeln!(o, "\nHTTP responses read: {}", statuses.join(", "));
    let _ = writeln!(o, "\nDNS over UDP (one flow per client socket; datagrams client -> server / server -> client):");
    let _ = writeln!(
        o,
        "  {:<17} {:>5} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "server", "flows", "queries", "unanswered", "sent", "received", "bytes out", "bytes in"
    );
    for s in r.servers.iter().filter(|s| s.protocol == "udp") {
        let flows: Vec<_> = r.udp.iter().filter(|f| f.server_port == s.port).collect();
        let sum = |f: fn(&gespann_testkit::traffic::UdpFlow) -> u64| flows.iter().map(|x| f(x)).sum::<u64>();
        let _ = writeln!(
            o,
            "  {:<17} {:>5} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
            endpoint(s.addr, s.port),
            flows.len(),
            sum(|f| f.queries),
            sum(|f| f.queries - f.server_datagrams_sent),
            sum(|f| f.datagrams_sent),
            sum(|f| f.datagrams_received),
            sum(|f| f.bytes_sent),
            sum(|f| f.bytes_received)
        );
    }
    let ports: Vec<String> =
        r.servers.iter().map(|s| format!("{} {}/{}", s.name, endpoint(s.addr, s.port), s.protocol)).collect();
    let _ = writeln!(o, "\nports: {}", ports.join(", "));
    let _ = writeln!(o, "(--format json lists every UDP flow with its client port)");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_parse_and_bad_ones_are_one_line_naming_the_argument() {
        let (cfg, f) = parse(&args(&["--duration", "3s", "--rate=7", "--format", "json"])).unwrap().unwrap();
        assert_eq!((cfg.duration, cfg.rate, f), (Duration::from_secs(3), 7, Format::Json));
        let (cfg, f) = parse(&[]).unwrap().unwrap();
        assert_eq!((cfg.duration, cfg.rate, f), (Duration::from_secs(30), 20, Format::Table));
        assert!(parse(&args(&["--help"])).unwrap().is_none());
        for (bad, msg) in [
            (&["--duration", "soon"][..], "--duration `soon`: not a duration such as 30s, 2m or 500ms"),
            (&["--duration", "0s"], "--duration `0s`: not a duration such as 30s, 2m or 500ms"),
            (&["--rate", "0"], "--rate `0`: not a number of requests from 1 to 10000"),
            (&["--rate"], "`--rate` needs a value"),
            (&["--format", "xml"], "--format `xml`: not table or json"),
            (&["--loud"], "traffic: unknown argument `--loud` (cargo xtask traffic --help)"),
        ] {
            assert_eq!(format!("{:#}", parse(&args(bad)).unwrap_err()), msg);
        }
    }
}
